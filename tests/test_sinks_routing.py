"""Rules pick their channels: pure routing, then through the Ingestor, outbox and real webhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.delivery import Deliverer
from monitor.alerts.routing import resolve, targets, unknown_channels
from monitor.alerts.sinks import Sink
from monitor.alerts.webhook import WebhookSink
from monitor.models import RuleHit
from tests.support.alerting import article, make_ingestor
from tests.support.http_sink import HttpSink

T0 = datetime(2025, 3, 11, 12, 0, tzinfo=UTC)
SINKS = ["stdout", "jsonl", "webhook:desk", "webhook:ops", "apprise:team"]
RULES = """
rules:
  - id: desk-only
    query: peacekeepers
    channels: [webhook:desk]
  - id: everywhere
    query: ceasefire
  - id: hooks
    query: sanctions
    channels: [webhook]
  - id: typo
    query: referendum
    channels: [webhook:dsek]
"""


def hit(rule: str, *channels: str) -> RuleHit:
    return RuleHit(rule_id=rule, title=rule, severity="high", channels=channels)


def test_targets() -> None:
    assert targets([hit("a", "webhook:desk")], SINKS) == ("webhook:desk",)
    assert targets([hit("a")], SINKS) == tuple(SINKS)
    assert targets([hit("a", "webhook:desk"), hit("b")], SINKS) == tuple(SINKS)
    assert targets([hit("a", "apprise:team"), hit("b", "stdout")], SINKS) == (
        "stdout", "apprise:team")
    assert targets([hit("a", "webhook")], SINKS) == ("webhook:desk", "webhook:ops")
    # a channel naming nothing must not swallow the alert
    assert targets([hit("a", "webhook:nope")], SINKS) == tuple(SINKS)
    assert resolve("apprise", SINKS) == ["apprise:team"] and resolve("redis", SINKS) == []


def test_unknown_channels_are_reported_per_rule() -> None:
    assert unknown_channels({"a": ["webhook:desk", "slack"], "b": ["stdout"]}, SINKS) == {
        "a": ["slack"]}


@pytest.mark.anyio
async def test_rules_route_alerts_through_the_outbox_to_their_webhooks(tmp_path: Path) -> None:
    ing, store = await make_ingestor(tmp_path, RULES, SINKS)
    try:
        outcomes = await ing.ingest([
            article(1, "UN peacekeepers deployed", T0),
            article(2, "Ceasefire holds", T0),
            article(3, "New sanctions package", T0),
            article(4, "Referendum called", T0),
        ], T0)
        assert [o.alert for o in outcomes] == ["story.new"] * 4
        ids = [o.alert_id for o in outcomes]

        async def queued(sink: str) -> set[str]:
            # Outbox items are stamped in commit order, a microsecond apart from T0 on.
            later = T0 + timedelta(seconds=1)
            return {i.alert_id for i in await store.outbox_due(sink, later, 100)}

        assert await queued("webhook:desk") == {ids[0], ids[1], ids[2], ids[3]}
        assert await queued("webhook:ops") == {ids[1], ids[2], ids[3]}
        for sink in ("stdout", "jsonl", "apprise:team"):
            assert await queued(sink) == {ids[1], ids[3]}  # no channels / unknown channel

        # And over the wire: each webhook gets exactly its alerts.
        with HttpSink() as rx:
            hooks: dict[str, Sink] = {
                "webhook:desk": WebhookSink("desk", rx.url("/desk")),
                "webhook:ops": WebhookSink("ops", rx.url("/ops")),
            }
            d = Deliverer(store, hooks, retry_min=timedelta(seconds=1),
                          retry_max=timedelta(seconds=1))
            stats = await d.deliver_due(T0 + timedelta(seconds=1))
            await d.aclose()
            assert stats.sent == 7
            got = {p: sorted(r.headers["x-news-monitor-alert-id"] for r in rx.received(p))
                   for p in ("/desk", "/ops")}
        assert got == {"/desk": sorted(ids), "/ops": sorted(ids[1:])}
        assert (await store.outbox_depth()).get("webhook:desk", 0) == 0
    finally:
        await store.close()
