"""Scheduling maths and feed-state transitions, as tables with a fixed ``now``."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor import models
from monitor.errors import FetchError, ParseError
from monitor.fetch.feedstate import (
    after_failure,
    after_fetch,
    is_failing,
    moved_to,
    recovered,
    unchanged,
)
from monitor.fetch.headers import format_http_date, parse_http_date
from monitor.fetch.schedule import (
    SchedulePolicy,
    adaptive_interval,
    backoff_delay,
    cache_lifetime,
    items_per_day,
    next_check,
    parse_retry_after,
)
from monitor.models import FeedState, FetchResult, body_digest

NOW = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
FLAT = SchedulePolicy(jitter=0.0)  # min 300, max 21600, default 1800
URL = "https://feeds.example.com/rss"


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def rng() -> random.Random:
    return random.Random(42)


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0),
    ("0", 0.0),
    (" 30 ", 30.0),
    ("Wed, 11 Mar 2026 13:00:00 GMT", 3600.0),       # IMF-fixdate
    ("Wednesday, 11-Mar-26 12:30:00 GMT", 1800.0),    # RFC 850
    ("Wed Mar 11 12:10:00 2026", 600.0),              # asctime
    ("Wed, 11 Mar 2026 11:00:00 GMT", 0.0),           # in the past: now
    ("-5", None), ("soon", None), ("", None), (None, None), ("1.5", None),
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Cache-Control": "max-age=600"}, 600.0),
    ({"cache-control": "public, max-age=900, must-revalidate"}, 900.0),
    ({"Cache-Control": "max-age=600", "Age": "100"}, 500.0),
    ({"Cache-Control": "s-maxage=50, max-age=600"}, 600.0),
    ({"Cache-Control": "no-cache, max-age=600"}, None),
    ({"Cache-Control": "no-store"}, None),
    ({"Expires": "Wed, 11 Mar 2026 12:20:00 GMT"}, 1200.0),
    ({"Expires": "Wed, 11 Mar 2026 10:20:00 GMT", "Date": "Wed, 11 Mar 2026 10:00:00 GMT"},
     1200.0),                                       # server clock off: Date is the base
    ({"Expires": "0"}, 0.0),                        # invalid Expires: already stale
    ({"Cache-Control": "max-age=60", "Expires": "Wed, 11 Mar 2026 14:00:00 GMT"}, 60.0),
    ({}, None),
])
def test_cache_lifetime(headers: dict[str, str], expected: float | None) -> None:
    assert cache_lifetime(headers, NOW) == expected


def test_http_date_round_trip() -> None:
    text = format_http_date(NOW)
    assert text == "Wed, 11 Mar 2026 12:00:00 GMT"
    assert parse_http_date(text) == NOW
    assert parse_http_date("garbage") is None


@pytest.mark.parametrize(("published", "expected"), [
    ([], None),
    ([ago(10)], None),                                   # one date tells no rate
    ([ago(m) for m in range(0, 200, 10)], 300.0),        # every 10 min -> 5 min, the floor
    ([ago(m) for m in (60, 120, 180, 240)], 1800.0),     # hourly -> every 30 min
    ([ago(60 * 24 * d) for d in (1, 2, 3, 4)], 21600.0),  # daily -> the 6 h ceiling
    ([ago(60), ago(120), NOW + timedelta(days=1)], 1800.0),  # future dates ignored
    ([ago(60 * 24 * 30), ago(60 * 24 * 31)], 21600.0),   # quiet for a month
])
def test_adaptive_interval(published: list[datetime], expected: float | None) -> None:
    assert adaptive_interval(published, NOW, FLAT) == expected


def test_adaptive_uses_newest_window_only() -> None:
    policy = SchedulePolicy(jitter=0.0, rate_window=3)
    busy_now = [ago(20), ago(40), ago(60)]
    old = [ago(60 * 24 * 10 + i) for i in range(10)]
    assert adaptive_interval(busy_now + old, NOW, policy) == 600.0


@pytest.mark.parametrize(("failures", "base", "expected"), [
    (0, 1800.0, 1800.0),
    (1, 1800.0, 1800.0),     # 600 < base: errors never speed polling up
    (3, 1800.0, 2400.0),
    (5, 1800.0, 9600.0),
    (9, 1800.0, 86400.0),    # capped
    (500, 1800.0, 86400.0),  # no overflow
    (2, 90000.0, 90000.0),   # base above the cap stays
])
def test_backoff_delay(failures: int, base: float, expected: float) -> None:
    assert backoff_delay(failures, base, FLAT) == expected


@pytest.mark.parametrize(("kwargs", "state", "delay", "interval"), [
    # nothing known: default interval
    ({"outcome": "ok"}, FeedState(URL), 1800.0, 1800.0),
    # hourly feed -> 30 min
    ({"outcome": "ok", "published": [ago(m) for m in (60, 120, 180)]}, FeedState(URL),
     1800.0, 1800.0),
    # a 304 keeps the remembered interval
    ({"outcome": "not_modified", "published": [ago(1), ago(2)]},
     FeedState(URL, interval=3600.0), 3600.0, 3600.0),
    # remembered interval out of bounds is clamped
    ({"outcome": "not_modified"}, FeedState(URL, interval=10.0), 300.0, 300.0),
    # server asks for 2 h of freshness: honoured, base interval unchanged
    ({"outcome": "ok", "server_min_seconds": 7200.0}, FeedState(URL), 7200.0, 1800.0),
    # server asks a year: capped at a day
    ({"outcome": "ok", "server_min_seconds": 3e7}, FeedState(URL), 86400.0, 1800.0),
    # third consecutive error: 300 * 2**3
    ({"outcome": "error"}, FeedState(URL, failures=2), 2400.0, 1800.0),
    # Retry-After wins over a smaller back-off
    ({"outcome": "error", "retry_after": 7200.0}, FeedState(URL), 7200.0, 1800.0),
    # Retry-After of a month is capped at a week
    ({"outcome": "error", "retry_after": 30 * 86400.0}, FeedState(URL), 7 * 86400.0, 1800.0),
    # fixed per-feed interval replaces the adaptive one, may go below the global min
    ({"outcome": "ok", "fixed_interval": 120.0, "published": [ago(1), ago(300)]},
     FeedState(URL), 120.0, 120.0),
    # ... but never below the hard floor
    ({"outcome": "ok", "fixed_interval": 5.0}, FeedState(URL), 60.0, 60.0),
])
def test_next_check_table(
    kwargs: dict[str, object], state: FeedState, delay: float, interval: float
) -> None:
    outcome = kwargs.pop("outcome")
    when, base = next_check(state, outcome, now=NOW, policy=FLAT, rng=rng(),  # type: ignore[arg-type]
                            **kwargs)  # type: ignore[arg-type]
    assert (when - NOW).total_seconds() == pytest.approx(delay)
    assert base == interval


def test_jitter_is_upward_bounded_and_deterministic() -> None:
    policy = SchedulePolicy(jitter=0.2)
    delays = []
    for seed in range(200):
        when, _ = next_check(FeedState(URL), "ok", now=NOW, policy=policy,
                             rng=random.Random(seed), server_min_seconds=3600.0)
        delays.append((when - NOW).total_seconds())
    assert min(delays) >= 3600.0          # never sooner than the server asked
    assert max(delays) <= 3600.0 * 1.2
    assert len(set(delays)) > 100         # feeds drift apart
    again, _ = next_check(FeedState(URL), "ok", now=NOW, policy=policy,
                          rng=random.Random(7), server_min_seconds=3600.0)
    assert (again - NOW).total_seconds() == delays[7]


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="min_interval"):
        SchedulePolicy(min_interval=600, max_interval=60)
    with pytest.raises(ValueError, match="jitter"):
        SchedulePolicy(jitter=-1)


def test_items_per_day() -> None:
    assert items_per_day([ago(60 * h) for h in range(0, 24 * 7, 12)], NOW) == pytest.approx(2.0)
    assert items_per_day([], NOW) == 0.0


# -- feed state transitions -------------------------------------------------------

def _ok(body: bytes | None = b"<rss/>", **kw: object) -> FetchResult:
    return FetchResult(url=URL, status=304 if body is None else 200, body=body,  # type: ignore[arg-type]
                       **kw)


def test_success_resets_streak_and_keeps_validators() -> None:
    before = FeedState(URL, failures=4, last_error="x", last_error_kind="timeout")
    res = _ok(etag='"v2"', last_modified="Wed, 11 Mar 2026 11:00:00 GMT",
              headers={"cache-control": "max-age=7200"})
    after = after_fetch(before, res, now=NOW, policy=FLAT, rng=rng(), new_items=3)
    assert after.failures == 0
    assert after.etag == '"v2"'
    assert after.last_modified == "Wed, 11 Mar 2026 11:00:00 GMT"
    assert after.body_hash == body_digest(b"<rss/>")
    assert after.last_success == NOW
    assert after.next_check == NOW + timedelta(hours=2)
    assert after.items_seen == 3
    assert recovered(before, after, FLAT)
    assert is_failing(before, FLAT)
    assert not is_failing(after, FLAT)


def test_ttl_raises_interval_and_304_keeps_body_hash() -> None:
    before = FeedState(URL, body_hash="abc", interval=600.0)
    after = after_fetch(before, _ok(None), now=NOW, policy=FLAT, rng=rng(), ttl_seconds=3600.0)
    assert after.body_hash == "abc"
    assert after.interval == 600.0
    assert after.next_check == NOW + timedelta(hours=1)


def test_unchanged_body() -> None:
    state = FeedState(URL, body_hash=body_digest(b"same"))
    assert unchanged(state, _ok(b"same"))
    assert not unchanged(state, _ok(b"other"))
    assert unchanged(state, _ok(None))
    assert not unchanged(FeedState(URL), _ok(b"same"))


def test_a_poll_hashes_its_body_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """``unchanged`` then ``after_fetch`` on one response: one digest of the body, not two."""
    calls: list[bytes] = []
    real = models.body_digest

    def counting(body: bytes) -> str:
        calls.append(body)
        return real(body)

    monkeypatch.setattr(models, "body_digest", counting)
    res = _ok(b"<rss>changed</rss>")
    state = FeedState(URL, body_hash=real(b"<rss>before</rss>"))
    assert not unchanged(state, res)
    after = after_fetch(state, res, now=NOW, policy=FLAT, rng=rng())
    assert after.body_hash == real(b"<rss>changed</rss>")
    assert calls == [b"<rss>changed</rss>"]


def test_permanent_redirect_moves_after_n_in_a_row() -> None:
    state = FeedState(URL)
    new = "https://feeds.example.com/new"
    for i in range(1, 4):
        assert moved_to(state, FLAT) is None
        state = after_fetch(state, _ok(permanent_redirect=new), now=NOW, policy=FLAT, rng=rng())
        assert state.redirect_count == i
    assert moved_to(state, FLAT) == new
    # a non-permanent answer in between starts over
    state = after_fetch(state, _ok(), now=NOW, policy=FLAT, rng=rng())
    assert state.redirect_count == 0
    assert moved_to(state, FLAT) is None


def test_redirect_target_change_restarts_count() -> None:
    state = FeedState(URL, redirect_url="https://a.example/x", redirect_count=2)
    state = after_fetch(state, _ok(permanent_redirect="https://b.example/x"), now=NOW,
                        policy=FLAT, rng=rng())
    assert state.redirect_count == 1
    assert state.redirect_url == "https://b.example/x"


def test_failures_back_off_and_flag_failing() -> None:
    state = FeedState(URL, etag='"e"')
    delays = []
    for _ in range(12):
        state = after_failure(state, FetchError(URL, "http_5xx", "HTTP 500", status=500),
                              now=NOW, policy=FLAT, rng=rng())
        assert state.next_check is not None
        delays.append((state.next_check - NOW).total_seconds())
    assert state.failures == 12
    assert state.last_error_kind == "http_5xx"
    assert state.last_error_at == NOW
    assert state.etag == '"e"'  # transport trouble keeps validators
    assert is_failing(state, FLAT)
    assert delays == sorted(delays)
    assert delays[-1] == 86400.0
    assert delays[0] == 1800.0


def test_rate_limited_honours_retry_after() -> None:
    err = FetchError(URL, "rate_limited", "HTTP 429", status=429, retry_after=5000.0)
    state = after_failure(FeedState(URL), err, now=NOW, policy=FLAT, rng=rng())
    assert state.next_check == NOW + timedelta(seconds=5000)


def test_gone_marks_feed_and_polls_rarely() -> None:
    err = FetchError(URL, "gone", "HTTP 410 Gone", status=410)
    state = after_failure(FeedState(URL), err, now=NOW, policy=FLAT, rng=rng())
    assert state.gone
    assert state.next_check == NOW + timedelta(days=1)
    back = after_fetch(state, _ok(), now=NOW, policy=FLAT, rng=rng())
    assert not back.gone


def test_parse_failure_forgets_validators() -> None:
    state = FeedState(URL, etag='"e"', last_modified="x", body_hash="h")
    after = after_failure(state, ParseError(URL, "not_a_feed", "HTML page"), now=NOW,
                          policy=FLAT, rng=rng())
    assert (after.etag, after.last_modified, after.body_hash) == (None, None, None)
    assert after.last_error_kind == "not_a_feed"
