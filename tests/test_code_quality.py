"""The code's own standards are part of the suite: mypy --strict on monitor/, ruff everywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)


def test_mypy_strict_is_clean() -> None:
    res = _run("mypy", "--strict", "monitor")
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_is_clean() -> None:
    res = _run("ruff", "check", "monitor", "tests", "bench")
    assert res.returncode == 0, res.stdout + res.stderr
