"""The Redis set-up deploy/README.md recommends, run for real: it serves the daemon and
keeps the alert stream across a crash; Debian's default (no AOF) does not.

The redis.conf snippet is read from the README itself, so the page and the test cannot drift.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.support.feed_server import FeedServer
from tests.support.redis_server import ConfiguredRedis
from tests.test_e2e import rss, seed_item, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "deploy" / "README.md"
PASSWORD = "pw-for-the-test-0123456789"
STREAM = "news-monitor:alerts"


def documented_redis_conf() -> str:
    """The ```conf block of deploy/README.md that configures Redis."""
    blocks = re.findall(r"```conf\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if "appendonly" in b]
    assert len(found) == 1, blocks
    return found[0]


def _xlen(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.xlen(STREAM))


def _aof_buffer_empty(url: str) -> bool:
    with redis.Redis.from_url(url) as client:
        return int(client.info("persistence")["aof_buffer_length"]) == 0


def test_documented_redis_serves_the_daemon_and_keeps_its_state_across_a_crash(
        tmp_path: Path, redis_processes: list[ConfiguredRedis]) -> None:
    conf = documented_redis_conf()
    assert "CHANGE-ME" in conf
    server = ConfiguredRedis(conf.replace("CHANGE-ME", PASSWORD), str(tmp_path / "redis"))
    redis_processes.append(server)
    server.start()
    # The daemon's URL names the ACL user only; the password comes from systemd's
    # credentials folder, as deploy/README.md sets it up.
    url = f"redis://news-monitor@127.0.0.1:{server.port}/0"
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "redis-password").write_text(PASSWORD + "\n")

    with FeedServer() as feeds:
        feeds.set("/a.xml", rss([seed_item(0, "http://example.org/a1")]))
        (tmp_path / "feeds.yaml").write_text(
            f"- url: {feeds.url('/a.xml')}\n  outlet: Outlet A\n  language: en\n")
        config = tmp_path / "monitor.yaml"
        config.write_text(
            f"state_dir: {tmp_path / 'state'}\n"
            f"store:\n  url: {url}\n"
            f"redis:\n  url: {url}\n"
            "feeds:\n  files: [feeds.yaml]\n"
            f"rules:\n  paths: [{ROOT / 'rules'}]\n"
            "poll:\n  allow_networks: [127.0.0.0/8]\n  parse_workers: 1\n"
            "metrics:\n  enabled: false\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWS_MONITOR_")}
        env["CREDENTIALS_DIRECTORY"] = str(creds)

        def once() -> None:
            res = subprocess.run(
                [sys.executable, "-m", "monitor", "--config", str(config), "once"],
                capture_output=True, text=True, env=env, timeout=120, check=False)
            assert res.returncode == 0, res.stdout + res.stderr

        once()
        alerts = _xlen(server.url)
        assert alerts >= 1
        with redis.Redis.from_url(server.url, decode_responses=True) as admin:
            keys = sorted(admin.scan_iter(count=1000))
            assert keys and all(k.startswith("news-monitor:") for k in keys), keys
            assert admin.config_get("appendonly") == {"appendonly": "yes"}
            assert admin.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}

        # The ACL user is confined to its keys and to harmless commands.
        with redis.Redis(port=server.port, username="news-monitor", password=PASSWORD) as user:
            with pytest.raises(redis.exceptions.NoPermissionError):
                user.set("elsewhere", "1")
            with pytest.raises(redis.exceptions.NoPermissionError):
                user.keys("*")

        # redis-server dies without saving: everything comes back from the AOF file ...
        # once it is in the file. With ``appendfsync everysec`` Redis holds its write()
        # back for up to 2 s while the previous second's fsync is still running (a busy
        # disk), and a SIGKILL in that window loses what was held back.
        wait_for(lambda: _aof_buffer_empty(server.url), 10, "the AOF buffer written out")
        server.crash()
        server.start()
        assert _xlen(server.url) == alerts
        with redis.Redis.from_url(server.url, decode_responses=True) as admin:
            assert sorted(admin.scan_iter(count=1000)) == keys
        # ... so the daemon knows what it has already sent: no alert a second time.
        once()
        assert _xlen(server.url) == alerts


def test_debian_default_without_aof_loses_the_stream_in_a_crash(
        tmp_path: Path, redis_processes: list[ConfiguredRedis]) -> None:
    conf = documented_redis_conf().replace("CHANGE-ME", PASSWORD)
    conf = conf.replace("appendonly yes", "appendonly no")
    server = ConfiguredRedis(conf, str(tmp_path / "redis"))
    redis_processes.append(server)
    server.start()
    with redis.Redis.from_url(server.url) as admin:
        for i in range(5):
            admin.xadd(STREAM, {"id": f"a{i}", "payload": "{}"})
    assert _xlen(server.url) == 5
    server.crash()
    server.start()
    assert _xlen(server.url) == 0
