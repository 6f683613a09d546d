"""When to poll a feed next. Pure functions of their arguments and ``now``; tested with tables.

Order of operations (Miniflux's ``ScheduleNextCheck`` plus what it lacks):

1. **Base interval.** A fixed per-feed interval when the operator set one;
   otherwise adaptive: the newest ``rate_window`` dated entries span
   ``now - oldest`` seconds, so one item arrives every ``span / n`` seconds on
   average, and we poll ``polls_per_item`` times per item. A feed that went
   quiet has a long span and slows down by itself. With no dates (or a 304,
   which carries none), the last interval is kept.
2. **Clamp** to the policy's ``[min_interval, max_interval]`` (a fixed interval
   only to ``hard_min``: the operator asked for it).
3. **Respect the server**: never sooner than what ``Cache-Control: max-age``,
   ``Expires`` or ``<ttl>`` ask (capped at ``max_server_wait``, so a typo in a
   header cannot park a feed for a year).
4. **Back off on errors**: after ``n`` consecutive failures wait
   ``min_interval * backoff_base ** n`` capped at ``backoff_cap``, but never
   less than the base interval (errors must not make us poll *more* often).
5. **Retry-After** (429/503) is honoured up to ``max_retry_after`` (the service sets it to
   ``poll.max_backoff``).
6. **Jitter** upward only, by up to ``jitter`` of the delay: feeds added together
   drift apart, and no server wish or clamp is undercut.

The interval returned alongside the time is the base interval (step 1-2),
which is what ``FeedState.interval`` should keep: back-off and server wishes
are per-response, the feed's rhythm is not.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from monitor.fetch.headers import cache_lifetime, parse_retry_after
from monitor.models import FeedState

__all__ = [
    "Outcome",
    "SchedulePolicy",
    "adaptive_interval",
    "backoff_delay",
    "cache_lifetime",
    "items_per_day",
    "next_check",
    "parse_retry_after",
]

Outcome = Literal["ok", "not_modified", "error"]

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True)
class SchedulePolicy:
    """Every knob of the scheduling maths, in seconds. Defaults suit news feeds."""

    min_interval: float = 5 * 60.0
    max_interval: float = 6 * HOUR
    default_interval: float = 30 * 60.0
    hard_min: float = 60.0
    polls_per_item: float = 2.0
    rate_window: int = 20
    backoff_base: float = 2.0
    backoff_cap: float = DAY
    max_retry_after: float = 7 * DAY
    max_server_wait: float = DAY
    jitter: float = 0.1
    failing_after: int = 3
    redirect_after: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.min_interval <= self.max_interval:
            raise ValueError("need 0 < min_interval <= max_interval")
        if self.jitter < 0 or self.polls_per_item <= 0 or self.backoff_base < 1:
            raise ValueError("jitter >= 0, polls_per_item > 0 and backoff_base >= 1 required")


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def adaptive_interval(
    published: Sequence[datetime], now: datetime, policy: SchedulePolicy
) -> float | None:
    """Seconds between polls for the observed publishing rate, or None without two dates.

    Entries dated in the future (bad clocks, scheduled posts) are ignored.
    """
    dated = sorted((p for p in published if p <= now), reverse=True)[: policy.rate_window]
    if len(dated) < 2:
        return None
    span = (now - dated[-1]).total_seconds()
    if span <= 0:
        return policy.min_interval
    per_item = span / len(dated)
    return _clamp(per_item / policy.polls_per_item, policy.min_interval, policy.max_interval)


def items_per_day(published: Sequence[datetime], now: datetime, window: float = 7 * DAY) -> float:
    """Entries published in the last ``window`` seconds, scaled to a day (for ``feeds`` health)."""
    since = now - timedelta(seconds=window)
    n = sum(1 for p in published if since <= p <= now)
    return n * DAY / window


def backoff_delay(failures: int, base: float, policy: SchedulePolicy) -> float:
    """Delay after ``failures`` consecutive errors: exponential, capped, never below ``base``."""
    if failures <= 0:
        return base
    exp = min(failures, 64)  # 2**64 seconds is already far past any cap
    grown = policy.min_interval * policy.backoff_base ** exp
    return max(base, min(policy.backoff_cap, grown))


def next_check(
    state: FeedState,
    outcome: Outcome,
    *,
    now: datetime,
    policy: SchedulePolicy,
    published: Sequence[datetime] = (),
    server_min_seconds: float | None = None,
    retry_after: float | None = None,
    rng: random.Random,
    fixed_interval: float | None = None,
) -> tuple[datetime, float]:
    """``(when to poll next, base interval to remember)`` after one poll's ``outcome``.

    ``state`` is the feed's state *before* this poll; for ``"error"`` the failure
    streak is ``state.failures + 1``. ``fixed_interval`` is the operator's
    per-feed interval (``FeedSpec.interval``), which replaces the adaptive one.
    """
    if fixed_interval is not None and fixed_interval > 0:
        base = max(policy.hard_min, fixed_interval)
    else:
        adaptive = adaptive_interval(published, now, policy) if outcome == "ok" else None
        base = adaptive or state.interval or policy.default_interval
        base = _clamp(base, policy.min_interval, policy.max_interval)
    delay = base
    if server_min_seconds is not None and server_min_seconds > 0:
        delay = max(delay, min(server_min_seconds, policy.max_server_wait))
    if outcome == "error":
        delay = max(delay, backoff_delay(state.failures + 1, base, policy))
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, policy.max_retry_after))
    if policy.jitter > 0:
        delay *= 1.0 + rng.uniform(0.0, policy.jitter)
    return now + timedelta(seconds=delay), base
