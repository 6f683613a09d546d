"""Consumer groups on the alert stream: resume, acknowledge, claim what a dead consumer left."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from monitor.alerts.consumer import StreamConsumer
from monitor.alerts.sinks import RedisSink
from monitor.store.base import OutboxItem

STREAM = "news-monitor:alerts"


async def publish(sink: RedisSink, *ids: str) -> None:
    for i in ids:
        await sink.send(OutboxItem(alert_id=i, sink="redis", created_at=datetime.now(UTC),
                                   payload=json.dumps({"id": i, "event": "story.new"})))


@pytest.mark.anyio
async def test_group_resumes_and_claims_from_dead_consumers(redis_url: str) -> None:
    sink = RedisSink(redis_url, channel=STREAM, stream=STREAM, maxlen=1000)
    seen: list[str] = []

    async def handler(p: dict[str, Any]) -> None:
        seen.append(p["id"])

    await publish(sink, "a1", "a2")
    c1 = StreamConsumer(redis_url, STREAM, "g", "c1", block_ms=100)
    assert await c1.run(handler, limit=2) == 2
    assert seen == ["a1", "a2"]

    # A consumer that reads and dies before acknowledging.
    await publish(sink, "a3", "a4")
    raw = aioredis.Redis.from_url(redis_url)
    got = await raw.xreadgroup("g", "dead", {STREAM: ">"}, count=10)
    assert len(got[0][1]) == 2
    pending = await raw.xpending(STREAM, "g")
    assert pending["pending"] == 2

    # c1 restarts: nothing of its own is pending; it claims the dead one's entries.
    c1b = StreamConsumer(redis_url, STREAM, "g", "c1", min_idle_ms=0, block_ms=100)
    assert await c1b.run(handler, limit=2) == 2
    assert seen == ["a1", "a2", "a3", "a4"]
    assert (await raw.xpending(STREAM, "g"))["pending"] == 0

    # A new alert after the restart is read once; nothing old comes back.
    await publish(sink, "a5")
    assert await c1b.run(handler, limit=1) == 1
    assert seen == ["a1", "a2", "a3", "a4", "a5"]
    for c in (c1, c1b):
        await c.aclose()
    await raw.aclose()
    await sink.aclose()


@pytest.mark.anyio
async def test_unacknowledged_entries_come_back_after_a_crash(redis_url: str) -> None:
    sink = RedisSink(redis_url, channel=STREAM, stream=STREAM, maxlen=1000)
    await publish(sink, "b1", "b2")
    calls: list[str] = []

    async def crash_on_b2(p: dict[str, Any]) -> None:
        calls.append(p["id"])
        if p["id"] == "b2":
            raise RuntimeError("consumer crashed")

    c = StreamConsumer(redis_url, STREAM, "g2", "me", block_ms=100)
    with pytest.raises(RuntimeError):
        await c.run(crash_on_b2, limit=2)
    ok: list[str] = []

    async def fine(p: dict[str, Any]) -> None:
        ok.append(p["id"])

    assert await c.run(fine, limit=1) == 1
    assert ok == ["b2"]  # b1 was acknowledged, b2 was not
    await c.aclose()
    await sink.aclose()
