"""``news-monitor tail``: alerts drawn for people, or JSON lines, read through a group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from monitor.alerts.console import renderable
from monitor.alerts.sinks import RedisSink
from monitor.store.base import OutboxItem

ROOT = Path(__file__).resolve().parent.parent

ALERT: dict[str, Any] = {
    "schema": "news-monitor.alert/1", "id": "a_1", "event": "story.new",
    "story": {
        "id": "s_paris", "title": "Macron hosts allies in Paris on security guarantees",
        "first_seen": "2026-11-20T09:00:00Z", "outlets": ["Reuters", "Le Monde"],
        "articles": [
            {"outlet": "Reuters", "url": "https://example.org/r/1",
             "title": "Allies discuss a reassurance force", "published": "2026-11-20T08:55:00Z",
             "language": "en"},
            {"outlet": "Le Monde", "url": "https://example.org/lm/2",
             "title": "Garanties de sécurité : réunion à Paris", "published": None,
             "language": "fr"},
        ],
    },
    "rules": [{"id": "reassurance-force", "title": "Reassurance force", "severity": "high",
               "matched_terms": ["reassurance force", "Ukraine"],
               "query_terms": ["reassurance force", "@ukraine"], "clauses": [],
               "snippet": "… a reassurance force for Ukraine once a ceasefire holds …"}],
    "detected_at": "2026-11-20T09:00:01Z",
}
EVENT = {"schema": "news-monitor.event/1", "id": "e_1", "event": "feed.gone",
         "feed": "https://gone.example/rss", "detail": "HTTP 410: the feed is gone",
         "detected_at": "2026-11-20T10:00:00Z"}


def draw(payload: dict[str, Any], *, terminal: bool = False) -> str:
    console = Console(record=True, width=120, force_terminal=terminal, color_system="truecolor")
    console.print(renderable(payload))
    return console.export_text(styles=terminal)


def test_story_panel_says_what_who_why_and_links() -> None:
    text = draw(ALERT)
    assert "NEW STORY  HIGH" in text
    assert "Macron hosts allies in Paris" in text
    assert "2 article(s) from 2 outlet(s): Reuters, Le Monde" in text
    assert "reassurance-force" in text and "ceasefire holds" in text
    assert "Garanties de sécurité" in text
    styled = draw(ALERT, terminal=True)
    assert "\x1b]8;" in styled and "https://example.org/lm/2" in styled  # terminal links
    assert "\x1b[1;4m" in styled or "\x1b[1m\x1b[4m" in styled  # matched words emphasised


def test_update_operator_event_and_unknown_payloads() -> None:
    assert "STORY UPDATE" in draw({**ALERT, "event": "story.updated"})
    event = draw(EVENT)
    assert "OPERATOR  feed.gone" in event and "https://gone.example/rss" in event
    odd = draw({"schema": "something/9", "weird": True})
    assert "unrecognised payload" in odd and '"weird": true' in odd


@pytest.mark.redis
@pytest.mark.anyio
async def test_tail_prints_for_people_and_as_json_and_acknowledges(redis_url: str,
                                                                   tmp_path: Path) -> None:
    sink = RedisSink(redis_url, channel="news-monitor:alerts", stream="news-monitor:alerts",
                     maxlen=1000)
    for payload in (ALERT, EVENT):
        await sink.send(OutboxItem(alert_id=str(payload["id"]), sink="redis",
                                   created_at=datetime.now(UTC), payload=json.dumps(payload)))
    await sink.aclose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWS_MONITOR_")}
    env.update(NEWS_MONITOR_REDIS_URL=redis_url, COLUMNS="120")
    (tmp_path / "monitor.yaml").write_text(
        f"feeds:\n  files: [{ROOT / 'deploy' / 'feeds.yaml'}]\n"
        f"rules:\n  paths: [{ROOT / 'rules'}]\nmetrics:\n  enabled: false\n")

    def tail(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(tmp_path / "monitor.yaml"),
             "tail", "--count", "2", *args], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=60)

    people = tail("--group", "desk")
    assert people.returncode == 0, people.stderr
    assert "Macron hosts allies in Paris" in people.stdout
    assert "OPERATOR  feed.gone" in people.stdout
    assert "\x1b[" not in people.stdout  # not a terminal: no escape codes

    machines = tail("--group", "bots", "--json")
    assert machines.returncode == 0, machines.stderr
    lines = [json.loads(x) for x in machines.stdout.splitlines()]
    assert [p["id"] for p in lines] == ["a_1", "e_1"]

    # the desk group acknowledged both: a new alert is all it gets next
    sink = RedisSink(redis_url, channel="news-monitor:alerts", stream="news-monitor:alerts",
                     maxlen=1000)
    await sink.send(OutboxItem(alert_id="a_2", sink="redis", created_at=datetime.now(UTC),
                               payload=json.dumps({**ALERT, "id": "a_2"})))
    await sink.aclose()
    again = tail("--group", "desk", "--json", "--count", "1")
    assert [json.loads(x)["id"] for x in again.stdout.splitlines()] == ["a_2"]
