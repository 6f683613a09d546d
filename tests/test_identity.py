"""Seen-keys: GUID per publisher, canonical URL, normalized text hash."""

from __future__ import annotations

from monitor.stories.identity import content_hash, identity_keys, normalize_text

TITLE = "Military chiefs from 34 countries meet in Paris"
SUMMARY = "Talks on security guarantees for Ukraine after a ceasefire."


def test_normalize_text_ignores_case_accents_punctuation() -> None:
    assert normalize_text("  Glavaš — SAID: “Hello,   World!” ") == "glavas said hello world"


def test_keys_in_order_guid_url_hash() -> None:
    keys = identity_keys(feed_url="https://feeds.example.com/rss", guid="1234",
                         canonical="https://example.com/a", title=TITLE, summary=SUMMARY)
    assert [k[:2] for k in keys] == ["g:", "u:", "h:"]


def test_guid_is_scoped_by_feed_host() -> None:
    a = identity_keys(feed_url="https://a.example/rss", guid="1234", canonical=None,
                      title="", summary="")
    b = identity_keys(feed_url="https://b.example/rss", guid="1234", canonical=None,
                      title="", summary="")
    c = identity_keys(feed_url="https://a.example/other.xml", guid=" 1234 ", canonical=None,
                      title="", summary="")
    assert a != b
    assert a == c


def test_republished_copy_shares_the_text_hash() -> None:
    a = identity_keys(feed_url="https://a.example/rss", guid="x1", canonical="https://a.example/1",
                      title=TITLE, summary=SUMMARY)
    b = identity_keys(feed_url="https://b.example/rss", guid="y9", canonical="https://b.example/2",
                      title=TITLE.upper() + "!", summary=SUMMARY.replace(" ", "  "))
    assert set(a) & set(b) == {a[-1]}
    assert a[-1].startswith("h:")


def test_short_text_has_no_hash() -> None:
    assert content_hash("Breaking", "") is None
    assert identity_keys(feed_url="", guid=None, canonical=None, title="Breaking",
                         summary="") == ()
