"""A full disk under a running daemon: clear messages, nothing accepted lost, nothing twice.

The embedded store (SQLite) and the JSONL sink share the state folder; when its disk fills,
commits and appends fail. ``RLIMIT_FSIZE`` on the running daemon (``prlimit``) stands in for
the full disk: every write to a regular file past byte 1 is refused, as on a disk with no
free block left, while its log goes to a pipe, which the limit does not touch. When the
limit is lifted (space freed), the daemon goes on by itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest
from loguru import logger

from monitor.config import load_settings
from monitor.errors import StoreError
from monitor.notify import Notifier
from monitor.service import Service
from tests.support.daemon_config import daemon_config
from tests.support.feed_server import FeedServer
from tests.test_e2e import NotifyListener, rss, wait_for
from tests.test_outage import story


class PipedDaemon:
    """``news-monitor run`` with its log read from a pipe (a full disk cannot stop it)."""

    def __init__(self, config: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWS_MONITOR_")}
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "run"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=config.parent,
            start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace"))

    def logs(self) -> str:
        return "".join(self.lines)

    def fill_disk(self, full: bool) -> None:
        _, hard = resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (1 if full else hard, hard))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def kill(self) -> None:
        """Whatever stop() left: the process group (the parser pool too) and the pipe."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        self._reader.join(5)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def alerts(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.e2e
def test_a_full_disk_pauses_commits_and_alerts_then_both_resume(tmp_path: Path) -> None:
    jsonl = tmp_path / "alerts.jsonl"
    with FeedServer() as srv:
        srv.set("/f.xml", rss([story(0)]))
        config = daemon_config(
            tmp_path, srv.url("/f.xml"),
            poll="  interval: 1s\n  min_interval: 1s\n  max_interval: 2s\n  max_backoff: 2s\n"
                 "  tick: 0.2s\n  timeout: 5s\n  parse_workers: 1\n",
            sinks=f"  retry_min: 0.2s\n  retry_max: 1s\n  jsonl:\n    enabled: true\n"
                  f"    path: {jsonl}\n")
        daemon = PipedDaemon(config)
        try:
            wait_for(lambda: len(alerts(jsonl)) == 1, 60, "the first alert")
            daemon.fill_disk(True)
            mark = len(daemon.logs())
            srv.set("/f.xml", rss([story(0), story(1)]))
            # Nothing can be recorded: polling pauses (the article comes again later), and
            # the log names the state file and the error once, not at every tick.
            wait_for(lambda: "polling paused" in daemon.logs()[mark:], 30, "the pause logged")
            time.sleep(3)  # ~15 ticks of 0.2 s on the full disk
            during = daemon.logs()[mark:]
            assert daemon.proc.poll() is None, during[-3000:]  # still running
            paused = [x for x in during.splitlines() if "polling paused" in x]
            assert 1 <= len(paused) <= 2, during[-3000:]
            assert "ERROR" in paused[0]
            assert f"SQLite state {tmp_path / 'state' / 'state.db'}" in paused[0]
            assert len(alerts(jsonl)) == 1

            daemon.fill_disk(False)
            wait_for(lambda: len(alerts(jsonl)) >= 2, 60, "the held article's alert")
            assert "store available again after" in daemon.logs()[mark:]
            time.sleep(3)  # a repeat would arrive now
            got = alerts(jsonl)
            assert [a["event"] for a in got] == ["story.new", "story.new"]
            assert len({a["id"] for a in got}) == 2
            assert daemon.stop() == 0
        finally:
            daemon.kill()


async def status_line(listener: NotifyListener) -> str:
    """The last STATUS= the service sent (it arrives on the listener's thread)."""
    for _ in range(200):
        sent = [m for m in listener.messages if "STATUS=" in m]
        if sent:
            return sent[-1]
        await anyio.sleep(0.05)
    raise AssertionError("no STATUS= within 10 s")


@pytest.mark.anyio
async def test_claims_that_work_and_commits_that_do_not_say_so_in_the_status(
        tmp_path: Path) -> None:
    # A full disk may still take small overwrites (a claim) and refuse an article's commit:
    # then polling is not paused, but nothing a poll finds is recorded. The status line and
    # the log must say that, once, and say when it ends.
    with FeedServer() as srv:
        srv.set("/f.xml", rss([story(0)]))
        config = daemon_config(tmp_path, srv.url("/f.xml"), poll="  parse_workers: 1\n")
        svc = Service(load_settings(config, env={}))
        listener = NotifyListener(tmp_path / "notify.sock")
        lines: list[str] = []
        sink = logger.add(lambda m: lines.append(f"{m.record['level'].name} {m}"),
                          level="INFO")
        await svc.start()
        try:
            svc.notifier = Notifier(listener.path)
            assert svc.store is not None
            commit = svc.store.commit_articles

            async def refused(*args: object, **kwargs: object) -> list[bool]:
                raise StoreError(f"SQLite state {tmp_path}/state/state.db: commit_articles: "
                                 "database or disk is full")

            svc.store.commit_articles = refused  # type: ignore[method-assign]
            for _ in range(3):
                summary = await svc.run_once()
                assert (summary.failed, summary.alerts) == (1, 0)
            await svc.maintenance()   # writes the status line
            status = await status_line(listener)
            assert "STATUS=store refusing writes, polls not recorded: 1 feeds" in status
            errors = [x for x in lines if "store unavailable, feed will be retried" in x]
            assert len(errors) == 1 and errors[0].startswith("ERROR")
            assert "database or disk is full" in errors[0]

            svc.store.commit_articles = commit  # type: ignore[method-assign]
            summary = await svc.run_once()
            assert (summary.failed, summary.alerts) == (0, 1)
            assert any("store available again after" in x and "polls recorded again" in x
                       for x in lines)
            listener.messages.clear()
            await svc.maintenance()
            status = await status_line(listener)
            assert "STATUS=1 feeds, 0 failing" in status
        finally:
            await svc.close()
            logger.remove(sink)
            listener.close()
