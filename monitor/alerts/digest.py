"""Digest mode: a sink that sends one message per period instead of one per alert.

Set per sink (``sinks.stdout.digest``, ``sinks.webhooks[].digest``,
``sinks.apprise[].digest``); a rule that wants digests names a digest channel
in ``channels``. Alerts are queued in the durable outbox exactly as for any
other sink; only the delivery differs:

* periods are aligned to the UTC epoch (``digest: 1h`` closes at every full hour,
  ``1d`` at midnight UTC), so the bucket of an alert depends on its
  ``created_at`` alone and is the same after a restart;
* once a period has closed, its alerts (oldest first, at most ``max_alerts`` per
  message) are sent as one ``news-monitor.digest/1`` payload, and each alert
  leaves the outbox only after the digest carrying it was taken: at-least-once,
  like single alerts. Nothing is held in memory; a crash re-sends the digest;
* a digest's id is ``d_`` + a hash of the sink name and the ids of the alerts it
  carries, so a re-sent digest has the same id and receivers drop the repeat
  (``X-News-Monitor-Alert-Id`` for webhooks), exactly as for alerts. Retries
  keep the same batch because the outbox hands items out in a stable order.

Digest payload::

    {"schema": "news-monitor.digest/1", "id": "d_…", "sink": "webhook:desk",
     "period_start": "2025-03-11T12:00:00Z", "period_end": "2025-03-11T13:00:00Z",
     "count": 2, "alerts": [<news-monitor.alert/1 payload>, …]}

The Redis and JSONL sinks have no digest mode: they feed programs, which want
every alert as it happens.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.alerts.sinks import Sink
from monitor.store.base import OutboxItem

DIGEST_SCHEMA = "news-monitor.digest/1"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bucket_start(at: datetime, period: timedelta) -> datetime:
    """Start of the epoch-aligned period holding ``at``."""
    step = int(period.total_seconds() * 1_000_000)
    offset = (at - EPOCH) // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=offset - offset % step)


def digest_id(sink: str, alert_ids: Sequence[str]) -> str:
    h = hashlib.blake2b(sink.encode(), digest_size=12)
    for a in sorted(alert_ids):
        h.update(b"\x00" + a.encode())
    return "d_" + h.hexdigest()


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Batch:
    """Alerts of one closed period that go out together."""

    start: datetime
    end: datetime
    items: tuple[OutboxItem, ...]


def batches(items: Sequence[OutboxItem], now: datetime, period: timedelta,
            max_alerts: int) -> list[Batch]:
    """Closed periods' alerts, grouped by period (oldest first), cut at ``max_alerts``.

    Items of the period still open are left alone: they wait in the outbox.
    """
    groups: dict[datetime, list[OutboxItem]] = {}
    for item in items:
        start = bucket_start(item.created_at, period)
        if start + period <= now:
            groups.setdefault(start, []).append(item)
    out: list[Batch] = []
    for start in sorted(groups):
        group = groups[start]
        for i in range(0, len(group), max_alerts):
            out.append(Batch(start, start + period, tuple(group[i:i + max_alerts])))
    return out


def digest_item(sink: str, batch: Batch, now: datetime) -> OutboxItem:
    """The one outbox-shaped item the inner sink sends for a batch."""
    ids = [i.alert_id for i in batch.items]
    did = digest_id(sink, ids)
    alerts = [json.loads(i.payload) for i in batch.items]
    payload = {
        "schema": DIGEST_SCHEMA,
        "id": did,
        "sink": sink,
        "period_start": _iso(batch.start),
        "period_end": _iso(batch.end),
        "count": len(alerts),
        "alerts": alerts,
    }
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    attempts = max((i.attempts for i in batch.items), default=0)
    return OutboxItem(alert_id=did, sink=sink, payload=text, created_at=now, attempts=attempts)


class DigestSink:
    """Wraps a sink: the deliverer hands it closed periods' batches, it sends one digest each."""

    def __init__(self, inner: Sink, period: timedelta, *, max_alerts: int = 50) -> None:
        if period <= timedelta(0):
            raise ValueError("digest period must be positive")
        self.inner = inner
        self.name = inner.name
        self.period = period
        self.max_alerts = max_alerts

    def ready(self, items: Sequence[OutboxItem], now: datetime) -> list[Batch]:
        return batches(items, now, self.period, self.max_alerts)

    async def send_batch(self, batch: Batch, now: datetime) -> str:
        """Send one digest; returns its id. Raises SinkError like any sink."""
        item = digest_item(self.name, batch, now)
        await self.inner.send(item)
        return item.alert_id

    async def send(self, item: OutboxItem) -> None:
        """A single alert sent on its own (digest of one), for callers that bypass batching."""
        await self.send_batch(Batch(bucket_start(item.created_at, self.period),
                                    bucket_start(item.created_at, self.period) + self.period,
                                    (item,)), item.created_at)

    async def aclose(self) -> None:
        await self.inner.aclose()
