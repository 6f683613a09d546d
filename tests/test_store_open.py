"""Choosing a back end from the configured URL, and printing URLs without secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.store import Store, open_store
from monitor.store.redact import redact_url, scrub
from monitor.store.redis import RedisStore
from monitor.store.sqlite import SQLiteStore


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "STATE/state.db"),
        ("", "STATE/state.db"),
        ("  ", "STATE/state.db"),
        ("sqlite:///var/lib/nm/monitor.db", "/var/lib/nm/monitor.db"),
        ("sqlite:relative.db", "STATE/relative.db"),
        ("sqlite:sub/dir/x.db", "STATE/sub/dir/x.db"),
        ("SQLITE:///abs/x.db", "/abs/x.db"),
        ("sqlite:///with%20space.db", "/with space.db"),
    ],
)
def test_sqlite_urls(url: str | None, expected: str, tmp_path: Path) -> None:
    store = open_store(url, state_dir=tmp_path)
    assert isinstance(store, SQLiteStore)
    assert isinstance(store, Store)
    assert store.path == Path(expected.replace("STATE", str(tmp_path)))


@pytest.mark.parametrize(
    "url",
    ["redis://localhost:6379/0", "rediss://:pw@cache.example:6380/2",
     "unix:///run/redis/redis.sock?db=1"],
)
def test_redis_urls(url: str, tmp_path: Path) -> None:
    store = open_store(url, prefix="nm-prod", state_dir=tmp_path)
    assert isinstance(store, RedisStore)
    assert isinstance(store, Store)
    assert store.keys.prefix == "nm-prod"
    assert store.url == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgres://user:hunter22@db/nm", "unknown scheme 'postgres'"),
        ("/var/lib/nm/state.db", "unknown scheme ''"),
        ("sqlite://host/x.db", "takes no host"),
        ("sqlite:", "no database file"),
        ("sqlite:///var/lib/", "no database file"),
    ],
)
def test_bad_urls_are_store_errors(url: str, reason: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        open_store(url, state_dir=tmp_path)
    assert reason in str(info.value)
    assert "hunter22" not in str(info.value)


def test_empty_prefix_is_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="prefix"):
        open_store("redis://localhost/0", prefix="", state_dir=tmp_path)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw123@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://alice:pw123@host:6379/0", "redis://alice:***@host:6379/0"),
        ("redis://pw123@host/0", "redis://***@host/0"),
        ("redis://host:6379/0?password=pw123&db=2", "redis://host:6379/0?password=***&db=2"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("unix://:pw123@/run/redis.sock?db=1", "unix://:***@/run/redis.sock?db=1"),
        ("sqlite:///var/lib/x.db", "sqlite:///var/lib/x.db"),
        ("http://[::1", "<unparsable store url>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "pw123" not in redact_url(url)


def test_scrub_removes_secrets_from_library_messages() -> None:
    url = "redis://alice:pw123@host:6379/0"
    message = f"Error connecting to {url}: AUTH pw123 failed"
    assert scrub(message, url) == (
        "Error connecting to redis://alice:***@host:6379/0: AUTH *** failed"
    )
