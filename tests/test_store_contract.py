"""One contract, two back ends: every test here runs on SQLite and on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from monitor.errors import LeaseHeld, StoreError
from monitor.models import FeedState, Story, StoryArticle
from monitor.store import ArticleCommit, OutboxItem, Store, StoryMember
from monitor.store.redis import RedisStore
from monitor.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


OpenStore = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Makes a new, unopened store instance on the same backing data each call."""
    if request.param == "sqlite":
        path = tmp_path / "state" / "state.db"
        return lambda: SQLiteStore(path)
    url: str = request.getfixturevalue("redis_url")
    return lambda: RedisStore(url, prefix="nm-test")


@pytest.fixture
async def open_store(backend: Callable[[], Store]) -> AsyncIterator[OpenStore]:
    """Opens instances of the back end under test; closes them all at the end."""
    opened: list[Store] = []

    async def make() -> Store:
        store = backend()
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()


def story(story_id: str, last_seen: datetime, title: str = "Security guarantees") -> Story:
    article = StoryArticle(
        key=f"{story_id}-a1", outlet="Reuters", url=f"https://example.org/{story_id}",
        title=title, published=last_seen - timedelta(minutes=5), language="en",
        seen_at=last_seen, similarity=0.8, shared_terms=("guarantees", "ukraine"),
    )
    return Story(id=story_id, title=title, first_seen=last_seen - timedelta(hours=1),
                 last_seen=last_seen, articles=(article,), rule_ids=("ua-sec",))


def member(story_id: str, key: str, seen_at: datetime) -> StoryMember:
    return StoryMember(story_id=story_id, article_key=key, seen_at=seen_at,
                       features='{"minhash": [1, 2, 3]}')


def item(alert_id: str, sink: str = "redis", created: float = 0, **kw: object) -> OutboxItem:
    return OutboxItem(alert_id=alert_id, sink=sink, payload=f'{{"id": "{alert_id}"}}',
                      created_at=at(created), **kw)  # type: ignore[arg-type]


async def commit(store: Store, keys: list[str], story_id: str, seen_at: datetime,
                 outbox: list[OutboxItem] | None = None, ttl: float = 3600) -> bool:
    return await store.commit_article(
        keys, story(story_id, seen_at), member(story_id, keys[0], seen_at), outbox or [],
        seen_at, ttl,
    )


# -- feeds ---------------------------------------------------------------------


async def test_sync_feeds_and_state_round_trip(store: Store) -> None:
    await store.sync_feeds(["https://a/feed", "https://b/feed"], T0)
    states = await store.all_feed_states()
    assert [s.url for s in states] == ["https://a/feed", "https://b/feed"]
    assert all(s.next_check == T0 for s in states)

    full = FeedState(
        url="https://a/feed", etag='W/"abc"', last_modified="Wed, 01 May 2024 11:00:00 GMT",
        body_hash="h1", next_check=at(300), interval=300.0, failures=2, last_success=at(-60),
        last_error="timeout", last_error_kind="timeout", last_error_at=at(-30),
        redirect_url="https://a/new", redirect_count=1, gone=False, items_seen=42,
    )
    await store.save_feed_state(full)
    assert await store.get_feed_state("https://a/feed") == full
    assert await store.get_feed_state("https://nowhere/feed") is None

    # Unlisting hides a feed from the listing but keeps what we learnt about it;
    # listing it again brings back its validators.
    await store.sync_feeds(["https://b/feed"], at(10))
    assert [s.url for s in await store.all_feed_states()] == ["https://b/feed"]
    await store.sync_feeds(["https://a/feed", "https://b/feed"], at(20))
    again = await store.get_feed_state("https://a/feed")
    assert again is not None
    assert again.etag == 'W/"abc"'
    assert again.items_seen == 42


