"""Feed discovery from a web page: advertised links, the URL itself, common paths."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.fetch.discover import FeedLink, discover, find_feed_links
from monitor.fetch.http import Fetcher, FetchLimits
from tests.support.feed_server import LOOPBACK, FeedServer

LIMITS = FetchLimits(trust_env=False, allow_networks=LOOPBACK, total_timeout=5.0)
RSS = b"<rss version='2.0'><channel><title>T</title><item><title>x</title></item></channel></rss>"
PAGE = b"""<!doctype html><html><head>
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/rss+xml" title="World" href="/world/rss.xml">
<link rel="Alternate" type="application/atom+xml; charset=utf-8" href="https://cdn.example/a.atom">
<link rel="alternate" type="text/html" href="/fr/">
<link rel="alternate" type="application/rss+xml" href="/world/rss.xml">
<link rel="alternate" type="application/rss+xml" href="javascript:void(0)">
</head><body><a href="/feed">not a link tag</a></body></html>"""


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        yield srv


def test_find_feed_links() -> None:
    assert find_feed_links(PAGE, "https://www.example.com/news/") == [
        FeedLink("https://www.example.com/world/rss.xml", "World", "application/rss+xml"),
        FeedLink("https://cdn.example/a.atom", None, "application/atom+xml"),
    ]


def test_find_feed_links_honours_base_tag() -> None:
    page = (b'<html><head><base href="https://static.example/x/">'
            b'<link rel="alternate" type="application/rss+xml" href="feed.xml"></head></html>')
    assert [link.url for link in find_feed_links(page, "https://example.com/")] == [
        "https://static.example/x/feed.xml"]


def test_find_feed_links_none() -> None:
    assert find_feed_links(b"<html><body>hello</body></html>", "https://example.com/") == []
    assert find_feed_links(b"\xff\xfe garbage", "https://example.com/") == []


@pytest.mark.anyio
async def test_discover_advertised(server: FeedServer) -> None:
    server.set("/", PAGE.replace(b"https://cdn.example/a.atom", b"/b.atom"),
               headers={"Content-Type": "text/html"})
    async with Fetcher(LIMITS) as f:
        found = await discover(f, server.url("/"))
    assert found == [server.url("/world/rss.xml"), server.url("/b.atom")]


@pytest.mark.anyio
async def test_discover_url_is_already_a_feed(server: FeedServer) -> None:
    server.set("/old", status=301, headers={"Location": "/rss.xml"})
    server.set("/rss.xml", RSS)
    async with Fetcher(LIMITS) as f:
        assert await discover(f, server.url("/old")) == [server.url("/rss.xml")]


@pytest.mark.anyio
async def test_discover_common_path(server: FeedServer) -> None:
    server.set("/", b"<html><body>no links</body></html>", headers={"Content-Type": "text/html"})
    server.set("/rss", b"<html>not a feed</html>", headers={"Content-Type": "text/html"})
    server.set("/rss.xml", RSS)
    async with Fetcher(LIMITS) as f:
        assert await discover(f, server.url("/")) == [server.url("/rss.xml")]
        assert await discover(f, server.url("/"), try_common_paths=False) == []
    assert server.hits("/feed") == 1  # tried in order, 404 skipped
    assert server.hits("/atom.xml") == 0  # stopped at the first feed


@pytest.mark.anyio
async def test_discover_nothing(server: FeedServer) -> None:
    server.set("/", b"<html></html>", headers={"Content-Type": "text/html"})
    async with Fetcher(LIMITS) as f:
        assert await discover(f, server.url("/")) == []
