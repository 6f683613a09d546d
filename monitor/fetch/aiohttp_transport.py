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


def aiohttp_transport(limits: FetchLimits,
                      policy: AddressPolicy | None) -> httpx.AsyncBaseTransport:
    """The ``httpx-aiohttp`` transport on a cookie-less, non-decompressing session."""

    def session() -> aiohttp.ClientSession:
        # built lazily on the first request, inside the running loop, as aiohttp requires
        connector = aiohttp.TCPConnector(
            limit=limits.max_connections, limit_per_host=0,
            keepalive_timeout=limits.keepalive_expiry,
            ssl=httpx.create_ssl_context(trust_env=limits.trust_env),
            resolver=GuardedResolver(policy) if policy is not None else None,
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                     trust_env=limits.trust_env, auto_decompress=False)

    transport: httpx.AsyncBaseTransport = AiohttpTransport(
        client=session, trust_env=limits.trust_env,
        limits=httpx.Limits(max_connections=limits.max_connections,
                            max_keepalive_connections=limits.max_keepalive,
                            keepalive_expiry=limits.keepalive_expiry))
    return transport
