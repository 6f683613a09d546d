"""One daemon per embedded state file, enforced with an advisory lock.

The SQLite store assumes a single poller (its claims and story index are not
shared), so a second daemon on the same state directory must be refused rather
than left to double-poll feeds and race on stories. ``flock`` is released by the
kernel when the process dies, even by ``kill -9``: a stale lock file never blocks
a restart, and the holder's claims can be handed back safely.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from monitor.errors import MonitorError


class InstanceLockError(MonitorError):
    """Another process already runs on this state directory."""


class InstanceLock:
    """An exclusive, non-blocking ``flock`` on one file, holding the owner's pid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InstanceLockError(
                f"{self.path}: another news-monitor (pid {holder}) already runs on this "
                "state directory; the embedded store takes one daemon (use a Redis store "
                "to run several)") from None
        except OSError as e:
            os.close(fd)
            raise InstanceLockError(f"{self.path}: cannot lock: {e.strerror or e}") from e
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing drops the flock
