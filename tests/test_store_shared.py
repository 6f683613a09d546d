"""What the back ends promise beyond the contract for sharing stories between instances.

Redis: a lease whose holder died runs out by itself; a holder that stalled past its
TTL can neither commit nor settle a sink's outbox (fenced), nor release the next
holder's lease. SQLite: a file
from before the change feed keeps its members and feeds them in their old order.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
import redis

from monitor.errors import LeaseLost, StoreError
from monitor.models import Story, StoryMember
from monitor.store.base import OutboxItem
from monitor.store.keys import Keys
from monitor.store.redis import RedisStore
from monitor.store.sqlite import _MIGRATIONS, SCHEMA_VERSION, SQLiteStore

pytestmark = pytest.mark.anyio

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PREFIX = "nm-shared"


def story(story_id: str) -> Story:
    return Story(id=story_id, title="t", first_seen=T0, last_seen=T0)


def member(story_id: str, key: str, seconds: float = 0) -> StoryMember:
    return StoryMember(story_id=story_id, article_key=key,
                       seen_at=T0 + timedelta(seconds=seconds), features="{}")


def lease_value(url: str, name: str) -> tuple[str | None, int]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        key = Keys(PREFIX).lock(name)
        return client.get(key), int(client.pttl(key))  # type: ignore[arg-type]
    finally:
        client.close()


@pytest.mark.redis
async def test_a_dead_holders_lease_runs_out(redis_url: str) -> None:
    async with RedisStore(redis_url, prefix=PREFIX) as dead, \
            RedisStore(redis_url, prefix=PREFIX) as alive:
        async with dead.exclusive("stories", 5):
            token, ttl_ms = lease_value(redis_url, "stories")
            assert token and 1000 < ttl_ms <= 5000  # taken with the TTL asked for
        # What a process that died inside the lease leaves behind: its token, expiring.
        client = redis.Redis.from_url(redis_url)
        try:
            # long enough that the refusal below cannot miss it on a loaded machine
            assert client.set(Keys(PREFIX).lock("stories"), "dead-token", nx=True, px=1500)
        finally:
            client.close()
        with pytest.raises(StoreError, match="lease 'stories'"):
            async with alive.exclusive("stories", 30, wait_seconds=0):
                pass  # pragma: no cover
        async with alive.exclusive("stories", 30, wait_seconds=30):
            now_token, _ = lease_value(redis_url, "stories")
            assert now_token and now_token not in (token, "dead-token")
        assert lease_value(redis_url, "stories") == (None, -2)  # released: key gone


@pytest.mark.redis
async def test_a_stalled_holder_is_fenced_and_cannot_release_the_next_lease(
        redis_url: str) -> None:
    async with RedisStore(redis_url, prefix=PREFIX) as slow, \
            RedisStore(redis_url, prefix=PREFIX) as fast:
        async with slow.exclusive("stories", 30):
            # Inside a live lease, commits go through the fence.
            assert await slow.commit_article(["k0"], story("s0"), member("s0", "k0"), [], T0, 60)
        async with slow.exclusive("stories", 0.2):
            await anyio.sleep(0.3)  # stalled past the TTL ...
            async with fast.exclusive("stories", 30, wait_seconds=30):  # ... someone took it
                taken, _ = lease_value(redis_url, "stories")
                with pytest.raises(StoreError, match=r"lease .* was lost"):
                    await slow.commit_article(["k1"], story("s1"), member("s1", "k1"), [],
                                              T0, 60)
                with pytest.raises(StoreError, match=r"lease .* was lost"):
                    await slow.save_story(story("s2"), [])
                assert await slow.seen_any([["k1"]]) == [False]  # nothing written
                assert await slow.get_story("s1") is None
                assert await slow.get_story("s2") is None
                # The new holder's own commits pass the fence.
                assert await fast.commit_article(["k3"], story("s3"), member("s3", "k3"), [],
                                                 T0, 60)
        # The slow holder left its block while the new holder was done: nothing to release.
        assert lease_value(redis_url, "stories") == (None, -2)
        members, _ = await fast.members_after(None, 10)
        assert [m.article_key for m in members] == ["k0", "k3"]
        assert taken


@pytest.mark.redis
async def test_leaving_a_lost_lease_does_not_release_the_new_holders(redis_url: str) -> None:
    async with RedisStore(redis_url, prefix=PREFIX) as slow, \
            RedisStore(redis_url, prefix=PREFIX) as fast:
        first = slow.exclusive("stories", 0.1)
        await first.__aenter__()
        await anyio.sleep(0.2)
        second = fast.exclusive("stories", 30)
        await second.__aenter__()
        token, _ = lease_value(redis_url, "stories")
        await first.__aexit__(None, None, None)  # the stalled holder finally leaves
        assert lease_value(redis_url, "stories")[0] == token  # still the new holder's
        await second.__aexit__(None, None, None)
        assert lease_value(redis_url, "stories") == (None, -2)


@pytest.mark.redis
async def test_commits_outside_a_lease_are_not_fenced(redis_url: str) -> None:
    async with RedisStore(redis_url, prefix=PREFIX) as a, \
            RedisStore(redis_url, prefix=PREFIX) as b, b.exclusive("stories", 30):
        # Another task of another instance, not in a lease: the plain commit path.
        assert await a.commit_article(["k"], story("s"), member("s", "k"), [], T0, 60)


@pytest.mark.redis
async def test_a_delivery_pass_whose_lease_was_taken_over_settles_nothing(
        redis_url: str) -> None:
    sink, lease = "webhook:desk", "outbox:webhook:desk"
    async with RedisStore(redis_url, prefix=PREFIX) as slow, \
            RedisStore(redis_url, prefix=PREFIX) as fast:
        await slow.outbox_put([OutboxItem(alert_id=f"a{n}", sink=sink, payload="{}",
                                          created_at=T0 + timedelta(seconds=n))
                               for n in range(4)])

        async def queued() -> list[tuple[str, int]]:
            due = await fast.outbox_due(sink, T0 + timedelta(hours=1), 10)
            return [(i.alert_id, i.attempts) for i in due]

        async with slow.exclusive(lease, 30):
            await slow.outbox_done(sink, "a0")        # settled while the lease holds
            client = redis.Redis.from_url(redis_url)
            try:
                client.delete(Keys(PREFIX).lock(lease))  # its TTL ran out, as in a stall
            finally:
                client.close()
            async with fast.exclusive(lease, 30, wait_seconds=0):   # another took the sink
                with pytest.raises(LeaseLost, match=r"outbox_done: lease .* was lost"):
                    await slow.outbox_done(sink, "a1")
                with pytest.raises(LeaseLost, match=r"outbox_done_many: lease .* was lost"):
                    await slow.outbox_done_many(sink, ["a1", "a2"])
                with pytest.raises(LeaseLost, match=r"outbox_retry: lease .* was lost"):
                    await slow.outbox_retry(sink, "a1", T0 + timedelta(minutes=5), "timeout")
                assert await queued() == [("a1", 0), ("a2", 0), ("a3", 0)]   # all left as was
                # The holder's own settling goes through.
                await fast.outbox_done_many(sink, ["a1", "a2"])
                await fast.outbox_retry(sink, "a3", T0, "down")
        assert await queued() == [("a3", 1)]
        # Outside any lease (a single instance's tools, the tests) nothing is checked.
        await slow.outbox_done(sink, "a3")
        assert await fast.outbox_depth() == {}


async def test_sqlite_v1_file_keeps_its_members_in_the_change_feed(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        first = _MIGRATIONS[0]
        assert isinstance(first, str)
        conn.executescript(first)
        conn.execute("PRAGMA user_version = 1")
        conn.executemany(
            "INSERT INTO members (story_id, article_key, seen_at, features) VALUES (?, ?, ?, ?)",
            [("s1", "k-b", 2, "{}"), ("s1", "k-a", 1, "{}")],
        )
    finally:
        conn.close()
    async with SQLiteStore(path) as store:
        members, cursor = await store.members_after(None, 10)
        assert [m.article_key for m in members] == ["k-b", "k-a"]  # old insertion order
        assert await store.commit_article(["k-c"], story("s1"), member("s1", "k-c"), [], T0, 60)
        newer, _ = await store.members_after(cursor, 10)
        assert [m.article_key for m in newer] == ["k-c"]
        version = await store._run("t", lambda c: c.execute("PRAGMA user_version").fetchone())
        assert version[0] == SCHEMA_VERSION == 3
