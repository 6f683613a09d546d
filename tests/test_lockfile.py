"""One daemon per embedded state directory; a killed holder never blocks a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor.lockfile import InstanceLock, InstanceLockError

ROOT = Path(__file__).resolve().parent.parent


def test_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path / "daemon.lock")
    first.acquire()
    try:
        with pytest.raises(InstanceLockError, match=rf"pid {os.getpid()}.*one daemon"):
            InstanceLock(tmp_path / "daemon.lock").acquire()
    finally:
        first.release()
    again = InstanceLock(tmp_path / "daemon.lock")
    again.acquire()  # released: free again
    again.release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from monitor.lockfile import InstanceLock
        InstanceLock(Path({str(tmp_path / "daemon.lock")!r})).acquire()
        print("held", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"held\n"
        with pytest.raises(InstanceLockError, match=f"pid {proc.pid}"):
            InstanceLock(tmp_path / "daemon.lock").acquire()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        lock = InstanceLock(tmp_path / "daemon.lock")
        lock.acquire()
        lock.release()
    finally:
        proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_daemon_refuses_a_state_directory_in_use(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "feeds.yaml").write_text("[]\n")
    config = tmp_path / "monitor.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n"
                      f"feeds:\n  files: [{tmp_path / 'feeds.yaml'}]\n"
                      f"rules:\n  paths: [{ROOT / 'rules'}]\nmetrics:\n  enabled: false\n")
    held = InstanceLock(tmp_path / "state" / "daemon.lock")
    held.acquire()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWS_MONITOR_")}
        done = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), "once"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    finally:
        held.release()
    assert done.returncode == 2
    assert "daemon.lock" in done.stderr and "already runs" in done.stderr


@pytest.mark.e2e
def test_restart_polls_at_once_the_feed_a_killed_daemon_held(tmp_path: Path) -> None:
    """A ``kill -9`` mid-poll leaves the feed claimed for a whole lease (5 min by default);
    the next daemon holds the lock, so it knows the claim is dead and hands it back."""
    import asyncio
    from datetime import timedelta

    from monitor.models import utcnow
    from monitor.store.sqlite import SQLiteStore
    from tests.support.feed_server import FeedServer
    from tests.test_e2e import Daemon, rss, wait_for

    with FeedServer() as srv:
        srv.set("/f.xml", rss([]))
        url = srv.url("/f.xml")
        state = tmp_path / "state"
        state.mkdir()

        async def claim_like_a_dying_poller() -> None:
            store = SQLiteStore(state / "state.db")
            await store.open()
            await store.sync_feeds([url], utcnow() - timedelta(seconds=1))
            assert len(await store.claim_due(utcnow(), 3600, 10)) == 1
            await store.close()

        asyncio.run(claim_like_a_dying_poller())
        (tmp_path / "feeds.yaml").write_text(f"- url: {url}\n")
        config = tmp_path / "monitor.yaml"
        config.write_text(
            f"state_dir: {state}\nfeeds:\n  files: [{tmp_path / 'feeds.yaml'}]\n"
            f"rules:\n  paths: [{ROOT / 'rules'}]\nmetrics:\n  enabled: false\n"
            "poll:\n  allow_networks: [127.0.0.0/8]\n  tick: 0.2s\n"
            "sinks:\n  stdout:\n    enabled: false\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWS_MONITOR_")}
        env.pop("NOTIFY_SOCKET", None)
        daemon = Daemon(config, env, tmp_path / "daemon.log")
        daemon.start()
        try:
            wait_for(lambda: srv.hits("/f.xml") >= 1, 30, "the held feed polled")
            assert "mid-poll when the last run died" in daemon.logs()
            assert daemon.stop() == 0
        finally:
            daemon.kill()
