"""Several instances, one set of stories: two Ingestors on two RedisStores of one Redis.

Each Ingestor keeps its own in-memory story index, as two daemon processes would;
only the store is shared.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from loguru import logger

from monitor.alerts.policy import AlertPolicy, UpdateMode
from monitor.alerts.throttle import RuleThrottle
from monitor.ingest import Ingestor, Outcome
from monitor.match.rules import Throttle, load_rules
from monitor.models import Article, Story
from monitor.store.base import ArticleCommit
from monitor.store.redis import RedisStore
from monitor.stories.cluster import StoryConfig, StoryIndex
from monitor.stories.identity import identity_keys
from tests.support.alerting import article
from tests.test_ingest import NOW, ROOT, SEEDS, seed_article

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

PREFIX = "nm-ingest-shared"


class UnsharedRedisStore(RedisStore):
    """The same store, claiming to be the only instance: what the fix is measured against."""

    @property
    def shared(self) -> bool:
        return False


def ingestor(store: RedisStore, updates: UpdateMode = "every_outlet") -> Ingestor:
    cfg = StoryConfig()
    return Ingestor(store, load_rules([ROOT / "rules"]), StoryIndex(cfg), AlertPolicy(updates),
                    ["jsonl"], window=cfg.window, seen_ttl=cfg.window)


def third_report() -> Article:
    """Seed 0 as a third outlet republished it, lightly edited: a near-duplicate."""
    text = SEEDS[0].read_text(encoding="utf-8") + "\nReporting from Brussels contributed."
    url = "https://outlet3.example/paris"
    title = "Military chiefs of 34 countries discuss Ukraine security guarantees in Paris"
    keys = identity_keys(feed_url="https://outlet3.example/rss", guid=None, canonical=url,
                         title=title, summary=text)
    return Article(key=keys[0], url=url, title=title, summary=text, outlet="AFP",
                   language="en", published=NOW, seen_keys=keys)


async def queued(store: RedisStore) -> list[dict[str, Any]]:
    items = await store.outbox_due("jsonl", NOW + timedelta(days=1), 100)
    return [json.loads(i.payload) for i in items]


def events(alerts: list[dict[str, Any]]) -> list[str]:
    return [a["event"] for a in alerts]


async def test_two_instances_ingesting_the_seeds_at_once_open_one_story(
        redis_url: str) -> None:
    async with RedisStore(redis_url, prefix=PREFIX) as sa, \
            RedisStore(redis_url, prefix=PREFIX) as sb:
        a, b = ingestor(sa), ingestor(sb)
        await a.restore(NOW)
        await b.restore(NOW)
        (oa,), (ob,) = await asyncio.gather(a.ingest([seed_article(0)], NOW),
                                            b.ingest([seed_article(1)], NOW))
        assert oa.story_id is not None
        assert oa.story_id == ob.story_id
        assert sorted(str(o.alert) for o in (oa, ob)) == ["story.new", "story.updated"]
        alerts = await queued(sa)
        assert events(alerts) == ["story.new", "story.updated"]  # never two story.new
        story = await sa.get_story(oa.story_id)
        assert story is not None
        assert sorted(story.outlets) == ["DW", "RT"]
        assert len(alerts[-1]["story"]["articles"]) == 2


async def test_without_the_shared_path_the_same_race_opens_two_stories(
        redis_url: str) -> None:
    """The control: instances that do not share their index both send story.new."""
    async with UnsharedRedisStore(redis_url, prefix=PREFIX) as sa, \
            UnsharedRedisStore(redis_url, prefix=PREFIX) as sb:
        a, b = ingestor(sa), ingestor(sb)
        (oa,), (ob,) = await asyncio.gather(a.ingest([seed_article(0)], NOW),
                                            b.ingest([seed_article(1)], NOW))
        assert oa.story_id != ob.story_id
        assert events(await queued(sa)) == ["story.new", "story.new"]


async def test_a_member_committed_by_one_instance_places_the_others_next_article(
        redis_url: str) -> None:
    async with RedisStore(redis_url, prefix=PREFIX) as sa, \
            RedisStore(redis_url, prefix=PREFIX) as sb:
        a, b = ingestor(sa), ingestor(sb)
        await a.restore(NOW)
        await b.restore(NOW)  # both started on an empty store
        (first,) = await a.ingest([seed_article(0)], NOW)
        assert first.new_story and first.alert == "story.new"
        assert b.index.story_of(seed_article(0).key) is None  # B has not looked yet
        (second,) = await b.ingest([seed_article(1)], NOW + timedelta(minutes=1))
        assert not second.new_story
        assert second.story_id == first.story_id
        assert second.similarity is not None
        assert second.alert == "story.updated"
        assert b.index.story_of(seed_article(0).key) == first.story_id  # caught up
        update = (await queued(sb))[-1]
        assert [x["outlet"] for x in update["story"]["articles"]] == ["DW", "RT"]


async def test_an_instance_grows_the_story_as_stored_not_its_stale_copy(
        redis_url: str) -> None:
    async with RedisStore(redis_url, prefix=PREFIX) as sa, \
            RedisStore(redis_url, prefix=PREFIX) as sb:
        a, b = ingestor(sa), ingestor(sb)
        (first,) = await a.ingest([seed_article(0)], NOW)
        await b.ingest([seed_article(1)], NOW + timedelta(minutes=1))
        # A cached the story with one article; B has grown it to two since.
        (third,) = await a.ingest([third_report()], NOW + timedelta(minutes=2))
        assert third.story_id == first.story_id
        story = await sa.get_story(first.story_id or "")
        assert story is not None
        assert [x.outlet for x in story.articles] == ["DW", "RT", "AFP"]
        assert len((await queued(sa))[-1]["story"]["articles"]) == 3


async def test_held_back_updates_go_out_once_across_instances(redis_url: str) -> None:
    async with RedisStore(redis_url, prefix=PREFIX) as sa, \
            RedisStore(redis_url, prefix=PREFIX) as sb:
        a, b = ingestor(sa, "interval"), ingestor(sb, "interval")
        await a.ingest([seed_article(0)], NOW)                               # story.new
        await b.ingest([seed_article(1)], NOW + timedelta(minutes=1))        # held back
        await a.ingest([third_report()], NOW + timedelta(minutes=2))         # held back
        assert events(await queued(sa)) == ["story.new"]
        later = NOW + timedelta(hours=1)
        # Both instances hold the story as due; the first flush sends it, the second
        # finds it already alerted in the store.
        sent_b = await b.flush_updates(later)
        sent_a = await a.flush_updates(later)
        assert len(sent_b) == 1 and sent_a == []
        alerts = await queued(sa)
        assert events(alerts) == ["story.new", "story.updated"]
        assert len(alerts[-1]["story"]["articles"]) == 3


@pytest.mark.parametrize("first", [0, 1])
async def test_an_update_from_another_instance_is_queued_after_the_story_new(
        redis_url: str, first: int) -> None:
    """Both polls started at the same moment; whichever seed opens the story, its
    ``story.new`` leaves the outbox before the other instance's update."""
    async with RedisStore(redis_url, prefix=PREFIX) as sa, \
            RedisStore(redis_url, prefix=PREFIX) as sb:
        a, b = ingestor(sa), ingestor(sb)
        await a.ingest([seed_article(first)], NOW)
        await b.ingest([seed_article(1 - first)], NOW)
        assert events(await queued(sa)) == ["story.new", "story.updated"]


