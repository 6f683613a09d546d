"""Webhook sink over real loopback HTTP: signature, idempotency header, retry vs refuse, secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.deadletter import DeadLetters
from monitor.alerts.delivery import Deliverer
from monitor.alerts.failures import SinkBusy, SinkRejected
from monitor.alerts.webhook import WebhookSink, classify, retry_after_seconds, sign, verify
from monitor.errors import SinkError, StoreError
from monitor.store.base import OutboxItem
from monitor.store.sqlite import SQLiteStore
from tests.support.http_sink import HttpSink
from tests.support.redis_server import free_port

T0 = datetime(2025, 3, 11, 12, 0, tzinfo=UTC)
SECRET = b"s3cret-hmac-key"
TOKEN = "T0KEN-in-the-path-9f8e7d"


def item(alert_id: str = "a_1", sink: str = "webhook:desk") -> OutboxItem:
    body = json.dumps({"schema": "news-monitor.alert/1", "id": alert_id, "event": "story.new",
                       "story": {"title": "Пакт безпеки"}}, ensure_ascii=False)
    return OutboxItem(alert_id=alert_id, sink=sink, payload=body, created_at=T0)


@pytest.fixture
def rx() -> Iterator[HttpSink]:
    with HttpSink() as server:
        yield server


class ReadOnlyStore(SQLiteStore):
    """A real SQLite store whose outbox writes fail while ``full`` (a full disk: reads
    still work, the writes that mark alerts done or due later do not)."""

    full = False

    async def outbox_done(self, sink: str, alert_id: str) -> None:
        if self.full:
            raise StoreError("SQLite state: outbox_done: database or disk is full")
        await super().outbox_done(sink, alert_id)

    async def outbox_done_many(self, sink: str, alert_ids: Sequence[str]) -> None:
        if self.full:
            raise StoreError("SQLite state: outbox_done_many: database or disk is full")
        await super().outbox_done_many(sink, alert_ids)

    async def outbox_retry(self, sink: str, alert_id: str, next_attempt: datetime,
                           error: str) -> None:
        if self.full:
            raise StoreError("SQLite state: outbox_retry: database or disk is full")
        await super().outbox_retry(sink, alert_id, next_attempt, error)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ReadOnlyStore]:
    """A real SQLite store; set ``full`` to make its outbox writes fail."""
    s = ReadOnlyStore(tmp_path / "state.db")
    await s.open()
    yield s
    await s.close()


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    expected = hmac.new(b"key", b'{"a":1}', hashlib.sha256).hexdigest()
    assert sign(b"key", b'{"a":1}') == f"sha256={expected}"
    assert verify(b"key", b'{"a":1}', f"sha256={expected}")
    assert not verify(b"key", b'{"a":2}', f"sha256={expected}")
    assert not verify(b"other", b'{"a":1}', f"sha256={expected}")


@pytest.mark.anyio
async def test_post_carries_payload_signature_and_alert_id(rx: HttpSink) -> None:
    sink = WebhookSink("desk", rx.url(f"/hook/{TOKEN}"), secret=SECRET, timeout=5,
                       headers={"Authorization": "Bearer abc"})
    assert sink.name == "webhook:desk"
    try:
        await sink.send(item("a_1"))
    finally:
        await sink.aclose()
    (got,) = rx.received(f"/hook/{TOKEN}")
    assert got.body == item("a_1").payload.encode("utf-8")  # byte for byte, UTF-8
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-news-monitor-alert-id"] == "a_1"
    assert got.headers["x-news-monitor-event"] == "story.new"
    assert got.headers["authorization"] == "Bearer abc"
    assert verify(SECRET, got.body, got.headers["x-news-monitor-signature"])


@pytest.mark.anyio
async def test_no_secret_no_signature_header(rx: HttpSink) -> None:
    sink = WebhookSink("open", rx.url("/h"))
    await sink.send(item())
    await sink.aclose()
    assert "x-news-monitor-signature" not in rx.received("/h")[0].headers


@pytest.mark.parametrize(("status", "kind"), [
    (200, None), (201, None), (204, None),
    (408, SinkBusy), (429, SinkBusy), (500, SinkBusy), (502, SinkBusy), (503, SinkBusy),
    (301, SinkRejected), (400, SinkRejected), (401, SinkRejected), (403, SinkRejected),
    (404, SinkRejected), (410, SinkRejected), (422, SinkRejected),
])
def test_status_classification(status: int, kind: type[SinkError] | None) -> None:
    err = classify(status, "webhook:x", "a_1", "", None)
    assert (type(err) if err is not None else None) is kind


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Wed, 11 Mar 2025 12:02:00 GMT", now=T0) == 120.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


@pytest.mark.anyio
async def test_server_error_is_retried_with_backoff_and_the_same_id(
        rx: HttpSink, store: SQLiteStore) -> None:
    rx.script("/hook", 500, 503, 200)
    sink = WebhookSink("desk", rx.url("/hook"), secret=SECRET, timeout=5)
    d = Deliverer(store, {sink.name: sink}, retry_min=timedelta(seconds=10),
                  retry_max=timedelta(minutes=5))
    await store.outbox_put([item("a_1")])
    s1 = await d.deliver_due(T0)
    assert (s1.sent, s1.failed) == (0, 1)
    assert (await d.deliver_due(T0 + timedelta(seconds=5))).failed == 0  # not due yet
    s2 = await d.deliver_due(T0 + timedelta(seconds=10))
    assert s2.failed == 1
    s3 = await d.deliver_due(T0 + timedelta(seconds=30))  # 10 s, then 20 s of backoff
    assert s3.sent == 1
    await d.aclose()
    got = rx.received("/hook")
    assert [r.headers["x-news-monitor-alert-id"] for r in got] == ["a_1"] * 3
    assert len({r.headers["x-news-monitor-signature"] for r in got}) == 1
    assert (await store.outbox_depth()).get("webhook:desk", 0) == 0


@pytest.mark.anyio
async def test_retry_after_pushes_the_next_attempt_back(rx: HttpSink, store: SQLiteStore) -> None:
    rx.script("/hook", 429, 200, headers={"Retry-After": "120"})
    sink = WebhookSink("desk", rx.url("/hook"))
    d = Deliverer(store, {sink.name: sink}, retry_min=timedelta(seconds=1),
                  retry_max=timedelta(minutes=5))
    await store.outbox_put([item("a_1")])
    assert (await d.deliver_due(T0)).failed == 1
    assert await store.outbox_due(sink.name, T0 + timedelta(seconds=119), 10) == []
    assert (await d.deliver_due(T0 + timedelta(seconds=121))).sent == 1
    await d.aclose()


@pytest.mark.anyio
async def test_timeout_is_a_retryable_failure(rx: HttpSink) -> None:
    rx.script("/slow", 200, delay=3.0)
    sink = WebhookSink("slow", rx.url("/slow"), timeout=0.3)
    with pytest.raises(SinkError) as exc:
        await sink.send(item())
    await sink.aclose()
    assert not isinstance(exc.value, SinkRejected)
    assert "timed out" in str(exc.value)


@pytest.mark.anyio
async def test_refused_alert_goes_to_the_dead_letter_file_after_n_attempts(
        rx: HttpSink, store: SQLiteStore, tmp_path: Path, logs: list[str]) -> None:
    rx.script("/hook", 422, body=b'{"error": "bad payload"}')
    sink = WebhookSink("desk", rx.url("/hook"))
    dead = DeadLetters(tmp_path / "dead.jsonl")
    d = Deliverer(store, {sink.name: sink}, retry_min=timedelta(seconds=1),
                  retry_max=timedelta(seconds=1), dead_letters=dead, give_up_after=3)
    await store.outbox_put([item("a_1")])
    for n in range(3):
        stats = await d.deliver_due(T0 + timedelta(seconds=2 * n))
    await d.aclose()
    assert stats.dead == 1
    assert len(rx.received("/hook")) == 3
    assert (await store.outbox_depth()).get("webhook:desk", 0) == 0
    (record,) = dead.read()
    assert record["alert_id"] == "a_1" and record["sink"] == "webhook:desk"
    assert record["attempts"] == 3 and "422" in str(record["error"])
    assert record["payload"] == json.loads(item("a_1").payload)
    assert any("REFUSED" in line for line in logs)
    assert any("dead-letter" in line and "a_1" in line for line in logs)


@pytest.mark.anyio
async def test_a_refused_alert_holds_back_the_later_ones_until_it_is_dead_lettered(
        rx: HttpSink, store: SQLiteStore, tmp_path: Path) -> None:
    # The receiver refuses the oldest alert: the later ones wait behind it (never ahead of
    # it), and once it is in the dead-letter file they go out, in their order.
    rx.script("/hook", 422, 422, 422, 200)
    sink = WebhookSink("desk", rx.url("/hook"))
    dead = DeadLetters(tmp_path / "dead.jsonl")
    d = Deliverer(store, {sink.name: sink}, retry_min=timedelta(seconds=1),
                  retry_max=timedelta(seconds=1), dead_letters=dead, give_up_after=3)
    await store.outbox_put([item("a_1"), item("a_2"), item("a_3")])
    for n in range(4):
        await d.deliver_due(T0 + timedelta(seconds=2 * n))
    await d.aclose()
    got = [r.headers["x-news-monitor-alert-id"] for r in rx.received("/hook")]
    assert got == ["a_1", "a_1", "a_1", "a_2", "a_3"]
    assert [r["alert_id"] for r in dead.read()] == ["a_1"]
    assert (await store.outbox_depth()).get("webhook:desk", 0) == 0


@pytest.mark.anyio
async def test_refused_alert_without_dead_letter_file_is_kept(
        rx: HttpSink, store: SQLiteStore) -> None:
    rx.script("/hook", 401)
    sink = WebhookSink("desk", rx.url("/hook"))
    d = Deliverer(store, {sink.name: sink}, retry_min=timedelta(seconds=1),
                  retry_max=timedelta(seconds=1), give_up_after=1)
    await store.outbox_put([item("a_1")])
    for n in range(3):
        await d.deliver_due(T0 + timedelta(seconds=2 * n))
    await d.aclose()
    assert (await store.outbox_depth())["webhook:desk"] == 1


@pytest.mark.anyio
async def test_secrets_and_url_path_never_reach_errors_or_logs(
        store: SQLiteStore, logs: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/services/{TOKEN}"
    sink = WebhookSink("desk", url, secret=SECRET, headers={"Authorization": "Bearer hdr-tok"})
    with pytest.raises(SinkError) as exc:
        await sink.send(item())
    assert TOKEN not in str(exc.value) and "127.0.0.1" in str(exc.value)
    d = Deliverer(store, {sink.name: sink}, retry_min=timedelta(seconds=1),
                  retry_max=timedelta(seconds=1))
    await store.outbox_put([item("a_9")])
    assert (await d.deliver_due(T0)).failed == 1
    await d.aclose()
    text = "\n".join(logs)
    assert "webhook:desk" in text
    for secret in (TOKEN, SECRET.decode(), "hdr-tok"):
        assert secret not in text


@pytest.mark.anyio
async def test_a_response_echoing_the_url_is_not_logged_with_it(rx: HttpSink) -> None:
    path = f"/hook/{TOKEN}"
    rx.script(path, 404, body=f"no route {path}".encode())
    sink = WebhookSink("desk", rx.url(path))
    with pytest.raises(SinkRejected) as exc:
        await sink.send(item())
    await sink.aclose()
    assert "404" in str(exc.value) and TOKEN not in str(exc.value)


@pytest.mark.anyio
async def test_an_alert_taken_but_not_acknowledged_is_not_posted_again(
        rx: HttpSink, store: ReadOnlyStore, logs: list[str]) -> None:
    # The webhook took the alert; the store could not mark it done. Every later pass would
    # find it due and post it again, once a second for as long as the disk stays full.
    rx.script("/hook", 200)
    sink = WebhookSink("desk", rx.url("/hook"), secret=SECRET, timeout=5)
    d = Deliverer(store, {sink.name: sink}, retry_min=timedelta(seconds=1),
                  retry_max=timedelta(minutes=5))
    await store.outbox_put([item("a_1")])
    store.full = True
    for n in range(5):
        await d.deliver_due(T0 + timedelta(seconds=n))
    assert [r.headers["x-news-monitor-alert-id"] for r in rx.received("/hook")] == ["a_1"]
    assert (await store.outbox_depth())["webhook:desk"] == 1   # still queued in the store
    outages = [x for x in logs if "outbox unavailable" in x]
    assert len(outages) == 5 and "ERROR" in outages[0]
    assert all("DEBUG" in x for x in outages[1:])     # said once, not at every pass
    store.full = False
    await store.outbox_put([item("a_2")])
    stats = await d.deliver_due(T0 + timedelta(seconds=6))
    assert stats.sent == 1
    assert [r.headers["x-news-monitor-alert-id"] for r in rx.received("/hook")] == [
        "a_1", "a_2"]
    assert (await store.outbox_depth()).get("webhook:desk", 0) == 0
    assert any("outbox available again after" in x for x in logs)
    await d.aclose()


@pytest.mark.anyio
async def test_a_failed_attempt_the_store_cannot_record_still_backs_off(
        rx: HttpSink, store: ReadOnlyStore) -> None:
    # The receiver is down and the store cannot write the retry time: without a delay kept
    # in memory, every pass would try the receiver again; and the delay still doubles.
    rx.script("/hook", 503, 503, 200)
    sink = WebhookSink("desk", rx.url("/hook"), timeout=5)
    d = Deliverer(store, {sink.name: sink}, retry_min=timedelta(seconds=10),
                  retry_max=timedelta(minutes=5))
    await store.outbox_put([item("a_1")])
    store.full = True

    async def posts_by(second: int) -> int:
        await d.deliver_due(T0 + timedelta(seconds=second))
        return len(rx.received("/hook"))

    assert [await posts_by(n) for n in (0, 5, 9)] == [1, 1, 1]   # 10 s after the first
    assert [await posts_by(n) for n in (10, 20, 29)] == [2, 2, 2]  # then 20 s
    assert await posts_by(30) == 3            # taken, but the store cannot mark it done
    assert await posts_by(31) == 3
    store.full = False
    assert await posts_by(32) == 3            # only the acknowledgement is written now
    assert [r.headers["x-news-monitor-alert-id"] for r in rx.received("/hook")] == ["a_1"] * 3
    assert (await store.outbox_depth()).get("webhook:desk", 0) == 0
    await d.aclose()


@pytest.mark.anyio
async def test_the_outbox_is_back_only_when_a_write_goes_through(
        rx: HttpSink, store: ReadOnlyStore, logs: list[str]) -> None:
    # Reads work on a full disk: a pass in which one sink only read its (empty) queue
    # while another is held back must not report the outbox as working again.
    rx.script("/hook", 503, 503, 200)
    down = WebhookSink("desk", rx.url("/hook"), timeout=5)
    idle = WebhookSink("idle", rx.url("/idle"), timeout=5)
    d = Deliverer(store, {down.name: down, idle.name: idle},
                  retry_min=timedelta(seconds=10), retry_max=timedelta(minutes=5))
    await store.outbox_put([item("a_1")])
    store.full = True
    for n in range(25):
        await d.deliver_due(T0 + timedelta(seconds=n))
    assert len(rx.received("/hook")) == 2           # at 0 and 10 s (then 20 s of backoff)
    said = [x for x in logs if "outbox" in x and ("| ERROR" in x or "| WARNING" in x)]
    assert len(said) == 1 and "outbox unavailable, alerts wait" in said[0]
    store.full = False
    await d.deliver_due(T0 + timedelta(seconds=40))
    assert len(rx.received("/hook")) == 3
    assert (await store.outbox_depth()).get("webhook:desk", 0) == 0
    assert any("outbox available again after" in x for x in logs)
    await d.aclose()


@pytest.mark.anyio
async def test_a_refused_alert_is_dead_lettered_once_while_the_store_cannot_ack(
        rx: HttpSink, store: ReadOnlyStore, tmp_path: Path) -> None:
    rx.script("/hook", 422)
    dead = DeadLetters(tmp_path / "dead.jsonl")
    sink = WebhookSink("desk", rx.url("/hook"), timeout=5)
    d = Deliverer(store, {sink.name: sink}, retry_min=timedelta(seconds=1),
                  retry_max=timedelta(minutes=5), dead_letters=dead, give_up_after=1)
    await store.outbox_put([item("a_1")])
    store.full = True
    for n in range(5):
        await d.deliver_due(T0 + timedelta(seconds=n))
    assert len(rx.received("/hook")) == 1
    assert [r["alert_id"] for r in dead.read()] == ["a_1"]
    store.full = False
    await d.deliver_due(T0 + timedelta(seconds=6))
    assert (await store.outbox_depth()).get("webhook:desk", 0) == 0
    assert len(rx.received("/hook")) == 1
    assert [r["alert_id"] for r in dead.read()] == ["a_1"]
    await d.aclose()
