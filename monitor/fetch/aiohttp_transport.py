"""``poll.transport: aiohttp``: the ``httpx-aiohttp`` transport with the SSRF guard in its resolver.

Imported only when chosen, so aiohttp stays an optional dependency (the type-ignores
below keep ``mypy --strict`` clean where it is not installed).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import aiohttp  # type: ignore[import-not-found, unused-ignore]
import httpx
from aiohttp.abc import (  # type: ignore[import-not-found, unused-ignore]
    AbstractResolver,
    ResolveResult,
)
from httpx_aiohttp import AiohttpTransport  # type: ignore[import-not-found, unused-ignore]

from monitor.fetch.guard import AddressPolicy

if TYPE_CHECKING:
    from monitor.fetch.http import FetchLimits


class GuardedResolver(AbstractResolver):  # type: ignore[misc, unused-ignore]
    """Returns only the addresses the policy allows; raises ``BlockedAddress`` if none is.

    aiohttp connects to exactly the addresses its resolver returns, so checking
    here is checking at connect time: there is no second lookup to rebind.
    """

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = set(self.policy.check(host, [str(r["host"]) for r in results]))
        return [r for r in results if r["host"] in allowed]

    async def close(self) -> None:
        await self._inner.close()


class _SharedSession:
    """Builds the one ``aiohttp.ClientSession`` on first use, for every transport sharing it.

    aiohttp wants its session created inside the running loop, so it is built by the
    first request; the proxied transports (``proxy_transport``) call the same object
    and so share one connection pool and one guarded resolver with the direct one.
    """

    def __init__(self, limits: FetchLimits, policy: AddressPolicy | None) -> None:
        self.limits = limits
        self.policy = policy
        self.session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            lim = self.limits
            connector = aiohttp.TCPConnector(
                limit=lim.max_connections, limit_per_host=0,
                keepalive_timeout=lim.keepalive_expiry,
                ssl=httpx.create_ssl_context(trust_env=lim.trust_env),
                resolver=GuardedResolver(self.policy) if self.policy is not None else None,
            )
            # trust_env=False: with it aiohttp reads ~/.netrc (in a thread) and scans the
            # environment for proxies (in another) on every request, ~5 % of the daemon's
            # busy time at 10,000 feeds. The proxies are read once, when the fetcher is
            # built (``monitor.fetch.transport.env_proxies``), and mounted per URL pattern.
            self.session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False, auto_decompress=False)
        return self.session


def aiohttp_transport(limits: FetchLimits,
                      policy: AddressPolicy | None) -> httpx.AsyncBaseTransport:
    """The ``httpx-aiohttp`` transport on a cookie-less, non-decompressing session."""
    transport: httpx.AsyncBaseTransport = AiohttpTransport(
        client=_SharedSession(limits, policy), trust_env=limits.trust_env,
        limits=httpx.Limits(max_connections=limits.max_connections,
                            max_keepalive_connections=limits.max_keepalive,
                            keepalive_expiry=limits.keepalive_expiry))
    return transport


def proxy_transport(direct: httpx.AsyncBaseTransport, proxy: str) -> httpx.AsyncBaseTransport:
    """``direct``'s session (one pool, one resolver) sending its requests through ``proxy``.

    Credentials go in the proxy URL (``http://user:secret@proxy:3128``), as with the
    httpx transport; ~/.netrc is not read.
    """
    session = getattr(direct, "client", None)
    if not isinstance(session, _SharedSession | aiohttp.ClientSession):
        raise TypeError(f"not an aiohttp transport of ours: {direct!r}")
    transport: httpx.AsyncBaseTransport = AiohttpTransport(
        client=session, proxy=httpx.Proxy(proxy), trust_env=False)
    return transport