@pytest.mark.parametrize("told", [True, False])
async def test_an_instance_told_the_store_lost_its_data_follows_the_others_again(
        redis_url: str, told: bool) -> None:
    """The control (``told=False``): its cursor is past every member the store numbers anew."""
    async with RedisStore(redis_url, prefix=PREFIX) as sa, \
            RedisStore(redis_url, prefix=PREFIX) as sb:
        a, b = ingestor(sa), ingestor(sb)
        await a.ingest([article(n, "Harbour works", NOW) for n in range(3)], NOW)
        await a.ingest([article(3, "Harbour works", NOW)], NOW)   # its cursor is at 3 now
        client = redis.Redis.from_url(redis_url)
        try:
            client.flushdb()                                      # the store comes back empty
        finally:
            client.close()
        (first,) = await b.ingest([seed_article(0)], NOW + timedelta(minutes=1))
        if told:
            a.store_lost()
        (second,) = await a.ingest([seed_article(1)], NOW + timedelta(minutes=2))
        if told:
            assert second.story_id == first.story_id
            assert events(await queued(sa)) == ["story.new", "story.updated"]
        else:
            assert second.story_id != first.story_id
            assert events(await queued(sa)) == ["story.new", "story.new"]


@pytest.mark.parametrize("told", [True, False])
async def test_stories_lost_with_the_store_are_not_blamed_on_clocks(
        redis_url: str, told: bool) -> None:
    """After a data loss (said once, by the service) the index's stories meet no record and
    start afresh; each is not a clock problem between instances, as the warning says of
    a story missing otherwise (the control, ``told=False``)."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    try:
        async with RedisStore(redis_url, prefix=PREFIX) as store:
            ing = ingestor(store)
            (a,) = await ing.ingest([seed_article(0)], NOW)
            client = redis.Redis.from_url(redis_url)
            try:
                client.flushdb()
            finally:
                client.close()
            if told:
                ing.store_lost()
            (b,) = await ing.ingest([seed_article(1)], NOW + timedelta(minutes=1))
            assert (b.story_id, b.alert) == (a.story_id, "story.new")   # a record afresh
    finally:
        logger.remove(sink)
    assert any("clocks apart" in line for line in lines) is not told


# -- one commit per slice ---------------------------------------------------------------

SLICE_RULES = """
rules:
  - id: drone
    query: drone
    throttle: {count: 2, period: 1h}
  - id: quay
    query: quay
