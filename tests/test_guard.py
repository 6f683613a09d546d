"""SSRF guard: address classification (tables) and refusals over real loopback connections."""

from __future__ import annotations

import importlib.util
import ipaddress
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.errors import FetchError
from monitor.fetch.guard import AddressPolicy, BlockedAddress, numeric_address, refusal
from monitor.fetch.http import Fetcher, FetchLimits, user_agent
from monitor.fetch.transport import TransportName, httpx_transport
from tests.support.feed_server import LOOPBACK, FeedServer

BODY = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
HAS_AIOHTTP = importlib.util.find_spec("httpx_aiohttp") is not None
TRANSPORTS = [
    pytest.param("httpx", id="httpx"),
    pytest.param("aiohttp", id="aiohttp", marks=pytest.mark.skipif(
        not HAS_AIOHTTP, reason="httpx-aiohttp not installed")),
]


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("169.254.169.254", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("100.64.0.1", "shared (CGNAT)"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("2002:7f00:1::", "loopback, embedded in IPv6"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a00:1", "private, embedded in IPv6"),  # NAT64 of 10.0.0.1
    ("8.8.8.8", None),
    ("151.101.1.164", None),
    ("2a00:1450:4001:82a::200e", None),
    ("::ffff:8.8.8.8", None),
    ("64:ff9b::808:808", None),  # NAT64 of a public address: IPv6-only hosts need it
    ("2002:808:808::", None),
])
def test_refusal_table(address: str, reason: str | None) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


def test_allow_list_exempts_only_its_networks() -> None:
    policy = AddressPolicy.allowing("127.0.0.0/8", "10.20.0.0/16")
    assert policy.verdict("127.0.0.1") is None
    assert policy.verdict("::ffff:127.0.0.1") is None  # the same address on the wire
    assert policy.verdict("10.20.3.4") is None
    assert policy.verdict("10.21.0.1") == "private"
    assert policy.verdict("::1") == "loopback"  # IPv6 loopback is another network
    assert policy.verdict("169.254.169.254") == "cloud metadata"


def test_check_keeps_allowed_addresses_and_names_the_refused_one() -> None:
    policy = AddressPolicy()
    assert policy.check("mixed.example", ["10.0.0.1", "8.8.8.8"]) == ["8.8.8.8"]
    with pytest.raises(BlockedAddress) as info:
        policy.check("internal.example", ["10.0.0.1", "127.0.0.1"])
    assert info.value.host == "internal.example"
    assert info.value.address == "10.0.0.1"
    assert "private" in str(info.value)


@pytest.mark.parametrize(("host", "address"), [
    ("2130706433", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
    ("example.com", None),
    ("", None),
])
def test_numeric_forms_parse_without_dns(host: str, address: str | None) -> None:
    assert numeric_address(host) == address


@pytest.mark.parametrize(("base", "contact", "expected"), [
    ("news-monitor/0.1 (+https://x.org)", "mailto:ops@y.org",
     "news-monitor/0.1 (+https://x.org; mailto:ops@y.org)"),
    ("news-monitor/0.1 (+https://x.org)", "ops@y.org",
     "news-monitor/0.1 (+https://x.org; mailto:ops@y.org)"),
    ("news-monitor/0.1", "https://y.org/bot", "news-monitor/0.1 (+https://y.org/bot)"),
    ("news-monitor/0.1", None, "news-monitor/0.1"),
    ("news-monitor/0.1", "  ", "news-monitor/0.1"),
])
def test_user_agent_with_contact(base: str, contact: str | None, expected: str) -> None:
    assert user_agent(base, contact) == expected


# -- over the wire ------------------------------------------------------------------

@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        srv.set("/f.xml", BODY)
        yield srv


def _limits(transport: TransportName, *allow: str) -> FetchLimits:
    return FetchLimits(trust_env=False, total_timeout=5.0, allow_networks=allow,
                       transport=transport)


async def _blocked(url: str, limits: FetchLimits) -> FetchError:
    async with Fetcher(limits) as f:
        with pytest.raises(FetchError) as info:
            await f.fetch(url)
    return info.value


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_loopback_is_refused_by_default(server: FeedServer, transport: TransportName) -> None:
    err = await _blocked(server.url("/f.xml"), _limits(transport))
    assert err.kind == "blocked_address"
    assert "127.0.0.1" in err.detail
    assert "loopback" in err.detail
    assert server.connections == 0  # refused before connecting, not after


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_allowed_network_is_fetched(server: FeedServer, transport: TransportName) -> None:
    async with Fetcher(_limits(transport, *LOOPBACK)) as f:
        res = await f.fetch(server.url("/f.xml"))
    assert res.body == BODY
    assert server.hits("/f.xml") == 1


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "017700000001", "127.1",
                                  "[::ffff:127.0.0.1]", "localhost"])
