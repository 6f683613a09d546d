"""Per-rule throttle with an explicit clock: N per period, the excess dropped and counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loguru import logger

from monitor.alerts.routing import Route, route
from monitor.alerts.throttle import RuleThrottle
from monitor.match.rules import Throttle
from monitor.models import RuleHit
from tests.support.alerting import article, make_ingestor

T0 = datetime(2025, 3, 11, 12, 0, tzinfo=UTC)
TWO_PER_HOUR = Throttle(count=2, period=3600)
SINKS = ["stdout", "webhook:desk", "webhook:ops"]


def hit(rule: str, *channels: str) -> RuleHit:
    return RuleHit(rule_id=rule, title=rule, severity="low", channels=channels)


def test_sliding_window() -> None:
    t = RuleThrottle()
    assert t.has_room("r", TWO_PER_HOUR, T0)
    t.record(["r"], T0)
    t.record(["r"], T0 + timedelta(minutes=10))
    assert not t.has_room("r", TWO_PER_HOUR, T0 + timedelta(minutes=59))
    assert t.has_room("other", TWO_PER_HOUR, T0 + timedelta(minutes=59))
    assert t.has_room("r", None, T0)  # no throttle on the rule
    # the first one leaves the window at exactly one period
    assert t.has_room("r", TWO_PER_HOUR, T0 + timedelta(hours=1))
    assert t.used("r", TWO_PER_HOUR, T0 + timedelta(hours=1)) == 1
    assert t.used("r", TWO_PER_HOUR, T0 + timedelta(hours=2)) == 0


def test_alerts_recorded_out_of_order_leave_the_window_on_time() -> None:
    # polls finish out of order: a later poll's alert is recorded before an earlier one's
    t = RuleThrottle()
    t.record(["r"], T0 + timedelta(minutes=50))
    t.record(["r"], T0)
    later = T0 + timedelta(minutes=70)
    assert t.used("r", TWO_PER_HOUR, later) == 1
    assert t.has_room("r", TWO_PER_HOUR, later)


def test_route_holds_only_when_every_rule_is_out_of_room() -> None:
    t = RuleThrottle()
    limits = {"noisy": TWO_PER_HOUR, "calm": None}
    t.record(["noisy", "noisy"], T0)
    noisy, calm = hit("noisy", "webhook:desk"), hit("calm", "webhook:ops")
    assert route([noisy], SINKS, limits.get, t, T0) == Route(
        (), held=True, throttled=("noisy",))
    # another rule with room carries the alert, to its own channels only
    assert route([noisy, calm], SINKS, limits.get, t, T0) == Route(
        ("webhook:ops",), throttled=("noisy",))
    # without a throttle object nothing is held (replay)
    assert route([noisy], SINKS, limits.get, None, T0).sinks == ("webhook:desk",)
    later = T0 + timedelta(hours=1)
    assert route([noisy], SINKS, limits.get, t, later) == Route(
        ("webhook:desk",), counted=("noisy",))


@pytest.mark.anyio
async def test_ingestor_drops_the_excess_and_lets_it_through_after_the_period(
        tmp_path: Path) -> None:
    rules = """
rules:
  - id: noisy
    query: drone
    throttle: {count: 2, period: 1h}
    channels: [webhook:desk]
  - id: calm
    query: ceasefire
"""
    lines: list[str] = []
    log_id = logger.add(lambda m: lines.append(str(m)), level="INFO")
    t = RuleThrottle()
    ing, store = await make_ingestor(tmp_path, rules, SINKS, throttle=t)
    try:
        minute = timedelta(minutes=1)
        outcomes = []
        for n in range(4):  # four distinct drone stories within the hour
            at = T0 + n * minute
            outcomes += await ing.ingest([article(n, "Drone attack", at)], at)
        assert [o.alert for o in outcomes] == ["story.new", "story.new", None, None]
        assert [o.throttled for o in outcomes] == [(), (), ("noisy",), ("noisy",)]
        assert t.dropped["noisy"] == 2
        assert any("throttle of rule(s) noisy is full" in line for line in lines)
        queued = await store.outbox_due("webhook:desk", T0 + timedelta(days=1), 100)
        assert [i.alert_id for i in queued] == [o.alert_id for o in outcomes[:2]]
        # a story whose story.new was dropped stays unannounced (no story.updated for it
        # later, with no story.new before it)
        story = await store.get_story(outcomes[2].story_id or "")
        assert story is not None and not story.alerted
        # another rule is not affected
        at = T0 + 5 * minute
        (calm,) = await ing.ingest([article(10, "Ceasefire talks", at)], at)
        assert calm.alert == "story.new"
        # one hour after the first, there is room for one more
        at = T0 + timedelta(hours=1)
        (late,) = await ing.ingest([article(20, "Drone sighting", at)], at)
        assert late.alert == "story.new" and late.throttled == ()
        at = T0 + timedelta(hours=1, seconds=30)
        (again,) = await ing.ingest([article(21, "Drone strike", at)], at)
        assert again.alert is None and again.throttled == ("noisy",)
        # the dropped story's next report, once there is room, is its story.new
        at = T0 + timedelta(hours=1, minutes=3)
        (second,) = await ing.ingest([article(2, "Drone attack", at, outlet="Other")], at)
        assert (second.story_id, second.alert) == (outcomes[2].story_id, "story.new")
    finally:
        logger.remove(log_id)
        await store.close()


@pytest.mark.anyio
async def test_without_a_throttle_object_rules_are_not_throttled(tmp_path: Path) -> None:
    rules = """
rules:
  - id: noisy
    query: drone
    throttle: {count: 1, period: 1h}
"""
    ing, store = await make_ingestor(tmp_path, rules, SINKS)
    try:
        outs = [(await ing.ingest([article(n, "Drone", T0)], T0))[0] for n in range(3)]
        assert [o.alert for o in outs] == ["story.new"] * 3
    finally:
        await store.close()
