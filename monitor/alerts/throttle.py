"""Per-rule throttle: at most ``count`` alerts per ``period`` for a rule (``throttle:`` in YAML).

A sliding window per rule: an alert passes a throttled rule when fewer than
``count`` alerts counted against that rule in the last ``period`` seconds.

What happens to the excess: **dropped, with a log line and a count** (exposed
as ``dropped`` per rule for the metrics), not queued for later. A throttle is
an analyst saying "this rule is noisy, I want at most N of these"; holding the
excess back would only deliver the flood later. A dropped ``story.new`` leaves its
story unannounced: nothing more comes of it unless the story grows, and then its
next report, if a rule has room by then, goes out as its ``story.new`` (never as a
``story.updated`` of a story the reader never saw start). A dropped
``story.updated`` is simply dropped; the next change of the story goes out as usual.

An alert carries every rule that matched its story; it is held back only when
*every* one of its rules is throttled and out of room. Otherwise it goes to the
channels of the rules that still have room, and counts against those rules'
throttles only (see :func:`monitor.alerts.routing.route`).

Counts live in memory: a restart starts every window afresh (at most one extra
burst of ``count`` per restart), and with several instances on one Redis store
each instance throttles its own share. Both are documented limits, chosen over
a store round-trip per alert.
"""

from __future__ import annotations

from bisect import insort
from collections import Counter, deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol


class Limit(Protocol):
    """Anything with ``count`` and ``period`` (seconds): the rule loader's ``Throttle``."""

    @property
    def count(self) -> int: ...

    @property
    def period(self) -> float: ...


class RuleThrottle:
    """Sliding-window counters per rule id, with ``now`` passed in (testable with any clock)."""

    def __init__(self) -> None:
        self._sent: dict[str, deque[datetime]] = {}
        self.dropped: Counter[str] = Counter()

    def _window(self, rule_id: str, limit: Limit, now: datetime) -> deque[datetime]:
        sent = self._sent.setdefault(rule_id, deque())
        start = now - timedelta(seconds=limit.period)
        while sent and sent[0] <= start:
            sent.popleft()
        return sent

    def has_room(self, rule_id: str, limit: Limit | None, now: datetime) -> bool:
        if limit is None:
            return True
        return len(self._window(rule_id, limit, now)) < limit.count

    def record(self, rule_ids: Iterable[str], now: datetime) -> None:
        """Count one queued alert against each of ``rule_ids`` (call after the commit).

        Kept in time order even when polls finish out of order (``now`` is when a poll
        started): the window is trimmed from its oldest end, so an entry out of place
        would outstay its period and hold back alerts that have room.
        """
        for rule_id in rule_ids:
            insort(self._sent.setdefault(rule_id, deque()), now)

    def forget(self, rule_ids: Iterable[str], at: datetime) -> None:
        """Take back one ``record(rule_ids, at)`` whose alert was never queued (commit failed)."""
        for rule_id in rule_ids:
            sent = self._sent.get(rule_id)
            if sent is None:
                continue
            for i in range(len(sent) - 1, -1, -1):  # the newest match: it was recorded last
                if sent[i] == at:
                    del sent[i]
                    break

    def drop(self, rule_ids: Iterable[str]) -> None:
        self.dropped.update(rule_ids)

    def used(self, rule_id: str, limit: Limit, now: datetime) -> int:
        return len(self._window(rule_id, limit, now))
