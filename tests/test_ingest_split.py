"""Story repair through the daemon's path: the store, the alerts and a restart follow a split.

The navy texts of test_stories_split.py, with a join threshold low enough for one story
to take in both navy actions before the repair cuts it back in two. On SQLite (the
group-commit path) and on a real Redis (the shared path, two instances).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.policy import AlertPolicy
from monitor.errors import StoreError
from monitor.ingest import Ingestor, Outcome
from monitor.match.rules import load_rules
from monitor.models import Article
from monitor.store.base import Store
from monitor.store.redis import RedisStore
from monitor.store.sqlite import SQLiteStore
from monitor.stories.cluster import StoryConfig, StoryIndex, story_id_for
from tests.test_ingest_commit import refuse_writes
from tests.test_stories import load
from tests.test_stories_split import LOOSE, SNOWBALL

pytestmark = pytest.mark.anyio

NOW = datetime(2025, 3, 11, 12, 0, tzinfo=UTC)
RULES = """
rules:
  - id: pirates
    query: pirates
"""
OUTLETS = ("Hindu", "PTI", "Reuters", "NDTV")


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s: Store = SQLiteStore(tmp_path / "state.db")
    else:
        s = RedisStore(request.getfixturevalue("redis_url"), prefix="nm-split")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def ingestor(store: Store, tmp_path: Path, rules_yaml: str = RULES) -> Ingestor:
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_yaml)
    cfg = StoryConfig(join_threshold=LOOSE)
    return Ingestor(store, load_rules([rules]), StoryIndex(cfg), AlertPolicy("every_outlet"),
                    ["jsonl"], window=cfg.window, seen_ttl=timedelta(days=30))


def report(n: int, order: list[str] = SNOWBALL) -> Article:
    art = load(order[n], outlet=OUTLETS[n])
    return Article(key=art.key, url=art.url, title=art.title, content=art.content,
                   outlet=art.outlet, language="en", published=NOW)


async def ingest_all(ing: Ingestor) -> list[Outcome]:
    out = []
    for n in range(len(SNOWBALL)):
        out += await ing.ingest([report(n)], NOW + timedelta(minutes=n))
    return out


async def queued(store: Store) -> list[dict[str, Any]]:
    items = await store.outbox_due("jsonl", NOW + timedelta(days=1), 100)
    return [json.loads(i.payload) for i in items]


async def test_a_split_stores_two_stories_and_announces_the_new_one_once(
        store: Store, tmp_path: Path) -> None:
    ing = ingestor(store, tmp_path)
    outcomes = await ingest_all(ing)
    old, new = outcomes[0].story_id, story_id_for("navy_2008_a.txt")
    assert [o.story_id for o in outcomes] == [old] * 4   # at their placement
    split = outcomes[3].split
    assert split is not None and split.story_id == old and split.new_story_id == new
    assert outcomes[3].split_alert == "story.new"

    kept, left = await store.get_story(old or ""), await store.get_story(new)
    assert kept is not None and left is not None
    assert [a.key for a in kept.articles] == ["navy_2011_b.txt", "navy_2011_a.txt"]
    assert [a.key for a in left.articles] == ["navy_2008_a.txt", "navy_2008_b.txt"]
    assert left.rule_ids == ("pirates",) and left.alerted
    members = await store.recent_members(NOW - timedelta(days=1))
    # each once, under its story now, seen when it was first seen (not at the split)
    assert sorted((m.article_key, m.story_id, m.seen_at) for m in members) == sorted(
        (key, sid, NOW + timedelta(minutes=n))
        for n, (key, sid) in enumerate(zip(SNOWBALL, (old, new, new, old), strict=True)))

    alerts = await queued(store)
    news = [a["story"]["id"] for a in alerts if a["event"] == "story.new"]
    assert news == [old, new]    # one story.new per story, the new one's last
    announced = alerts[-1] if alerts[-1]["story"]["id"] == new else alerts[-2]
    assert [x["outlet"] for x in announced["story"]["articles"]] == ["PTI", "Reuters"]
    assert announced["story"]["split_from"] == old
    assert all("split_from" not in a["story"] for a in alerts if a["story"]["id"] == old)
    assert [r["id"] for r in announced["rules"]] == ["pirates"]
    # explained by its own articles' matches, as any story.new
    assert "pirates" in announced["rules"][0]["snippet"].lower()

    # a restart rebuilds both stories from the store
    again = ingestor(store, tmp_path)
    await again.restore(NOW + timedelta(minutes=5))
    assert {k: again.index.story_of(k) for k in SNOWBALL} == {
        k: ing.index.story_of(k) for k in SNOWBALL}
    assert again.index.story_of("navy_2008_b.txt") == new


async def test_each_part_names_only_the_rules_its_own_articles_matched(
        store: Store, tmp_path: Path) -> None:
    """A rule only one 2008 report matches leaves with it: the 2011 story never alerts."""
    order = ["navy_2011_b.txt", "navy_2011_a.txt", "navy_2008_a.txt", "navy_2008_b.txt"]
    ing = ingestor(store, tmp_path, "rules:\n  - id: hijack\n    query: hijack\n")
    outcomes = []
    for n in range(4):
        outcomes += await ing.ingest([report(n, order)], NOW + timedelta(minutes=n))
    split = outcomes[3].split
    assert split is not None and outcomes[3].story_id == split.new_story_id
    assert outcomes[3].alert == "story.new"    # the article left with the new story
    assert [o.rule_ids for o in outcomes] == [(), (), (), ("hijack",)]
    kept = await store.get_story(split.story_id)
    assert kept is not None and kept.rule_ids == () and not kept.alerted
    later = load("navy_2011_a.txt", key="later", outlet="AP")
    (fifth,) = await ing.ingest([later], NOW + timedelta(minutes=5))
    assert fifth.story_id == split.story_id and fifth.alert is None
    news = [a["story"]["id"] for a in await queued(store) if a["event"] == "story.new"]
    assert news == [split.new_story_id]


@pytest.mark.parametrize("order", [
    SNOWBALL,   # the 2011 report staying behind is the one that causes the split
    ["navy_2011_b.txt", "navy_2008_a.txt", "navy_2011_a.txt", "navy_2008_b.txt"],
])
async def test_each_part_is_explained_by_its_own_reports(
        store: Store, tmp_path: Path, order: list[str]) -> None:
    """Both actions were 'foiled' (INS Mysore in 2008, INS Sukanya in 2011): after the
    split, each story's alerts quote its own ship, never the other event's report."""
    ing = ingestor(store, tmp_path, "rules:\n  - id: foiled\n    query: foiled\n")
    outcomes = []
    for n in range(4):
        outcomes += await ing.ingest([report(n, order)], NOW + timedelta(minutes=n))
    split = outcomes[3].split
    assert split is not None
    later = load("navy_2011_a.txt", key="later", outlet="AP")
    await ing.ingest([later], NOW + timedelta(minutes=5))
    alerts = await queued(store)
    after = alerts[next(i for i, a in enumerate(alerts)
                        if a["story"]["id"] == split.new_story_id):]
    for a in after:
        snippets = " ".join(r["snippet"] for r in a["rules"])
        ship = "Mysore" if a["story"]["id"] == split.new_story_id else "Sukanya"
        assert ship in snippets, (a["event"], a["story"]["id"], snippets)
        assert ({"Mysore", "Sukanya"} - {ship}).pop() not in snippets


async def test_a_rule_a_later_report_brings_keeps_its_explanation(
        store: Store, tmp_path: Path) -> None:
    """Two reports of one story in one poll, only the second matching: settling the first
    (its story then without rules) must not forget the second's explanation."""
    ing = ingestor(store, tmp_path, "rules:\n  - id: foiled\n    query: foiled\n")
    first = load("navy_2011_b.txt", outlet="Hindu")
    second = load("navy_2011_a.txt", outlet="NDTV")
    out = await ing.ingest([first, second], NOW)
    assert out[0].story_id == out[1].story_id and out[1].alert == "story.new"
    third = load("navy_2011_b.txt", key="third", outlet="AP")
    (update,) = await ing.ingest([third], NOW + timedelta(minutes=1))
    assert update.alert == "story.updated"
    snippets = [r["snippet"] for a in await queued(store) for r in a["rules"]]
    assert len(snippets) == 2 and all("Sukanya" in s for s in snippets)


