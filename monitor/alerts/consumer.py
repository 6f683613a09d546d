"""Reading the alert stream through a consumer group, as a downstream program should.

On start a consumer first re-reads its own pending entries (delivered before a
crash, never acknowledged), then claims entries another consumer left pending
longer than ``min_idle`` (``XAUTOCLAIM``), then blocks for new ones. Each entry
is acknowledged only after the handler returned, so a crash re-delivers it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from monitor.config import redact_url
from monitor.errors import SinkError
from monitor.redis_url import connect

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class StreamConsumer:
    def __init__(self, url: str, stream: str, group: str, consumer: str, *,
                 min_idle_ms: int = 60_000, block_ms: int = 5_000, batch: int = 50) -> None:
        self.url = url
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.min_idle_ms = min_idle_ms
        self.block_ms = block_ms
        self.batch = batch
        self.client: aioredis.Redis = connect(url, socket_connect_timeout=5)

    async def ensure_group(self, from_start: bool = True) -> None:
        try:
            await self.client.xgroup_create(self.stream, self.group,
                                            id="0" if from_start else "$", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def _handle(self, entries: list[Any], handler: Handler) -> int:
        done = 0
        for entry_id, fields in entries:
            if not fields:  # deleted by MAXLEN trimming while pending
                await self.client.xack(self.stream, self.group, entry_id)
                continue
            await handler(json.loads(fields[b"payload"]))
            await self.client.xack(self.stream, self.group, entry_id)
            done += 1
        return done

    async def run(self, handler: Handler, *, limit: int | None = None,
                  from_start: bool = True) -> int:
        """Consume until ``limit`` entries were handled (forever when None)."""
        handled = 0
        try:
            await self.ensure_group(from_start)
            # 1. our own pending entries (we crashed before acknowledging them)
            res: Any = await self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"},
                                               count=self.batch)
            for stream_entries in res or []:
                handled += await self._handle(list(stream_entries[1]), handler)
            # 2. entries a dead consumer left behind
            start = "0-0"
            while True:
                claimed: Any = await self.client.xautoclaim(
                    self.stream, self.group, self.consumer, self.min_idle_ms, start,
                    count=self.batch)
                start = claimed[0]
                handled += await self._handle(list(claimed[1]), handler)
                if start in (b"0-0", "0-0"):
                    break
            # 3. new entries
            while limit is None or handled < limit:
                res = await self.client.xreadgroup(
                    self.group, self.consumer, {self.stream: ">"}, count=self.batch,
                    block=self.block_ms)
                for stream_entries in res or []:
                    handled += await self._handle(list(stream_entries[1]), handler)
        except RedisError as e:
            raise SinkError(f"alert stream {self.stream} at {redact_url(self.url)}: "
                            f"{type(e).__name__}: {e}") from e
        return handled

    async def aclose(self) -> None:
        await self.client.aclose()
