"""redis+sentinel:// URLs: parsed strictly, checked by ``check``, and served by a real Sentinel,
through a failover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from monitor.alerts.sinks import RedisSink
from monitor.config import load_settings, redact_url
from monitor.errors import ConfigError, StoreError
from monitor.models import FeedState
from monitor.redis_url import SentinelTarget, parse_sentinel_url
from monitor.store import open_store
from monitor.store.base import OutboxItem
from monitor.store.keys import Keys
from monitor.store.redis import RedisStore
from tests.support.redis_server import ConfiguredRedis
from tests.test_store_redis import exercise

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PASSWORD = "sentinel-test-pw"


@pytest.mark.parametrize(("url", "target"), [
    ("redis+sentinel://h1:26379,h2:26380/mymaster/2",
     SentinelTarget((("h1", 26379), ("h2", 26380)), "mymaster", 2)),
    ("redis+sentinel://h1/mymaster", SentinelTarget((("h1", 26379),), "mymaster", 0)),
    ("redis+sentinel://:p%40ss@[::1]:5000,10.0.0.2/svc/0",
     SentinelTarget((("::1", 5000), ("10.0.0.2", 26379)), "svc", 0, None, "p@ss")),
    ("redis+sentinel://news-monitor:pw@h:1/svc",
     SentinelTarget((("h", 1),), "svc", 0, "news-monitor", "pw")),
    ("redis+sentinel://news-monitor@h:1/svc",
     SentinelTarget((("h", 1),), "svc", 0, "news-monitor", None)),
])
def test_sentinel_urls_parse(url: str, target: SentinelTarget) -> None:
    assert parse_sentinel_url(url) == target


@pytest.mark.parametrize(("url", "reason"), [
    ("redis+sentinel://h:26379", "path must be /service"),
    ("redis+sentinel://h:26379/svc/zero", "not a number"),
    ("redis+sentinel://h:26379/svc/0/extra", "path must be /service"),
    ("redis+sentinel:///svc", "no sentinel address"),
    ("redis+sentinel://h:port/svc", "bad port"),
    ("redis+sentinel://h:70000/svc", "bad port"),
    ("redis+sentinel://:pw@h1,:26379/svc", "no host"),
])
def test_bad_sentinel_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_sentinel_url(url)


def test_check_names_a_bad_sentinel_url_without_its_password(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("store:\n  url: redis+sentinel://:hunter2@h1:26379/svc/x\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, env={})
    assert "store.url" in str(exc.value) and "not a number" in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_the_password_file_fills_a_sentinel_url(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret/+\n")
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"feeds:\n  files: [{ROOT / 'deploy' / 'feeds.yaml'}]\n"
                   f"rules:\n  paths: [{ROOT / 'rules'}]\n"
                   "store:\n  url: redis\nredis:\n"
                   "  url: redis+sentinel://news-monitor@h1:26379,[::1]:26380/svc/1\n"
                   "  password_file: pw\n")
    s = load_settings(cfg, env={})
    assert s.store_url() == "redis+sentinel://news-monitor:s3cret%2F%2B@h1:26379,[::1]:26380/svc/1"
    assert parse_sentinel_url(s.store_url()).password == "s3cret/+"
    assert "s3cret" not in redact_url(s.store_url())


def test_open_store_takes_a_sentinel_url(tmp_path: Path) -> None:
    store = open_store("redis+sentinel://h:26379/svc", state_dir=tmp_path)
    assert isinstance(store, RedisStore)


# -- a real Sentinel ----------------------------------------------------------------------

def _wait(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _client(server: ConfiguredRedis) -> redis.Redis:
    return redis.Redis(port=server.port, password=PASSWORD, decode_responses=True)


def _primary_and_sentinel(tmp_path: Path, started: list[ConfiguredRedis],
                          replica: bool = False) -> tuple[ConfiguredRedis, ConfiguredRedis | None,
                                                          ConfiguredRedis]:
    auth = f"requirepass {PASSWORD}\nmasterauth {PASSWORD}\nappendonly no\nsave \"\"\n"
    primary = ConfiguredRedis(auth, str(tmp_path / "primary"))
    started.append(primary)
    primary.start()
    second = None
    if replica:
        second = ConfiguredRedis(auth + f"replicaof 127.0.0.1 {primary.port}\n",
                                 str(tmp_path / "replica"))
        started.append(second)
        second.start()
        with _client(second) as c:
            _wait(lambda: c.info("replication").get("master_link_status") == "up",
                  "the replica in sync")
    sentinel = ConfiguredRedis(
        f"sentinel monitor mymaster 127.0.0.1 {primary.port} 1\n"
        f"sentinel auth-pass mymaster {PASSWORD}\n"
        "sentinel down-after-milliseconds mymaster 2000\n"
        "sentinel failover-timeout mymaster 10000\n",
        str(tmp_path / "sentinel"), sentinel=True)
    started.append(sentinel)
    sentinel.start()
    return primary, second, sentinel


@pytest.mark.redis
@pytest.mark.anyio
async def test_store_and_sink_reach_the_primary_through_sentinel(
        tmp_path: Path, redis_processes: list[ConfiguredRedis]) -> None:
    primary, _, sentinel = _primary_and_sentinel(tmp_path, redis_processes)
    url = f"redis+sentinel://:{PASSWORD}@127.0.0.1:{sentinel.port}/mymaster/0"
    async with RedisStore(url, prefix="nm") as store:
        await exercise(store)
        assert await store.ping()
    sink = RedisSink(url, channel="nm:alerts", stream="nm:alerts", maxlen=100)
    try:
        await sink.send(OutboxItem(alert_id="a1", sink="redis", payload='{"event": "x"}',
                                   created_at=T0))
    finally:
        await sink.aclose()
    with _client(primary) as c:
        assert len([k for k in c.scan_iter("nm:*") if not k.startswith("nm:alerts")]) >= 10
        assert c.xlen("nm:alerts") == 1
    # A wrong password is refused by the primary, not silently accepted.
    bad = RedisStore(url.replace(PASSWORD, "wrong"), prefix="nm")
    with pytest.raises(StoreError) as exc:
        await bad.open()
    assert "wrong" not in str(exc.value)


@pytest.mark.redis
@pytest.mark.anyio
async def test_the_store_follows_a_failover(
        tmp_path: Path, redis_processes: list[ConfiguredRedis]) -> None:
    primary, replica, sentinel = _primary_and_sentinel(tmp_path, redis_processes, replica=True)
    assert replica is not None
    with redis.Redis(port=sentinel.port, decode_responses=True) as s:
        def replica_known() -> bool:
            found = s.execute_command("SENTINEL", "REPLICAS", "mymaster")
            return any(r.get("master-link-status") == "ok" and not r.get("is_disconnected")
                       for r in found)
        _wait(replica_known, "the sentinel to know the replica")

        url = f"redis+sentinel://:{PASSWORD}@127.0.0.1:{sentinel.port}/mymaster/0"
        async with RedisStore(url, prefix="nm") as store:
            await store.sync_feeds(["https://a/feed"], T0)
            await store.save_feed_state(FeedState(url="https://a/feed", etag="before"))
            with _client(replica) as c:
                _wait(lambda: c.hget(Keys("nm").feeds_state, "https://a/feed") is not None
                      and "before" in str(c.hget(Keys("nm").feeds_state, "https://a/feed")),
                      "the write replicated")

            assert s.execute_command("SENTINEL", "FAILOVER", "mymaster")
            _wait(lambda: s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
                  == ["127.0.0.1", str(replica.port)], "the replica promoted")
            with _client(replica) as c:
                _wait(lambda: c.info("replication")["role"] == "master", "the new primary")
            # The old primary goes away, as it does when it is the reason for a failover. (Left
            # running, it would take writes on open connections until the sentinel demotes it,
            # 8 s or more, and drop them on resync: Redis's own failover window.)
            primary.crash()

            # The same store object writes to the new primary: an outage of a few
            # commands at most, as with any reconnect, then business as usual.
            later = T0 + timedelta(minutes=1)
            for _ in range(50):
                try:
                    await store.sync_feeds(["https://a/feed", "https://b/feed"], later)
                    break
                except StoreError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("the store never reached the new primary")
            states = {st.url: st for st in await store.all_feed_states()}
            assert sorted(states) == ["https://a/feed", "https://b/feed"]
            assert states["https://a/feed"].etag == "before"     # written before the failover
    with _client(replica) as c:
        assert c.info("replication")["role"] == "master"
        assert c.zcard(Keys("nm").feeds_due) == 2
