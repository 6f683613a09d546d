"""Per-host politeness on a real loopback server: concurrency cap, spacing, no deadlock."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.fetch.http import Fetcher, FetchLimits, fetch_limits
from monitor.fetch.politeness import HostGate
from tests.support.feed_server import LOOPBACK, FeedServer

pytestmark = pytest.mark.anyio

BODY = b"<rss version='2.0'><channel><title>t</title></channel></rss>"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        yield srv


async def _fetch_all(fetcher: Fetcher, urls: list[str]) -> list[bytes | None]:
    out: list[bytes | None] = [None] * len(urls)

    async def one(i: int, url: str) -> None:
        out[i] = (await fetcher.fetch(url)).body

    async with anyio.create_task_group() as tg:
        for i, url in enumerate(urls):
            tg.start_soon(one, i, url)
    return out


async def test_per_host_cap_holds(server: FeedServer) -> None:
    for i in range(4):
        server.set(f"/slow{i}.xml", BODY[:20], drip=0.01)
    limits = FetchLimits(per_host=1, trust_env=False, allow_networks=LOOPBACK, total_timeout=10.0)
    async with Fetcher(limits) as f:
        bodies = await _fetch_all(f, [server.url(f"/slow{i}.xml") for i in range(4)])
    assert bodies == [BODY[:20]] * 4
    assert server.max_in_flight == 1


async def test_without_cap_requests_overlap(server: FeedServer) -> None:
    # the control for the test above: the server does see overlap when we allow it
    for i in range(4):
        server.set(f"/slow{i}.xml", BODY[:20], drip=0.01)
    limits = FetchLimits(per_host=0, trust_env=False, allow_networks=LOOPBACK, total_timeout=10.0)
    async with Fetcher(limits) as f:
        await _fetch_all(f, [server.url(f"/slow{i}.xml") for i in range(4)])
    assert server.max_in_flight > 1


async def test_spacing_between_slot_starts() -> None:
    gate = HostGate(concurrency=4, spacing=0.15)
    starts: list[float] = []

    async def take() -> None:
        async with gate.slot("example.com"):
            starts.append(anyio.current_time())

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(take)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 2
    assert min(gaps) >= 0.15 - 0.01  # a lower bound our own sleep guarantees


async def test_spacing_applies_per_host_only() -> None:
    gate = HostGate(concurrency=1, spacing=60.0)
    async with gate.slot("a.example"):
        pass
    with anyio.fail_after(5):  # another host is not held back by a.example's spacing
        async with gate.slot("b.example"):
            assert gate.in_use("b.example") == 1
    assert gate.in_use("a.example") == 0


async def test_deadline_does_not_count_the_polite_wait(server: FeedServer) -> None:
    # three requests at one per 0.8 s: the last waits 1.6 s for its slot, longer than
    # its 1.2 s deadline, yet the server answers at once so nothing times out
    server.set("/w.xml", BODY)
    limits = FetchLimits(per_host=1, host_spacing=0.8, total_timeout=1.2,
                         trust_env=False, allow_networks=LOOPBACK)
    async with Fetcher(limits) as f:
        bodies = await _fetch_all(f, [server.url("/w.xml")] * 3)
    assert bodies == [BODY] * 3


async def test_crossing_redirect_chains_do_not_deadlock() -> None:
    with FeedServer() as a, FeedServer() as b:
        # one host name, two ports: the gate keys on the host, so both share one slot
        a.set("/start", status=302, headers={"Location": b.url("/end")})
        b.set("/start", status=302, headers={"Location": a.url("/end")})
        a.set("/end", BODY)
        b.set("/end", BODY)
        limits = FetchLimits(per_host=1,
                             trust_env=False, allow_networks=LOOPBACK, total_timeout=5.0)
        async with Fetcher(limits) as f:
            with anyio.fail_after(10):
                bodies = await _fetch_all(f, [a.url("/start"), b.url("/start")])
    assert bodies == [BODY, BODY]


async def test_gate_forgets_idle_hosts() -> None:
    gate = HostGate(concurrency=2, spacing=0.0)
    async with gate.slot("example.com"):
        assert gate.in_use("example.com") == 1
        async with gate.slot("example.com"):
            assert gate.in_use("example.com") == 2
    assert gate.in_use("example.com") == 0
    assert gate._hosts == {}


def _config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "feeds.yaml").write_text("[]\n")
    rules = Path(__file__).resolve().parent.parent / "rules"
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"feeds:\n  files: [feeds.yaml]\nrules:\n  paths: [{rules}]\n{text}")
    return cfg


async def test_config_knobs_reach_the_wire(server: FeedServer, tmp_path: Path) -> None:
    # poll.contact lands in the User-Agent and poll.host_spacing spaces request starts,
    # from the YAML file to the server's view of the requests
    server.set("/k.xml", BODY)
    cfg = _config(tmp_path, "poll:\n  contact: ops@newsroom.example\n  host_spacing: 0.3s\n"
                            "  allow_networks: [127.0.0.0/8]\n")
    settings = load_settings(cfg, env={})
    limits = fetch_limits(settings.poll)
    assert limits.host_spacing == pytest.approx(0.3)
    async with Fetcher(limits) as f:
        await _fetch_all(f, [server.url("/k.xml")] * 5)
    requests = server.requests("/k.xml")
    assert len(requests) == 5
    assert all(r.headers["user-agent"].endswith("; mailto:ops@newsroom.example)")
               for r in requests)
    # Spacing is enforced on request starts in the client; what the server sees also carries
    # scheduling and connection set-up delays, and one late arrival shortens the gap after it.
    # The span of five requests is 4 x 0.3 s at the client and a few milliseconds without the
    # knob; a late first arrival can take at most about one gap off it.
    assert requests[-1].at - requests[0].at >= 0.8


def test_bad_allow_networks_is_a_config_error(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "poll:\n  allow_networks: [127.0.0.1/8x]\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={})
    assert "poll.allow_networks" in str(info.value)
