"""Several instances, one outbox: two Deliverers on two RedisStores of one Redis.

Each Deliverer has its own sinks, as two daemon processes would: the webhook is one
receiver (a real loopback HTTP server), the JSONL files and stdout are each instance's
own. Only the store is shared.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from monitor.alerts.delivery import Deliverer
from monitor.alerts.sinks import JsonlSink, Sink, StdoutSink
from monitor.alerts.webhook import WebhookSink
from monitor.errors import SinkError
from monitor.store.base import OutboxItem
from monitor.store.keys import Keys
from monitor.store.redis import RedisStore
from tests.support.http_sink import HttpSink

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

T0 = datetime(2025, 3, 11, 12, 0, tzinfo=UTC)
PREFIX = "nm-delivery-shared"
SINKS = ("webhook:desk", "jsonl", "stdout")


def alerts(sink: str, count: int) -> list[OutboxItem]:
    """Alerts of three stories in turn, each story's ``story.new`` first, a µs apart."""
    out = []
    for n in range(count):
        payload = json.dumps({"id": f"a_{n:02d}", "event": "story.new" if n < 3
                              else "story.updated", "story": {"id": f"s{n % 3}"}})
        out.append(OutboxItem(alert_id=f"a_{n:02d}", sink=sink, payload=payload,
                              created_at=T0 + timedelta(microseconds=n)))
    return out


def ids(count: int) -> list[str]:
    return [f"a_{n:02d}" for n in range(count)]


@pytest.fixture
def rx() -> Iterator[HttpSink]:
    with HttpSink() as server:
        yield server


class Instance:
    """One daemon's delivery side: its own store connection and its own sinks."""

    def __init__(self, redis_url: str, rx: HttpSink, jsonl: Path, **kw: object) -> None:
        self.store = RedisStore(redis_url, prefix=PREFIX)
        self.stdout = io.StringIO()
        sinks: dict[str, Sink] = {
            "webhook:desk": WebhookSink("desk", rx.url("/desk"), timeout=5),
            "jsonl": JsonlSink(jsonl),
            "stdout": StdoutSink("json", self.stdout),
        }
        self.jsonl = jsonl
        self.deliverer = Deliverer(self.store, sinks, retry_min=timedelta(seconds=10),
                                   retry_max=timedelta(minutes=1), **kw)  # type: ignore[arg-type]

    def written(self) -> tuple[list[str], list[str]]:
        """Alert ids in this instance's JSONL file and on its stdout, in order."""
        lines = self.jsonl.read_text().splitlines() if self.jsonl.exists() else []
        return ([json.loads(x)["id"] for x in lines],
                [json.loads(x)["id"] for x in self.stdout.getvalue().splitlines()])

    async def __aenter__(self) -> Instance:
        await self.store.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.deliverer.aclose()
        await self.store.close()


async def test_two_instances_deliver_each_alert_to_each_sink_once_and_in_order(
        redis_url: str, rx: HttpSink, tmp_path: Path, logs: list[str]) -> None:
    rx.script("/desk", 200, delay=0.01)   # a receiver that takes a moment: passes overlap
    count = 40
    async with Instance(redis_url, rx, tmp_path / "a.jsonl", batch=4) as a, \
            Instance(redis_url, rx, tmp_path / "b.jsonl", batch=4) as b:
        await a.store.outbox_put([i for s in SINKS for i in alerts(s, count)])

        async def deliver(inst: Instance) -> None:
            later = T0 + timedelta(minutes=1)
            for _ in range(500):
                await inst.deliverer.deliver_due(later)
                if not await inst.store.outbox_depth():
                    return
                await asyncio.sleep(0)
            raise AssertionError("the outbox did not drain")

        await asyncio.gather(deliver(a), deliver(b))
        posted = [r.headers["x-news-monitor-alert-id"] for r in rx.received("/desk")]
        assert posted == ids(count)            # once each, in queue order
        (a_file, a_out), (b_file, b_out) = a.written(), b.written()
        for mine, theirs in ((a_file, b_file), (a_out, b_out)):
            assert sorted(mine + theirs) == ids(count)   # every alert once, on one instance
            assert mine == sorted(mine) and theirs == sorted(theirs)  # each in order
    assert not [x for x in logs if "outbox unavailable" in x]  # a held sink is no outage


async def test_an_alert_one_instance_failed_to_send_holds_the_sink_back_for_the_other(
        redis_url: str, rx: HttpSink, tmp_path: Path) -> None:
    rx.script("/desk", 503, 200)
    async with Instance(redis_url, rx, tmp_path / "a.jsonl") as a, \
            Instance(redis_url, rx, tmp_path / "b.jsonl") as b:
        await a.store.outbox_put(alerts("webhook:desk", 5))
        assert (await a.deliverer.deliver_due(T0 + timedelta(seconds=1))).failed == 1
        assert (await b.deliverer.deliver_due(T0 + timedelta(seconds=5))).sent == 0
        assert (await b.deliverer.deliver_due(T0 + timedelta(seconds=11))).sent == 5
    posted = [r.headers["x-news-monitor-alert-id"] for r in rx.received("/desk")]
    assert posted == ["a_00", *ids(5)]