async def test_numeric_and_named_forms_of_loopback_are_refused(
    server: FeedServer, transport: TransportName, host: str,
) -> None:
    err = await _blocked(f"http://{host}:{server.port}/f.xml", _limits(transport))
    assert err.kind in ("blocked_address", "bad_url"), err  # aiohttp itself rejects some forms
    if err.kind == "blocked_address":
        assert "loopback" in err.detail
    assert server.connections == 0


@pytest.mark.anyio
async def test_localhost_reaches_only_the_allowed_address(server: FeedServer) -> None:
    # localhost may also resolve to ::1, which the allow list does not cover; the
    # guard connects to 127.0.0.1, where the server listens, and nothing else
    async with Fetcher(_limits("httpx", "127.0.0.0/8")) as f:
        res = await f.fetch(f"http://localhost:{server.port}/f.xml")
    assert res.body == BODY


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_metadata_address_is_refused_without_a_connection(transport: TransportName) -> None:
    # no network here: a guard that let this through would fail as "connect"/"deadline"
    err = await _blocked("http://169.254.169.254/latest/meta-data/", _limits(transport))
    assert err.kind == "blocked_address"
    assert "cloud metadata" in err.detail


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_redirect_hop_to_a_refused_address(transport: TransportName) -> None:
    with FeedServer() as start, FeedServer(host="127.0.0.2") as inner:
        inner.set("/secret", b"internal data")
        secret = f"http://127.0.0.2:{inner.port}/secret"
        start.set("/f.xml", status=302, headers={"Location": secret})
        err = await _blocked(start.url("/f.xml"), _limits(transport, "127.0.0.1/32"))
        assert err.kind == "blocked_address"
        assert f"redirect to {secret}" in err.detail
        assert "127.0.0.2" in err.detail
        assert start.hits("/f.xml") == 1
        assert inner.connections == 0
        # the control: with the whole loopback network allowed, the hop is followed
        async with Fetcher(_limits(transport, "127.0.0.0/8")) as f:
            res = await f.fetch(start.url("/f.xml"))
        assert res.body == b"internal data"


@pytest.mark.anyio
async def test_connects_to_the_checked_address_without_a_second_lookup(
    server: FeedServer,
) -> None:
    # "feed.invalid" exists only in this resolver: if anything looked the name up
    # again after the check (the DNS-rebinding window), the fetch would fail as "dns"
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"] if host == "feed.invalid" else []

    limits = _limits("httpx", *LOOPBACK)
    transport = httpx_transport(limits, limits.address_policy(), resolver=resolver)
    async with Fetcher(limits, transport=transport) as f:
        res = await f.fetch(f"http://feed.invalid:{server.port}/f.xml")
    assert res.body == BODY
    assert lookups == ["feed.invalid"]
    assert server.requests("/f.xml")[0].headers["host"] == f"feed.invalid:{server.port}"