"""


class HookedStore(RedisStore):
    """A real Redis store that can run a step of the test at a chosen point of ``ingest``.

    ``after_seen`` runs once, after the first ``seen_any`` (before the lease);
    ``before_commit`` once, just before the first ``commit_articles`` is sent.
    """

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(url, prefix)
        self.after_seen: Callable[[], Awaitable[None]] | None = None
        self.before_commit: Callable[[], Awaitable[None]] | None = None
        self.batches: list[int] = []   # entries per commit_articles call
        self.single_commits = 0

    async def seen_any(self, keys: Sequence[Sequence[str]]) -> list[bool]:
        seen = await super().seen_any(keys)
        hook, self.after_seen = self.after_seen, None
        if hook is not None:
            await hook()
        return seen

    async def commit_article(self, *args: Any, **kwargs: Any) -> bool:
        self.single_commits += 1
        return await super().commit_article(*args, **kwargs)

    async def commit_articles(self, commits: Sequence[ArticleCommit], *,
                              stop_at_refusal: bool = False) -> list[bool]:
        hook, self.before_commit = self.before_commit, None
        if hook is not None:
            await hook()
        self.batches.append(len(commits))
        return await super().commit_articles(commits, stop_at_refusal=stop_at_refusal)


def slice_ingestor(store: RedisStore, rules: Path, throttled: bool = True) -> Ingestor:
    cfg = StoryConfig()
    return Ingestor(store, load_rules([rules]), StoryIndex(cfg), AlertPolicy("every_outlet"),
                    ["jsonl"], window=cfg.window, seen_ttl=cfg.window,
                    throttle=RuleThrottle() if throttled else None)


@pytest.fixture
def slice_rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(SLICE_RULES)
    return path


def slice_feed() -> list[Article]:
    """Three stories, two of them reported by several outlets, interleaved."""
    return [article(1, "Drone attack", NOW), article(2, "Quay fire", NOW),
            article(1, "Drone attack", NOW, outlet="Wire"), article(3, "Drone strike", NOW),
            article(1, "Drone attack", NOW, outlet="Post"),
            article(2, "Quay fire", NOW, outlet="Wire")]


def late_reports() -> list[Article]:
    """Story 1 again: an outlet's second report brings a new rule, then a new outlet."""
    again = replace(article(1, "Drone attack at the quay", NOW), key="k1-Daily-2",
                    url="https://daily.example/1b")
    return [again, article(1, "Quay drone attack", NOW, outlet="Agency")]


def summary(outcomes: Sequence[Outcome]) -> list[tuple[object, ...]]:
    return [(o.article.key, o.duplicate, o.story_id, o.rule_ids, o.alert, o.alert_id,
             o.similarity, o.new_story, o.throttled) for o in outcomes]


async def payloads(store: RedisStore) -> list[Any]:
    return [json.loads(p) for p in sorted(
        i.payload for i in await store.outbox_due("jsonl", NOW + timedelta(days=1), 100))]


