"""The fetcher against a real HTTP server on 127.0.0.1: validators, limits, redirects, errors."""

from __future__ import annotations

import gzip
import os
import tracemalloc
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from monitor.errors import FetchError
from monitor.fetch import http
from monitor.fetch.decode import BoundedDecoder, DecodeError
from monitor.fetch.http import Fetcher, FetchLimits
from tests.support.feed_server import LOOPBACK, TRANSPORTS, FeedServer, has_transport, http_date

pytestmark = pytest.mark.anyio

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>T</title><link>http://example.com/</link>
<item><title>Hello</title><link>http://example.com/a</link><guid>a</guid></item>
</channel></rss>"""

LIMITS = FetchLimits(total_timeout=3.0, connect_timeout=2.0, read_timeout=2.0,
                     max_bytes=1024 * 1024, trust_env=False, allow_networks=LOOPBACK)


@pytest.fixture(autouse=True, params=TRANSPORTS)
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on each ``poll.transport``: the behaviour must not depend on it."""
    name = str(request.param)
    if not has_transport(name):
        pytest.skip(f"{name} transport not installed")
    real = http.make_transport
    monkeypatch.setattr(http, "make_transport",
                        lambda _name, limits, policy: real(name, limits, policy))
    return name


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        yield srv


async def _fetch(url: str, limits: FetchLimits = LIMITS, **kw: str | None) -> object:
    async with Fetcher(limits) as f:
        return await f.fetch(url, **kw)  # type: ignore[arg-type]


async def _error(url: str, limits: FetchLimits = LIMITS, **kw: str | None) -> FetchError:
    with pytest.raises(FetchError) as info:
        await _fetch(url, limits, **kw)
    return info.value