@pytest.mark.anyio
async def test_a_name_resolving_to_a_private_address_is_refused(server: FeedServer) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["10.0.0.7", "127.0.0.1"]

    limits = _limits("httpx")
    transport = httpx_transport(limits, limits.address_policy(), resolver=resolver)
    async with Fetcher(limits, transport=transport) as f:
        with pytest.raises(FetchError) as info:
            await f.fetch(f"http://rebind.invalid:{server.port}/f.xml")
    assert info.value.kind == "blocked_address"
    assert "rebind.invalid resolves to 10.0.0.7 (private)" in info.value.detail
    assert server.connections == 0


@pytest.mark.anyio
async def test_guard_off_reaches_loopback(server: FeedServer) -> None:
    limits = FetchLimits(trust_env=False, total_timeout=5.0, guard=False)
    async with Fetcher(limits) as f:
        res = await f.fetch(server.url("/f.xml"))
    assert res.status == 200


def _only_http_proxy(monkeypatch: pytest.MonkeyPatch, proxy: str) -> None:
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY",
                "https_proxy", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_names_behind_an_environment_proxy_are_checked_before_the_proxy(
    server: FeedServer, monkeypatch: pytest.MonkeyPatch, transport: TransportName,
) -> None:
    # the feed server plays the proxy: it receives absolute-URI requests
    _only_http_proxy(monkeypatch, f"http://127.0.0.1:{server.port}")
    limits = FetchLimits(trust_env=True, total_timeout=5.0, transport=transport)
    async with Fetcher(limits) as f:
        with pytest.raises(FetchError) as info:
            await f.fetch("http://localhost:9/f.xml")
        assert info.value.kind == "blocked_address"
        assert server.connections == 0
    # the control: with loopback allowed the same URL goes to the proxy, which answers 404
    async with Fetcher(replace(limits, allow_networks=LOOPBACK)) as f:
        with pytest.raises(FetchError) as info:
            await f.fetch("http://localhost:9/f.xml")
        assert info.value.kind == "http_4xx"
    assert server.hits("http://localhost:9/f.xml") == 1


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_environment_proxies_are_read_once_and_no_proxy_goes_direct(
    server: FeedServer, monkeypatch: pytest.MonkeyPatch, transport: TransportName,
) -> None:
    with FeedServer() as proxy:
        _only_http_proxy(monkeypatch, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", "localhost")
        limits = FetchLimits(trust_env=True, total_timeout=5.0, transport=transport,
                             allow_networks=LOOPBACK)
        async with Fetcher(limits) as f:
            # the environment is read when the fetcher is built, not per request
            monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
            monkeypatch.delenv("NO_PROXY")
            via_proxy = f"http://127.0.0.1:{server.port}/f.xml"
            with pytest.raises(FetchError) as info:
                await f.fetch(via_proxy)
            assert info.value.kind == "http_4xx"  # the proxy's 404: it has no such path
            direct = await f.fetch(f"http://localhost:{server.port}/f.xml")
            assert direct.status == 200 and direct.body == BODY
        assert proxy.hits(via_proxy) == 1
        assert server.hits("/f.xml") == 1 and server.hits(via_proxy) == 0
    # without trust_env nothing goes through the proxy
    async with Fetcher(replace(limits, trust_env=False)) as f:
        assert (await f.fetch(f"http://127.0.0.1:{server.port}/f.xml")).status == 200
    assert server.hits("/f.xml") == 2


def test_allow_networks_from_the_environment(tmp_path: Path) -> None:
    from monitor.config import load_settings
    from monitor.fetch.http import fetch_limits

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "feeds.yaml").write_text("[]\n")
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"feeds:\n  files: [feeds.yaml]\nrules:\n  paths: [{root / 'rules'}]\n")
    settings = load_settings(cfg, env={"NEWS_MONITOR_POLL__ALLOW_NETWORKS": "127.0.0.0/8,::1"})
    policy = fetch_limits(settings.poll).address_policy()
    assert policy is not None
    assert policy.verdict("127.0.0.1") is None
    assert policy.verdict("::1") is None
    assert policy.verdict("10.0.0.1") == "private"
