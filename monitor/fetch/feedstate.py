"""What one poll does to a feed's remembered state. Pure: state in, state out, ``now`` passed in.

The service calls exactly one of these per poll and saves the result:

* ``after_fetch(state, result, ...)`` for a 200 or 304, before or without parsing;
* ``after_failure(state, error, ...)`` for any ``FeedError`` (fetch or parse).

Health rules the operator sees (``news-monitor feeds``, logs, events):

===========================  ==============================================================
rule                         effect
===========================  ==============================================================
failing                      ``failures >= policy.failing_after`` consecutive errors
recovered                    a success after the feed was failing (``recovered()``)
gone                         HTTP 410: ``gone=True``, polled only every ``backoff_cap``
permanent move               the same 301/308 target seen ``redirect_after`` polls in a
                             row: ``moved_to()`` names the new URL; 302/307 reset the count
unchanged body               same ``body_hash`` as last time: ``unchanged()`` -> skip parsing
===========================  ==============================================================
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from monitor.errors import FeedError, FetchError
from monitor.fetch.headers import cache_lifetime
from monitor.fetch.schedule import Outcome, SchedulePolicy, items_per_day, next_check
from monitor.models import FeedState, FetchResult


def unchanged(state: FeedState, result: FetchResult) -> bool:
    """True when there is nothing new to parse: a 304, or the very same bytes as last time."""
    if result.body is None:
        return True
    return state.body_hash is not None and state.body_hash == result.body_hash


def is_failing(state: FeedState, policy: SchedulePolicy) -> bool:
    return state.failures >= policy.failing_after


def recovered(before: FeedState, after: FeedState, policy: SchedulePolicy) -> bool:
    """The poll that produced ``after`` ended a failing streak."""
    return is_failing(before, policy) and after.failures == 0


def moved_to(state: FeedState, policy: SchedulePolicy) -> str | None:
    """The feed's new URL once a permanent redirect was seen often enough in a row."""
    if state.redirect_url and state.redirect_count >= policy.redirect_after:
        return state.redirect_url
    return None


def after_fetch(
    state: FeedState,
    result: FetchResult,
    *,
    now: datetime,
    policy: SchedulePolicy,
    rng: random.Random,
    published: Sequence[datetime] = (),
    ttl_seconds: float | None = None,
    new_items: int = 0,
    fixed_interval: float | None = None,
) -> FeedState:
    """State after a successful exchange (200 or 304).

    ``published`` are the entry dates of the parsed body (empty for a 304 or an
    unchanged body: the interval and ``items_per_day`` then stay as they were);
    ``ttl_seconds`` is the feed's ``<ttl>``; ``new_items`` counts entries not seen before.
    """
    lifetime = cache_lifetime(result.headers, now)
    server_min = max((v for v in (lifetime, ttl_seconds) if v is not None), default=None)
    outcome: Outcome = "not_modified" if result.body is None else "ok"
    when, interval = next_check(
        state, outcome, now=now, policy=policy, published=published,
        server_min_seconds=server_min, rng=rng, fixed_interval=fixed_interval,
    )
    if result.permanent_redirect:
        same = result.permanent_redirect == state.redirect_url
        redirect_url: str | None = result.permanent_redirect
        redirect_count = state.redirect_count + 1 if same else 1
    else:
        redirect_url, redirect_count = None, 0
    return replace(
        state,
        etag=result.etag,
        last_modified=result.last_modified,
        body_hash=result.body_hash if result.body is not None else state.body_hash,
        next_check=when,
        interval=interval,
        failures=0,
        last_success=now,
        redirect_url=redirect_url,
        redirect_count=redirect_count,
        gone=False,
        items_seen=state.items_seen + max(0, new_items),
        items_per_day=items_per_day(published, now) if published else state.items_per_day,
    )


def after_failure(
    state: FeedState,
    error: FeedError,
    *,
    now: datetime,
    policy: SchedulePolicy,
    rng: random.Random,
    fixed_interval: float | None = None,
) -> FeedState:
    """State after a failed poll: the streak grows, the error is remembered, back-off applies.

    A body that did not parse also drops the validators and body hash, so the next
    poll fetches and parses it again instead of getting a 304 for a body we never read.
    """
    retry_after = error.retry_after if isinstance(error, FetchError) else None
    gone = error.kind == "gone"
    when, interval = next_check(
        state, "error", now=now, policy=policy, retry_after=retry_after, rng=rng,
        fixed_interval=fixed_interval,
        server_min_seconds=policy.backoff_cap if gone else None,
    )
    etag, last_modified, body_hash = state.etag, state.last_modified, state.body_hash
    if error.kind in ("not_a_feed", "parser_crash"):
        etag = last_modified = body_hash = None
    return replace(
        state,
        etag=etag,
        last_modified=last_modified,
        body_hash=body_hash,
        next_check=when,
        interval=interval,
        failures=state.failures + 1,
        last_error=error.detail[:500],
        last_error_kind=error.kind,
        last_error_at=now,
        gone=gone,
    )
