"""One log line when the store fails, a reminder while it stays down, one when it is back.

A store that is down (Redis restarting, a full disk under SQLite) fails at every poll
tick (5 s by default), at every delivery pass and for every feed polled meanwhile: an
ERROR each time would bury the rest of the log and say nothing new. The operator needs
when it started, what the error is, that it still holds, and when it ended; the status
line (``systemctl status``) shows the live state.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from loguru import logger

REMIND_EVERY = 60.0  # seconds between ERROR lines while the store stays down


class Outage:
    """The store's failures as one caller sees them, logged when they start and end.

    While it lasts, at most one ERROR per ``remind_every`` seconds, with the latest
    error (an error that alternates, refused / timed out / reset, would otherwise be
    "new" at every attempt); the others go to DEBUG.
    """

    def __init__(self, name: str = "store", *, remind_every: float = REMIND_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.remind_every = remind_every
        self.clock = clock
        self.since: float | None = None
        self._said = 0.0   # when the last ERROR line was written

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: object, doing: str = "") -> None:
        """One more failure; ``doing``: what the caller does about it ("polling paused")."""
        now = self.clock()
        what = f"{self.name} unavailable" + (f", {doing}" if doing else "")
        if self.since is None:
            self.since = self._said = now
            logger.error("{}: {}", what, error)
        elif now - self._said >= self.remind_every:
            self._said = now
            logger.error("{} (for {:.0f} s): {}", what, now - self.since, error)
        else:
            logger.debug("{} (for {:.0f} s): {}", what, now - self.since, error)

    def recovered(self, what_now: str) -> None:
        if self.since is None:
            return
        logger.warning("{} available again after {:.0f} s: {}", self.name,
                       self.clock() - self.since, what_now)
        self.since = None
