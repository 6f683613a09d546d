"""Rules and feeds change under a running daemon: good changes apply, broken ones are refused."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.support.daemon_config import daemon_config
from tests.support.feed_server import FeedServer
from tests.test_e2e import ROOT, Daemon, rss, wait_for

pytestmark = pytest.mark.e2e

BAKERY = {"title": "Village bakery wins the national sourdough prize",
          "link": "http://example.org/bakery-prize",
          "summary": "The jury praised the crust and the crumb of the sourdough loaf."}
BAKERY_RULE = """
rules:
  - id: bakery-news
    title: Bakery news
    severity: low
    query: 'sourdough AND (prize OR award)'
"""


def alerts(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_rule_file_changes_and_sighup(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    with FeedServer() as srv:
        srv.set("/a.xml", rss([]))
        srv.set("/b.xml", rss([BAKERY]))
        config = daemon_config(
            tmp_path, srv.url("/a.xml"), outlet="A", language=None, rules=rules,
            rules_opts="  watch_interval: 0.2s\n",
            poll="  interval: 1s\n  min_interval: 1s\n  max_interval: 1s\n  tick: 0.2s\n")
        feeds = tmp_path / "feeds.yaml"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("NEWS_MONITOR_") and k != "NOTIFY_SOCKET"}
        daemon = Daemon(config, env, tmp_path / "daemon.log")
        out = tmp_path / "state" / "alerts.jsonl"
        daemon.start()
        try:
            wait_for(lambda: srv.hits("/a.xml") >= 1, 60, "first poll")
            # A broken rule file is refused with file and line; the old rules stay.
            bad = rules / "extra.yaml"
            bad.write_text("rules:\n  - id: broken\n    title: B\n    severity: low\n"
                           "    query: '(sourdough AND'\n")
            wait_for(lambda: "rule change rejected" in daemon.logs(), 20, "the rejection")
            assert f"{bad}:5" in daemon.logs()
            # A good change takes effect without a restart.
            bad.write_text(BAKERY_RULE)
            wait_for(lambda: "rules reloaded" in daemon.logs(), 20, "the reload")
            # SIGHUP reloads the feed list too: feed B appears and its bakery item alerts.
            feeds.write_text(f"- url: {srv.url('/a.xml')}\n  outlet: A\n"
                             f"- url: {srv.url('/b.xml')}\n  outlet: B\n")
            # ... and says which changed settings wait for a restart (the timeout is the
            # fetcher's; the longest interval applies at once)
            config.write_text(config.read_text().replace(
                "  max_interval: 1s\n", "  max_interval: 2s\n  timeout: 7s\n"))
            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "config reloaded" in daemon.logs(), 20, "the reload")
            assert "only after a restart: poll.timeout\n" in daemon.logs()
            wait_for(lambda: any(a["rules"][0]["id"] == "bakery-news"  # type: ignore[index]
                                 for a in alerts(out)), 30, "the bakery alert")
            # A broken config on SIGHUP keeps the running one.
            config.write_text(config.read_text() + "poll:\n  interval: never\n")
            daemon.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "reload rejected" in daemon.logs(), 20, "the refused reload")
            assert daemon.proc.poll() is None
            assert daemon.stop() == 0
        finally:
            daemon.kill()
