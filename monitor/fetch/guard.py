"""SSRF guard: feeds may only reach public internet addresses unless the operator allows more.

A feed list is input from people and from the web (OPML imports, discovery
following a page's links, redirects chosen by any server we poll). Without a
guard, one feed URL or one redirect is enough to make the daemon GET
``http://169.254.169.254/latest/meta-data/`` or an admin page on the LAN and
keep the answer in its logs and alerts.

The check happens **after DNS resolution, at connect time, on the address we
then connect to**: a name is resolved once, every address is checked, and the
socket is opened to a checked address literal. There is no second lookup an
attacker's DNS could answer differently (DNS rebinding). Numeric host forms
that libc accepts (``2130706433``, ``0x7f.1``, ``017700000001``, ``127.1``) go
through the same resolver, so they are caught exactly like names.

=====================  ===========================================================
refused (reason)       addresses
=====================  ===========================================================
``cloud metadata``     169.254.169.254, 169.254.170.2, 100.100.100.200, fd00:ec2::254
``loopback``           127.0.0.0/8, ::1
``unspecified``        0.0.0.0, ::
``link-local``         169.254.0.0/16, fe80::/10
``private``            10/8, 172.16/12, 192.168/16, fc00::/7 and the other
                       special-purpose blocks Python's ``ipaddress`` marks private
``shared (CGNAT)``     100.64.0.0/10
``multicast``          224.0.0.0/4, ff00::/8
``reserved``           240.0.0.0/4 and other reserved space
``not global``         anything else ``ipaddress`` does not call globally routable
=====================  ===========================================================

IPv6 forms that carry an IPv4 address (``::ffff:a.b.c.d``, 6to4 ``2002::/16``,
NAT64 ``64:ff9b::/96``) are judged by the IPv4 address inside as well.

``allow`` networks (config ``poll.allow_networks``) are exempt: tests and the
shipped end-to-end configs allow ``127.0.0.0/8``; an intranet deployment may
allow its own ranges. Allowing ``0.0.0.0/0`` and ``::/0`` switches the guard off.

Two enforcement points share one ``AddressPolicy``:

* ``GuardedBackend``: an httpcore network backend for httpx's own transport.
* ``GuardedResolver``: an aiohttp resolver for the ``httpx-aiohttp`` transport
  (aiohttp skips resolvers for hosts that look numeric, so ``Fetcher`` also checks
  numeric hosts itself before each request with ``numeric_address``).

With an HTTP proxy from the environment (``trust_env``) the proxy resolves and
connects, not us: ``Fetcher`` then refuses numeric hosts exactly and names on a
best-effort lookup of its own; the proxy's egress rules are the real fence there.
(Under the aiohttp transport the proxy's own host name also goes through the
guarded resolver: give the proxy as an IP literal or allow its network.)
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class BlockedAddress(Exception):
    """A host resolved only to addresses the policy refuses.

    Deliberately not an ``OSError``: transports map those to connect errors and
    may retry other addresses; this one must reach the fetcher as it is.
    """

    def __init__(self, host: str, address: str, reason: str) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        super().__init__(f"{host} resolves to {address} ({reason}), which feeds may not "
                         "reach; allow it with poll.allow_networks")

    def __reduce__(self) -> tuple[type[BlockedAddress], tuple[str, str, str]]:
        return (type(self), (self.host, self.address, self.reason))


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _plain(ip: IPAddress) -> IPAddress:
    """``::ffff:127.0.0.1`` is 127.0.0.1 on the wire: judge and allow it as that."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _own_reason(ip: IPAddress) -> str | None:
    if ip in METADATA:
        return "cloud metadata"
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "shared (CGNAT)"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not global"
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is no place for a feed (None: a public address). Pure, no allow list.

    IPv6 forms that carry an IPv4 address are judged by that address alone: NAT64
    of a public address is how IPv6-only hosts reach IPv4 sites.
    """
    ip = _plain(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            reason = _own_reason(inner)
            return f"{reason}, embedded in IPv6" if reason else None
    return _own_reason(ip)


def parse_networks(values: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """``["127.0.0.0/8", "::1"]`` -> networks; raises ValueError naming a bad entry."""
    out: list[IPNetwork] = []
    for v in values:
        if isinstance(v, ipaddress.IPv4Network | ipaddress.IPv6Network):
            out.append(v)
            continue
        try:
            out.append(ipaddress.ip_network(str(v).strip(), strict=False))
        except ValueError as e:
            raise ValueError(f"not an IP network: {v!r}") from e
    return tuple(out)


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses feeds may reach: public ones, plus the ``allow`` networks."""

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, *networks: str | IPNetwork) -> AddressPolicy:
        return cls(parse_networks(networks))

    def verdict(self, address: str | IPAddress) -> str | None:
        """None when ``address`` may be reached, else the reason it may not."""
        ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) \
            else address
        plain = _plain(ip)
        if any(plain.version == net.version and plain in net for net in self.allow):
            return None
        return refusal(ip)

    def check(self, host: str, addresses: Sequence[str]) -> list[str]:
        """The allowed subset of ``addresses`` in order; raises BlockedAddress if none is."""
        allowed: list[str] = []
        first_refused: tuple[str, str] | None = None
        for a in addresses:
            reason = self.verdict(a)
            if reason is None:
                allowed.append(a)
            elif first_refused is None:
                first_refused = (a, reason)
        if not allowed:
            if first_refused is None:
                raise BlockedAddress(host, "nothing", "no address")
            raise BlockedAddress(host, *first_refused)
        return allowed


def numeric_address(host: str) -> str | None:
    """The address a numeric host means to libc (``0x7f.1`` -> ``127.0.0.1``), else None.

    ``AI_NUMERICHOST`` parses without any DNS query, so this is safe to call anywhere.
    """
    host = host.strip("[]")
    if not host:
        return None
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST,
                                   type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return str(infos[0][4][0]) if infos else None


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in resolver order, without repeats."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for info in infos:
        seen.setdefault(str(info[4][0]), None)
    return list(seen)


Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``resolve``'s signature: tests swap in a resolver that knows made-up names."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend: resolve, check, then connect to a checked address literal.

    TLS still verifies the certificate against the host *name*: httpcore passes the
    origin's name as ``server_hostname`` to ``start_tls`` whatever we connected to.
    """

    def __init__(self, policy: AddressPolicy,
                 inner: httpcore.AsyncNetworkBackend | None = None,
                 resolver: Resolver | None = None) -> None:
        self.policy = policy
        self._inner = inner or httpcore.AnyIOBackend()
        self._resolve = resolver or resolve

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 (httpcore API)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self._resolve(host, port)
        except TimeoutError as e:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from e
        except OSError as e:  # socket.gaierror: the name does not resolve
            raise httpcore.ConnectError(f"getaddrinfo failed for {host}: {e}") from e
        allowed = self.policy.check(host, addresses)
        last: Exception | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address,
                                                     socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,  # noqa: ASYNC109 (httpcore API)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress(path, path, "unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
