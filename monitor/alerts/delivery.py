"""Moves alerts from the durable outbox to the sinks, retrying each sink on its own.

An alert leaves a sink's queue only when that sink took it, so a sink that is
down (Redis restarting, disk full) delays its own alerts and nobody else's.
Retries back off exponentially from ``retry_min`` to ``retry_max``; a
receiver's ``Retry-After`` (:class:`~monitor.alerts.failures.SinkBusy`) pushes
the next attempt later still.

A sink gets its alerts in the order they were queued (a story's ``story.new``
before its updates): the store hands out only the head of a sink's queue
(``Store.outbox_due``), so while the oldest alert waits for its retry the later
ones wait behind it, and the retry goes first. The retry time is in the store, so a
restarted daemon keeps to it too. A pass stops at a sink's first failure.

A receiver that *refuses* an alert (:class:`~monitor.alerts.failures.SinkRejected`,
e.g. HTTP 401 or 422) is retried like the rest, logged at ERROR level, and
after ``give_up_after`` attempts the alert moves to the dead-letter file, so one
alert a receiver will never take holds its sink back for those attempts only. (Without
a dead-letter file, or while it cannot be written, the alert is retried forever,
never dropped, and its sink waits with it; the daemon always configures one.)

A batch sink (:class:`~monitor.alerts.sinks.BatchSink`, e.g. JSONL) takes all of
a pass's due items in one call (one write, one fsync), and they are acknowledged
together in one store round trip, only after the sink returned: a failure leaves
every one of them due.

Digest sinks (:class:`~monitor.alerts.digest.DigestSink`) take their due items
in batches: one message per closed period, and every alert of the batch is
acknowledged (or retried, or dead-lettered) together.

Several instances on one shared store (Redis) share every sink's queue, so each pass
over a sink holds the lease ``outbox:<sink>`` (``Store.exclusive``, not waited for: a
sink another instance is delivering to is left to it this pass). One instance at a
time reads the head of that queue, sends it and acknowledges it, so an alert goes to
a webhook, an Apprise target or the Redis stream once, in queue order, whichever
instance sends it; a crash between send and acknowledgement re-sends it (at least
once). The stdout and JSONL sinks are each instance's own but share one queue: an
alert appears on the stdout and in the JSONL file of the instance that delivered it
only. So that a holder never acts on a lease that ran out, a pass starts no send
after a third of the lease and cuts off a send still running at two thirds: that
send counts as failed and is retried (the lease is one minute, or six times the
longest sink timeout; a send normally takes far less). Should a pass outlive its
lease all the same (an event loop stalled past the cut-off), the store refuses its
acknowledgements and retry marks (``LeaseLost``: they are checked against the
lease's token in the same write), and the pass stops with one warning naming the
sink: what it sent stays queued for the instance that holds the sink now, which may
send it again (at least once, as across a crash).

A store that reads but cannot write (a full disk under SQLite) would otherwise make
every pass send the same alerts again, once a second, to webhooks that have no
de-duplication: what a sink took but the store could not acknowledge is remembered,
and that sink gets nothing more until the acknowledgement is written. A restart
meanwhile sends them once more (at least once, as always). Likewise a failed attempt
whose retry time the store could not record holds its sink back for that delay in
memory, instead of the receiver being tried again at every pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from loguru import logger

from monitor.alerts.deadletter import DeadLetters
from monitor.alerts.digest import DigestSink
from monitor.alerts.failures import SinkBusy, SinkRejected
from monitor.alerts.sinks import BatchSink, Sink
from monitor.errors import LeaseHeld, LeaseLost, SinkError, StoreError
from monitor.outage import Outage
from monitor.store.base import OutboxItem, Store

DIGEST_FETCH = 1000  # a digest sink reads further ahead: its open period waits in front
LEASE = timedelta(minutes=1)  # one pass over one sink, against other instances

T = TypeVar("T")


def retry_delay(attempts: int, minimum: timedelta, maximum: timedelta) -> timedelta:
    """Exponential backoff: ``minimum * 2**(attempts-1)``, capped at ``maximum``."""
    factor: int = 2 ** min(max(attempts - 1, 0), 30)
    delay: timedelta = minimum * factor
    return min(delay, maximum)


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    dead: int = 0


@dataclass(frozen=True)
class _Window:
    """Event-loop times bounding one pass over a sink under its lease (module docstring)."""

    start_by: float   # no send starts after this ...
    finish_by: float  # ... and none is still running after this

    @classmethod
    def of(cls, lease: timedelta) -> _Window:
        now, ttl = asyncio.get_running_loop().time(), lease.total_seconds()
        return cls(now + ttl / 3, now + 2 * ttl / 3)

    def closed(self) -> bool:
        return asyncio.get_running_loop().time() >= self.start_by


class Deliverer:
    def __init__(
        self, store: Store, sinks: Mapping[str, Sink], *, retry_min: timedelta,
        retry_max: timedelta, on_result: Callable[[str, bool], None] | None = None,
        batch: int = 100, dead_letters: DeadLetters | None = None, give_up_after: int = 5,
        lease: timedelta = LEASE,
    ) -> None:
        self.store = store
        self.sinks = dict(sinks)
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.on_result = on_result
        self.batch = batch
        self.dead_letters = dead_letters
        self.give_up_after = max(1, give_up_after)
        self.lease = lease
        # sink -> alert ids it took that the store could not mark done yet
        self._unacked: dict[str, list[str]] = {}
        # sink -> no attempt before this time (a retry time the store could not record)
        self._hold: dict[str, datetime] = {}
        # sink -> when its head's recorded retry is due: its queue is not read before (it
        # could only hand out nothing, the head blocking the rest, at up to a batch a pass)
        self._waiting: dict[str, datetime] = {}
        # sink -> failed attempts in a row the store could not record (so the hold grows)
        self._strikes: dict[str, int] = {}
        self.outage = Outage("outbox")
        self._wrote = False   # a write to the outbox went through in this pass

    def _delay(self, item: OutboxItem, error: SinkError, unrecorded: int = 0) -> timedelta:
        delay = retry_delay(item.attempts + 1 + unrecorded, self.retry_min, self.retry_max)
        if isinstance(error, SinkBusy) and error.retry_after is not None:
            # The receiver's own word, within reason: never more than a day.
            delay = max(delay, timedelta(seconds=min(error.retry_after, 86400.0)))
        return delay

    async def _failed(self, name: str, items: Sequence[OutboxItem], error: SinkError,
                      now: datetime, stats: DeliveryStats) -> None:
        """Record a failed attempt for ``items`` (one alert, or one digest's alerts)."""
        stats.failed += 1
        if self.on_result:
            self.on_result(name, False)
        attempts = max(i.attempts for i in items) + 1
        rejected = isinstance(error, SinkRejected)
        if rejected and self.dead_letters is not None and attempts >= self.give_up_after:
            await self._bury(name, items, error, now, stats)
            return
        delay = self._delay(items[0], error, self._strikes.get(name, 0))
        if rejected:
            logger.error("sink {} REFUSED {} alert(s) (attempt {} of {} before the dead-letter "
                         "file), retry in {:.1f}s: {}", name, len(items), attempts,
                         self.give_up_after, delay.total_seconds(), error)
        else:
            logger.warning("sink {} failed (attempt {}), retry in {:.1f}s: {}", name, attempts,
                           delay.total_seconds(), error)
        try:
            for item in items:
                await self.store.outbox_retry(name, item.alert_id, now + delay, str(error))
        except LeaseLost:
            raise   # the sink's new holder decides its retries now
        except StoreError:
            self._hold[name] = now + delay
            self._strikes[name] = self._strikes.get(name, 0) + 1
            raise
        self._strikes.pop(name, None)
        self._waiting[name] = now + delay
        self._wrote = True

    async def _bury(self, name: str, items: Sequence[OutboxItem], error: SinkError,
                    now: datetime, stats: DeliveryStats) -> None:
        assert self.dead_letters is not None
        for item in items:
            try:
                await self.dead_letters.add(item, str(error), now)
            except OSError as e:
                logger.error("sink {} refused alert {} and the dead-letter file {} is not "
                             "writable ({}): keeping it queued", name, item.alert_id,
                             self.dead_letters.path, e)
                try:
                    await self.store.outbox_retry(name, item.alert_id, now + self.retry_max,
                                                  str(error))
                except LeaseLost:
                    raise
                except StoreError:
                    self._hold[name] = now + self.retry_max
                    raise
                continue
            try:
                await self.store.outbox_done(name, item.alert_id)
            except LeaseLost:
                raise   # left queued for the new holder, which may bury it once more
            except StoreError:
                # In the file already: only the acknowledgement is tried again.
                self._unacked.setdefault(name, []).append(item.alert_id)
                raise
            self._wrote = True
            stats.dead += 1
            logger.error("sink {} refused alert {} {} times; moved to the dead-letter file {}: "
                         "{}", name, item.alert_id, item.attempts + 1, self.dead_letters.path,
                         error)

    async def _taken(self, name: str, items: Sequence[OutboxItem],
                     stats: DeliveryStats) -> None:
        stats.sent += len(items)
        self._strikes.pop(name, None)
        if self.on_result:
            self.on_result(name, True)
        try:
            if len(items) == 1:
                await self.store.outbox_done(name, items[0].alert_id)
            else:
                await self.store.outbox_done_many(name, [i.alert_id for i in items])
        except LeaseLost:
            raise   # not remembered: they stay queued for the new holder (at least once)
        except StoreError:
            # Sent but not acknowledged: held here, not sent again (``_ack_pending``).
            self._unacked.setdefault(name, []).extend(i.alert_id for i in items)
            raise
        self._wrote = True

    async def _ack_pending(self, name: str) -> None:
        """Write the acknowledgements the store refused before; raises while it still does."""
        ids = self._unacked.get(name)
        if not ids:
            return
        await self.store.outbox_done_many(name, ids)
        del self._unacked[name]
        self._wrote = True
        logger.info("sink {}: {} alert(s) it took while the store refused writes are "
                    "acknowledged now", name, len(ids))

    @staticmethod
    async def _send(name: str, send: Coroutine[Any, Any, T], window: _Window) -> T:
        """Await ``send``, cut off (a SinkError) if it is still running at ``finish_by``."""
        timeout = asyncio.timeout_at(window.finish_by)
        try:
            async with timeout:
                return await send
        except TimeoutError:
            if not timeout.expired():
                raise
            raise SinkError(f"sink {name}: still sending when its delivery lease was close to "
                            "running out; cut off, to be retried") from None

    async def _deliver_digest(self, name: str, sink: DigestSink, now: datetime,
                              stats: DeliveryStats, window: _Window) -> None:
        items = await self.store.outbox_due(name, now, max(self.batch, DIGEST_FETCH))
        for n, batch in enumerate(sink.ready(items, now)):
            if n and window.closed():
                return  # the rest waits for the next pass, in its order
            try:
                digest = await self._send(name, sink.send_batch(batch, now), window)
            except SinkError as e:
                await self._failed(name, batch.items, e, now, stats)
                return
            logger.info("sink {}: digest {} with {} alert(s) sent", name, digest,
                        len(batch.items))
            await self._taken(name, batch.items, stats)

    async def _deliver_each(self, name: str, sink: Sink, now: datetime,
                            stats: DeliveryStats, window: _Window) -> None:
        items = await self.store.outbox_due(name, now, self.batch)
        if isinstance(sink, BatchSink) and items:
            try:
                await self._send(name, sink.send_many(items), window)
            except SinkError as e:
                await self._failed(name, items, e, now, stats)
                return
            await self._taken(name, items, stats)
            return
        for n, item in enumerate(items):
            if n and window.closed():
                return  # the rest waits for the next pass, in its order
            try:
                await self._send(name, sink.send(item), window)
            except SinkError as e:
                await self._failed(name, [item], e, now, stats)
                return  # the sink is likely down: spare the rest of the queue this pass
            await self._taken(name, [item], stats)

    async def deliver_due(self, now: datetime) -> DeliveryStats:
        """One pass over every sink's due items. Never raises for a sink or store failure."""
        stats = DeliveryStats()
        self._wrote = False
        for name, sink in self.sinks.items():
            if max(self._hold.get(name, now), self._waiting.get(name, now)) > now:
                continue
            self._hold.pop(name, None)
            self._waiting.pop(name, None)
            try:
                async with self.store.exclusive(f"outbox:{name}", self.lease.total_seconds(),
                                                wait_seconds=0):
                    window = _Window.of(self.lease)
                    await self._ack_pending(name)
                    if isinstance(sink, DigestSink):
                        await self._deliver_digest(name, sink, now, stats, window)
                    else:
                        await self._deliver_each(name, sink, now, stats, window)
            except LeaseHeld:
                continue  # another instance is delivering to this sink right now
            except LeaseLost as e:
                logger.warning("sink {}: this delivery pass outlived its lease ({:g} s) and "
                               "another instance took the sink; what the pass sent but had "
                               "not acknowledged is left queued to it, which may send it "
                               "again: {}", name, self.lease.total_seconds(), e)
                continue
            except StoreError as e:
                self.outage.failed(e, "alerts wait")
                return stats
        # Reads work on a full disk: only a write that went through, with nothing left
        # held back, says the outbox works again.
        if self._wrote and not self._unacked and not self._hold:
            self.outage.recovered("alerts delivered again")
        return stats

    async def aclose(self) -> None:
        for sink in self.sinks.values():
            await sink.aclose()
