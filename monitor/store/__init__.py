"""State back ends behind one protocol: SQLite (embedded default) and Redis (shared).

``open_store`` picks one from the configured URL:

| url                                            | store                                  |
| ---------------------------------------------- | -------------------------------------- |
| empty or None                                  | SQLite at ``state_dir/state.db``       |
| ``sqlite:///abs/path.db``                      | SQLite at ``/abs/path.db``             |
| ``sqlite:relative.db``                         | SQLite at ``state_dir/relative.db``    |
| ``redis://``, ``rediss://``, ``unix://``       | Redis (keys under ``prefix``)          |
| ``redis+sentinel://host:26379/service/db``     | Redis primary found through Sentinel   |
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from monitor.errors import StoreError
from monitor.models import StoryMember
from monitor.store.base import ArticleCommit, OutboxItem, Store
from monitor.store.redact import redact_url

__all__ = ["ArticleCommit", "OutboxItem", "Store", "StoryMember", "open_store"]

DEFAULT_DB_NAME = "state.db"
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+sentinel"})


def open_store(url: str | None, *, prefix: str = "news-monitor", state_dir: Path) -> Store:
    """The store ``url`` names, not yet connected: ``await store.open()`` (or ``async with``).

    Construction does no I/O, so a bad URL fails at start-up and a good one can be
    opened inside the service's own error handling. Raises StoreError for a URL it
    cannot use, naming it with any password masked.
    """
    # Imported here so that choosing SQLite never imports redis, and the reverse.
    if not url or not url.strip():
        from monitor.store.sqlite import SQLiteStore

        return SQLiteStore(Path(state_dir) / DEFAULT_DB_NAME)
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise StoreError(f"store url {redact_url(url)}: {e}") from e
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        from monitor.store.sqlite import SQLiteStore

        return SQLiteStore(_sqlite_path(url, parts.netloc, unquote(parts.path), Path(state_dir)))
    if scheme in REDIS_SCHEMES:
        from monitor.store.redis import RedisStore

        try:
            return RedisStore(url, prefix=prefix)
        except ValueError as e:
            raise StoreError(f"store url {redact_url(url)}: {e}") from e
    raise StoreError(
        f"store url {redact_url(url)}: unknown scheme {parts.scheme!r}; use sqlite:///abs/path.db,"
        " sqlite:relative.db, redis://host:port/db, rediss://..., unix:///path/redis.sock"
        " or redis+sentinel://host:26379/service/db"
    )


def _sqlite_path(url: str, netloc: str, path: str, state_dir: Path) -> Path:
    if netloc:
        raise StoreError(
            f"store url {redact_url(url)}: SQLite takes no host; use sqlite:///abs/path.db"
            " or sqlite:relative.db"
        )
    if not path or path.endswith("/"):
        raise StoreError(f"store url {redact_url(url)}: no database file named")
    file = Path(path)
    return file if file.is_absolute() else Path(state_dir) / file