async def test_a_sink_another_instance_is_delivering_to_is_left_to_it(
        redis_url: str, rx: HttpSink, tmp_path: Path, logs: list[str]) -> None:
    async with Instance(redis_url, rx, tmp_path / "a.jsonl") as a, \
            RedisStore(redis_url, prefix=PREFIX) as other:
        await a.store.outbox_put(alerts("webhook:desk", 3) + alerts("jsonl", 3))
        async with other.exclusive("outbox:webhook:desk", 30):
            stats = await a.deliverer.deliver_due(T0 + timedelta(seconds=1))
        assert (stats.sent, stats.failed) == (3, 0)      # the JSONL file's, not the webhook's
        assert rx.received("/desk") == []
        assert a.written()[0] == ids(3)
        assert await a.store.outbox_depth() == {"webhook:desk": 3}
        assert (await a.deliverer.deliver_due(T0 + timedelta(seconds=2))).sent == 3
    assert not [x for x in logs if "outbox unavailable" in x]


async def test_a_pass_ends_well_within_its_lease(
        redis_url: str, rx: HttpSink, tmp_path: Path) -> None:
    # Another instance may take the sink once the lease runs out: the holder must be done
    # by then. It starts no send after a third of the lease (1 s here) ...
    rx.script("/desk", 200, delay=0.4)
    async with Instance(redis_url, rx, tmp_path / "a.jsonl", lease=timedelta(seconds=3)) as a:
        await a.store.outbox_put(alerts("webhook:desk", 6))
        stats = await a.deliverer.deliver_due(T0 + timedelta(seconds=1))
        assert 0 < stats.sent < 6 and stats.failed == 0
        left = await a.store.outbox_due("webhook:desk", T0 + timedelta(seconds=1), 10)
        assert [i.alert_id for i in left] == ids(6)[stats.sent:]
        # ... and cuts off one still running at two thirds: a failure, retried later.
        rx.script("/desk", 200, delay=2.0)
        stats = await a.deliverer.deliver_due(T0 + timedelta(seconds=2))
        assert (stats.sent, stats.failed) == (0, 1)
        [head, *_] = await a.store.outbox_due("webhook:desk", T0 + timedelta(minutes=1), 10)
        assert head.attempts == 1 and "delivery lease" in (head.last_error or "")


class HeldSink:
    """A sink whose first send waits until the test lets it go: a pass stalled mid-send.

    It stands for a receiver (or an event loop) slow enough that the pass outlives its
    lease; the test decides when, instead of racing a timer. ``fail``: that send then
    fails, so the pass has a retry to record rather than an acknowledgement.
    """

    name = "webhook:held"

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.started = asyncio.Event()
        self.go = asyncio.Event()
        self.took: list[str] = []

    async def send(self, item: OutboxItem) -> None:
        if not self.started.is_set():
            self.started.set()
            await self.go.wait()
            if self.fail:
                raise SinkError("sink webhook:held: timed out")
        self.took.append(item.alert_id)

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("fail", [False, True], ids=["taken", "failed"])
async def test_a_pass_that_lost_its_lease_leaves_the_sink_to_the_new_holder(
        redis_url: str, logs: list[str], fail: bool) -> None:
    sink, lease = "webhook:held", "outbox:webhook:held"
    later = T0 + timedelta(minutes=1)
    held = HeldSink(fail=fail)
    async with RedisStore(redis_url, prefix=PREFIX) as a_store, \
            RedisStore(redis_url, prefix=PREFIX) as b_store:
        a = Deliverer(a_store, {sink: held}, retry_min=timedelta(seconds=10),
                      retry_max=timedelta(minutes=1))
        await a_store.outbox_put(alerts(sink, 3))
        stalled = asyncio.create_task(a.deliver_due(later))
        await held.started.wait()
        client = redis.Redis.from_url(redis_url)
        try:
            client.delete(Keys(PREFIX).lock(lease))       # the lease ran out meanwhile ...
        finally:
            client.close()
        async with b_store.exclusive(lease, 30, wait_seconds=0):   # ... and B took the sink
            held.go.set()
            await stalled
            # A settled nothing: the head is as it was, for B to send (again).
            head = await b_store.outbox_due(sink, later, 10)
            assert [(i.alert_id, i.attempts) for i in head] == [(x, 0) for x in ids(3)]
        lost = [x for x in logs if "outlived its lease" in x]
        assert len(lost) == 1 and f"sink {sink}:" in lost[0] and "WARNING" in lost[0], logs
        assert not [x for x in logs if "outbox unavailable" in x]   # the store is fine
        # A kept no memory of that pass (no acknowledgement owed, no retry hold): once
        # the sink is free its next pass starts again from the head, at least once.
        stats = await a.deliver_due(later)
        assert (stats.sent, stats.failed) == (3, 0)
        assert held.took == ids(1)[: 0 if fail else 1] + ids(3)
        assert await b_store.outbox_depth() == {}
