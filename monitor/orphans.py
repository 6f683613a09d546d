"""Parser processes end with the daemon, even when it is killed outright.

The parse pool's workers come from a fork server, not from the daemon, and the fork
server only exits once every holder of its "alive" pipe has: the workers hold one,
and they wait on their job queue forever. A daemon killed with SIGKILL (or OOM, or a
supervisor that kills one process, not its group) left the fork server, its workers
and the resource tracker behind, ~125 MB each time. systemd's cgroup kill hid it;
cron and other supervisors did not. So each worker watches the daemon and exits with
it, which lets the fork server and the tracker see their pipes close and exit too.
"""

from __future__ import annotations

import os
import select
import threading
import time

POLL_SECONDS = 2.0


def exit_with(pid: int) -> None:
    """Pool initializer: end this process as soon as process ``pid`` has ended.

    A pidfd (Linux 5.3+) names that very process, so a recycled pid cannot fool it,
    and waiting on it costs nothing; elsewhere, a check every ``POLL_SECONDS``.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(0)
    except (AttributeError, OSError):
        fd = -1
    threading.Thread(target=_watch, args=(pid, fd), name="exit-with-daemon",
                     daemon=True).start()


def _watch(pid: int, fd: int) -> None:
    if fd >= 0:
        select.select([fd], [], [])   # readable once the process has exited
        os._exit(0)
    while True:
        time.sleep(POLL_SECONDS)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:   # alive, under another user: the pid was reused
            os._exit(0)
