"""The one HTTP client of the service: polite, bounded, and never raising anything but FetchError.

What httpx does not do for us, and why we do it here (measured on httpx 0.28):

* **Overall deadline.** httpx's timeouts are per read, so a server dripping one
  byte every half second never times out. Each fetch runs in a cancel scope with
  ``total_timeout`` seconds for the whole redirect chain and body.
* **Bounded decoding.** httpx decodes a network chunk in one go (a 1 MB gzip bomb
  becomes a 64 MiB chunk). We read raw bytes and decode them with
  ``monitor.fetch.decode`` in 64 KiB steps, stopping past ``max_bytes``.
* **Redirects by hand.** To count hops, detect loops and know whether the whole
  chain was permanent (301/308), which lets the service update a feed's URL only
  when the publisher really moved it.
* **No shared cookies.** One client polls thousands of unrelated feeds; a cookie
  from one must never ride along to another, so the jar refuses every cookie.
* **SSRF guard.** Every connection, first request and redirect hop alike, goes
  only to addresses ``monitor.fetch.guard`` allows (public ones plus
  ``allow_networks``), checked after DNS resolution on the address connected to.

Error kinds (``FetchError.kind``), stable for metrics, logs and the CLI:

=====================  ================================================
kind                   meaning
=====================  ================================================
``deadline``           ``total_timeout`` ran out (slow drip, slow chain)
``timeout``            one read/write/pool wait timed out
``connect``            TCP connection refused/unreachable/timed out
``dns``                host name did not resolve
``tls``                TLS handshake or certificate failure
``network``            connection broke mid-exchange
``protocol``           malformed HTTP, bad Content-Encoding, bad Location
``bad_url``            the URL is not an http(s) URL we can request
``blocked_address``    the host (or a redirect's host) resolves to an address feeds
                       may not reach: loopback, private, link-local, metadata ...
``http_4xx``           a 4xx other than 410/429
``http_5xx``           a 5xx (503 with Retry-After is ``rate_limited``)
``http_status``        a status we do not handle (1xx, odd 3xx)
``gone``               410: the publisher removed the feed
``rate_limited``       429, or 503 with Retry-After (``retry_after`` set)
``too_large``          decoded body exceeded ``max_bytes``
``redirect_loop``      a URL came back within one redirect chain
``too_many_redirects`` more than ``max_redirects`` hops
``unexpected``         anything else (a bug in a dependency): still one failed feed
=====================  ================================================
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import anyio
import httpx
from httpx._utils import URLPattern  # how httpx matches proxy mounts to URLs

from monitor.errors import FetchError
from monitor.fetch.decode import BoundedDecoder, DecodeError, accept_encoding
from monitor.fetch.guard import (
    AddressPolicy,
    BlockedAddress,
    numeric_address,
    parse_networks,
    resolve,
)
from monitor.fetch.headers import parse_retry_after
from monitor.fetch.politeness import HostGate
from monitor.fetch.transport import TransportName, env_proxy_mounts, make_transport
from monitor.models import FetchResult

if TYPE_CHECKING:
    from monitor.config import PollSettings

DEFAULT_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, application/feed+json;q=0.8, */*;q=0.5"
)
DEFAULT_USER_AGENT = "news-monitor/0.1 (+https://github.com/news-monitor/news-monitor)"

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})


@dataclass(frozen=True)
class FetchLimits:
    """Every bound of one fetch. Times in seconds, sizes in bytes.

    ``per_host`` caps requests in flight to one host (< 1: no cap) and
    ``host_spacing`` is the minimum gap between two request starts to one host.
    ``trust_env`` lets HTTP(S)_PROXY/ALL_PROXY/NO_PROXY and SSL_CERT_FILE apply, read
    once, when the ``Fetcher`` is built (at start), not per request; proxy credentials
    go in the proxy URL (~/.netrc is not read, for proxies or feeds).
    ``guard`` refuses non-public addresses except those in ``allow_networks``
    (CIDR strings); ``transport`` picks the network layer (``monitor.fetch.transport``).
    """

    total_timeout: float = 30.0
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    max_bytes: int = 8 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    accept: str = DEFAULT_ACCEPT
    max_connections: int = 200
    max_keepalive: int = 100
    keepalive_expiry: float = 60.0
    per_host: int = 4
    host_spacing: float = 0.0
    http2: bool = True
    trust_env: bool = True
    guard: bool = True
    allow_networks: tuple[str, ...] = ()
    transport: TransportName = "httpx"

    def address_policy(self) -> AddressPolicy | None:
        """The SSRF policy these limits ask for (None: guard off)."""
        return AddressPolicy(parse_networks(self.allow_networks)) if self.guard else None


def fetch_limits(poll: PollSettings) -> FetchLimits:
    """What ``poll:`` in the config asks for; the daemon and the CLI build the same fetcher."""
    timeout = poll.timeout.total_seconds()
    return FetchLimits(
        total_timeout=timeout,
        connect_timeout=poll.connect_timeout.total_seconds(),
        read_timeout=min(timeout, 20.0),
        max_bytes=poll.max_bytes, max_redirects=poll.max_redirects,
        user_agent=user_agent(poll.user_agent, poll.contact),
        per_host=poll.per_host, host_spacing=poll.host_spacing.total_seconds(),
        allow_networks=tuple(str(n) for n in poll.allow_networks),
        transport=poll.transport,
    )


def user_agent(base: str, contact: str | None) -> str:
    """``base`` with the operator's contact added, so publishers know whom to tell.

    ``news-monitor/0.1 (+https://x)`` + ``mailto:ops@y`` ->
    ``news-monitor/0.1 (+https://x; mailto:ops@y)``. A bare e-mail address becomes a
    ``mailto:`` URL.
    """
    contact = (contact or "").strip()
    if not contact:
        return base
    if "@" in contact and "://" not in contact and not contact.startswith("mailto:"):
        contact = "mailto:" + contact
    if base.endswith(")") and "(" in base:
        return f"{base[:-1]}; {contact})"
    return f"{base} (+{contact})"


def _no_cookies() -> CookieJar:
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _chain(e: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _connect_kind(e: BaseException) -> str:
    chain = _chain(e)
    if any(isinstance(c, socket.gaierror) for c in chain):
        return "dns"
    if any(isinstance(c, ssl.SSLError | ssl.CertificateError) for c in chain):
        return "tls"
    text = " ".join(str(c) for c in chain).lower()
    if "name or service not known" in text or "nodename nor servname" in text \
            or "temporary failure in name resolution" in text or "getaddrinfo" in text:
        return "dns"
    if "ssl" in text or "certificate" in text:
        return "tls"
    return "connect"


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# httpx-aiohttp maps every aiohttp ClientConnectionError to httpx.ConnectTimeout (a server
# hanging up mid-response included), so its transport's errors are read from the cause.
# Most specific first: the first name in an exception's class hierarchy wins.
_AIOHTTP_KINDS = (
    ("ClientConnectorDNSError", "dns"),
    ("ClientConnectorCertificateError", "tls"),
    ("ClientConnectorSSLError", "tls"),
    ("ClientSSLError", "tls"),
    ("ConnectionTimeoutError", "connect"),
    ("ClientConnectorError", "connect"),
    ("ServerDisconnectedError", "network"),
    ("ClientPayloadError", "network"),
    ("ClientOSError", "network"),
    ("SocketTimeoutError", "timeout"),
    ("ServerTimeoutError", "timeout"),
    ("InvalidURL", "bad_url"),
    ("ClientResponseError", "protocol"),
)


def _aiohttp_kind(e: BaseException) -> str | None:
    for cause in _chain(e)[1:]:
        if type(cause).__module__.split(".")[0] != "aiohttp":
            continue
        names = {k.__name__ for k in type(cause).__mro__}
        for name, kind in _AIOHTTP_KINDS:
            if name in names:
                return kind
    return None


def _wrap(url: str, e: Exception) -> FetchError:
    """Our vocabulary for a transport exception (never let httpx's escape)."""
    kind: str
    if (aio := _aiohttp_kind(e)) is not None:
        kind = aio
    elif isinstance(e, httpx.ConnectTimeout):
        kind = "connect"
    elif isinstance(e, httpx.TimeoutException):
        kind = "timeout"
    elif isinstance(e, httpx.ConnectError):
        kind = _connect_kind(e)
    elif isinstance(e, httpx.ReadError | httpx.WriteError | httpx.CloseError):
        kind = "network"
    elif isinstance(e, httpx.UnsupportedProtocol | httpx.InvalidURL):
        kind = "bad_url"
    elif isinstance(e, httpx.ProtocolError | httpx.DecodingError | DecodeError):
        kind = "protocol"
    elif isinstance(e, httpx.HTTPError | httpx.StreamError):
        kind = "network" if isinstance(e, httpx.NetworkError) else "protocol"
    else:
        kind = "unexpected"
    return FetchError(url, kind, _describe(e))


def _blocked(url: str, e: BlockedAddress, current: str | None = None) -> FetchError:
    where = f"redirect to {current}: " if current and current != url else ""
    return FetchError(url, "blocked_address", where + str(e))


def _status_error(url: str, resp: httpx.Response, now: datetime) -> FetchError:
    status = resp.status_code
    retry_after = parse_retry_after(resp.headers.get("retry-after"), now)
    reason = f"HTTP {status} {resp.reason_phrase}".strip()
    if status == 410:
        return FetchError(url, "gone", reason, status=status)
    if status == 429 or (status == 503 and retry_after is not None):
        return FetchError(url, "rate_limited", reason, status=status, retry_after=retry_after)
    if 400 <= status < 500:
        return FetchError(url, "http_4xx", reason, status=status, retry_after=retry_after)
    if status >= 500:
        return FetchError(url, "http_5xx", reason, status=status, retry_after=retry_after)
    return FetchError(url, "http_status", reason, status=status)


class Fetcher:
    """Owns one shared ``httpx.AsyncClient`` (HTTP/2, keep-alive) for every feed.

    ``transport`` swaps the network layer (``httpx.MockTransport`` in unit tests, or
    a faster transport such as ``httpx-aiohttp``) without changing anything else.
    """

    def __init__(
        self, limits: FetchLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.limits = limits or FetchLimits()
        lim = self.limits
        self._gate = HostGate(lim.per_host, lim.host_spacing)
        self._policy = lim.address_policy()
        mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
        if transport is None:
            transport = make_transport(lim.transport, lim, self._policy)
            mounts = env_proxy_mounts(lim, transport)
        # Which URLs go through a proxy, decided as httpx picks a mount: most specific
        # pattern first. Read once with the mounts, so ``_precheck`` judges exactly the
        # URLs a proxy serves without looking at the environment per request.
        self._proxied = sorted(((URLPattern(p), t is not None) for p, t in mounts.items()),
                               key=lambda pt: pt[0].priority)
        self._client = httpx.AsyncClient(
            http2=lim.http2,
            transport=transport,
            mounts=mounts,
            follow_redirects=False,
            trust_env=lim.trust_env,
            cookies=_no_cookies(),
            timeout=httpx.Timeout(
                connect=lim.connect_timeout, read=lim.read_timeout,
                write=lim.read_timeout, pool=None,
            ),
            limits=httpx.Limits(
                max_connections=lim.max_connections,
                max_keepalive_connections=lim.max_keepalive,
                keepalive_expiry=lim.keepalive_expiry,
            ),
            headers={
                "User-Agent": lim.user_agent,
                "Accept": lim.accept,
                "Accept-Encoding": accept_encoding(),
            },
        )

    @property
    def gate(self) -> HostGate:
        return self._gate

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET ``url`` conditionally; a 304 comes back with ``body=None``.

        Raises ``FetchError`` for every failure, including HTTP error statuses.
        """
        started = time.monotonic()
        scope = anyio.CancelScope()  # armed once the first host slot is ours
        result: FetchResult | None = None
        try:
            with scope:
                result = await self._fetch_chain(url, etag, last_modified, started, scope)
        except FetchError:
            raise
        except Exception as e:
            blocked = next((c for c in _chain(e) if isinstance(c, BlockedAddress)), None)
            if blocked is not None:
                raise _blocked(url, blocked) from e
            raise _wrap(url, e) from e
        if scope.cancelled_caught or result is None:
            raise FetchError(
                url, "deadline",
                f"no complete response within {self.limits.total_timeout:g}s",
            )
        return result

    async def post_form(self, url: str, form: dict[str, str]) -> int:
        """POST a form (a WebSub subscription request) and return the status; no redirects.

        Same client, guard and deadline as feed fetches: a hub URL comes from a feed,
        so it is as untrusted as any feed URL.
        """
        try:
            with anyio.fail_after(self.limits.total_timeout):
                try:
                    await self._precheck(url)
                    async with self._client.stream("POST", url, data=form) as resp:
                        return resp.status_code
                except BlockedAddress as e:
                    raise _blocked(url, e) from e
        except FetchError:
            raise
        except TimeoutError as e:
            raise FetchError(url, "deadline", f"no answer within "
                             f"{self.limits.total_timeout:g}s") from e
        except Exception as e:
            raise _wrap(url, e) from e

    async def _fetch_chain(
        self, url: str, etag: str | None, last_modified: str | None, started: float,
        scope: anyio.CancelScope,
    ) -> FetchResult:
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        visited = {url}
        permanent = True
        hops = 0
        while True:
            async with self._gate.slot(_host(current)):
                if hops == 0:
                    # waiting for a polite slot is not the server's fault: the
                    # deadline starts when the first request may go out
                    started = time.monotonic()
                    scope.deadline = anyio.current_time() + self.limits.total_timeout
                outcome = await self._hop(url, current, headers)
            if isinstance(outcome, FetchResult):
                return replace(
                    outcome,
                    etag=outcome.etag or (etag if outcome.status == 304 else None),
                    last_modified=outcome.last_modified
                    or (last_modified if outcome.status == 304 else None),
                    final_url=current,
                    permanent_redirect=current if hops and permanent else None,
                    elapsed=time.monotonic() - started,
                )
            status, target = outcome
            hops += 1
            permanent = permanent and status in _PERMANENT
            if target in visited:
                raise FetchError(url, "redirect_loop",
                                 f"{current} -> {target} was already visited", status=status)
            if hops > self.limits.max_redirects:
                raise FetchError(url, "too_many_redirects",
                                 f"more than {self.limits.max_redirects} redirects",
                                 status=status)
            visited.add(target)
            current = target

    async def _hop(
        self, url: str, current: str, headers: dict[str, str]
    ) -> FetchResult | tuple[int, str]:
        """One request: the final result, or ``(status, target)`` for a redirect."""
        try:
            await self._precheck(current)
            return await self._exchange(url, current, headers)
        except BlockedAddress as e:
            raise _blocked(url, e, current) from e

    async def _exchange(
        self, url: str, current: str, headers: dict[str, str]
    ) -> FetchResult | tuple[int, str]:
        async with self._client.stream("GET", current, headers=headers) as resp:
            status = resp.status_code
            if status in _REDIRECTS:
                location = resp.headers.get("location")
                if not location:
                    raise FetchError(url, "protocol", f"HTTP {status} without Location",
                                     status=status)
                target = urljoin(current, location.strip())
                if urlsplit(target).scheme.lower() not in ("http", "https"):
                    raise FetchError(url, "protocol", f"redirect to {target!r}", status=status)
                return status, target
            resp_headers = {k.lower(): v for k, v in resp.headers.items()}
            if status == 304:
                return FetchResult(
                    url=url, status=304, body=None, etag=resp.headers.get("etag"),
                    last_modified=resp.headers.get("last-modified"), headers=resp_headers,
                )
            if not 200 <= status < 300:
                raise _status_error(url, resp, datetime.now(UTC))
            body = await self._read_body(url, resp)
            return FetchResult(
                url=url, status=status, body=body, etag=resp.headers.get("etag"),
                last_modified=resp.headers.get("last-modified"), headers=resp_headers,
            )

    async def _precheck(self, current: str) -> None:
        """Judge what we can before any transport sees the URL.

        Numeric hosts: a literal cannot rebind, so this check is exact; it matters
        for transports (aiohttp, HTTP proxies) that connect to literals without a
        resolver we control. Names behind an environment proxy: the proxy resolves
        and connects, not us, so we resolve too and refuse what we would refuse at
        connect time (best effort: the proxy's own egress rules are the real fence).
        """
        if self._policy is None:
            return
        host = _host(current)
        address = numeric_address(host)
        if address is not None:
            reason = self._policy.verdict(address)
            if reason is not None:
                raise BlockedAddress(host, address, reason)
            return
        if self._proxied and self._through_proxy(current):
            try:
                addresses = await resolve(host, urlsplit(current).port or 80)
            except OSError:
                return  # the proxy may know names we do not
            self._policy.check(host, addresses)

    def _through_proxy(self, url: str) -> bool:
        """Whether the environment's proxies (read at start) serve ``url``."""
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL:
            return False
        return next((proxied for pattern, proxied in self._proxied if pattern.matches(target)),
                    False)

    async def _read_body(self, url: str, resp: httpx.Response) -> bytes:
        cap = self.limits.max_bytes
        encoding = resp.headers.get("content-encoding")
        declared = resp.headers.get("content-length", "")
        if not encoding and declared.isdigit() and int(declared) > cap:
            raise FetchError(url, "too_large",
                             f"Content-Length {declared} exceeds the {cap} byte cap",
                             status=resp.status_code)
        if resp.is_stream_consumed:
            # an in-memory response (MockTransport): httpx already holds the decoded body
            if len(resp.content) > cap:
                raise FetchError(url, "too_large", f"body exceeds the {cap} byte cap",
                                 status=resp.status_code)
            return resp.content
        try:
            decoder = BoundedDecoder(encoding)
        except DecodeError as e:
            raise FetchError(url, "protocol", str(e), status=resp.status_code) from e
        parts: list[bytes] = []
        size = raw = 0

        def take(outs: Iterable[bytes]) -> None:
            """Keep decoded pieces, stopping the moment the cap is passed."""
            nonlocal size
            for out in outs:
                size += len(out)
                if size > cap:
                    raise FetchError(url, "too_large",
                                     f"decoded body exceeds the {cap} byte cap",
                                     status=resp.status_code)
                parts.append(out)

        try:
            async for chunk in resp.aiter_raw():
                raw += len(chunk)
                if raw > cap:
                    raise FetchError(url, "too_large", f"more than {cap} raw bytes",
                                     status=resp.status_code)
                take(decoder.feed(chunk))
            take(decoder.flush())
        except DecodeError as e:
            raise FetchError(url, "protocol", f"bad {encoding} body: {e}",
                             status=resp.status_code) from e
        return b"".join(parts)
