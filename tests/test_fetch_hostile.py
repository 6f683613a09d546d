"""Hostile servers end to end: fetched from a loopback server, then parsed. One failed feed each."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from monitor.errors import FeedError, ParseError
from monitor.fetch.http import Fetcher, FetchLimits
from monitor.fetch.parse import ParsedFeed, parse_feed
from monitor.models import FeedSpec
from tests.support.feed_server import LOOPBACK, FeedServer

pytestmark = pytest.mark.anyio

LIMITS = FetchLimits(total_timeout=5.0, max_bytes=2 * 1024 * 1024,
                     trust_env=False, allow_networks=LOOPBACK)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        yield srv


async def poll(url: str) -> ParsedFeed:
    """What the service does for one feed, minus the store: fetch, then parse."""
    async with Fetcher(LIMITS) as f:
        res = await f.fetch(url)
    assert res.body is not None
    return parse_feed(res.body, FeedSpec(url=url), fetched_at=NOW, base_url=res.final_url,
                      content_type=res.headers.get("content-type"))


async def test_entity_bomb_over_the_wire(server: FeedServer) -> None:
    refs = "&big;" * 20000
    body = (f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY big "{"A" * 900}">\n]>\n'
            f'<rss version="2.0"><channel><title>Bomb</title><item><title>t</title>'
            f"<description>{refs}</description></item></channel></rss>").encode()
    server.set("/bomb.xml", body, gzip=True)
    parsed = await poll(server.url("/bomb.xml"))
    assert parsed.title == "Bomb"
    assert parsed.articles[0].summary == ""


@pytest.mark.parametrize("body", [os.urandom(3000), b"\xff\xfe" + os.urandom(999),
                                  b"<html><head><title>Moved</title></head></html>"])
async def test_garbage_is_one_parse_error(server: FeedServer, body: bytes) -> None:
    server.set("/junk", body, headers={"Content-Type": "text/html"})
    with pytest.raises(ParseError) as info:
        await poll(server.url("/junk"))
    assert info.value.feed == server.url("/junk")


async def test_failures_are_feed_errors_naming_the_feed(server: FeedServer) -> None:
    server.set("/500", b"oops", status=500)
    server.set("/ok.xml", b"<rss version='2.0'><channel><title>Fine</title>"
                          b"<item><title>x</title></item></channel></rss>")
    with pytest.raises(FeedError) as info:
        await poll(server.url("/500"))
    assert info.value.kind == "http_5xx"
    assert server.url("/500") in str(info.value)
    # the next feed is unaffected
    assert (await poll(server.url("/ok.xml"))).title == "Fine"


async def test_relative_links_resolve_against_final_url(server: FeedServer) -> None:
    server.set("/old", status=301, headers={"Location": "/feeds/new.xml"})
    server.set("/feeds/new.xml", b"<rss version='2.0'><channel><title>R</title><item>"
                                 b"<title>x</title><link>item/1</link></item></channel></rss>")
    parsed = await poll(server.url("/old"))
    assert parsed.articles[0].url == f"https://127.0.0.1:{server.port}/feeds/item/1"