async def test_register_missing_adds_only_what_is_missing(store: Store) -> None:
    await store.sync_feeds(["a", "b", "x"], T0)   # x: listed by another instance, say
    await store.save_feed_state(FeedState(url="a", etag="e", next_check=at(300)))
    assert [s.url for s in await store.claim_due(at(5), 60, 10)] == ["b", "x"]

    # Nothing missing: nothing changes, not even the claims or the other list's feed.
    assert await store.register_missing(["a", "b"], at(10)) == 0
    assert await store.claim_due(at(60), 60, 10) == []
    # Feeds missing are added, due at once; those there keep their due time and state.
    await store.sync_feeds(["a", "b"], at(15))
    assert await store.register_missing(["a", "b", "c", "x"], at(20)) == 2
    assert [s.url for s in await store.claim_due(at(30), 60, 10)] == ["c", "x"]
    assert await store.get_feed_state("a") == FeedState(url="a", etag="e", next_check=at(300))
    # b's claim ran out at 65, c's and x's at 90; a stays due at 300.
    assert [s.url for s in await store.claim_due(at(299), 60, 10)] == ["b", "c", "x"]
    assert [s.url for s in await store.claim_due(at(300), 60, 10)] == ["a"]
    assert await store.register_missing([], at(40)) == 0


async def test_release_claim_hands_back_only_the_claim_it_names(
        open_store: OpenStore) -> None:
    mine, other = await open_store(), await open_store()
    await mine.sync_feeds(["a", "b"], T0)
    await mine.save_feed_state(FeedState(url="a", next_check=at(10)))
    assert [s.url for s in await mine.claim_due(at(20), 60, 10)] == ["b", "a"]  # until 80

    # Ours: due again as it was, for whoever claims next.
    assert await mine.release_claim("a", at(20), 60, at(10)) is True
    assert [s.url for s in await other.claim_due(at(21), 60, 10)] == ["a"]      # until 81
    # That claim is the other instance's now: ours, long gone, releases nothing.
    assert await mine.release_claim("a", at(20), 60, at(10)) is False
    assert await mine.claim_due(at(70), 60, 10) == []
    # Not the claim that holds it (another time or lease), or not listed: nothing.
    assert await mine.release_claim("b", at(19), 60, T0) is False
    assert await mine.release_claim("b", at(20), 30, T0) is False
    assert await mine.release_claim("nowhere", at(20), 60, T0) is False
    await mine.sync_feeds(["a"], at(30))
    assert await mine.release_claim("b", at(20), 60, T0) is False
    assert await mine.claim_due(at(79), 60, 10) == []


async def test_claim_due_earliest_first_within_lease_and_after(store: Store) -> None:
    await store.sync_feeds(["a", "b", "c"], T0)
    await store.save_feed_state(FeedState(url="a", next_check=at(30)))
    await store.save_feed_state(FeedState(url="b", next_check=at(10)))
    await store.save_feed_state(FeedState(url="c", next_check=at(100)))

    assert await store.claim_due(at(5), lease_seconds=60, limit=10) == []
    claimed = await store.claim_due(at(50), lease_seconds=60, limit=10)
    assert [s.url for s in claimed] == ["b", "a"]
    assert claimed[0].next_check == at(10)  # the state as saved, not the lease
    # Within the lease nobody gets them again; c is not due yet.
    assert await store.claim_due(at(60), lease_seconds=60, limit=10) == []
    # c fell due at 100; a and b's lease ran out at 110.
    assert [s.url for s in await store.claim_due(at(111), 60, 10)] == ["c", "a", "b"]


async def test_claim_due_honours_limit(store: Store) -> None:
    await store.sync_feeds([f"f{i}" for i in range(5)], T0)
    first = await store.claim_due(at(1), 60, 2)
    second = await store.claim_due(at(1), 60, 10)
    assert len(first) == 2
    assert len(second) == 3
    assert {s.url for s in first}.isdisjoint(s.url for s in second)
    assert await store.claim_due(at(1), 60, 0) == []


async def test_save_feed_state_releases_the_claim(store: Store) -> None:
    await store.sync_feeds(["a"], T0)
    assert [s.url for s in await store.claim_due(at(1), 600, 5)] == ["a"]
    await store.save_feed_state(FeedState(url="a", next_check=at(5), etag="e2"))
    again = await store.claim_due(at(5), 600, 5)
    assert [(s.url, s.etag) for s in again] == [("a", "e2")]


async def test_a_state_write_that_is_not_a_polls_end_keeps_the_claim(store: Store) -> None:
    await store.sync_feeds(["a", "b"], T0)
    assert [s.url for s in await store.claim_due(at(1), 600, 1)] == ["a"]
    # e.g. a hub's answer recorded while a is being polled
    await store.save_feed_state(FeedState(url="a", next_check=T0, etag="e2"), reschedule=False)
    await store.save_feed_state(FeedState(url="b", next_check=at(900)), reschedule=False)
    assert [s.url for s in await store.claim_due(at(5), 600, 5)] == ["b"]  # a is still held
    state = await store.get_feed_state("a")
    assert state is not None and state.etag == "e2"
    assert [(s.url, s.etag) for s in await store.claim_due(at(601), 600, 5)] == [("a", "e2")]


