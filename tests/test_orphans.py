"""A daemon killed outright takes its parser processes with it."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.feed_server import FeedServer
from tests.test_cli import one_empty_feed
from tests.test_e2e import Daemon, wait_for


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (zombies count as gone: nobody may reap)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_parser_processes_end_when_the_daemon_is_killed(tmp_path: Path) -> None:
    with FeedServer() as srv:
        cfg = one_empty_feed(tmp_path, srv)
        env = {k: v for k, v in os.environ.items() if k != "NEWS_MONITOR_CONFIG"}
        daemon = Daemon(cfg, env, tmp_path / "daemon.log")
        daemon.start()
        try:
            assert daemon.proc is not None
            main = daemon.proc.pid
            # the fork server and the resource tracker, and a worker under the fork
            # server, once the first feed is parsed
            wait_for(lambda: any(_children(h) for h in _children(main)), 30,
                     "a parse worker")
            helpers = _children(main)
            workers = [w for h in helpers for w in _children(h)]
            daemon.proc.kill()   # SIGKILL: no cleanup of its own
            daemon.proc.wait(5)
            wait_for(lambda: not any(map(_alive, helpers + workers)), 15,
                     "the fork server, its workers and the resource tracker to exit")
        finally:
            daemon.kill()