async def test_a_slice_commits_in_one_call_as_one_commit_per_article_did(
        redis_url: str, slice_rules: Path) -> None:
    feed = slice_feed() + late_reports()
    async with HookedStore(redis_url, "nm-slice") as sa, \
            HookedStore(redis_url, "nm-one-by-one") as sb:
        a, b = slice_ingestor(sa, slice_rules), slice_ingestor(sb, slice_rules)
        together = await a.ingest(feed, NOW)
        # The reference: each article committed before the next is placed.
        apart = [o for x in feed for o in await b.ingest([x], NOW)]
        assert sa.batches == [len(feed)] and sa.single_commits == 0
        assert summary(together) == summary(apart)
        assert [o.alert for o in together] == [
            "story.new", "story.new", "story.updated", None, None, "story.updated",
            "story.updated", "story.updated"]
        assert [o.throttled for o in together][3:5] == [("drone",), ("drone",)]
        assert len({o.story_id for o in together}) == 3
        assert together[-1].rule_ids == ("drone", "quay")
        assert await payloads(sa) == await payloads(sb)
        for story_id in {o.story_id or "" for o in together}:
            assert await sa.get_story(story_id) == await sb.get_story(story_id)
        assert a.throttle is not None and b.throttle is not None
        assert a.throttle.dropped == b.throttle.dropped == {"drone": 2}
        assert a.hits == b.hits and a.stories == b.stories
        assert not a._pending and not a._pending_keys
        again = await a.ingest(feed, NOW)
        assert all(o.duplicate for o in again)


async def test_an_alert_explains_its_rules_as_if_the_reports_before_it_were_committed(
        redis_url: str, slice_rules: Path) -> None:
    """Another instance already alerted on the story with both rules: this instance's
    next report from the same outlet has no news (no alert), but its rule hits are the
    ones the following outlet's update names, as when each report was committed first."""
    first = article(1, "Drone attack at the quay", NOW)
    same_outlet = replace(article(1, "Quay drone attack reported", NOW), key="k1-Daily-2",
                          url="https://daily.example/1b")
    new_outlet = article(1, "Drone attack on quay", NOW, outlet="Wire")
    results = []
    for prefix, together in (("nm-together", True), ("nm-apart", False)):
        async with RedisStore(redis_url, prefix) as sa, RedisStore(redis_url, prefix) as sb:
            a, b = slice_ingestor(sa, slice_rules), slice_ingestor(sb, slice_rules)
            (o,) = await b.ingest([first], NOW)
            assert o.alert == "story.new" and o.rule_ids == ("drone", "quay")
            if together:
                out = await a.ingest([same_outlet, new_outlet], NOW)
            else:
                out = [*await a.ingest([same_outlet], NOW), *await a.ingest([new_outlet], NOW)]
            assert [x.alert for x in out] == [None, "story.updated"]
            results.append((summary(out), await payloads(sa)))
    assert results[0] == results[1]


async def test_a_key_another_instance_took_before_the_lease_is_refused_alone(
        redis_url: str, slice_rules: Path) -> None:
    feed = slice_feed()
    taken = feed[2]   # the second report of story 1: later reports join that story
    async with HookedStore(redis_url, PREFIX) as sa, HookedStore(redis_url, PREFIX) as sb, \
            HookedStore(redis_url, "nm-reference") as sr:
        a, b = slice_ingestor(sa, slice_rules), slice_ingestor(sb, slice_rules)

        async def other_instance_commits() -> None:
            (o,) = await b.ingest([taken], NOW)
            assert not o.duplicate

        sa.after_seen = other_instance_commits   # after A's seen check, before its lease
        out = await a.ingest(feed, NOW)
        assert [o.duplicate for o in out] == [False, False, True, False, False, False]
        assert out[2].story_id is None and out[2].alert is None
        # The others are all written once; the first report joined the story B opened.
        keys = [x.key for x in feed]
        assert await sa.seen_any([[k] for k in keys]) == [True] * len(feed)
        assert not out[0].new_story and out[0].alert == "story.updated"
        story = await sa.get_story(out[0].story_id or "")
        assert story is not None
        assert [x.key for x in story.articles] == [taken.key, feed[0].key, feed[4].key]
        assert a.index.story_of(taken.key) == out[0].story_id  # folded in from B
        events_by_story: dict[str, list[str]] = {}
        for p in await payloads(sa):
            events_by_story.setdefault(p["story"]["id"], []).append(p["event"])
        assert [v.count("story.new") for v in events_by_story.values()] == [1, 1, 1]
        assert not a._pending and not a._pending_keys
        # As when the instance that took it had committed it before A's poll.
        ref_b = slice_ingestor(sr, slice_rules)
        await ref_b.ingest([taken], NOW)
        ref_a = slice_ingestor(sr, slice_rules)
        await ref_a.restore(NOW)
        ref = await ref_a.ingest([x for x in feed if x is not taken], NOW)
        assert summary([o for o in out if o.article is not taken]) == summary(ref)


