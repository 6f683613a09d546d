"""WebSub through the real daemon process: discovery from the Link header, the hub's
intent check, a signed push alerting at once, and an unsubscription when the feed leaves."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from monitor.fetch import websub
from tests.support.daemon_config import daemon_config
from tests.support.feed_server import FeedServer
from tests.support.redis_server import free_port
from tests.test_e2e import Daemon, rss, seed_item, wait_for

pytestmark = pytest.mark.e2e

SECRET = "a websub secret of some length"
SELF_URL = "https://publisher.example/world.xml"




def _forms(srv: FeedServer) -> list[dict[str, str]]:
    return [dict(parse_qsl(r.body.decode())) for r in srv.requests("/hub")]


def _alerts(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_daemon_discovers_subscribes_takes_a_push_and_unsubscribes(tmp_path: Path) -> None:
    with FeedServer() as srv:
        srv.set("/hub", status=202)
        link = f'<{srv.url("/hub")}>; rel="hub", <{SELF_URL}>; rel="self"'
        srv.set("/world.xml", rss([]), headers={"Link": link})  # no hub in the document
        port = free_port()
        config = daemon_config(
            tmp_path, srv.url("/world.xml"), outlet="Loopback", language=None,
            poll="  tick: 0.2s\n  parse_workers: 1\n", sinks="  retry_min: 0.2s\n",
            more=f"websub:\n  callback_url: http://127.0.0.1:{port}/websub\n"
                 f"  listen: 127.0.0.1:{port}\n  secret: {SECRET}\n  fallback_interval: 6h\n")
        feeds = tmp_path / "feeds.yaml"
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWS_MONITOR_")}
        env.pop("NOTIFY_SOCKET", None)
        daemon = Daemon(config, env, tmp_path / "daemon.log")
        daemon.start()
        try:
            # the first poll finds the hub in the Link header and asks it for pushes
            wait_for(lambda: srv.hits("/hub") >= 1, 30, "the subscription request")
            ask = _forms(srv)[0]
            assert ask["hub.mode"] == "subscribe"
            assert ask["hub.topic"] == SELF_URL
            callback = ask["hub.callback"]
            assert callback.startswith(f"http://127.0.0.1:{port}/websub/")

            with httpx.Client(timeout=10) as hub:
                # the hub checks our intent: the challenge comes back
                check = hub.get(callback, params={
                    "hub.mode": "subscribe", "hub.topic": SELF_URL, "hub.challenge": "x1y2",
                    "hub.lease_seconds": "86400"})
                assert (check.status_code, check.text) == (200, "x1y2")

                # a forged push is acknowledged and dropped; a signed one alerts at once
                body = rss([seed_item(0, "https://publisher.example/paris")])
                forged = hub.post(callback, content=body,
                                  headers={"X-Hub-Signature": websub.sign(body, "guess")})
                assert forged.status_code == 202
                signed = hub.post(callback, content=body, headers={
                    "X-Hub-Signature": websub.sign(body, ask["hub.secret"]),
                    "Content-Type": "application/rss+xml"})
                assert signed.status_code == 202
                jsonl = tmp_path / "state" / "alerts.jsonl"
                wait_for(lambda: len(_alerts(jsonl)) >= 1, 30, "the pushed story's alert")
                alerts = _alerts(jsonl)
                assert len(alerts) == 1
                story = alerts[0]["story"]
                assert isinstance(story, dict)
                assert story["articles"][0]["url"] == "https://publisher.example/paris"
                assert "dropped a push with a wrong signature" in daemon.logs()
                # pushes bring the news: the feed itself was fetched once, not re-polled
                assert srv.hits("/world.xml") == 1

                # the feed leaves the list: the hub is asked to end the subscription
                feeds.write_text("[]\n")
                assert daemon.proc is not None
                daemon.proc.send_signal(signal.SIGHUP)
                wait_for(lambda: srv.hits("/hub") >= 2, 30, "the unsubscription request")
                bye = _forms(srv)[1]
                assert (bye["hub.mode"], bye["hub.topic"], bye["hub.callback"]) == (
                    "unsubscribe", SELF_URL, callback)
                confirm = hub.get(callback, params={
                    "hub.mode": "unsubscribe", "hub.topic": SELF_URL, "hub.challenge": "z9"})
                assert (confirm.status_code, confirm.text) == (200, "z9")
                late = hub.post(callback, content=body, headers={
                    "X-Hub-Signature": websub.sign(body, ask["hub.secret"])})
                assert late.status_code == 410
            assert daemon.stop() == 0
        finally:
            daemon.kill()
