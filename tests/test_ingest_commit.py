"""Group commit: a failed transaction takes back everything staged, and a retry sees it as new.

The store fails for real: a trigger in the SQLite file refuses the commit's member row,
the way a full disk or a read-only file refuses a write, while reads keep working.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.throttle import RuleThrottle
from monitor.errors import StoreError
from monitor.match.rules import Throttle
from monitor.store.base import ArticleCommit
from tests.support.alerting import article, make_ingestor

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 3, 11, 12, 0, tzinfo=UTC)
RULES = """
rules:
  - id: noisy
    query: drone
    throttle: {count: 1, period: 1h}
"""


def refuse_writes(db: Path, on: bool) -> None:
    with sqlite3.connect(db) as conn:
        if on:
            conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON members"
                         " BEGIN SELECT RAISE(ABORT, 'disk is full'); END")
        else:
            conn.execute("DROP TRIGGER refuse")


async def test_failed_commit_takes_back_every_staged_article(tmp_path: Path) -> None:
    throttle = RuleThrottle()
    ing, store = await make_ingestor(tmp_path, RULES, ["jsonl"], throttle=throttle)
    feeds = [[article(1, "Drone attack", T0)],
             [article(1, "Drone attack", T0, outlet="Wire"), article(2, "Harbour news", T0)]]
    keys = [a.key for feed in feeds for a in feed]
    try:
        refuse_writes(tmp_path / "state.db", True)
        results = await asyncio.gather(*(ing.ingest(f, T0) for f in feeds),
                                       return_exceptions=True)
        assert all(isinstance(r, StoreError) and "disk is full" in str(r) for r in results)
        # Nothing half-accepted: not in the index, not counted by the throttle, not stored.
        assert [ing.index.story_of(k) for k in keys] == [None, None, None]
        assert throttle.used("noisy", Throttle(count=1, period=3600), T0) == 0
        assert await store.seen_any([[k] for k in keys]) == [False, False, False]
        assert await store.outbox_depth() == {}
        assert ing.stories == {}

        refuse_writes(tmp_path / "state.db", False)
        later = T0 + timedelta(minutes=1)
        first = await ing.ingest(feeds[0], later)
        second = await ing.ingest(feeds[1], later)
        assert [o.duplicate for o in (*first, *second)] == [False, False, False]
        assert first[0].alert == "story.new"  # the throttle had room again
        assert second[0].story_id == first[0].story_id  # the other outlet joined it
        story = await store.get_story(first[0].story_id or "")
        assert story is not None and sorted(story.outlets) == ["Daily", "Wire"]
        queued = await store.outbox_due("jsonl", later + timedelta(days=1), 10)
        assert [q.alert_id for q in queued] == [first[0].alert_id]
        again = await ing.ingest(feeds[1], later)
        assert all(o.duplicate for o in again)
    finally:
        await store.close()


async def test_feeds_committed_together_get_their_own_outcomes(tmp_path: Path) -> None:
    ing, store = await make_ingestor(tmp_path, RULES, ["jsonl"])
    try:
        feeds = [[article(n, "Drone attack", T0), article(n, "Drone attack", T0, outlet="Wire")]
                 for n in range(6)]
        results = await asyncio.gather(*(ing.ingest(f, T0) for f in feeds))
        assert [[o.duplicate for o in r] for r in results] == [[False, False]] * 6
        assert all(r[0].story_id == r[1].story_id for r in results)
        assert len({r[0].story_id for r in results}) == 6
        assert [r[0].alert for r in results] == ["story.new"] * 6
        # The same article in two feeds polled at once is new in one of them only.
        twice = await asyncio.gather(*(ing.ingest([article(9, "Drone", T0)], T0)
                                       for _ in range(2)))
        assert sorted(r[0].duplicate for r in twice) == [False, True]
    finally:
        await store.close()


PLAIN_RULES = """
rules:
  - id: noisy
    query: drone
