"""Several instances, one set of stories: two Ingestors on two RedisStores of one Redis.

Each Ingestor keeps its own in-memory story index, as two daemon processes would;
only the store is shared.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from monitor.alerts.policy import AlertPolicy, UpdateMode
from monitor.ingest import Ingestor
from monitor.match.rules import load_rules
from monitor.models import Article
from monitor.store.redis import RedisStore
from monitor.stories.cluster import StoryConfig, StoryIndex
from monitor.stories.identity import identity_keys
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