async def test_release_claims_hands_back_only_claims_and_only_unshared(store: Store) -> None:
    await store.sync_feeds(["a", "b", "c"], T0)
    await store.save_feed_state(FeedState(url="a", next_check=at(10)))
    await store.save_feed_state(FeedState(url="b", next_check=at(10)))
    await store.save_feed_state(FeedState(url="c", next_check=at(500)))
    assert [s.url for s in await store.claim_due(at(20), 600, 1)] == ["a"]  # a dies mid-poll

    released = await store.release_claims()

    if store.shared:  # another instance may be polling a: only its lease ends the claim
        assert released == 0
        assert [s.url for s in await store.claim_due(at(30), 600, 10)] == ["b"]
    else:
        assert released == 1
        assert [s.url for s in await store.claim_due(at(30), 600, 10)] == ["a", "b"]
    # c's far next_check is its schedule, not a claim: it stays put either way
    assert await store.claim_due(at(499), 600, 10) == []


async def test_unlisted_feeds_are_never_claimed(store: Store) -> None:
    await store.sync_feeds(["a", "b"], T0)
    await store.sync_feeds(["a"], T0)
    # A poll that finishes after the feed was unlisted must not list it again.
    await store.save_feed_state(FeedState(url="b", next_check=T0))
    await store.save_feed_state(FeedState(url="never-listed", next_check=T0))
    assert [s.url for s in await store.claim_due(at(10**6), 60, 10)] == ["a"]