async def test_a_failed_commit_takes_the_split_back(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        ing = ingestor(store, tmp_path)
        for n in range(3):
            await ing.ingest([report(n)], NOW + timedelta(minutes=n))
        old = ing.index.story_of(SNOWBALL[0])
        refuse_writes(tmp_path / "state.db", True)
        with pytest.raises(StoreError):
            await ing.ingest([report(3)], NOW + timedelta(minutes=3))
        # nothing half-accepted: the article is out and the split undone
        assert ing.index.story_of(SNOWBALL[3]) is None
        assert {ing.index.story_of(k) for k in SNOWBALL[:3]} == {old}
        assert (await store.get_story(story_id_for("navy_2008_a.txt"))) is None
        refuse_writes(tmp_path / "state.db", False)
        (fourth,) = await ing.ingest([report(3)], NOW + timedelta(minutes=4))
        assert fourth.split is not None and fourth.split_alert == "story.new"
        assert ing.index.story_of("navy_2008_a.txt") == story_id_for("navy_2008_a.txt")
    finally:
        await store.close()


@pytest.mark.redis
async def test_another_instance_follows_a_split(redis_url: str, tmp_path: Path) -> None:
    async with RedisStore(redis_url, prefix="nm-split") as sa, \
            RedisStore(redis_url, prefix="nm-split") as sb:
        a, b = ingestor(sa, tmp_path), ingestor(sb, tmp_path)
        await a.restore(NOW)
        await b.restore(NOW)
        await b.ingest([report(0)], NOW)          # B saw the story start
        outcomes = []
        for n in range(1, 4):
            outcomes += await a.ingest([report(n)], NOW + timedelta(minutes=n))
        assert outcomes[-1].split is not None
        # B's next article catches up: the moved members are in the new story there too
        probe = load("navy_2008_b.txt", key="probe", outlet="AP")
        (placed,) = await b.ingest([probe], NOW + timedelta(minutes=5))
        new = story_id_for("navy_2008_a.txt")
        assert b.index.story_of("navy_2008_a.txt") == new
        assert placed.story_id == new
        assert events_per_story(await queued(sa))[new][0] == "story.new"


def events_per_story(alerts: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a in alerts:
        out.setdefault(a["story"]["id"], []).append(a["event"])
    return out


@pytest.mark.redis
async def test_explanations_follow_another_instances_split(
        redis_url: str, tmp_path: Path) -> None:
    rules = "rules:\n  - id: foiled\n    query: foiled\n"
    async with RedisStore(redis_url, prefix="nm-split") as sa, \
            RedisStore(redis_url, prefix="nm-split") as sb:
        a, b = ingestor(sa, tmp_path, rules), ingestor(sb, tmp_path, rules)
        for n in range(3):   # A hears 2008_a ("INS Mysore ... foiled") first
            await a.ingest([report(n)], NOW + timedelta(minutes=n))
        (cut,) = await b.ingest([report(3)], NOW + timedelta(minutes=3))
        assert cut.split is not None
        later = load("navy_2011_a.txt", key="later", outlet="AP")
        # an unrelated report makes A catch up; then a maintenance tick
        await a.ingest([load("quake_tonga_a.txt", outlet="AP")], NOW + timedelta(minutes=4))
        await a.expire(NOW + timedelta(minutes=4))
        # A's own report of the 2008 action still explains the story B's split made
        explained = a.hits.explain(cut.split.new_story_id, "foiled")
        assert explained is not None and "Mysore" in explained.snippet
        (update,) = await a.ingest([later], NOW + timedelta(minutes=5))
        assert update.story_id == cut.split.story_id and update.alert == "story.updated"
        alert = (await queued(sa))[-1]
        assert alert["story"]["id"] == cut.split.story_id
        assert all("Mysore" not in r["snippet"] for r in alert["rules"])
