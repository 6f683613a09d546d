"""Items per day: kept in the feed's state from a poll's entry dates, shown by ``feeds``."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli import _span
from monitor.config import load_settings
from monitor.fetch import feedstate
from monitor.fetch.schedule import SchedulePolicy
from monitor.models import FeedState, FetchResult
from monitor.service import Service
from monitor.store.serde import feed_state_from_json, feed_state_to_json
from tests.support.feed_server import FeedServer
from tests.test_feeds_cli import cli, setup_dir

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
POLICY = SchedulePolicy(min_interval=60, max_interval=6 * 3600, default_interval=900,
                        backoff_cap=6 * 3600, failing_after=3)


def test_a_parsed_body_sets_items_per_day_and_a_304_keeps_it() -> None:
    rng = random.Random(1)
    published = [NOW - timedelta(hours=12 * k) for k in range(14)]  # 2 a day for a week
    ok = FetchResult(url="http://x/f", status=200, body=b"<rss/>")
    after = feedstate.after_fetch(FeedState(url="http://x/f"), ok, now=NOW, policy=POLICY,
                                  rng=rng, published=published, new_items=14)
    assert after.items_per_day == pytest.approx(2.0)
    same = FetchResult(url="http://x/f", status=304, body=None)
    later = feedstate.after_fetch(after, same, now=NOW + timedelta(hours=1), policy=POLICY,
                                  rng=rng)
    assert later.items_per_day == pytest.approx(2.0)


def test_state_stored_before_the_new_fields_still_reads() -> None:
    old = json.dumps({"url": "http://x/f", "failures": 2, "items_seen": 7,
                      "last_success": "2026-03-01T12:00:00+00:00"})
    state = feed_state_from_json(old)
    assert (state.failures, state.items_seen, state.items_per_day, state.push_state) == \
        (2, 7, None, None)
    full = FeedState(url="http://x/f", items_per_day=3.5, push_hub="http://hub/",
                     push_topic="http://x/self", push_state="active", push_detail=None,
                     push_requested_at=NOW, push_lease_until=NOW + timedelta(days=7))
    assert feed_state_from_json(feed_state_to_json(full)) == full


@pytest.mark.anyio
async def test_feeds_lists_items_per_day_after_a_poll(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    # 18 h apart: five of the eight are older than poll.max_article_age (2 days), so they
    # are no articles, but their dates still count
    items = "".join(
        f"<item><title>Item {k}</title><link>http://127.0.0.1/a/{k}</link>"
        f"<pubDate>{(now - timedelta(hours=18 * k)).strftime('%a, %d %b %Y %H:%M:%S +0000')}"
        f"</pubDate><description>Text {k}</description></item>" for k in range(8))
    body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
            f"<link>http://127.0.0.1/</link><description>d</description>{items}"
            f"</channel></rss>").encode()
    with FeedServer() as srv:
        srv.set("/feed.xml", body)
        cfg = setup_dir(tmp_path, f"- url: {srv.url('/feed.xml')}\n")
        svc = Service(load_settings(cfg, env={}, search=False))
        await svc.start()
        try:
            summary = await svc.run_once()
        finally:
            await svc.close()
        assert summary.failed == 0
    res = cli("feeds", "--json", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout.splitlines()[0])
    assert row["items_per_day"] == pytest.approx(8 / 7, abs=0.05)  # 8 entries in the week
    text = cli("feeds", "--config", str(cfg), cwd=tmp_path)
    assert "1.1/day" in text.stdout
    assert f"last ok {row['last_success'][:16].replace('T', ' ')}" in text.stdout
    assert row["interval_s"] and f"every {_span(row['interval_s']):>4}" in text.stdout
    assert [_span(n) for n in (90, 900, 7200, 21600)] == ["90s", "15m", "2h", "6h"]


@pytest.mark.anyio
async def test_a_retry_after_beyond_max_backoff_waits_max_backoff(tmp_path: Path) -> None:
    # a CDN's "Retry-After: 999999999" had muted the feed for a week whatever the
    # operator's poll.max_backoff said
    with FeedServer() as srv:
        srv.set("/feed.xml", b"busy", status=503, headers={"Retry-After": "999999999"})
        cfg = setup_dir(tmp_path, f"- url: {srv.url('/feed.xml')}\n")
        cfg.write_text(cfg.read_text().replace("poll:\n", "poll:\n  max_backoff: 30m\n"))
        svc = Service(load_settings(cfg, env={}, search=False))
        await svc.start()
        try:
            before = datetime.now(UTC)
            await svc.run_once()
        finally:
            await svc.close()
    res = cli("feeds", "--json", "--config", str(cfg), cwd=tmp_path)
    row = json.loads(res.stdout.splitlines()[0])
    wait = datetime.fromisoformat(row["next_check"]) - before
    assert timedelta(minutes=29) < wait <= timedelta(minutes=30) * 1.11   # + up to 10 % jitter
