"""The poll benchmark's feed farm serves the mix its figures claim (one request per kind)."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import poll  # noqa: E402

FEEDS = [str(ROOT / "tests/data/feeds/feed-rs/rss_2.0_bbc.xml")]


@pytest.fixture(scope="module")
def farm() -> Iterator[list[str]]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=poll._farm, args=(FEEDS, 2, theirs, 0.0, 0.2), daemon=True)
    proc.start()
    try:
        assert ours.poll(30), "farm did not start"
        yield ours.recv()
    finally:
        proc.terminate()
        proc.join(5)


def _index(kind: str, start: int = 0) -> int:
    return next(i for i in range(start, start + 40) if poll.kind_of(i) == kind)


def test_the_mix_has_every_kind_in_its_share() -> None:
    kinds = [poll.kind_of(i) for i in range(20)]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "etag": 6, "same": 3, "new": 5, "slow": 2, "5xx": 1, "reset": 1, "429": 2}


def test_farm_answers_each_kind_as_documented(farm: list[str]) -> None:
    urls = poll.feed_urls(farm, "t", 40)
    assert len({httpx.URL(u).host for u in urls}) == 2  # feeds spread over the hosts
    with httpx.Client(timeout=5) as client:
        etag = client.get(urls[_index("etag")])
        assert etag.status_code == 200 and etag.headers["etag"]
        again = client.get(urls[_index("etag")], headers={"If-None-Match": etag.headers["etag"]})
        assert again.status_code == 304
        same = [client.get(urls[_index("same")]) for _ in range(2)]
        assert same[0].content == same[1].content and "etag" not in same[0].headers
        first, second = (feedparser.parse(client.get(urls[_index("new")]).content)
                         for _ in range(2))
        assert second.entries[0].link != first.entries[0].link  # one new item per request
        assert second.entries[0].title.startswith("Benchfarm ")
        assert [e.link for e in second.entries[1:]] == [e.link for e in first.entries[1:]]
        assert client.get(urls[_index("5xx")]).status_code == 500
        limited = client.get(urls[_index("429")])
        assert (limited.status_code, limited.headers["retry-after"]) == (429, "3600")
        with pytest.raises(httpx.TransportError):
            client.get(urls[_index("reset")])
        assert client.get(urls[_index("slow")]).status_code == 200
