"""No alert lost, none twice: Redis down for 30 s and the daemon killed with -9 meanwhile."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis

from tests.support.daemon_config import daemon_config
from tests.support.feed_server import FeedServer
from tests.support.redis_server import RedisServer
from tests.test_e2e import Daemon, rss, stream_alerts, wait_for

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 30


STORIES = [
    ("Britain and France plan reassurance force for Ukraine",
     "London and Paris said a coalition of the willing would send a reassurance force of "
     "several thousand troops to Ukraine once a ceasefire holds, with headquarters in Kyiv."),
    ("Kremlin rejects any foreign troops in Ukraine",
     "Russian Foreign Minister Sergei Lavrov said Moscow would regard NATO peacekeepers in "
     "Ukraine as a legitimate target and rejected any deployment of foreign troops."),
    ("OSCE offers to verify a ceasefire along the front line in Ukraine",
     "The OSCE secretary general proposed a monitoring mission with drones and observers to "
     "verify a ceasefire between Russia and Ukraine along the 1,200 km front line."),
    ("Turkey offers naval cover for Black Sea shipping under a Ukraine peace deal",
     "Ankara said its navy could lead mine clearance and protect grain convoys in the Black "
     "Sea as part of security guarantees for Ukraine after a ceasefire."),
]


def story(n: int) -> dict[str, str]:
    title, summary = STORIES[n]
    return {"title": title, "link": f"http://example.org/story-{n}", "summary": summary}


def test_redis_outage_and_kill_9_lose_nothing_and_repeat_nothing(
    tmp_path: Path, own_redis_persistent: RedisServer
) -> None:
    with FeedServer() as srv:
        srv.set("/f.xml", rss([]))
        config = daemon_config(
            tmp_path, srv.url("/f.xml"),
            poll="  interval: 1s\n  min_interval: 1s\n  max_interval: 2s\n  max_backoff: 2s\n"
                 "  tick: 0.2s\n  timeout: 5s\n",
            sinks="  retry_min: 0.2s\n  retry_max: 1s\n", more="alerts:\n  updates: every_outlet\n")
        env = {**os.environ, "NEWS_MONITOR_REDIS_URL": own_redis_persistent.url}
        env.pop("NOTIFY_SOCKET", None)
        client = redis.Redis.from_url(own_redis_persistent.url)
        daemon = Daemon(config, env, tmp_path / "daemon.log")
        daemon.start()
        try:
            srv.set("/f.xml", rss([story(0)]))
            wait_for(lambda: len(stream_alerts(client)) == 1, 60, "the first alert")

            own_redis_persistent.stop()
            t_down = time.monotonic()
            hits = srv.hits("/f.xml")
            srv.set("/f.xml", rss([story(0), story(1), story(2)]))
            wait_for(lambda: srv.hits("/f.xml") >= hits + 2, 30, "polls during the outage")
            wait_for(lambda: "redis sink" in daemon.logs(), 30, "the sink failure logged")

            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait(10)
            daemon.log.close()
            daemon.start()
            hits = srv.hits("/f.xml")
            srv.set("/f.xml", rss([story(0), story(1), story(2), story(3)]))
            wait_for(lambda: srv.hits("/f.xml") >= hits + 2, 30, "polls after the restart")
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - t_down)))

            own_redis_persistent.start()
            client = redis.Redis.from_url(own_redis_persistent.url)
            wait_for(lambda: len(stream_alerts(client)) >= 4, 60, "the held alerts")
            time.sleep(2)  # anything repeated would arrive now
            alerts = stream_alerts(client)
            ids = [a["id"] for a in alerts]
            assert len(ids) == len(set(ids)) == 4
            urls = sorted(a["story"]["articles"][0]["url"] for a in alerts)
            assert urls == [f"http://example.org/story-{n}" for n in range(4)]
            assert all(a["event"] == "story.new" for a in alerts)
            assert daemon.stop() == 0
        finally:
            daemon.kill()
            client.close()
