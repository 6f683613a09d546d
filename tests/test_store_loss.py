"""A Redis store that loses its data under a running daemon: the daemon notices and polls on.

Redis restarted without persistence, ``FLUSHALL``, eviction or a failover to an empty replica
all leave the store empty while the daemon keeps running. The feed schedule is written only
at start and on a reload, so without a check nothing would ever be due again. These tests run
the real service in-process against a throwaway redis-server of their own (flushed and
restarted at will) and a loopback feed, and count the feed's requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from monitor.config import load_settings
from monitor.service import Service
from monitor.store.keys import Keys
from tests.support.daemon_config import daemon_config
from tests.support.feed_server import FeedServer
from tests.support.redis_server import RedisServer
from tests.test_e2e import rss

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        srv.set("/a.xml", rss([]))
        yield srv


@pytest.fixture
async def service(tmp_path: Path, own_redis: RedisServer,
                  feeds: FeedServer) -> AsyncIterator[Service]:
    config = daemon_config(tmp_path, feeds.url("/a.xml"), store=f"  url: {own_redis.url}\n",
                           poll="  parse_workers: 1\n")
    svc = Service(load_settings(config, env={}))
    await svc.start()
    try:
        yield svc
    finally:
        await svc.close()


async def poll_round(svc: Service) -> int:
    """One tick of the poll job, waited out: how many feeds it polled."""
    started = await svc.poll_due()
    while svc.inflight:
        await asyncio.wait(set(svc.inflight))
    return started


def flushall(server: RedisServer) -> None:
    with redis.Redis.from_url(server.url) as client:
        client.flushall()


async def test_a_flushed_store_gets_its_feeds_back_at_the_next_maintenance(
        service: Service, own_redis: RedisServer, feeds: FeedServer, lines: list[str]) -> None:
    assert await poll_round(service) == 1
    assert feeds.hits("/a.xml") == 1
    assert await poll_round(service) == 0   # polled: not due again for a while

    flushall(own_redis)
    assert await poll_round(service) == 0   # the store answers, but nothing is scheduled
    await service.maintenance()
    warned = [x for x in lines if x.startswith("WARNING") and "re-registered" in x]
    assert len(warned) == 1, lines
    assert warned[0].startswith("WARNING the store lost its data")
    assert "seen articles, stories and queued alerts it held are gone" in warned[0]
    assert warned[0].endswith("1 feed(s) re-registered, due now")
    # the story change feed counts from one again: this instance reads it from the start
    assert service.ingestor is not None and service.ingestor._cursor is None
    assert await poll_round(service) == 1
    assert feeds.hits("/a.xml") == 2

    await service.maintenance()             # nothing lost since: nothing to say or redo
    assert len([x for x in lines if "re-registered" in x]) == 1
    assert await poll_round(service) == 0


async def test_a_schedule_lost_alone_is_named_as_such(
        service: Service, own_redis: RedisServer, feeds: FeedServer, lines: list[str]) -> None:
    assert await poll_round(service) == 1
    with redis.Redis.from_url(own_redis.url) as client:
        client.delete(Keys("news-monitor").feeds_due)   # evicted alone, say
    await service.maintenance()
    warned = [x for x in lines if x.startswith("WARNING")]
    assert warned == ["WARNING the store lost the feed schedule (a Redis restarted without "
                      "persistence, flushed, evicted or failed over to an empty replica?): "
                      "1 feed(s) re-registered, due now"]
    assert await poll_round(service) == 1


async def test_a_redis_back_empty_after_an_outage_is_polled_again_without_waiting(
        service: Service, own_redis: RedisServer, feeds: FeedServer, lines: list[str]) -> None:
    assert await poll_round(service) == 1
    own_redis.stop()
    assert await poll_round(service) == 0   # claims fail: polling paused
    own_redis.start()                       # same port, no persistence: empty
    await poll_round(service)               # claims work again, and the schedule is checked
    assert any("polling resumed" in x for x in lines)
    assert any("re-registered" in x for x in lines)
    assert await poll_round(service) == 1
    assert feeds.hits("/a.xml") == 2


async def test_the_check_changes_nothing_on_the_embedded_store(
        tmp_path: Path, feeds: FeedServer, lines: list[str]) -> None:
    config = daemon_config(tmp_path, feeds.url("/a.xml"), poll="  parse_workers: 1\n")
    svc = Service(load_settings(config, env={}))
    await svc.start()
    try:
        assert await poll_round(svc) == 1
        await svc.maintenance()
        assert await poll_round(svc) == 0       # its due time was left alone
        assert not [x for x in lines if x.startswith("WARNING")], lines
    finally:
        await svc.close()
