"""Canonical URLs: one spelling per page."""

from __future__ import annotations

import pytest

from monitor.stories.urls import canonical_url

CANON = "https://example.com/world/story-1"


@pytest.mark.parametrize("variant", [
    "https://example.com/world/story-1",
    "http://example.com/world/story-1",
    "https://www.example.com/world/story-1",
    "https://m.example.com/world/story-1",
    "https://example.com/world/story-1/",
    "https://example.com/world/story-1#comments",
    "https://example.com/world/story-1?utm_source=rss&utm_medium=feed",
    "https://example.com/world/story-1?fbclid=abc123&gclid=x",
    "https://example.com/world/story-1/amp",
    "https://example.com/world/story-1?amp",
    "https://amp.example.com/world/story-1",
    "HTTPS://EXAMPLE.COM/world/story-1",
    "https://example.com:443/world/story-1",
    "  https://example.com/world/story-1  ",
])
def test_variants_of_one_page_share_one_url(variant: str) -> None:
    assert canonical_url(variant) == CANON


def test_meaningful_query_is_kept_and_sorted() -> None:
    a = canonical_url("https://example.com/article?id=42&page=2&utm_campaign=x")
    b = canonical_url("https://example.com/article?page=2&id=42")
    assert a == b == "https://example.com/article?id=42&page=2"


def test_different_pages_stay_different() -> None:
    assert canonical_url("https://example.com/a") != canonical_url("https://example.com/b")
    assert canonical_url("https://example.com/a?id=1") != canonical_url("https://example.com/a?id=2")
    assert canonical_url("https://example.com:8080/a") == "https://example.com:8080/a"


def test_amp_path_prefix_and_suffix() -> None:
    assert canonical_url("https://example.com/amp/world/story-1") == CANON
    assert canonical_url("https://example.com/world/story-1.amp.html") == CANON + ".html"


@pytest.mark.parametrize("raw", ["urn:uuid:1234", "not a url", "mailto:a@b.c", "",
                                 "http://example.com:99999/a", "https://example.com:abc/a"])
def test_non_http_values_come_back_stripped(raw: str) -> None:
    assert canonical_url(f" {raw} ") == raw
