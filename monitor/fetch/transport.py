"""The network layer under ``Fetcher``, chosen by ``poll.transport``; both carry the SSRF guard.

==========  ===================================================================
transport   what it is
==========  ===================================================================
``httpx``   httpx's own transport (httpcore): HTTP/1.1 and HTTP/2, the default.
            The guard is an httpcore network backend (``GuardedBackend``).
``aiohttp`` the ``httpx-aiohttp`` transport: the same httpx API on aiohttp's
            connection pool, several times the requests/s at high concurrency
            (``bench/poll.py``), HTTP/1.1 only. Needs ``pip install httpx-aiohttp``.
            The guard is an aiohttp resolver (``GuardedResolver``); aiohttp
            refuses non-canonical numeric IPv4 hosts itself, and ``Fetcher``
            checks numeric hosts before every request.
==========  ===================================================================

Both keep bodies raw (no automatic decompression): ``Fetcher`` decodes with a
size cap. Neither keeps cookies: one client polls thousands of unrelated feeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import httpcore
import httpx

from monitor.errors import ConfigError, Problem
from monitor.fetch.guard import AddressPolicy, GuardedBackend, Resolver

if TYPE_CHECKING:
    from monitor.fetch.http import FetchLimits

TransportName = Literal["httpx", "aiohttp"]


def httpx_transport(limits: FetchLimits, policy: AddressPolicy | None,
                    resolver: Resolver | None = None) -> httpx.AsyncHTTPTransport:
    """httpx's transport with ``GuardedBackend`` under its connection pool (None: no guard)."""
    transport = httpx.AsyncHTTPTransport(
        http2=limits.http2, trust_env=limits.trust_env, limits=_limits(limits))
    if policy is not None:
        # httpx does not expose httpcore's ``network_backend``; the pool is httpcore's
        # public API, so we build the same pool httpx would, with our backend under it.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=limits.trust_env),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True, http2=limits.http2,
            network_backend=GuardedBackend(policy, resolver=resolver),
        )
    return transport


def env_proxies(limits: FetchLimits) -> dict[str, str | None]:
    """HTTP(S)_PROXY / ALL_PROXY / NO_PROXY, read once: URL pattern -> proxy URL (None: direct).

    httpx's own reading of the variables (its patterns and NO_PROXY rules), for both
    transports. Read when the fetcher is built (at start), not per request:
    aiohttp's ``trust_env`` scanned the environment and ~/.netrc on every request.
    """
    if not limits.trust_env:
        return {}
    from httpx._utils import get_environment_proxies

    return get_environment_proxies()


def env_proxy_mounts(limits: FetchLimits, direct: httpx.AsyncBaseTransport,
                     ) -> dict[str, httpx.AsyncBaseTransport | None]:
    """``env_proxies`` as httpx mounts, on the same kind of transport as ``direct``.

    httpx reads the variables only when it builds its own transport; we always pass
    ours (the guarded one), so we mount the proxies the way httpx would. URLs a proxy
    serves are pre-checked by ``Fetcher`` (the proxy connects, not us). With aiohttp
    the proxied transports share ``direct``'s session (``proxy_transport``).
    """
    proxies = env_proxies(limits)
    if not proxies:
        return {}
    if isinstance(direct, httpx.AsyncHTTPTransport):
        def via(proxy: str) -> httpx.AsyncBaseTransport:
            return httpx.AsyncHTTPTransport(proxy=proxy, http2=limits.http2, trust_env=True,
                                            limits=_limits(limits))
    else:
        from monitor.fetch.aiohttp_transport import proxy_transport

        def via(proxy: str) -> httpx.AsyncBaseTransport:
            return proxy_transport(direct, proxy)

    return {pattern: None if proxy is None else via(proxy) for pattern, proxy in proxies.items()}


def make_transport(name: TransportName, limits: FetchLimits,
                   policy: AddressPolicy | None) -> httpx.AsyncBaseTransport:
    if name == "aiohttp":
        try:
            from monitor.fetch.aiohttp_transport import aiohttp_transport
        except ImportError as e:
            raise ConfigError([Problem("config", "poll.transport",
                                       "'aiohttp' needs the httpx-aiohttp package "
                                       f"(pip install httpx-aiohttp): {e}")]) from e
        return aiohttp_transport(limits, policy)
    return httpx_transport(limits, policy)


def _limits(limits: FetchLimits) -> httpx.Limits:
    return httpx.Limits(max_connections=limits.max_connections,
                        max_keepalive_connections=limits.max_keepalive,
                        keepalive_expiry=limits.keepalive_expiry)