"""


async def test_an_error_while_staging_takes_back_what_the_poll_staged(tmp_path: Path) -> None:
    ing, store = await make_ingestor(tmp_path, PLAIN_RULES, ["jsonl"])
    prepare = ing._prepare
    calls = 0

    async def second_fails(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:   # e.g. get_story on a failing disk
            raise StoreError("get_story: disk I/O error")
        return await prepare(*args, **kwargs)  # type: ignore[arg-type]

    ing._prepare = second_fails  # type: ignore[method-assign]
    feed = [article(1, "Drone attack", T0), article(2, "Harbour news", T0)]
    with pytest.raises(StoreError):
        await ing.ingest(feed, T0)
    assert not ing._pending_keys and not ing._pending
    out = await ing.ingest(feed, T0 + timedelta(minutes=1))
    assert [o.duplicate for o in out] == [False, False]
    assert out[0].alert is not None
    await store.close()


async def test_a_poll_staging_while_a_commit_fails_takes_its_own_back(tmp_path: Path) -> None:
    # Q opens a story and its alert; P joins that story while Q's transaction fails.
    # P must not commit the story with Q's article in it and the alert marked sent.
    ing, store = await make_ingestor(tmp_path, PLAIN_RULES, ["jsonl"])
    await ing.ingest([article(9, "Harbour crane collapses in storm", T0)], T0)
    t1 = T0 + timedelta(minutes=1)
    get_story, commit_articles = store.get_story, store.commit_articles
    q_failed = asyncio.Event()

    async def noted_commit(commits: Sequence[ArticleCommit]) -> list[bool]:
        try:
            return await commit_articles(commits)
        except StoreError:
            q_failed.set()
            raise

    async def slow_get(story_id: str) -> object:
        # P waits here, mid-staging, until Q's transaction has failed (not a fixed sleep:
        # on a busy machine the commit may take longer, and would then go through).
        await asyncio.wait_for(q_failed.wait(), 30)
        refuse_writes(tmp_path / "state.db", False)
        return await get_story(story_id)

    store.get_story = slow_get  # type: ignore[method-assign, assignment]
    store.commit_articles = noted_commit  # type: ignore[method-assign]
    q = [article(1, "Drone attack on refinery", t1)]
    p = [article(1, "Drone attack on refinery", t1, outlet="Wire"),
         article(9, "Harbour crane collapses in storm", t1, outlet="Wire")]
    refuse_writes(tmp_path / "state.db", True)
    results = await asyncio.gather(ing.ingest(q, t1), ing.ingest(p, t1),
                                   return_exceptions=True)
    store.get_story = get_story  # type: ignore[method-assign]
    store.commit_articles = commit_articles  # type: ignore[method-assign]
    assert all(isinstance(r, StoreError) for r in results), results  # both polls failed
    again = await ing.ingest(q, t1 + timedelta(minutes=1))
    assert not again[0].duplicate
    assert again[0].alert is not None   # story.new still to come, not lost
    await store.close()


async def test_an_article_committed_while_a_poll_waits_is_not_staged_twice(
        tmp_path: Path) -> None:
    ing, store = await make_ingestor(tmp_path, PLAIN_RULES, ["jsonl"])
    await ing.ingest([article(9, "Harbour crane collapses in storm", T0)], T0)
    t1 = T0 + timedelta(minutes=1)
    x = article(1, "Drone attack on refinery", t1)
    p = [article(9, "Harbour crane collapses in storm", t1, outlet="Wire"), x,
         article(1, "Drone attack on refinery", t1, outlet="Wire")]
    get_story = store.get_story

    async def slow_get(story_id: str) -> object:
        await asyncio.sleep(0.05)   # Q's commit settles meanwhile
        return await get_story(story_id)

    store.get_story = slow_get  # type: ignore[method-assign, assignment]
    first, _ = await asyncio.gather(ing.ingest([x], t1), ing.ingest(p, t1))
    store.get_story = get_story  # type: ignore[method-assign]
    story = await store.get_story(first[0].story_id)
    assert story is not None
    keys = [a.key for a in story.articles]
    assert len(keys) == len(set(keys)), keys
    await store.close()