async def test_concurrent_claimers_never_share_a_feed(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    urls = [f"https://feeds.example/{i:03d}" for i in range(60)]
    await first.sync_feeds(urls, T0)
    taken: dict[str, list[str]] = {"first": [], "second": []}

    async def claimer(name: str, store: Store) -> None:
        while batch := await store.claim_due(at(1), 600, 4):
            taken[name] += [s.url for s in batch]
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(claimer, "first", first)
        tg.start_soon(claimer, "second", second)

    everything = taken["first"] + taken["second"]
    assert sorted(everything) == urls  # all claimed, none twice
    assert set(taken["first"]).isdisjoint(taken["second"])


# -- seen keys and article commits ---------------------------------------------------


async def test_commit_article_marks_seen_and_writes_everything(store: Store) -> None:
    assert await store.seen_any([["g:1", "u:1"]]) == [False]
    ok = await commit(store, ["g:1", "u:1"], "s1", at(0), [item("al-1"), item("al-1", "jsonl")])
    assert ok is True
    assert await store.seen_any([["g:1"], ["u:1", "x"], ["x"], []]) == [True, True, False, False]
    assert await store.get_story("s1") == story("s1", at(0))
    assert await store.recent_members(at(-1)) == [member("s1", "g:1", at(0))]
    assert await store.outbox_depth() == {"jsonl": 1, "redis": 1}


async def test_commit_article_refuses_seen_keys_and_writes_nothing(store: Store) -> None:
    assert await commit(store, ["g:1", "u:1"], "s1", at(0), [item("al-1")])
    refused = await commit(store, ["h:new", "u:1"], "s2", at(5), [item("al-2"), item("al-2", "x")])
    assert refused is False
    assert await store.seen_any([["h:new"]]) == [False]
    assert await store.get_story("s2") is None
    assert [m.story_id for m in await store.recent_members(at(-1))] == ["s1"]
    assert await store.outbox_depth() == {"redis": 1}
    assert [i.alert_id for i in await store.outbox_due("redis", at(100), 10)] == ["al-1"]


def entry(keys: list[str], story_id: str, seen_at: datetime,
          outbox: list[OutboxItem] | None = None, ttl: float = 3600) -> ArticleCommit:
    return ArticleCommit(tuple(keys), story(story_id, seen_at),
                         member(story_id, keys[0], seen_at), tuple(outbox or ()), seen_at, ttl)


async def test_commit_articles_writes_each_entry_and_refuses_seen_ones(store: Store) -> None:
    assert await commit(store, ["old"], "s0", at(0), [item("al-0")])
    done = await store.commit_articles([
        entry(["a1", "a2"], "s1", at(1), [item("al-1"), item("al-1", "jsonl")]),
        entry(["b1", "old"], "s2", at(2), [item("al-2")]),     # seen before the batch
        entry(["c1"], "s1", at(3), [item("al-3")]),            # same story, grown again
        entry(["a2", "d1"], "s4", at(4), [item("al-4")]),      # seen earlier in the batch
    ])
    assert done == [True, False, True, False]
    assert await store.seen_any([["a1"], ["a2"], ["b1"], ["c1"], ["d1"]]) == [
        True, True, False, True, False]
    assert await store.get_story("s1") == story("s1", at(3))  # the later entry's story wins
    assert await store.get_story("s2") is None and await store.get_story("s4") is None
    assert sorted(m.article_key for m in await store.recent_members(at(-1))) == [
        "a1", "c1", "old"]
    assert [i.alert_id for i in await store.outbox_due("redis", at(100), 10)] == [
        "al-0", "al-1", "al-3"]
    assert await store.outbox_depth() == {"jsonl": 1, "redis": 3}
    assert await store.commit_articles([]) == []


async def test_commit_articles_can_stop_at_the_first_refusal(store: Store) -> None:
    assert await commit(store, ["old"], "s0", at(0), [item("al-0")])
    done = await store.commit_articles([
        entry(["a1"], "s1", at(1), [item("al-1")]),
        entry(["b1", "old"], "s2", at(2), [item("al-2")]),    # refused: seen before
        entry(["c1"], "s1", at(3), [item("al-3")]),           # would be new, not written
        entry(["d1"], "s4", at(4), [item("al-4")]),
    ], stop_at_refusal=True)
    assert done == [True, False, False, False]
    assert await store.seen_any([["a1"], ["b1"], ["c1"], ["d1"]]) == [
        True, False, False, False]
    assert await store.get_story("s1") == story("s1", at(1))  # not grown by the third
    assert await store.get_story("s4") is None
    assert sorted(m.article_key for m in await store.recent_members(at(-1))) == ["a1", "old"]
    assert [i.alert_id for i in await store.outbox_due("redis", at(100), 10)] == [
        "al-0", "al-1"]
    # Nothing left over: the next batch (and a plain one) writes as usual.
    assert await store.commit_articles([entry(["c1"], "s1", at(3)), entry(["d1"], "s4", at(4))],
                                       stop_at_refusal=True) == [True, True]
    assert await store.commit_articles([entry(["e1"], "s5", at(5))]) == [True]
    assert await store.commit_articles([], stop_at_refusal=True) == []


def split_entry(keys: list[str], story_id: str, seen_at: datetime, other: Story,
                moves: list[tuple[str, str, float]]) -> ArticleCommit:
    """``entry`` that also splits a story: each (key, old story id, seen seconds) of
    ``moves`` leaves for ``other``, whose record comes with it."""
    return replace(entry(keys, story_id, seen_at),
                   moved=tuple(member(other.id, key, at(s)) for key, _, s in moves),
                   moved_from=tuple(old for _, old, _ in moves), stories=(other,))


def placed(members: list[StoryMember]) -> list[tuple[str, str]]:
    return [(m.story_id, m.article_key) for m in members]


async def test_a_split_moves_members_and_writes_the_other_story_with_the_entry(
        open_store: OpenStore) -> None:
    writer, reader = await open_store(), await open_store()
    for key, seconds in [("k1", 0), ("k2", 1), ("k3", 2)]:
        assert await commit(writer, [key], "s1", at(seconds))
    _, cursor = await reader.members_after(None, 10)
    other = story("s2", at(2), title="The other half")
    assert await writer.commit_articles([
        split_entry(["k4"], "s1", at(10), other, [("k2", "s1", 1), ("k3", "s1", 2)]),
    ]) == [True]

    # Each moved member once, under its new story, with its own time and features.
    assert placed(await reader.recent_members(at(-1))) == [
        ("s1", "k1"), ("s2", "k2"), ("s2", "k3"), ("s1", "k4")]
    assert (await reader.recent_members(at(1)))[0] == member("s2", "k2", at(1))
    assert await reader.get_story("s1") == story("s1", at(10))
    assert await reader.get_story("s2") == other
    # The change feed gives the moved members again, after the entry's own, under the
    # new id; from the start it never gives their old one.
    fed, cursor = await reader.members_after(cursor, 10)
    assert fed == [member("s1", "k4", at(10)), member("s2", "k2", at(1)),
                   member("s2", "k3", at(2))]
    assert await reader.members_after(cursor, 10) == ([], cursor)
    assert placed((await reader.members_after(None, 10))[0]) == [
        ("s1", "k1"), ("s1", "k4"), ("s2", "k2"), ("s2", "k3")]
    # Expiry goes by the moved members' own times, under their new id.
    assert await writer.expire(at(1.5)) == 0
    assert placed(await reader.recent_members(at(-1))) == [("s2", "k3"), ("s1", "k4")]
    assert placed((await reader.members_after(None, 10))[0]) == [("s1", "k4"), ("s2", "k3")]
    assert await writer.expire(at(5)) == 1
    assert await reader.get_story("s2") is None
    assert placed(await reader.recent_members(at(-1))) == [("s1", "k4")]


async def test_a_refused_entry_writes_no_split(store: Store) -> None:
    for key, seconds in [("k1", 0), ("k2", 1), ("k3", 2)]:
        assert await commit(store, [key], "s1", at(seconds))
    _, cursor = await store.members_after(None, 10)
    done = await store.commit_articles([
        split_entry(["k4", "k1"], "s1", at(10), story("s2", at(1)),    # refused: k1 seen
                    [("k2", "s1", 1)]),
        split_entry(["k5"], "s1", at(11), story("s3", at(2)), [("k3", "s1", 2)]),
    ])
    assert done == [False, True]
    assert placed(await store.recent_members(at(-1))) == [
        ("s1", "k1"), ("s1", "k2"), ("s3", "k3"), ("s1", "k5")]
    assert await store.get_story("s2") is None
    assert await store.get_story("s3") == story("s3", at(2))
    assert placed((await store.members_after(cursor, 10))[0]) == [("s1", "k5"), ("s3", "k3")]


async def test_a_batch_stopped_at_a_refusal_writes_no_later_split(store: Store) -> None:
    for key, seconds in [("k1", 0), ("k2", 1), ("k3", 2)]:
        assert await commit(store, [key], "s1", at(seconds))
    _, cursor = await store.members_after(None, 10)
    done = await store.commit_articles([
        split_entry(["k4"], "s1", at(10), story("s2", at(0)), [("k1", "s1", 0)]),
        entry(["k5", "k2"], "s1", at(11)),                              # refused: k2 seen
        split_entry(["k6"], "s1", at(12), story("s3", at(2)), [("k3", "s1", 2)]),
    ], stop_at_refusal=True)
    assert done == [True, False, False]
    assert placed(await store.recent_members(at(-1))) == [
        ("s2", "k1"), ("s1", "k2"), ("s1", "k3"), ("s1", "k4")]
    assert await store.get_story("s2") == story("s2", at(0))
    assert await store.get_story("s3") is None
    assert placed((await store.members_after(cursor, 10))[0]) == [("s1", "k4"), ("s2", "k1")]


def test_a_split_names_the_story_each_moved_member_left() -> None:
    with pytest.raises(ValueError, match="1 moved member"):
        replace(entry(["k2"], "s1", at(1)), moved=(member("s2", "k1", at(0)),))


async def test_concurrent_commits_of_one_article_alert_once(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    results: list[bool] = []

    async def run(store: Store, alert_id: str) -> None:
        results.append(await commit(store, ["u:same"], "s1", at(0), [item(alert_id)]))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, first, "from-first")
        tg.start_soon(run, second, "from-second")
    assert sorted(results) == [False, True]
    assert (await first.outbox_depth()) == {"redis": 1}


async def test_seen_keys_expire(store: Store) -> None:
    assert await commit(store, ["u:short"], "s1", at(0), ttl=0.05)
    assert await commit(store, ["u:forever"], "s2", at(0), ttl=0)  # 0: never expires
    assert await store.seen_any([["u:short"]]) == [True]
    await anyio.sleep(0.3)
    await store.expire(at(-10**6))
    assert await store.seen_any([["u:short"], ["u:forever"]]) == [False, True]
    assert await commit(store, ["u:short"], "s3", at(1)) is True


# -- stories ----------------------------------------------------------------------------


async def test_story_upsert_get_recent_and_expire(store: Store) -> None:
    assert await store.get_story("nope") is None
    assert await commit(store, ["k1"], "old", at(0))
    assert await commit(store, ["k2"], "new", at(100))
    updated = story("new", at(200), title="Updated headline")
    await store.save_story(updated, [item("al-up", created=200)])
    assert await store.get_story("new") == updated
    assert [i.alert_id for i in await store.outbox_due("redis", at(300), 10)] == ["al-up"]

    assert [s.id for s in await store.recent_stories(at(0))] == ["old", "new"]
    assert [s.id for s in await store.recent_stories(at(1))] == ["new"]
    assert await store.recent_stories(at(201)) == []

    assert await store.expire(at(50)) == 1
    assert await store.get_story("old") is None
    assert await store.get_story("new") == updated
    assert [m.story_id for m in await store.recent_members(at(-10))] == ["new"]
    assert await store.expire(at(50)) == 0


async def test_recent_members_oldest_first(store: Store) -> None:
    for key, seconds in [("k-late", 20), ("k-early", 0), ("k-mid", 10)]:
        assert await store.commit_article(
            [key], story("s1", at(seconds)), member("s1", key, at(seconds)), [], at(seconds), 60
        )
    assert [m.article_key for m in await store.recent_members(T0)] == [
        "k-early", "k-mid", "k-late"
    ]
    assert [m.article_key for m in await store.recent_members(at(10))] == ["k-mid", "k-late"]
    assert (await store.recent_members(at(10)))[0] == member("s1", "k-mid", at(10))


# -- outbox -----------------------------------------------------------------------------


async def test_outbox_due_done_retry_depth(store: Store) -> None:
    await store.outbox_put([
        item("a2", created=2), item("a0", created=0), item("a1", created=1),
        item("later", created=3, next_attempt=at(100)),
        item("j0", sink="jsonl"),
    ])
    assert await store.outbox_depth() == {"jsonl": 1, "redis": 4}
    due = await store.outbox_due("redis", at(10), 10)
    assert [i.alert_id for i in due] == ["a0", "a1", "a2"]  # queue order; "later" not yet
    assert due[0] == item("a0", created=0)
    assert [i.alert_id for i in await store.outbox_due("redis", at(10), 2)] == ["a0", "a1"]
    assert await store.outbox_due("nobody", at(10), 10) == []

    await store.outbox_done("redis", "a0")
    await store.outbox_retry("redis", "a1", at(50), "connection refused")
    assert await store.outbox_due("redis", at(10), 10) == []  # a2 waits behind a1
    retried = await store.outbox_due("redis", at(60), 10)
    assert [i.alert_id for i in retried] == ["a1", "a2"]
    assert retried[0] == item("a1", created=1, attempts=1, next_attempt=at(50),
                              last_error="connection refused")
    await store.outbox_retry("redis", "a1", at(70), "timeout")
    again = await store.outbox_due("redis", at(80), 10)
    assert (again[0].alert_id, again[0].attempts, again[0].last_error) == ("a1", 2, "timeout")
    assert [i.alert_id for i in await store.outbox_due("redis", at(1000), 10)] == [
        "a1", "a2", "later"
    ]
    assert await store.outbox_depth() == {"jsonl": 1, "redis": 3}

    # A retry for an alert already delivered does not bring it back.
    await store.outbox_retry("redis", "a0", at(5), "late failure report")
    assert await store.outbox_depth() == {"jsonl": 1, "redis": 3}
    await store.outbox_done("jsonl", "j0")
    assert await store.outbox_depth() == {"redis": 3}


def ids(items: list[OutboxItem]) -> list[str]:
    return [i.alert_id for i in items]


async def test_an_alert_waiting_for_its_retry_holds_back_its_sink_for_every_instance(
        open_store: OpenStore) -> None:
    # story.new (a0) then its updates: a sink that failed on one must not get a later one
    # first, neither from this instance nor after a restart or from another instance.
    first = await open_store()
    await first.outbox_put([item(f"a{i}", created=i) for i in range(4)]
                           + [item("j0", sink="jsonl", created=0)])
    await first.outbox_done("redis", "a0")
    await first.outbox_retry("redis", "a1", at(30), "down")
    assert await first.outbox_due("redis", at(29), 10) == []
    other = await open_store()
    assert await other.outbox_due("redis", at(29), 10) == []
    assert ids(await other.outbox_due("jsonl", at(29), 10)) == ["j0"]  # not held back
    assert ids(await other.outbox_due("redis", at(30), 10)) == ["a1", "a2", "a3"]
    # A later item whose own retry is further off stops the head there.
    await other.outbox_retry("redis", "a2", at(60), "down")
    assert ids(await first.outbox_due("redis", at(40), 10)) == ["a1"]
    assert ids(await first.outbox_due("redis", at(60), 10)) == ["a1", "a2", "a3"]


async def test_outbox_order_is_created_at_then_alert_id_whenever_queued(store: Store) -> None:
    await store.outbox_put([item("b", created=5), item("a", created=5), item("c", created=1)])
    assert await commit(store, ["k"], "s1", at(0), [item("d", created=3)])
    await store.save_story(story("s1", at(0)), [item("e", created=0.5)])
    await store.outbox_put([item("f", created=4.999999)])
    assert ids(await store.outbox_due("redis", at(10), 10)) == ["e", "c", "d", "f", "a", "b"]
    # Not yet due at its creation time, the head holds the rest back too.
    assert ids(await store.outbox_due("redis", at(0.4), 10)) == []
    assert ids(await store.outbox_due("redis", at(3), 10)) == ["e", "c", "d"]


async def test_outbox_done_many_removes_the_batch_and_only_it(store: Store) -> None:
    await store.outbox_put([item(f"a{i}", created=i) for i in range(5)]
                           + [item("a1", sink="jsonl")])
    await store.outbox_done_many("redis", ["a0", "a2", "a3", "a2", "never-queued"])
    assert [i.alert_id for i in await store.outbox_due("redis", at(10), 10)] == ["a1", "a4"]
    assert await store.outbox_depth() == {"jsonl": 1, "redis": 2}  # other sinks untouched
    await store.outbox_done_many("redis", [])
    await store.outbox_done_many("redis", ["a1", "a4"])
    assert await store.outbox_depth() == {"jsonl": 1}


async def test_outbox_put_is_idempotent_per_alert_and_sink(store: Store) -> None:
    await store.outbox_put([item("a1")])
    await store.outbox_retry("redis", "a1", at(5), "boom")
    await store.outbox_put([
        OutboxItem(alert_id="a1", sink="redis", payload="changed", created_at=at(0)),
        item("a1", sink="jsonl"),
    ])
    assert await store.outbox_depth() == {"jsonl": 1, "redis": 1}
    [kept] = await store.outbox_due("redis", at(10), 10)
    assert kept.payload == '{"id": "a1"}'
    assert kept.attempts == 1  # the earlier attempt is not forgotten
    # The same alert enqueued by a commit is also not doubled.
    assert await commit(store, ["k"], "s", at(0), [item("a1"), item("a1", sink="jsonl")])
    assert await store.outbox_depth() == {"jsonl": 1, "redis": 1}


async def test_state_survives_close_and_reopen(backend: Callable[[], Store]) -> None:
    first = backend()
    await first.open()
    await first.sync_feeds(["a"], T0)
    await first.save_feed_state(FeedState(url="a", etag="e1", next_check=at(60)))
    assert await commit(first, ["u:1"], "s1", at(0), [item("al-1")])
    await first.outbox_put([item("al-2", sink="jsonl", next_attempt=at(30))])
    await first.close()
    assert await first.ping() is False

    second = backend()
    await second.open()
    try:
        assert await second.ping() is True
        state = await second.get_feed_state("a")
        assert state is not None
        assert state.etag == "e1"
        assert await second.seen_any([["u:1"]]) == [True]
        assert await second.get_story("s1") == story("s1", at(0))
        assert [i.alert_id for i in await second.outbox_due("redis", at(1), 10)] == ["al-1"]
        assert [i.alert_id for i in await second.outbox_due("jsonl", at(30), 10)] == ["al-2"]
        assert [s.url for s in await second.claim_due(at(60), 60, 10)] == ["a"]
    finally:
        await second.close()


async def test_epoch_stays_while_the_data_does(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    token = await first.epoch()
    await commit(first, ["u:1"], "s1", at(0))
    assert await first.epoch() == token == await second.epoch()


async def test_use_before_open_is_a_store_error(backend: Callable[[], Store]) -> None:
    from monitor.errors import StoreError

    store = backend()
    assert await store.ping() is False
    with pytest.raises(StoreError, match="not open"):
        await store.get_story("s")


# -- sharing stories between instances ----------------------------------------------------


async def test_shared_names_the_back_end(store: Store) -> None:
    assert store.shared is isinstance(store, RedisStore)


async def test_members_after_follows_commit_order_across_instances(
        open_store: OpenStore) -> None:
    writer, reader = await open_store(), await open_store()
    assert await reader.members_after(None, 10) == ([], "0")
    # Committed late-seen first: the feed is commit order, not seen_at order.
    for key, seconds in [("k-late", 20), ("k-early", 0), ("k-mid", 10)]:
        assert await commit(writer, [key], "s1", at(seconds))
    first, cursor = await reader.members_after(None, 2)
    assert [m.article_key for m in first] == ["k-late", "k-early"]
    assert first[0] == member("s1", "k-late", at(20))
    rest, cursor2 = await reader.members_after(cursor, 10)
    assert [m.article_key for m in rest] == ["k-mid"]
    assert await reader.members_after(cursor2, 10) == ([], cursor2)  # nothing new: same cursor
    assert await writer.commit_article(["k-next"], story("s2", at(30)),
                                       member("s2", "k-next", at(30)), [], at(30), 60)
    assert await writer.commit_article(["k-plain"], story("s2", at(31)), None, [], at(31), 60)
    newer, _ = await reader.members_after(cursor2, 10)
    assert [m.article_key for m in newer] == ["k-next"]  # a story without a member adds none


async def test_members_after_drops_expired_members(store: Store) -> None:
    for key, seconds in [("k-old", 0), ("k-new", 100)]:
        assert await commit(store, [key], f"s-{key}", at(seconds))
    await store.expire(at(50))
    members, cursor = await store.members_after(None, 10)
    assert [m.article_key for m in members] == ["k-new"]
    # A member committed after an expiry still follows the cursor (numbers never reused).
    await store.expire(at(10**6))
    assert await commit(store, ["k-after"], "s3", at(10**6))
    members, _ = await store.members_after(cursor, 10)
    assert [m.article_key for m in members] == ["k-after"]


async def test_members_after_refuses_a_bad_cursor(store: Store) -> None:
    with pytest.raises(StoreError, match="cursor"):
        await store.members_after("not-a-cursor", 10)


async def test_exclusive_admits_one_holder_at_a_time(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    inside: list[str] = []
    log: list[tuple[str, int]] = []

    async def worker(name: str, store: Store) -> None:
        for _ in range(5):
            async with store.exclusive("stories", 30, wait_seconds=30):
                inside.append(name)
                log.append((name, len(inside)))
                await anyio.sleep(0.002)  # yield to the other worker while holding it
                inside.remove(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, "first", first)
        tg.start_soon(worker, "second", second)
    assert len(log) == 10
    assert all(n == 1 for _, n in log)  # never two holders at once
    async with first.exclusive("stories", 30, wait_seconds=0):  # released after use
        pass


async def test_exclusive_gives_up_naming_the_lease(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    async with first.exclusive("stories", 30):
        with pytest.raises(LeaseHeld, match="lease 'stories'"):
            async with second.exclusive("stories", 30, wait_seconds=0.05):
                pass  # pragma: no cover
        async with second.exclusive("other-name", 30, wait_seconds=0):
            pass  # leases are per name


async def test_exclusive_is_released_when_the_body_fails(store: Store) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with store.exclusive("stories", 30):
            raise RuntimeError("boom")
    async with store.exclusive("stories", 30, wait_seconds=0):
        pass


async def test_a_member_moved_without_features_keeps_what_is_stored(store: Store) -> None:
    """The daemon moves members by key alone (its index keeps no member texts): the store
    keeps each one's features and time; one no longer stored is not moved."""
    assert await commit(store, ["k1"], "s1", at(0))
    assert await commit(store, ["k2"], "s1", at(1))
    other = story("s2", at(1))
    moved = (StoryMember("s2", "k2", at(9), ""), StoryMember("s2", "gone", at(9), ""))
    assert await store.commit_articles([replace(
        entry(["k3"], "s1", at(2)), moved=moved, moved_from=("s1", "s1"), stories=(other,),
    )]) == [True]
    assert await store.recent_members(at(-1)) == [
        member("s1", "k1", at(0)), member("s2", "k2", at(1)), member("s1", "k3", at(2))]
    # expiry goes by the stored time, not the time the move was given
    await store.expire(at(1.5))
    assert placed(await store.recent_members(at(-1))) == [("s1", "k3")]
