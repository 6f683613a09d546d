"""The service end to end in-process: a feed on loopback, rules with channels, two webhooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.alerts.webhook import verify
from monitor.config import load_settings
from monitor.service import Service
from tests.support.feed_server import FeedServer
from tests.support.http_sink import HttpSink
from tests.test_e2e import rss

RULES = """
rules:
  - id: reassurance-force
    title: Reassurance force
    severity: high
    query: '"reassurance force"'
    channels: [webhook:desk]
  - id: ceasefire-monitoring
    title: Ceasefire monitoring
    query: OSCE AND ceasefire
"""
ITEMS = [
    {"title": "Britain and France plan reassurance force for Ukraine",
     "link": "http://example.org/story-0",
     "summary": "London and Paris said a coalition of the willing would send a reassurance "
                "force of several thousand troops to Ukraine once a ceasefire holds."},
    {"title": "OSCE offers to verify a ceasefire along the front line",
     "link": "http://example.org/story-1",
     "summary": "The OSCE secretary general proposed a monitoring mission with drones and "
                "observers along the 1,200 km front line."},
]


@pytest.mark.anyio
async def test_service_delivers_each_rule_to_its_webhooks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NM_TEST_DESK_SECRET", "desk-key")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    with FeedServer() as feeds, HttpSink() as rx:
        feeds.set("/f.xml", rss(ITEMS))
        (tmp_path / "feeds.yaml").write_text(f"- url: {feeds.url('/f.xml')}\n  outlet: Wire\n")
        (tmp_path / "monitor.yaml").write_text(f"""
state_dir: state
feeds: {{files: [feeds.yaml]}}
rules: {{paths: [rules], watch: false}}
poll: {{allow_networks: [127.0.0.0/8], parse_workers: 1}}
metrics: {{enabled: false}}
sinks:
  stdout: {{enabled: false}}
  webhooks:
    - {{name: desk, url: '{rx.url("/desk")}', secret_env: NM_TEST_DESK_SECRET}}
    - {{name: ops, url: '{rx.url("/ops")}'}}
""")
        svc = Service(load_settings(tmp_path / "monitor.yaml", env={}, search=False))
        await svc.start()
        try:
            summary = await svc.run_once()
        finally:
            await svc.close()
        assert (summary.failed, summary.alerts) == (0, 2)
        desk, ops = rx.received("/desk"), rx.received("/ops")
    titles = {r.json()["story"]["title"]: r for r in desk}
    assert set(titles) == {ITEMS[0]["title"], ITEMS[1]["title"]}
    assert [r.json()["story"]["title"] for r in ops] == [ITEMS[1]["title"]]
    for r in desk:
        assert verify(b"desk-key", r.body, r.headers["x-news-monitor-signature"])
    assert "x-news-monitor-signature" not in ops[0].headers
    jsonl = (tmp_path / "state" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(x)["story"]["title"] for x in jsonl] == [ITEMS[1]["title"]]
