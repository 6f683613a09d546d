"""End to end: ``news-monitor run`` as a subprocess against loopback feeds and a real Redis."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import httpx
import pytest
import redis

from tests.support.feed_server import FeedServer

ROOT = Path(__file__).resolve().parent.parent
SEEDS = Path(__file__).resolve().parent / "data" / "seeds"

pytestmark = pytest.mark.e2e


def rss(items: list[dict[str, str]], title: str = "Test outlet") -> bytes:
    now = format_datetime(datetime.now(UTC))
    body = "".join(
        f"<item><title>{escape(i['title'])}</title><link>{escape(i['link'])}</link>"
        f"<guid>{escape(i.get('guid', i['link']))}</guid><pubDate>{now}</pubDate>"
        f"<description>{escape(i['summary'])}</description></item>"
        for i in items
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{escape(title)}</title><link>http://127.0.0.1/</link>"
            f"<description>t</description>{body}</channel></rss>").encode()


def seed_item(n: int, link: str) -> dict[str, str]:
    text = sorted(SEEDS.glob("*.txt"))[n].read_text(encoding="utf-8")
    first = text.partition(". ")[0]
    return {"title": first[:150], "link": link, "summary": text}


OFF_TOPIC = {
    "title": "Local bakery wins regional bread award",
    "link": "http://example.org/bakery",
    "summary": "A family bakery in the valley won the regional award for its sourdough loaf, "
               "judges praised the crust and the crumb.",
}


class NotifyListener:
    """A real NOTIFY_SOCKET: what the daemon tells systemd, as the test sees it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, OSError):
                continue

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.sock.close()


