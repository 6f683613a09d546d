"""Where alerts go that a receiver keeps refusing: a JSONL file for a person to look at.

An alert is only dropped from a sink's queue after that receiver refused it
(:class:`~monitor.alerts.failures.SinkRejected`, e.g. HTTP 401/404/422) on
``give_up_after`` attempts in a row. Dropping it silently would break the
at-least-once promise, and retrying forever would hide the fault behind a
growing queue, so it is appended here (fsynced, one JSON object per line, the
alert payload unchanged) and logged at ERROR level. After fixing the receiver an
operator can re-send the file's payloads by hand.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from monitor.alerts.sinks import append_line
from monitor.store.base import OutboxItem


class DeadLetters:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def add(self, item: OutboxItem, error: str, now: datetime) -> None:
        """Record one refused alert. Raises OSError when the file cannot be written."""
        try:
            payload: object = json.loads(item.payload)
        except ValueError:
            payload = item.payload
        record = {
            "sink": item.sink,
            "alert_id": item.alert_id,
            "attempts": item.attempts + 1,
            "error": error,
            "dead_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "payload": payload,
        }
        await asyncio.to_thread(
            append_line, self.path, json.dumps(record, ensure_ascii=False, separators=(",", ":")))

    def read(self) -> list[dict[str, object]]:
        """Every record (for ``news-monitor`` tooling and tests)."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text("utf-8").splitlines() if line]
