"""The unit file passes systemd's own checks, and the notify protocol reaches a real socket."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.notify import Notifier

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "news-monitor.service"


def _analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI=true but systemd-analyze is missing (apt-get install systemd)")
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    return exe


def _unit_copy(tmp_path: Path) -> Path:
    """The shipped unit, with ExecStart pointing at this checkout's console script."""
    script = Path(sys.executable).parent / "news-monitor"
    text = UNIT.read_text().replace("/opt/news-monitor/venv/bin/news-monitor", str(script))
    out = tmp_path / "news-monitor.service"
    out.write_text(text)
    return out


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    res = subprocess.run([_analyze(), "verify", str(_unit_copy(tmp_path))],
                         capture_output=True, text=True, timeout=60, check=False)
    # verify exits 0 even on unknown keys: only silence means clean.
    assert res.stdout.strip() == "" and res.stderr.strip() == "", res.stdout + res.stderr


def test_unit_security_exposure_is_low(tmp_path: Path) -> None:
    res = subprocess.run([_analyze(), "security", "--offline=yes", str(_unit_copy(tmp_path))],
                         capture_output=True, text=True, timeout=60, check=False)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", res.stdout + res.stderr)
    assert m, res.stdout + res.stderr
    assert float(m.group(1)) <= 2.0, res.stdout


def test_unit_declares_what_operators_rely_on() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "Restart=on-failure", "RestartPreventExitStatus=2\n",
                 "WatchdogSec=", "StateDirectory=",
                 "DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service",
                 "LoadCredential=redis-password:", "MemoryMax="):
        assert line in text, line


def test_notifier_speaks_to_a_real_datagram_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(2)
        n = Notifier(path)
        assert n.ready("3 feeds")
        assert sock.recv(1024) == b"READY=1\nSTATUS=3 feeds"
        assert n.watchdog()
        assert sock.recv(1024) == b"WATCHDOG=1"
        assert n.stopping()
        assert sock.recv(1024) == b"STOPPING=1"


def test_notifier_without_systemd_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    assert not n.ready()
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert Notifier.watchdog_interval() is None
