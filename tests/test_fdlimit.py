"""The daemon raises its soft open-files limit at start: a terminal's 1,024 is not enough."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from tests.support.feed_server import FeedServer
from tests.test_cli import one_empty_feed

HARD = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4096)


def run_limited(args: list[str], soft: int, hard: int,
                cwd: Path) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWS_MONITOR_")}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, preexec_fn=limit,
                          capture_output=True, text=True, timeout=120, check=False)


def test_once_starts_with_the_soft_limit_raised_to_the_hard_one(tmp_path: Path) -> None:
    with FeedServer() as srv:
        cfg = one_empty_feed(tmp_path, srv)
        res = run_limited(["-m", "monitor", "once", "--log-level", "DEBUG", "--config", str(cfg)],
                          128, HARD, tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"open files limit raised from 128 to {HARD}" in res.stderr
    assert "polled 1 feeds: 0 failed" in res.stderr


def test_the_limit_is_never_lowered_nor_raised_past_the_hard_one(tmp_path: Path) -> None:
    probe = ("import resource; from monitor.fdlimit import raise_open_files_limit as r; "
             "print(r(), resource.getrlimit(resource.RLIMIT_NOFILE))")
    at_hard = run_limited(["-c", probe], 200, 200, tmp_path)
    assert at_hard.stdout.split() == ["(200,", "200)", "(200,", "200)"], at_hard.stderr
    below = run_limited(["-c", probe], 100, 300, tmp_path)
    assert below.stdout.split() == ["(100,", "300)", "(300,", "300)"], below.stderr