class Daemon:
    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config, self.env, self.log_path = config, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.groups: list[int] = []

    def start(self) -> None:
        self.log = open(self.log_path, "ab")  # noqa: SIM115
        # its own process group, so kill() also reaches the parser pool at once (a
        # SIGKILLed daemon's pool exits by itself, monitor/orphans.py, within moments)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(self.config), "run"],
            stdout=subprocess.DEVNULL, stderr=self.log, env=self.env, cwd=self.config.parent,
            start_new_session=True,
        )
        self.groups.append(self.proc.pid)

    def stop(self, timeout: float = 15) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.log.close()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        if not self.log.closed:
            self.log.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(cond: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Subscriber:
    def __init__(self, url: str, channel: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(channel)
        self.messages: list[dict[str, object]] = []

    def poll(self) -> list[dict[str, object]]:
        while True:
            msg = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
            if msg is None:
                return self.messages
            self.messages.append(json.loads(msg["data"]))

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def setup(tmp_path: Path, redis_url: str) -> Iterator[tuple[FeedServer, Path, dict[str, str], str]]:
    with FeedServer() as srv:
        srv.set("/a.xml", rss([]))
        srv.set("/b.xml", rss([]))
        srv.set("/broken.xml", b"", status=500)
        feeds = tmp_path / "feeds.yaml"
        feeds.write_text(
            f"- url: {srv.url('/a.xml')}\n  outlet: Outlet A\n  language: en\n"
            f"- url: {srv.url('/b.xml')}\n  outlet: Outlet B\n  language: en\n"
            f"- url: {srv.url('/broken.xml')}\n  outlet: Broken Outlet\n"
        )
        config = tmp_path / "monitor.yaml"
        config.write_text(
            f"state_dir: {tmp_path / 'state'}\n"
            f"feeds:\n  files: [{feeds}]\n"
            f"rules:\n  paths: [{ROOT / 'rules'}]\n"
            "poll:\n  allow_networks: [127.0.0.0/8]\n"
            "  interval: 1s\n  min_interval: 1s\n  max_interval: 2s\n"
            "  max_backoff: 2s\n  tick: 0.2s\n  timeout: 5s\n"
            "sinks:\n  stdout:\n    format: json\n  retry_min: 0.2s\n  retry_max: 1s\n"
            "metrics:\n  port: 0\n"
        )
        env = {**os.environ, "NEWS_MONITOR_REDIS_URL": redis_url,
               "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
        env.pop("NEWS_MONITOR_CONFIG", None)
        yield srv, config, env, redis_url


def stream_alerts(client: redis.Redis) -> list[dict[str, object]]:
    return [json.loads(f[b"payload"]) for _, f in client.xrange("news-monitor:alerts")]


def test_daemon_alerts_once_per_story_and_survives_bad_feeds(
    setup: tuple[FeedServer, Path, dict[str, str], str], tmp_path: Path
) -> None:
    srv, config, env, redis_url = setup
    notify = NotifyListener(tmp_path / "notify.sock")
    sub = Subscriber(redis_url, "news-monitor:alerts")
    client = redis.Redis.from_url(redis_url)
    daemon = Daemon(config, env, tmp_path / "daemon.log")
    daemon.start()
    try:
        wait_for(lambda: any("READY=1" in m for m in notify.messages), 60, "READY=1")
        wait_for(lambda: srv.hits("/a.xml") >= 1 and srv.hits("/broken.xml") >= 1, 30,
                 "first polls")

        # A matching article in feed A: one alert on pub/sub and one in the stream.
        item = seed_item(0, "http://example.org/paris-meeting?utm_source=rss")
        srv.set("/a.xml", rss([item, OFF_TOPIC]))
        wait_for(lambda: len(sub.poll()) >= 1, 30, "the pub/sub alert")
        wait_for(lambda: len(stream_alerts(client)) >= 1, 10, "the stream alert")
        alert = sub.messages[0]
        assert alert["schema"] == "news-monitor.alert/1"
        assert alert["event"] == "story.new"
        story = alert["story"]
        assert isinstance(story, dict)
        assert [a["outlet"] for a in story["articles"]] == ["Outlet A"]
        # The publisher's own link is what people click; identity uses the canonical form.
        assert story["articles"][0]["url"] == "http://example.org/paris-meeting?utm_source=rss"
        rules = alert["rules"]
        assert isinstance(rules, list) and rules
        assert all(r["id"] and r["severity"] for r in rules)
        assert stream_alerts(client)[0]["id"] == alert["id"]

        # The same article in feed B (tracking-free URL) and an off-topic one: nothing new.
        hits_b = srv.hits("/b.xml")
        srv.set("/b.xml", rss([{**item, "link": "https://www.example.org/paris-meeting"},
                              OFF_TOPIC]))
        wait_for(lambda: srv.hits("/b.xml") >= hits_b + 3, 30, "feed B polled again")
        assert len(sub.poll()) == 1
        assert len(stream_alerts(client)) == 1

        # A broken feed: 500, then garbage. It is named in the logs; the others go on.
        srv.set("/broken.xml", b"\x00\xffnot a feed at all<<<", status=200)
        hits = srv.hits("/broken.xml")
        wait_for(lambda: srv.hits("/broken.xml") >= hits + 1, 30, "broken feed polled")
        wait_for(lambda: srv.url("/broken.xml") in daemon.logs(), 10, "the failure logged")
        logs = daemon.logs()
        assert "500" in logs
        wait_for(lambda: "parse" in daemon.logs().split(srv.url("/broken.xml"), 1)[-1].lower(),
                 20, "the parse failure logged")
        other = {"title": "Coalition of the willing plans reassurance force for Ukraine "
                          "after ceasefire",
                 "link": "http://example.org/reassurance-force",
                 "summary": "Britain and France said a coalition of the willing would deploy a "
                            "reassurance force to Ukraine to guarantee a ceasefire, with air "
                            "cover and ceasefire monitoring; Moscow rejected any foreign troops."}
        srv.set("/b.xml", rss([other]))
        wait_for(lambda: len(sub.poll()) >= 2, 30, "an alert from feed B after the breakage")
        assert daemon.proc is not None and daemon.proc.poll() is None

        assert "parser_crash" not in daemon.logs()

        # Metrics and health on the loopback port the daemon picked.
        found = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", daemon.logs())
        assert found, "metrics endpoint not logged"
        base = f"http://127.0.0.1:{found.group(1)}"
        metrics = httpx.get(f"{base}/metrics").text
        assert 'news_monitor_alerts_total{event="story.new"} 2.0' in metrics
        assert 'news_monitor_poll_errors_total{kind="http_5xx"}' in metrics
        assert 'news_monitor_deliveries_total{outcome="ok",sink="redis"} 2.0' in metrics
        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200
        assert health.json()["store"] is True
        assert daemon.stop() == 0
        assert any("STOPPING=1" in m for m in notify.messages)
        n_stream = len(stream_alerts(client))

        # Restart with changed bodies, so both feeds are parsed again: nothing alerts twice.
        before = {p: srv.hits(p) for p in ("/a.xml", "/b.xml")}
        extra = {**OFF_TOPIC, "link": "http://example.org/other", "title": "Weather: sunny"}
        srv.set("/a.xml", rss([item, OFF_TOPIC, extra]))
        srv.set("/b.xml", rss([other, extra]))
        daemon.start()
        wait_for(lambda: all(srv.hits(p) >= before[p] + 2 for p in before), 60,
                 "polls after restart")
        time.sleep(1)
        assert len(sub.poll()) == 2
        assert len(stream_alerts(client)) == n_stream == 2
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        sub.close()
        client.close()
        notify.close()
