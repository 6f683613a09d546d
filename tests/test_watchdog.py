"""A Redis store outage is not a hang: systemd's watchdog is still fed and the status says why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.daemon_config import daemon_config
from tests.support.feed_server import FeedServer
from tests.support.redis_server import RedisServer
from tests.test_e2e import Daemon, NotifyListener, rss, wait_for

pytestmark = pytest.mark.e2e


def _after(messages: list[str], start: int, text: str) -> int:
    return sum(text in m for m in messages[start:])


def test_store_outage_keeps_the_watchdog_fed_and_shows_in_the_status(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    with FeedServer() as srv:
        srv.set("/f.xml", rss([]))
        config = daemon_config(
            tmp_path, srv.url("/f.xml"), store=f"  url: {own_redis.url}\n",
            poll="  interval: 1s\n  min_interval: 1s\n  tick: 0.2s\n  timeout: 5s\n")
        notify = NotifyListener(tmp_path / "notify.sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWS_MONITOR_")}
        env.update(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="600000")  # a ping every 0.3 s
        env.pop("WATCHDOG_PID", None)
        daemon = Daemon(config, env, tmp_path / "daemon.log")
        daemon.start()
        try:
            wait_for(lambda: any("READY=1" in m for m in notify.messages), 60, "READY=1")
            wait_for(lambda: _after(notify.messages, 0, "WATCHDOG=1") >= 2, 10, "pings")

            own_redis.stop()
            down = len(notify.messages)
            wait_for(lambda: _after(notify.messages, down, "STATUS=store unavailable") >= 1,
                     15, "the outage in the status line")
            seen = len(notify.messages)
            wait_for(lambda: _after(notify.messages, seen, "WATCHDOG=1") >= 5, 15,
                     "pings while the store is down")

            own_redis.start()
            back = len(notify.messages)
            wait_for(lambda: _after(notify.messages, back, "STATUS=1 feeds, ") >= 1, 20,
                     "the status line restored")
            assert daemon.proc is not None and daemon.proc.poll() is None
            assert daemon.stop() == 0
        finally:
            daemon.kill()
            notify.close()