async def test_a_refusal_inside_the_lease_takes_back_the_rest_and_places_it_again(
        redis_url: str, slice_rules: Path) -> None:
    """A writer that skips the lease commits one key between A's placing and A's commit:
    what A placed after that article (here: its own story's next report) is not
    written as decided but placed again without it."""
    feed = slice_feed()
    taken = feed[2]
    async with HookedStore(redis_url, PREFIX) as sa, RedisStore(redis_url, PREFIX) as sb, \
            HookedStore(redis_url, "nm-reference") as sr:
        a = slice_ingestor(sa, slice_rules)

        async def commit_behind_the_lease() -> None:
            other = Story(id="s_other", title="t", first_seen=NOW, last_seen=NOW)
            assert await sb.commit_article([taken.key], other, None, [], NOW, 3600)

        sa.before_commit = commit_behind_the_lease
        out = await a.ingest(feed, NOW)
        assert [o.duplicate for o in out] == [False, False, True, False, False, False]
        assert sa.batches == [6, 3]   # the rest placed again and committed together
        assert a.index.story_of(taken.key) is None
        story = await sa.get_story(out[0].story_id or "")
        assert story is not None
        assert [x.key for x in story.articles] == [feed[0].key, feed[4].key]  # not the taken
        assert a.throttle is not None
        assert a.throttle.used("drone", Throttle(count=2, period=3600), NOW) == 2
        assert not a._pending and not a._pending_keys
        assert not [k async for k in sa._redis.scan_iter(f"{PREFIX}:batch:*")]
        # Exactly as if the taken article had never come.
        ref = await slice_ingestor(sr, slice_rules).ingest(
            [x for x in feed if x is not taken], NOW)
        assert summary([o for o in out if o.article is not taken]) == summary(ref)
        assert await payloads(sa) == await payloads(sr)


async def test_two_instances_with_overlapping_polls_send_one_story_new_per_story(
        redis_url: str, slice_rules: Path) -> None:
    feed = slice_feed()
    feed_a = feed[:4]
    feed_b = [feed[5], feed[3], feed[2], feed[4], feed[1]]   # three shared with A's poll
    async with HookedStore(redis_url, PREFIX) as sa, HookedStore(redis_url, PREFIX) as sb:
        # No throttles: each instance counts its own, and a held story.new is not the point.
        a, b = slice_ingestor(sa, slice_rules, False), slice_ingestor(sb, slice_rules, False)
        both_checked = asyncio.Event()
        checked = 0

        async def wait_for_the_other() -> None:   # both seen checks before either lease
            nonlocal checked
            checked += 1
            if checked == 2:
                both_checked.set()
            await both_checked.wait()

        sa.after_seen = sb.after_seen = wait_for_the_other
        out_a, out_b = await asyncio.gather(a.ingest(feed_a, NOW), b.ingest(feed_b, NOW))
        # Both checked before either committed: the second to take the lease had its
        # shared articles refused by the store, and placed the rest again.
        new = [o.article.key for o in (*out_a, *out_b) if not o.duplicate]
        assert sorted(new) == sorted(x.key for x in feed)   # each written exactly once
        assert len(new) == len(feed_a) + len(feed_b) - 3    # the three shared, once
        events_by_story: dict[str, list[str]] = {}
        for p in await payloads(sa):
            events_by_story.setdefault(p["story"]["id"], []).append(p["event"])
        assert len(events_by_story) == 3
        assert all(v.count("story.new") == 1 for v in events_by_story.values()), \
            events_by_story
        members: list[str] = []
        for story_id in events_by_story:
            story = await sa.get_story(story_id)
            assert story is not None
            members += [x.key for x in story.articles]
        assert sorted(members) == sorted(x.key for x in feed)   # none lost, none twice
