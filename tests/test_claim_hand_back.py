"""A poll the store could not record does not keep its feed claimed for the whole lease.

Redis stops while a feed is being fetched: the poll's result cannot be saved, and its claim
(``poll.lease``) would keep the feed from being polled for minutes after Redis is back.
The real service runs in-process against a throwaway redis-server of its own (with AOF,
so it comes back with its data) and loopback feeds, on a clock the test moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.models import utcnow
from monitor.service import Service
from monitor.store.redis import RedisStore
from tests.support.daemon_config import daemon_config
from tests.support.feed_server import FeedServer
from tests.support.redis_server import RedisServer
from tests.test_e2e import rss

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

SLOW = 0.01   # seconds per byte: an empty feed takes about 2.5 s to fetch


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        srv.set("/a.xml", rss([]), drip=SLOW)
        yield srv


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def one_feed(tmp_path: Path, own_redis_persistent: RedisServer, feeds: FeedServer,
                   clock: Clock) -> AsyncIterator[Service]:
    """The daemon on one slow feed; its lease (an hour) is far longer than min_interval."""
    config = daemon_config(tmp_path, feeds.url("/a.xml"),
                           store=f"  url: {own_redis_persistent.url}\n",
                           poll="  parse_workers: 1\n  lease: 1h\n")
    svc = Service(load_settings(config, env={}), clock=clock)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.close()


async def settle(svc: Service) -> None:
    while svc.inflight:
        await asyncio.wait(set(svc.inflight))


async def poll_round(svc: Service) -> int:
    """One tick of the poll job, waited out: how many feeds it polled."""
    started = await svc.poll_due()
    await settle(svc)
    return started


async def lose_a_poll(svc: Service, own_redis_persistent: RedisServer, feeds: FeedServer) -> None:
    """Stop Redis while feed A is being fetched; Redis back, with its data."""
    own_redis_persistent.stop()
    feeds.set("/a.xml", rss([]))   # later polls are quick (the one under way drips on)
    await settle(svc)
    assert list(svc.unrecorded) == [feeds.url("/a.xml")]
    own_redis_persistent.start()


async def test_a_lost_poll_is_due_again_min_interval_after_it_not_after_the_lease(
        one_feed: Service, own_redis_persistent: RedisServer, feeds: FeedServer, clock: Clock,
        lines: list[str]) -> None:
    svc = one_feed
    assert await svc.poll_due() == 1
    await lose_a_poll(svc, own_redis_persistent, feeds)
    assert any("store unavailable, feed will be retried" in x for x in lines)
    assert await poll_round(svc) == 0     # the store answers: the claim is handed back ...
    clock.advance(seconds=110)
    assert await poll_round(svc) == 0     # ... due poll.min_interval (2 min) after the poll
    clock.advance(seconds=11)             # (the lease would hold it for an hour)
    assert await poll_round(svc) == 1
    assert feeds.hits("/a.xml") == 2
    assert not svc.unrecorded
    assert any("store available again" in x and "polls recorded again" in x for x in lines)


async def test_a_claim_another_instance_took_since_is_left_alone(
        one_feed: Service, own_redis_persistent: RedisServer, feeds: FeedServer,
        clock: Clock) -> None:
    svc = one_feed
    assert await svc.poll_due() == 1
    await lose_a_poll(svc, own_redis_persistent, feeds)
    claim = svc.unrecorded[feeds.url("/a.xml")]
    # Another instance whose clock is ahead sees the lease run out, and claims A.
    async with RedisStore(own_redis_persistent.url) as other:
        taken = await other.claim_due(claim.until + timedelta(seconds=1), 3600, 10)
        assert [s.url for s in taken] == [feeds.url("/a.xml")]
        assert await poll_round(svc) == 0
        assert not svc.unrecorded
        # Its claim stands: A is not due for anyone, here or there.
        clock.advance(minutes=10)
        assert await poll_round(svc) == 0
        assert await other.claim_due(claim.until + timedelta(seconds=2), 3600, 10) == []
    assert feeds.hits("/a.xml") == 1