def _gzip_bomb(decoded: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1024 * 1024)
    parts = [c.compress(block) for _ in range(decoded // len(block))]
    parts.append(c.flush())
    return b"".join(parts)


async def test_200_then_304_costs_no_body(server: FeedServer) -> None:
    server.set("/f.xml", RSS, last_modified=http_date(1_700_000_000))
    async with Fetcher(LIMITS) as f:
        first = await f.fetch(server.url("/f.xml"))
        assert first.status == 200
        assert first.body == RSS
        assert first.etag
        assert first.last_modified
        second = await f.fetch(server.url("/f.xml"), etag=first.etag,
                               last_modified=first.last_modified)
    assert second.status == 304
    assert second.body is None
    assert second.etag == first.etag  # validators survive a 304
    sent = server.requests("/f.xml")[1].headers
    assert sent["if-none-match"] == first.etag
    assert sent["if-modified-since"] == first.last_modified
    assert server.hits("/f.xml") == 2


async def test_if_modified_since_alone(server: FeedServer) -> None:
    server.set("/lm.xml", RSS, etag=None, last_modified=http_date(1_700_000_000))
    res = await _fetch(server.url("/lm.xml"), last_modified=http_date(1_700_000_100))
    assert res.status == 304  # type: ignore[attr-defined]


async def test_keepalive_reuses_one_connection(server: FeedServer) -> None:
    server.set("/k.xml", RSS)
    async with Fetcher(LIMITS) as f:
        for _ in range(5):
            assert (await f.fetch(server.url("/k.xml"))).body == RSS
    assert server.hits("/k.xml") == 5
    assert server.connections == 1


async def test_user_agent_and_accept_sent(server: FeedServer) -> None:
    server.set("/ua.xml", RSS)
    limits = FetchLimits(user_agent="nm-test/1 (+https://example.org/contact)",
                         trust_env=False, allow_networks=LOOPBACK)
    await _fetch(server.url("/ua.xml"), limits)
    headers = server.requests("/ua.xml")[0].headers
    assert headers["user-agent"] == "nm-test/1 (+https://example.org/contact)"
    assert "application/rss+xml" in headers["accept"]
    assert "gzip" in headers["accept-encoding"]


async def test_gzip_body_decoded(server: FeedServer) -> None:
    server.set("/gz.xml", RSS, gzip=True)
    res = await _fetch(server.url("/gz.xml"))
    assert res.body == RSS  # type: ignore[attr-defined]


async def test_deadline_enforced_on_drip_server(server: FeedServer) -> None:
    # 200 bytes at one per 0.05 s = 10 s; every single read is fast, the whole is not
    server.set("/drip.xml", RSS[:200], drip=0.05)
    limits = FetchLimits(total_timeout=0.5, read_timeout=5.0,
                         trust_env=False, allow_networks=LOOPBACK)
    err = await _error(server.url("/drip.xml"), limits)
    assert err.kind == "deadline"
    assert err.feed == server.url("/drip.xml")


async def test_gzip_bomb_stopped_at_cap_without_big_allocation(server: FeedServer) -> None:
    bomb = _gzip_bomb(64 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024
    server.set("/bomb.xml", bomb, headers={"Content-Encoding": "gzip"})
    limits = FetchLimits(max_bytes=1024 * 1024, trust_env=False, allow_networks=LOOPBACK)
    tracemalloc.start()
    try:
        err = await _error(server.url("/bomb.xml"), limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.kind == "too_large"
    # the body was ~1 MB compressed; decoding stopped near the 1 MiB cap, not at 64 MiB
    assert peak < 12 * 1024 * 1024


async def test_identity_body_over_cap(server: FeedServer) -> None:
    server.set("/big.xml", b"x" * 5000)
    limits = FetchLimits(max_bytes=4096, trust_env=False, allow_networks=LOOPBACK)
    err = await _error(server.url("/big.xml"), limits)
    assert err.kind == "too_large"


async def test_redirect_followed_and_permanence_recorded(server: FeedServer) -> None:
    server.set("/old", status=301, headers={"Location": "/mid"})
    server.set("/mid", status=308, headers={"Location": server.url("/new.xml")})
    server.set("/new.xml", RSS)
    res = await _fetch(server.url("/old"))
    assert res.body == RSS  # type: ignore[attr-defined]
    assert res.final_url == server.url("/new.xml")  # type: ignore[attr-defined]
    assert res.permanent_redirect == server.url("/new.xml")  # type: ignore[attr-defined]


async def test_temporary_redirect_is_not_permanent(server: FeedServer) -> None:
    server.set("/old", status=301, headers={"Location": "/tmp"})
    server.set("/tmp", status=302, headers={"Location": "/new.xml"})
    server.set("/new.xml", RSS)
    res = await _fetch(server.url("/old"))
    assert res.final_url == server.url("/new.xml")  # type: ignore[attr-defined]
    assert res.permanent_redirect is None  # type: ignore[attr-defined]


async def test_no_redirect_no_permanent(server: FeedServer) -> None:
    server.set("/plain.xml", RSS)
    res = await _fetch(server.url("/plain.xml"))
    assert res.permanent_redirect is None  # type: ignore[attr-defined]


async def test_redirect_loop(server: FeedServer) -> None:
    server.set("/a", status=302, headers={"Location": "/b"})
    server.set("/b", status=302, headers={"Location": "/a"})
    err = await _error(server.url("/a"))
    assert err.kind == "redirect_loop"
    assert server.hits("/a") == 1
    assert server.hits("/b") == 1


async def test_too_many_redirects(server: FeedServer) -> None:
    for i in range(10):
        server.set(f"/r{i}", status=307, headers={"Location": f"/r{i + 1}"})
    err = await _error(server.url("/r0"), FetchLimits(max_redirects=3,
                                                      trust_env=False, allow_networks=LOOPBACK))
    assert err.kind == "too_many_redirects"
    assert server.hits("/r4") == 0


async def test_redirect_to_other_scheme_refused(server: FeedServer) -> None:
    server.set("/x", status=302, headers={"Location": "file:///etc/passwd"})
    err = await _error(server.url("/x"))
    assert err.kind == "protocol"


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after"),
    [
        (429, {"Retry-After": "120"}, "rate_limited", 120.0),
        (429, {}, "rate_limited", None),
        (503, {"Retry-After": "30"}, "rate_limited", 30.0),
        (503, {}, "http_5xx", None),
        (500, {}, "http_5xx", None),
        (404, {}, "http_4xx", None),
        (403, {}, "http_4xx", None),
        (410, {}, "gone", None),
    ],
)
async def test_status_errors(
    server: FeedServer, status: int, headers: dict[str, str], kind: str,
    retry_after: float | None,
) -> None:
    server.set("/s", b"nope", status=status, headers=headers)
    err = await _error(server.url("/s"))
    assert err.kind == kind
    assert err.status == status
    assert err.retry_after == retry_after


async def test_retry_after_http_date(server: FeedServer) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    server.set("/busy", status=429, headers={"Retry-After": http_date(when.timestamp())})
    err = await _error(server.url("/busy"))
    assert err.kind == "rate_limited"
    assert err.retry_after is not None
    assert 3000 < err.retry_after <= 3600


async def test_connection_refused_is_connect() -> None:
    srv = FeedServer()
    url = srv.url("/gone")
    srv.stop()  # the port is now closed
    err = await _error(url)
    assert err.kind == "connect"


async def test_dropped_connection_is_an_error(server: FeedServer) -> None:
    server.set("/drop", close=True)
    err = await _error(server.url("/drop"))
    assert err.kind in ("network", "protocol")


async def test_bad_url_is_wrapped() -> None:
    err = await _error("ftp://example.com/feed")
    assert err.kind == "bad_url"


async def test_corrupt_gzip_is_protocol(server: FeedServer) -> None:
    server.set("/bad.gz", b"\x1f\x8b\x08\x00garbage-not-gzip", headers={"Content-Encoding": "gzip"})
    err = await _error(server.url("/bad.gz"))
    assert err.kind == "protocol"


async def test_unknown_encoding_is_protocol(server: FeedServer) -> None:
    server.set("/z", b"abc", headers={"Content-Encoding": "compress"})
    err = await _error(server.url("/z"))
    assert err.kind == "protocol"


async def test_bogus_encoding_label_is_identity(server: FeedServer) -> None:
    server.set("/u", RSS, headers={"Content-Encoding": "UTF-8"})
    res = await _fetch(server.url("/u"))
    assert res.body == RSS  # type: ignore[attr-defined]


async def test_mock_transport_swappable() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=RSS, headers={"ETag": '"x"'})

    async with Fetcher(LIMITS, transport=httpx.MockTransport(handler)) as f:
        res = await f.fetch("https://feeds.example.org/rss", etag='"old"')
    assert res.body == RSS
    assert res.etag == '"x"'
    assert seen[0].headers["if-none-match"] == '"old"'


async def test_unexpected_transport_exception_is_wrapped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise KeyError("boom")

    async with Fetcher(LIMITS, transport=httpx.MockTransport(handler)) as f:
        with pytest.raises(FetchError) as info:
            await f.fetch("https://feeds.example.org/rss")
    assert info.value.kind == "unexpected"


# -- the decoder alone ---------------------------------------------------------

def test_decoder_steps_are_bounded() -> None:
    bomb = _gzip_bomb(8 * 1024 * 1024)
    d = BoundedDecoder("gzip", step=4096)
    sizes = [len(out) for out in d.feed(bomb)]
    assert max(sizes) <= 4096
    assert sum(sizes) == 8 * 1024 * 1024


def test_decoder_multi_member_gzip_and_deflate_variants() -> None:
    two = gzip.compress(b"abc") + gzip.compress(b"def")
    assert b"".join(BoundedDecoder("gzip").feed(two)) == b"abcdef"
    assert b"".join(BoundedDecoder("deflate").feed(zlib.compress(b"zlib"))) == b"zlib"
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw_body = raw.compress(b"raw deflate") + raw.flush()
    assert b"".join(BoundedDecoder("deflate").feed(raw_body)) == b"raw deflate"
    chained = gzip.compress(zlib.compress(b"both"))
    assert b"".join(BoundedDecoder("deflate, gzip").feed(chained)) == b"both"


def test_decoder_truncated_stream() -> None:
    body = gzip.compress(os.urandom(5000))[:-100]
    d = BoundedDecoder("gzip")
    list(d.feed(body))
    with pytest.raises(DecodeError):
        list(d.flush())


def test_decoder_brotli_bounded() -> None:
    brotli = pytest.importorskip("brotli")
    body = brotli.compress(b"\0" * (4 * 1024 * 1024))
    d = BoundedDecoder("br", step=8192)
    sizes = [len(out) for out in d.feed(body)]
    # brotli stops growing its buffer once past the limit: bounded, though not exactly
    assert len(sizes) > 16
    assert max(sizes) <= 64 * 1024
    assert sum(sizes) == 4 * 1024 * 1024
