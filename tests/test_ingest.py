"""The ingest path: feeds polled at once still fold one story's reports into one story."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.policy import AlertPolicy
from monitor.ingest import Ingestor
from monitor.match.rules import load_rules
from monitor.models import STORY_ARTICLES_KEPT, Article
from monitor.store.sqlite import SQLiteStore
from monitor.stories.cluster import StoryConfig, StoryIndex
from monitor.stories.identity import identity_keys

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((Path(__file__).resolve().parent / "data" / "seeds").glob("*.txt"))
TITLES = ["Military chiefs from 34 countries discuss security guarantees for Ukraine in Paris",
          "Western bloc discusses troop deployment to Ukraine at Paris summit"]
NOW = datetime(2025, 3, 11, 18, 0, tzinfo=UTC)


def seed_article(i: int) -> Article:
    text = SEEDS[i].read_text(encoding="utf-8")
    url = f"https://outlet{i}.example/paris"
    keys = identity_keys(feed_url=f"https://outlet{i}.example/rss", guid=None, canonical=url,
                         title=TITLES[i], summary=text)
    return Article(key=keys[0], url=url, title=TITLES[i], summary=text,
                   outlet=["DW", "RT"][i], language="en", published=NOW, seen_keys=keys)


@contextlib.asynccontextmanager
async def seeded_ingestor(tmp_path: Path, seen_ttl: timedelta) -> AsyncIterator[
        tuple[Ingestor, SQLiteStore]]:
    """An ingestor with the shipped rules on a fresh SQLite store, alerts to ``jsonl``."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        yield Ingestor(store, load_rules([ROOT / "rules"]), StoryIndex(StoryConfig()),
                       AlertPolicy("every_outlet"), ["jsonl"], window=StoryConfig().window,
                       seen_ttl=seen_ttl), store
    finally:
        await store.close()


@pytest.mark.anyio
async def test_concurrent_feeds_fold_the_seeds_into_one_story(tmp_path: Path) -> None:
    async with seeded_ingestor(tmp_path, StoryConfig().window) as (ing, store):
        later = NOW.replace(second=5)  # polls start at different times, commit in any order
        (a,), (b,) = await asyncio.gather(ing.ingest([seed_article(0)], later),
                                          ing.ingest([seed_article(1)], NOW))
        assert a.story_id == b.story_id
        assert sorted(str(o.alert) for o in (a, b)) == ["story.new", "story.updated"]
        assert (await store.outbox_depth())["jsonl"] == 2
        queued = await store.outbox_due("jsonl", NOW.replace(minute=1), 10)
        assert [q.payload.count('"outlet"') for q in queued] == [1, 2]  # new, then update
        story = await store.get_story(a.story_id or "")
        assert story is not None
        assert story.outlets == ("DW", "RT") or story.outlets == ("RT", "DW")
        # The same reports again (another feed, a restart): nothing new, no alert.
        again = await ing.ingest([seed_article(0), seed_article(1)], NOW)
        assert all(o.duplicate and o.alert is None for o in again)


@pytest.mark.anyio
async def test_a_poll_that_finishes_late_does_not_age_its_story(tmp_path: Path) -> None:
    """A poll started earlier but committed later must not move the story's ``last_seen``
    back: expiry reads it, and a story dropped from the store while the index still held
    it open came back as a second ``story.new`` with its history lost."""
    window = StoryConfig().window
    async with seeded_ingestor(tmp_path, timedelta(days=30)) as (ing, store):
        (a,) = await ing.ingest([seed_article(0)], NOW)
        (b,) = await ing.ingest([seed_article(1)], NOW - timedelta(seconds=30))
        assert (a.alert, b.alert, b.story_id) == ("story.new", "story.updated", a.story_id)
        story = await store.get_story(a.story_id or "")
        assert story is not None
        assert (story.first_seen, story.last_seen) == (NOW - timedelta(seconds=30), NOW)

        # Maintenance between the two polls' starts, one window on: the story is still open.
        await ing.expire(NOW - timedelta(seconds=20) + window)
        assert await store.get_story(a.story_id or "") is not None
        text = SEEDS[0].read_text(encoding="utf-8")
        url = "https://copy.example/paris"
        keys = identity_keys(feed_url="https://copy.example/rss", guid=None, canonical=url,
                             title=TITLES[0] + " (update)", summary=text + " More to follow.")
        late = Article(key=keys[0], url=url, title=TITLES[0] + " (update)",
                       summary=text + " More to follow.", outlet="AFP", language="en",
                       published=NOW, seen_keys=keys)
        (c,) = await ing.ingest([late], NOW - timedelta(seconds=15) + window)
        assert c.story_id == a.story_id and c.alert == "story.updated"
        story = await store.get_story(a.story_id or "")
        assert story is not None and len(story.articles) == 3


@pytest.mark.anyio
async def test_a_story_record_keeps_its_latest_articles_only(tmp_path: Path) -> None:
    async with seeded_ingestor(tmp_path, StoryConfig().window) as (ing, store):
        text = SEEDS[0].read_text(encoding="utf-8")
        kept = STORY_ARTICLES_KEPT
        for n in range(kept + 5):   # one wire report, republished by many outlets
            url = f"https://outlet{n}.example/paris"
            keys = identity_keys(feed_url=f"https://outlet{n}.example/rss", guid=None,
                                 canonical=url, title=TITLES[0], summary=f"{text} ({n})")
            art = Article(key=keys[0], url=url, title=TITLES[0], summary=f"{text} ({n})",
                          outlet=f"Outlet {n}", language="en", published=NOW, seen_keys=keys)
            (out,) = await ing.ingest([art], NOW + timedelta(minutes=n))
            assert out.alert == ("story.new" if n == 0 else "story.updated")
        story = await store.get_story(out.story_id or "")
        assert story is not None
        assert (len(story.articles), story.article_count, len(story.outlets)) == \
            (kept, kept + 5, kept + 5)
        assert story.articles[0].outlet == "Outlet 5"
        last = (await store.outbox_due("jsonl", NOW + timedelta(days=1), 1000))[-1]
        payload = json.loads(last.payload)["story"]
        assert (len(payload["articles"]), payload["article_count"]) == (kept, kept + 5)
