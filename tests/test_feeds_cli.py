"""``news-monitor feeds``: health listing, add by discovery, OPML import and export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.feed_server import FeedServer
from tests.test_e2e import rss

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWS_MONITOR_")}
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def setup_dir(tmp_path: Path, feeds: str) -> Path:
    (tmp_path / "feeds.yaml").write_text(feeds)
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\nfeeds:\n  files: [feeds.yaml]\n"
                   f"rules:\n  paths: [{ROOT / 'rules'}]\nsinks:\n  stdout:\n    enabled: false\n"
                   "metrics:\n  enabled: false\npoll:\n  allow_networks: [127.0.0.0/8]\n")
    return cfg


def test_add_discovers_the_feed_of_a_page_and_import_export_round_trip(tmp_path: Path) -> None:
    with FeedServer() as srv:
        srv.set("/feed.xml", rss([]))
        srv.set("/", b'<html><head><link rel="alternate" type="application/rss+xml" '
                     b'href="/feed.xml"></head><body>hi</body></html>',
                headers={"Content-Type": "text/html"})
        cfg = setup_dir(tmp_path, "# our feeds\n- url: https://example.org/a.xml\n")
        res = cli("feeds", "add", srv.url("/"), "--outlet", "Loopback", "--config", str(cfg),
                  cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert srv.url("/feed.xml") in res.stdout
        text = (tmp_path / "feeds.yaml").read_text()
        assert text.startswith("# our feeds\n")
        assert srv.url("/feed.xml") in text and "Loopback" in text
        again = cli("feeds", "add", srv.url("/feed.xml"), "--config", str(cfg), cwd=tmp_path)
        assert "already listed" in again.stdout

        exported = cli("feeds", "export", "--config", str(cfg), cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.count("xmlUrl=") == 2
        opml = tmp_path / "other.opml"
        opml.write_text(exported.stdout.replace("https://example.org/a.xml",
                                                "https://example.net/b.xml"))
        imp = cli("feeds", "import", str(opml), "--config", str(cfg), cwd=tmp_path)
        assert imp.returncode == 0, imp.stderr
        assert "imported 1 feed(s)" in imp.stdout
        assert "https://example.net/b.xml" in (tmp_path / "feeds.yaml").read_text()


def test_health_listing_after_a_poll(tmp_path: Path) -> None:
    with FeedServer() as srv:
        srv.set("/ok.xml", rss([]))
        srv.set("/down.xml", b"", status=503)
        cfg = setup_dir(tmp_path, f"- url: {srv.url('/ok.xml')}\n- url: {srv.url('/down.xml')}\n")
        once = cli("once", "--config", str(cfg), cwd=tmp_path)
        assert once.returncode == 0, once.stderr  # one feed of two down: the run still worked
        res = cli("feeds", "--json", "--config", str(cfg), cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        rows = {r["url"]: r for r in map(json.loads, res.stdout.splitlines())}
        assert rows[srv.url("/ok.xml")]["status"] == "ok"
        down = rows[srv.url("/down.xml")]
        assert down["status"] == "erroring"
        assert down["failures"] == 1
        assert "http_5xx" in down["last_error"]


def test_gone_feed_is_flagged_and_announced_on_the_alert_channels(tmp_path: Path) -> None:
    with FeedServer() as srv:
        srv.set("/gone.xml", b"", status=410)
        cfg = setup_dir(tmp_path, f"- url: {srv.url('/gone.xml')}\n")
        once = cli("once", "--config", str(cfg), cwd=tmp_path)
        assert "gone" in once.stderr
        events = [json.loads(x) for x in
                  (tmp_path / "state" / "alerts.jsonl").read_text().splitlines()]
        assert [(e["schema"], e["event"], e["feed"]) for e in events] == [
            ("news-monitor.event/1", "feed.gone", srv.url("/gone.xml"))]
        rows = [json.loads(x) for x in cli("feeds", "--json", "--config", str(cfg),
                                           cwd=tmp_path).stdout.splitlines()]
        assert rows[0]["status"] == "gone"
        # Polling it again (still gone) announces nothing new.
        cli("once", "--config", str(cfg), cwd=tmp_path)
        assert len((tmp_path / "state" / "alerts.jsonl").read_text().splitlines()) == 1
