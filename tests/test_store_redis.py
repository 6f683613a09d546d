"""What only the Redis store promises: its key space, its outage behaviour, its redaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import anyio
import pytest
import redis

from monitor.errors import StoreError
from monitor.models import FeedState, Story, StoryMember
from monitor.store.base import ArticleCommit, OutboxItem
from monitor.store.keys import Keys, member_id
from monitor.store.redis import EPOCH_UNSET, RedisStore
from monitor.store.serde import to_micros
from tests.support.redis_server import RedisServer, free_port

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PASSWORD = "s3cret-Pa55"


def all_keys(url: str) -> list[str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return sorted(client.scan_iter(count=1000))
    finally:
        client.close()


async def exercise(store: RedisStore) -> None:
    """Touch every kind of key the store writes."""
    await store.sync_feeds(["https://a/feed", "https://b/feed"], T0)
    await store.save_feed_state(FeedState(url="https://a/feed", etag="e"))
    await store.claim_due(T0 + timedelta(seconds=1), 60, 10)
    story = Story(id="s1", title="t", first_seen=T0, last_seen=T0)
    member = StoryMember(story_id="s1", article_key="k", seen_at=T0, features="{}")
    item = OutboxItem(alert_id="al", sink="redis", payload="{}", created_at=T0)
    assert await store.commit_article(["g:1", "u:1"], story, member, [item], T0, 60)
    await store.outbox_put([OutboxItem(alert_id="al2", sink="jsonl", payload="{}",
                                       created_at=T0)])
    await store.outbox_retry("jsonl", "al2", T0, "boom")


async def test_every_key_lives_under_the_prefix(redis_url: str) -> None:
    async with RedisStore(redis_url, prefix="deploy-a") as store:
        await exercise(store)
    keys = all_keys(redis_url)
    assert len(keys) >= 10
    assert all(k.startswith("deploy-a:") for k in keys), keys


async def test_two_prefixes_share_a_server_without_seeing_each_other(redis_url: str) -> None:
    async with RedisStore(redis_url, prefix="deploy-a") as a, \
            RedisStore(redis_url, prefix="deploy-b") as b:
        await exercise(a)
        assert await b.all_feed_states() == []
        assert await b.seen_any([["g:1"]]) == [False]
        assert await b.outbox_depth() == {}
        await exercise(b)  # the same article is new to the other deployment
    keys = all_keys(redis_url)
    assert {k.split(":", 1)[0] for k in keys} == {"deploy-a", "deploy-b"}


def test_keys_pattern_escapes_glob_characters() -> None:
    assert Keys("a*b").pattern == "a\\*b:*"
    with pytest.raises(ValueError, match="prefix"):
        Keys("")


async def test_seen_keys_carry_a_ttl(redis_url: str) -> None:
    async with RedisStore(redis_url, prefix="p") as store:
        story = Story(id="s", title="t", first_seen=T0, last_seen=T0)
        assert await store.commit_article(["k"], story, None, [], T0, 90)
    client = redis.Redis.from_url(redis_url)
    try:
        ttl = client.pttl(Keys("p").seen("k"))
    finally:
        client.close()
    assert 0 < ttl <= 90_000


async def test_unreachable_redis_is_store_error_with_password_masked() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    store = RedisStore(url)
    with pytest.raises(StoreError) as info:
        await store.open()
    message = str(info.value)
    assert PASSWORD not in message
    assert f"redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in message
    assert "open" in message
    assert PASSWORD not in repr(store)
    assert await store.ping() is False


async def test_wrong_password_is_store_error_with_password_masked(
    own_redis: RedisServer,
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    client.config_set("requirepass", "the-right-one")
    client.close()
    url = own_redis.url.replace("redis://", f"redis://default:{PASSWORD}@")
    with pytest.raises(StoreError) as info:
        await RedisStore(url).open()
    assert PASSWORD not in str(info.value)
    assert "default:***@" in str(info.value)
    assert "password" in str(info.value)  # redis says what is wrong


async def test_outage_ping_false_then_store_error_then_recovery(own_redis: RedisServer) -> None:
    async with RedisStore(own_redis.url) as store:
        await store.sync_feeds(["a"], T0)
        own_redis.stop()
        assert await store.ping() is False
        with pytest.raises(StoreError, match="claim_due"):
            await store.claim_due(T0, 60, 10)
        own_redis.start()  # same port, empty data (no persistence)
        assert await store.ping() is True
        await store.sync_feeds(["b"], T0)
        assert [s.url for s in await store.claim_due(T0, 60, 10)] == ["b"]


async def test_a_lost_schedule_is_registered_again_with_the_states_left(
        redis_url: str) -> None:
    async with RedisStore(redis_url, prefix="p") as store:
        await store.sync_feeds(["a", "b"], T0)
        await store.save_feed_state(FeedState(url="a", etag="e", failures=2,
                                              next_check=T0 + timedelta(hours=1)))
        client = redis.Redis.from_url(redis_url)
        try:
            client.delete(Keys("p").feeds_due)          # evicted, say: the states are still there
            assert await store.claim_due(T0 + timedelta(days=1), 60, 10) == []
            later = T0 + timedelta(minutes=5)
            assert await store.register_missing(["a", "b"], later) == 2
            claimed = await store.claim_due(later, 60, 10)
            assert [(s.url, s.etag, s.failures) for s in claimed] == [("a", "e", 2),
                                                                     ("b", None, 0)]
            client.flushdb()                             # everything gone: default states
            assert await store.register_missing(["a", "b"], later) == 2
            assert await store.claim_due(later, 60, 10) == [
                FeedState(url="a", next_check=later), FeedState(url="b", next_check=later)]
        finally:
            client.close()


async def test_epoch_changes_once_the_data_is_lost(redis_url: str) -> None:
    async with RedisStore(redis_url, prefix="p") as first, \
            RedisStore(redis_url, prefix="p") as second:
        before = await first.epoch()
        assert before and await second.epoch() == before
        client = redis.Redis.from_url(redis_url)
        try:
            client.flushdb()
        finally:
            client.close()
        after = await second.epoch()    # the first to look sets a new one ...
        assert after and after != before
        assert await first.epoch() == after   # ... which every instance then reads


async def test_epoch_tells_a_loss_even_while_the_server_refuses_writes(
        own_redis: RedisServer) -> None:
    # Back empty as a read-only replica, say: no new token can be written yet.
    async with RedisStore(own_redis.url, prefix="p") as store:
        before = await store.epoch()
        with redis.Redis.from_url(own_redis.url) as client, client.pipeline() as tx:
            tx.flushall()
            tx.config_set("min-replicas-to-write", 1)
            tx.execute()
        assert await store.epoch() == EPOCH_UNSET != before
        assert await store.epoch() == EPOCH_UNSET           # the same, while it lasts
        with redis.Redis.from_url(own_redis.url) as client:
            client.config_set("min-replicas-to-write", 0)
        after = await store.epoch()
        assert after not in (before, EPOCH_UNSET)
        assert await store.epoch() == after


async def test_foreign_data_under_prefix_is_store_error(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(Keys("p").stories, "not a sorted set")
    client.close()
    async with RedisStore(redis_url, prefix="p") as store:
        story = Story(id="s", title="t", first_seen=T0, last_seen=T0)
        with pytest.raises(StoreError, match=r"commit_article.*WRONGTYPE"):
            await store.commit_article(["k"], story, None, [], T0, 60)


def calls(url: str) -> dict[str, int]:
    """Calls per command the server has run so far (scripts' own calls included)."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
        return {k.removeprefix("cmdstat_"): int(v["calls"])  # type: ignore[index]
                for k, v in stats.items()}  # type: ignore[union-attr]
    finally:
        client.close()


async def test_commit_articles_is_one_pipeline_and_leaves_no_guard_behind(
        redis_url: str) -> None:
    async with RedisStore(redis_url, prefix="p") as store:
        entries = [ArticleCommit((f"k{i}",), Story(id="s", title="t", first_seen=T0,
                                                   last_seen=T0 + timedelta(seconds=i)),
                                 StoryMember(story_id="s", article_key=f"k{i}",
                                             seen_at=T0, features="{}"), (), T0, 60)
                   for i in range(5)]
        assert await store.commit_article(["k2"], entries[2].story, None, [], T0, 60)
        client = redis.Redis.from_url(redis_url)
        try:
            before = calls(redis_url)
            assert await store.commit_articles(entries, stop_at_refusal=True) == [
                True, True, False, False, False]
            after = calls(redis_url)
            # One script call per entry, the script loaded once (in the same pipeline).
            assert after["evalsha"] - before.get("evalsha", 0) == 5
            assert after["script|load"] - before.get("script|load", 0) == 1
            assert not list(client.scan_iter("p:batch:*"))
            assert await store.commit_articles(entries) == [False, False, False, True, True]
        finally:
            client.close()
        story = await store.get_story("s")
        assert story is not None and story.last_seen == T0 + timedelta(seconds=4)


async def test_commit_articles_after_a_lost_lease_stops_at_the_fence(redis_url: str) -> None:
    async with RedisStore(redis_url, prefix="p") as slow, \
            RedisStore(redis_url, prefix="p") as fast:
        story = Story(id="s", title="t", first_seen=T0, last_seen=T0)
        entry = ArticleCommit(("k",), story, None, (), T0, 60)
        async with slow.exclusive("stories", 0.2):
            await anyio.sleep(0.3)
            async with fast.exclusive("stories", 30):
                with pytest.raises(StoreError, match=r"commit_articles: lease .* was lost"):
                    await slow.commit_articles([entry], stop_at_refusal=True)
        assert await fast.seen_any([["k"]]) == [False]


async def test_a_fenced_out_split_moves_nothing(redis_url: str) -> None:
    keys = Keys("p")

    def placed(members: list[StoryMember]) -> list[tuple[str, str]]:
        return [(m.story_id, m.article_key) for m in members]

    async with RedisStore(redis_url, prefix="p") as slow, \
            RedisStore(redis_url, prefix="p") as fast:
        k1 = StoryMember(story_id="s1", article_key="k1", seen_at=T0, features="{}")
        assert await slow.commit_article(["k1"], Story(id="s1", title="t", first_seen=T0,
                                                       last_seen=T0), k1, [], T0, 60)
        later = T0 + timedelta(seconds=1)
        other = Story(id="s2", title="other", first_seen=T0, last_seen=T0)
        split = ArticleCommit(
            ("k2",), Story(id="s1", title="t", first_seen=T0, last_seen=later),
            StoryMember(story_id="s1", article_key="k2", seen_at=later, features="{}"),
            (), later, 60, moved=(replace(k1, story_id="s2"),), stories=(other,),
            moved_from=("s1",))
        async with slow.exclusive("stories", 0.2):
            await anyio.sleep(0.3)
            async with fast.exclusive("stories", 30):
                with pytest.raises(StoreError, match=r"commit_articles: lease .* was lost"):
                    await slow.commit_articles([split])
                assert placed(await fast.recent_members(T0)) == [("s1", "k1")]
                assert await fast.get_story("s2") is None
                # The holder's own commit of the same split goes through.
                assert await fast.commit_articles([split]) == [True]
        assert placed(await fast.recent_members(T0)) == [("s2", "k1"), ("s1", "k2")]
        assert await fast.get_story("s2") == other
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        # The old member id is gone from every members key, not only from the zset.
        want = sorted([member_id("s1", "k2"), member_id("s2", "k1")])
        assert sorted(client.hkeys(keys.members_data)) == want
        assert sorted(client.zrange(keys.members, 0, -1)) == want
        assert sorted(client.zrange(keys.members_seq, 0, -1)) == want
    finally:
        client.close()


async def test_queues_of_an_older_layout_get_their_order_back_on_open(redis_url: str) -> None:
    # Before layout 2 a retried alert was scored by its retry time: behind the alerts
    # queued after it. Opening the store puts it back in its place, once.
    keys = Keys("p")
    async with RedisStore(redis_url, prefix="p") as store:
        await store.outbox_put([OutboxItem(alert_id=f"a{i}", sink="jsonl", payload="{}",
                                           created_at=T0 + timedelta(seconds=i))
                                for i in range(3)])
        await store.outbox_retry("jsonl", "a0", T0 + timedelta(seconds=100), "down")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        client.zadd(keys.outbox_queue("jsonl"), {"a0": to_micros(T0) + 100 * 10**6})
        client.delete(keys.outbox_layout)
        async with RedisStore(redis_url, prefix="p") as store:
            assert await store.outbox_due("jsonl", T0 + timedelta(seconds=50), 10) == []
            due = await store.outbox_due("jsonl", T0 + timedelta(seconds=100), 10)
            assert [i.alert_id for i in due] == ["a0", "a1", "a2"]
        assert client.zscore(keys.outbox_queue("jsonl"), "a0") == to_micros(T0)
        assert client.get(keys.outbox_layout) == "2"
    finally:
        client.close()
