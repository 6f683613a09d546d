"""Where alerts go. A sink either takes an alert or raises SinkError; the outbox retries.

A sink that can take a whole delivery pass at once (:class:`BatchSink`) gets all
its due alerts in one call: the JSONL sink then writes them with one fsync
instead of one per alert, which is what bounds its alerts/s in a burst.

The Redis sink writes each alert to the stream exactly once even when a command
is retried after its reply was lost: one Lua script does ``SET NX`` on the
alert id, and only if that succeeds ``XADD``s (capped with an approximate
MAXLEN) and ``PUBLISH``es. Pub/sub alone would lose alerts sent while nobody
listens; the stream keeps them for consumers that were away.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol, runtime_checkable

from monitor.alerts.payload import render_text
from monitor.alerts.render import message
from monitor.config import redact_url
from monitor.errors import SinkError
from monitor.redis_url import connect
from monitor.store.base import OutboxItem

if TYPE_CHECKING:  # redis is imported when a Redis sink is built, not by every daemon
    import redis.asyncio as aioredis


class Sink(Protocol):
    name: str

    async def send(self, item: OutboxItem) -> None:
        """Deliver one alert or raise SinkError."""

    async def aclose(self) -> None: ...


@runtime_checkable
class BatchSink(Sink, Protocol):
    """A sink that takes several alerts in one go (one write, one fsync)."""

    async def send_many(self, items: Sequence[OutboxItem]) -> None:
        """Deliver every item, or raise SinkError.

        After an error any of them may have been delivered already: they stay
        queued and are sent again (at least once; consumers dedupe by ``id``).
        """


class StdoutSink:
    """Alerts for a person at a terminal (text) or a pipe (JSON lines)."""

    name = "stdout"

    def __init__(self, fmt: str = "text", stream: IO[str] | None = None) -> None:
        self.fmt = fmt
        self.stream = stream

    async def send(self, item: OutboxItem) -> None:
        out = self.stream or sys.stdout
        try:
            if self.fmt == "json":
                out.write(item.payload + "\n")
            else:
                payload = json.loads(item.payload)
                if str(payload.get("schema", "")).startswith("news-monitor.digest/"):
                    msg = message(payload)
                    out.write(f"[DIGEST] {msg.title}\n{msg.body}\n\n")
                else:
                    out.write(render_text(payload) + "\n\n")
            out.flush()
        except (OSError, ValueError) as e:
            raise SinkError(f"stdout: cannot write alert {item.alert_id}: {e}") from e

    async def aclose(self) -> None:
        return None


def append_lines(path: Path, lines: Sequence[str]) -> None:
    """Append lines and fsync once; returns only when all of them are on disk.

    One ``write`` of the whole batch, then one ``fsync``: the fsync is what costs
    (milliseconds each), so a burst of alerts pays it once. A disk that fills up
    takes part of a write and refuses the rest: that part is cut off again before
    the error is raised, because the caller retries the whole batch later and a
    reader of the file must not meet half a line. Appends hold an exclusive
    ``flock``, so the part cut off is ours alone; and only while the file still ends
    where our part ended (something outside, a ``copytruncate`` say, may have changed
    it). The error is the kernel's own (``No space left on device``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        with contextlib.suppress(OSError):   # a file system without locks: append anyway
            fcntl.flock(fd, fcntl.LOCK_EX)
        data = memoryview("".join(line + "\n" for line in lines).encode("utf-8"))
        start = os.lseek(fd, 0, os.SEEK_END)
        done = 0
        try:
            while done < len(data):
                done += os.write(fd, data[done:])  # after a short write, the next one says why
            os.fsync(fd)
        except OSError:
            if done:
                with contextlib.suppress(OSError):
                    if os.fstat(fd).st_size == start + done:
                        os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)   # and the lock with it


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it: a crash leaves whole lines only, never half an alert."""
    append_lines(path, [line])


class JsonlSink:
    """One JSON line per alert, appended and fsynced, so a crash never leaves half an alert.

    ``send_many`` writes a delivery pass's alerts with one fsync; the deliverer marks
    them done only after it returns, so a crash between write and fsync re-sends them.
    """

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, item: OutboxItem) -> None:
        await self.send_many([item])

    async def send_many(self, items: Sequence[OutboxItem]) -> None:
        if not items:
            return
        try:
            await asyncio.to_thread(append_lines, self.path, [i.payload for i in items])
        except OSError as e:
            what = (f"alert {items[0].alert_id}" if len(items) == 1
                    else f"{len(items)} alerts ({items[0].alert_id} ...)")
            raise SinkError(f"jsonl sink {self.path}: cannot append {what}: "
                            f"{e.strerror or e}") from e

    async def aclose(self) -> None:
        return None


_PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[3])) then
  local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[2]), '*',
                           'id', ARGV[4], 'event', ARGV[5], 'payload', ARGV[1])
  redis.call('PUBLISH', ARGV[6], ARGV[1])
  return entry
end
return false
"""


class RedisSink:
    """``XADD`` to a capped stream and ``PUBLISH`` to a channel, once per alert id."""

    name = "redis"

    def __init__(
        self, url: str, *, channel: str, stream: str, maxlen: int,
        dedup_ttl_seconds: int = 7 * 86400,
    ) -> None:
        self.url = url
        self.channel = channel
        self.stream = stream
        self.maxlen = maxlen
        self.dedup_ttl = dedup_ttl_seconds
        self.client: aioredis.Redis = connect(
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
        self._script = self.client.register_script(_PUBLISH_ONCE)

    async def send(self, item: OutboxItem) -> None:
        from redis.exceptions import RedisError

        try:
            event = json.loads(item.payload).get("event", "")
            await self._script(
                keys=[f"{self.stream}:sent:{item.alert_id}", self.stream],
                args=[item.payload, self.maxlen, self.dedup_ttl, item.alert_id, event,
                      self.channel],
            )
        except (RedisError, OSError) as e:
            raise SinkError(f"redis sink {redact_url(self.url)}: alert {item.alert_id} not "
                            f"delivered: {type(e).__name__}: {e}") from e

    async def aclose(self) -> None:
        from redis.exceptions import RedisError

        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()
