"""One log line when the store fails, a reminder while it stays down, one when it is back.

A store that is down (Redis restarting, a full disk under SQLite) fails every poll tick,
every 5 s by default: an ERROR each time would bury the rest of the log and say nothing
new. The operator needs when it started, what the error is, that it still holds, and when
it ended; the status line (``systemctl status``) shows the live state.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from loguru import logger

REMIND_EVERY = 60.0  # seconds between reminders of an unchanged failure


class Outage:
    """The store's failures as seen by one caller (the poll tick), logged on change."""

    def __init__(self, what: str, *, remind_every: float = REMIND_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.remind_every = remind_every
        self.clock = clock
        self.since: float | None = None
        self._said: tuple[str, float] | None = None   # the last error logged, and when

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: object) -> None:
        now = self.clock()
        text = str(error)
        if self.since is None:
            self.since = now
            logger.error("{}: {}", self.what, text)
        elif (self._said is None or self._said[0] != text
              or now - self._said[1] >= self.remind_every):
            logger.error("{} (for {:.0f} s): {}", self.what, now - self.since, text)
        else:
            logger.debug("{} (for {:.0f} s): {}", self.what, now - self.since, text)
            return
        self._said = (text, now)

    def recovered(self, what_now: str) -> None:
        if self.since is None:
            return
        logger.warning("store available again after {:.0f} s: {}", self.clock() - self.since,
                       what_now)
        self.since = None
        self._said = None
