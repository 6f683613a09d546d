"""A Redis store that loses its data under a running daemon: the daemon notices and polls on.

Redis restarted without persistence, ``FLUSHALL``, eviction or a failover to an empty replica
all leave the store empty while the daemon keeps running. The feed schedule is written only
at start and on a reload, so without a check nothing would ever be due again; the daemon
checks at every poll tick. These tests run the real service in-process against a throwaway
redis-server of their own (flushed, restarted, or made to refuse writes at will) and a
loopback feed, and count the feed's requests; one runs the daemon's own loop and asks its
``/healthz`` over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
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


def flush_and_refuse_writes(server: RedisServer) -> None:
    """Back empty and refusing writes, as a failover to an empty replica that is still
    read-only: in one transaction, so no tick of the daemon runs in between."""
    with redis.Redis.from_url(server.url) as client, client.pipeline() as tx:
        tx.flushall()
        tx.config_set("min-replicas-to-write", 1)   # every write now fails (NOREPLICAS)
        tx.execute()


def take_writes(server: RedisServer) -> None:
    with redis.Redis.from_url(server.url) as client:
        client.config_set("min-replicas-to-write", 0)


def loss_warnings(lines: list[str]) -> list[str]:
    return [x for x in lines if x.startswith("WARNING the store lost its data")]


async def test_a_flushed_store_gets_its_feeds_back_at_the_next_poll_tick(
        service: Service, own_redis: RedisServer, feeds: FeedServer, lines: list[str]) -> None:
    assert await poll_round(service) == 1
    assert feeds.hits("/a.xml") == 1
    assert await poll_round(service) == 0   # polled: not due again for a while

    flushall(own_redis)
    # The store answers as if nothing happened; the tick notices, registers the feed
    # again and claims it at once, not a minute later at the maintenance.
    assert await poll_round(service) == 1
    warned = [x for x in lines if x.startswith("WARNING") and "re-registered" in x]
    assert len(warned) == 1, lines
    assert warned[0].startswith("WARNING the store lost its data")
    assert "seen articles, stories and queued alerts it held are gone" in warned[0]
    assert warned[0].endswith("1 feed(s) re-registered, due now")
    # the story change feed counts from one again: this instance reads it from the start
    assert service.ingestor is not None and service.ingestor._cursor is None
    assert feeds.hits("/a.xml") == 2
    assert (await service.health())[0]

    await service.maintenance()             # nothing lost since: nothing to say or redo
    assert len([x for x in lines if "re-registered" in x]) == 1
    assert await poll_round(service) == 0


async def test_a_store_back_empty_that_refuses_writes_is_unhealthy_until_its_feeds_are_back(
        service: Service, own_redis: RedisServer, feeds: FeedServer, lines: list[str]) -> None:
    assert await poll_round(service) == 1
    assert (await service.health())[0]

    flush_and_refuse_writes(own_redis)
    assert await poll_round(service) == 0       # noticed, but the feed cannot be listed again
    ok, detail = await service.health()
    assert not ok and detail["store"] is True   # it answers: only the loss is wrong
    reason = str(detail["reason"])
    assert reason.startswith("the store lost its data at ") and "nothing is polled" in reason
    errors = [x for x in lines if x.startswith("ERROR")]
    assert len(errors) == 1, lines
    assert "it lost its data and its feeds are not registered again yet" in errors[0]
    assert "NOREPLICAS" in errors[0]
    assert not loss_warnings(lines)             # said once, when the feeds are back

    assert await poll_round(service) == 0       # tried again at every tick, said once a minute
    assert len([x for x in lines if x.startswith("ERROR")]) == 1
    assert not (await service.health())[0]

    take_writes(own_redis)
    assert await poll_round(service) == 1       # listed again and claimed in the same tick
    assert feeds.hits("/a.xml") == 2
    ok, detail = await service.health()
    assert ok and "reason" not in detail and "store_data_lost_at" not in detail
    [warned] = loss_warnings(lines)
    assert warned.endswith("1 feed(s) re-registered, due now")
    assert any(x.startswith("WARNING store available again") for x in lines)


async def test_under_the_running_daemon_healthz_tells_the_loss_until_polling_resumes(
        tmp_path: Path, own_redis: RedisServer, feeds: FeedServer, lines: list[str]) -> None:
    config = daemon_config(tmp_path, feeds.url("/a.xml"), store=f"  url: {own_redis.url}\n",
                           poll="  parse_workers: 1\n  tick: 0.2s\n")
    config.write_text(config.read_text().replace("metrics:\n  enabled: false\n",
                                                 "metrics:\n  port: 0\n"))
    svc = Service(load_settings(config, env={}))
    await svc.start()
    run = asyncio.create_task(svc.run())
    try:
        async with httpx.AsyncClient(timeout=10) as http:

            async def healthz() -> httpx.Response:
                assert svc.web is not None and svc.web.port
                return await http.get(f"http://127.0.0.1:{svc.web.port}/healthz")

            async def until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
                for _ in range(600):        # a generous deadline; no assertion on time
                    if await check():
                        return
                    await asyncio.sleep(0.1)
                raise AssertionError(f"not seen: {what}\n" + "\n".join(lines))

            async def polled(n: int) -> bool:
                return feeds.hits("/a.xml") >= n

            async def status(code: int) -> bool:
                return svc.web is not None and (await healthz()).status_code == code

            await until("the first poll", lambda: polled(1))
            await until("/healthz 200", lambda: status(200))

            flush_and_refuse_writes(own_redis)
            await until("/healthz 503", lambda: status(503))
            body = (await healthz()).json()
            assert "the store lost its data" in body["reason"], body
            assert body["store"] is True and body["store_data_lost_at"]
            assert feeds.hits("/a.xml") == 1    # nothing to poll: the schedule is gone

            take_writes(own_redis)
            await until("the feed polled again", lambda: polled(2))
            await until("/healthz 200 again", lambda: status(200))
            assert "reason" not in (await healthz()).json()
        assert len(loss_warnings(lines)) == 1, lines
    finally:
        svc.stopping.set()
        await run
        await svc.close()


async def test_a_store_that_answers_but_refuses_claims_is_unhealthy_too(
        service: Service, own_redis: RedisServer, feeds: FeedServer) -> None:
    # Not a loss: the schedule is whole and the feed is due, but claiming it is a write.
    with redis.Redis.from_url(own_redis.url) as client:
        client.config_set("min-replicas-to-write", 1)
    assert await poll_round(service) == 0
    ok, detail = await service.health()
    assert not ok and detail["store"] is True
    assert detail["reason"] == "the store refuses claims: polling paused"
    take_writes(own_redis)
    assert await poll_round(service) == 1
    assert (await service.health())[0]


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
    assert not (await service.health())[0]
    own_redis.start()                       # same port, no persistence: empty
    assert await poll_round(service) == 1   # the schedule is checked, then claimed
    assert any("polling resumed" in x for x in lines)
    assert any("re-registered" in x for x in lines)
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
