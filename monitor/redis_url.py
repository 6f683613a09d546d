"""Redis URLs, one server or a Sentinel-watched primary, and the client each one opens.

redis-py's ``from_url`` knows one address (``redis://``, ``rediss://``, ``unix://``), so a
failover would leave the daemon talking to a demoted server. ``redis+sentinel://`` names the
sentinels instead and the client asks them where the primary is::

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]

``port`` defaults to 26379 and ``db`` to 0; ``user`` and ``password`` are the primary's (the
sentinels are asked without authentication). redis-py's Sentinel pool asks for the primary's
address before each new connection and drops connections to a server that stopped being the
primary, so a failover costs the store one failed command (``StoreError``, retried like any
outage) and the next one reaches the new primary.

Parsing is pure and imports nothing of redis; ``connect`` builds the client (no I/O yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import redis.asyncio as aioredis

SENTINEL_PREFIX = "redis+sentinel://"
URL_PREFIXES = ("redis://", "rediss://", "unix://", SENTINEL_PREFIX)
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def _host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):                      # [::1]:26379
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError(f"sentinel address {text!r} has no host")
    if not port:
        return host, DEFAULT_SENTINEL_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"sentinel address {text!r}: bad port")
    return host, int(port)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The parts of a ``redis+sentinel://`` URL; ValueError naming what is wrong (no secret)."""
    if not url.startswith(SENTINEL_PREFIX):
        raise ValueError("not a redis+sentinel:// URL")
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    if not hosts:
        raise ValueError("no sentinel address (redis+sentinel://host:26379/service)")
    sentinels = tuple(_host_port(h.strip()) for h in hosts.split(","))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("the path must be /service or /service/db")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"database {path[1]!r} is not a number")
    return SentinelTarget(
        sentinels=sentinels, service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(user) or None,
        password=unquote(password) if has_password else None)


def connect(url: str, **options: Any) -> aioredis.Redis:
    """A client for ``url``; ``options`` (timeouts, decoding) go to every connection."""
    import redis.asyncio as aioredis
    from redis.asyncio.sentinel import Sentinel

    if not url.startswith(SENTINEL_PREFIX):
        return aioredis.Redis.from_url(url, **options)
    target = parse_sentinel_url(url)

    class SentinelRedis(aioredis.Redis):
        """Closes the connections to the sentinels along with its own."""

        async def aclose(self, close_connection_pool: bool | None = None) -> None:
            try:
                await super().aclose(close_connection_pool)
            finally:
                await sentinel.aclose()

    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        list(target.sentinels),
        sentinel_kwargs={k: v for k, v in options.items() if k.startswith("socket_")})
    client: aioredis.Redis = sentinel.master_for(
        target.service, redis_class=SentinelRedis, db=target.db, username=target.username,
        password=target.password, **options)
    return client
