"""Digest mode: one message per closed period, durable through the outbox, with a stable id."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.delivery import Deliverer
from monitor.alerts.digest import DIGEST_SCHEMA, DigestSink, batches, bucket_start, digest_id
from monitor.alerts.sinks import StdoutSink
from monitor.alerts.webhook import WebhookSink, verify
from monitor.store.base import OutboxItem
from monitor.store.sqlite import SQLiteStore
from tests.support.http_sink import HttpSink

T0 = datetime(2025, 3, 11, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SINK = "webhook:desk"


def item(n: int, at: datetime, severity: str = "medium") -> OutboxItem:
    payload = {"schema": "news-monitor.alert/1", "id": f"a_{n}", "event": "story.new",
               "story": {"id": f"s_{n}", "title": f"Story {n}", "outlets": ["DW"],
                         "articles": [{"outlet": "DW", "url": f"https://dw.example/{n}",
                                       "title": f"Story {n}"}]},
               "rules": [{"id": "r", "severity": severity}], "detected_at": at.isoformat()}
    return OutboxItem(alert_id=f"a_{n}", sink=SINK, payload=json.dumps(payload), created_at=at)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "state.db")
    await s.open()
    yield s
    await s.close()


def test_periods_are_aligned_to_the_epoch() -> None:
    assert bucket_start(T0 + timedelta(minutes=59), HOUR) == T0
    assert bucket_start(T0 + HOUR, HOUR) == T0 + HOUR
    day = timedelta(days=1)
    assert bucket_start(T0, day) == datetime(2025, 3, 11, tzinfo=UTC)
    assert bucket_start(T0 + timedelta(minutes=14), timedelta(minutes=15)) == T0


def test_batches_wait_for_their_period_to_close_and_respect_the_cap() -> None:
    items = [item(1, T0 + timedelta(minutes=5)), item(2, T0 + timedelta(minutes=50)),
             item(3, T0 + HOUR + timedelta(minutes=1))]
    assert batches(items, T0 + timedelta(minutes=59), HOUR, 50) == []
    (b,) = batches(items, T0 + HOUR, HOUR, 50)
    assert (b.start, b.end, [i.alert_id for i in b.items]) == (T0, T0 + HOUR, ["a_1", "a_2"])
    capped = batches(items, T0 + 3 * HOUR, HOUR, 1)
    assert [[i.alert_id for i in x.items] for x in capped] == [["a_1"], ["a_2"], ["a_3"]]


def test_digest_id_depends_on_sink_and_alert_set_only() -> None:
    assert digest_id(SINK, ["a_1", "a_2"]) == digest_id(SINK, ["a_2", "a_1"])
    assert digest_id(SINK, ["a_1", "a_2"]) != digest_id(SINK, ["a_1"])
    assert digest_id(SINK, ["a_1"]) != digest_id("webhook:ops", ["a_1"])
    assert digest_id(SINK, ["a_1"]).startswith("d_")


@pytest.mark.anyio
async def test_webhook_digest_is_sent_once_per_period_and_retried_identically(
        store: SQLiteStore) -> None:
    with HttpSink() as rx:
        rx.script("/hook", 500, 200)
        sink = DigestSink(WebhookSink("desk", rx.url("/hook"), secret=b"k"), HOUR)
        d = Deliverer(store, {SINK: sink}, retry_min=timedelta(seconds=10),
                      retry_max=timedelta(minutes=5))
        await store.outbox_put([item(1, T0 + timedelta(minutes=5), "high"),
                                item(2, T0 + timedelta(minutes=20)),
                                item(3, T0 + HOUR + timedelta(minutes=10))])
        assert (await d.deliver_due(T0 + timedelta(minutes=50))).sent == 0
        assert rx.received() == []  # the period is still open
        failed = await d.deliver_due(T0 + HOUR)
        assert (failed.sent, failed.failed) == (0, 1)
        ok = await d.deliver_due(T0 + HOUR + timedelta(seconds=10))
        assert ok.sent == 2
        first, second = rx.received("/hook")
        assert first.body == second.body  # the retry is the same digest, byte for byte
        assert first.headers["x-news-monitor-alert-id"] == digest_id(SINK, ["a_1", "a_2"])
        assert first.headers["x-news-monitor-event"] == "digest"
        assert verify(b"k", first.body, first.headers["x-news-monitor-signature"])
        body = first.json()
        assert body["schema"] == DIGEST_SCHEMA and body["count"] == 2
        assert (body["period_start"], body["period_end"]) == (
            "2025-03-11T12:00:00Z", "2025-03-11T13:00:00Z")
        assert [a["id"] for a in body["alerts"]] == ["a_1", "a_2"]
        assert body["alerts"][0] == json.loads(item(1, T0 + timedelta(minutes=5), "high").payload)
        left = await store.outbox_due(SINK, T0 + 3 * HOUR, 10)
        assert [i.alert_id for i in left] == ["a_3"]  # the next period's alert waits
        assert (await d.deliver_due(T0 + 2 * HOUR)).sent == 1
        assert len(rx.received("/hook")) == 3
        await d.aclose()
    assert (await store.outbox_depth()).get(SINK, 0) == 0


@pytest.mark.anyio
async def test_a_restart_resends_the_same_digest(store: SQLiteStore) -> None:
    """Sent, then killed before the ack: the next process sends the same id again."""
    with HttpSink() as rx:
        await store.outbox_put([item(1, T0), item(2, T0 + timedelta(minutes=1))])
        for _ in range(2):  # two "processes", each with fresh sink objects
            sink = DigestSink(WebhookSink("desk", rx.url("/hook")), HOUR)
            due = await store.outbox_due(SINK, T0 + HOUR, 100)
            (batch,) = sink.ready(due, T0 + HOUR)
            await sink.send_batch(batch, T0 + HOUR)  # no outbox_done: the crash
            await sink.aclose()
        ids = [r.headers["x-news-monitor-alert-id"] for r in rx.received("/hook")]
    assert len(ids) == 2 and ids[0] == ids[1]


@pytest.mark.anyio
async def test_stdout_digest_is_readable(store: SQLiteStore) -> None:
    out = io.StringIO()
    sink = DigestSink(StdoutSink("text", stream=out), HOUR)
    d = Deliverer(store, {SINK: sink}, retry_min=timedelta(seconds=1),
                  retry_max=timedelta(seconds=1))
    await store.outbox_put([item(1, T0, "critical"), replace(item(2, T0), sink=SINK)])
    assert (await d.deliver_due(T0 + HOUR)).sent == 2
    text = out.getvalue()
    assert text.startswith("[DIGEST] news-monitor digest: 2 alert(s), 2025-03-11 12:00–13:00 UTC")
    assert "[CRITICAL] (new) Story 1" in text and "https://dw.example/2" in text
