"""parse_feed on golden feeds (real outlet snapshots, broken encodings) and hostile input."""

from __future__ import annotations

import pickle
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.fetch.parse import ParsedFeed, normalize_language, parse_feed, strip_doctype
from monitor.fetch.text import html_to_text, plain_to_text
from monitor.models import FeedSpec

FEEDS = Path(__file__).parent / "data" / "feeds"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = FeedSpec(url="https://feeds.example.com/x")
_TAG = re.compile(r"<(?:p|br|a|div|img|span|b|i|em|strong)[\s/>]", re.IGNORECASE)

# file: (version, articles, feed language, has warning, first title prefix, first url,
#        first published)
GOLDEN: dict[str, tuple[str, int, str | None, bool, str | None, str | None, str | None]] = {
    "feed-rs/atom_example_1.xml": (
        "atom", 1, None, False, "Atom draft-07 snapshot",
        "https://example.org/2005/04/02/atom", "2003-12-13T12:29:29+00:00"),
    "feed-rs/rss_1.0_example_1.xml": (
        "rss10", 2, "ja", False, "記事1のタイトル",
        "https://feeds.example.com/%E8%A8%98%E4%BA%8B1%E3%81%AEURL",
        "2017-06-13T09:00:00+00:00"),
    "feed-rs/rss_1.0_iso8859.xml": (
        "rss10", 1, None, False, "Digitalministerium: Neue Glasfaserförderung",
        "https://golem.de/news/digitalministerium-neue-glasfaserfoerderung-mit-schnellkasse"
        "-2301-171451.html", "2023-01-25T18:03:02+00:00"),
    "feed-rs/rss_2.0_bbc.xml": (
        "rss20", 1, "en", False, "Marcus Aurelius", "https://bbc.co.uk/programmes/m000sjxt",
        "2021-02-25T10:15:00+00:00"),
    "feed-rs/rss_2.0_dbengines.xml": (  # undefined entity: recovered, with a warning
        "rss20", 1, None, True, "Snowflake is the DBMS of the Year 2022",
        "https://db-engines.com/en/blog_post/103", "2023-01-03T15:00:00+00:00"),
    "feed-rs/rss_2.0_invalid_1.xml": ("rss20", 0, "en", True, None, None, None),  # truncated
    "feed-rs/rss_2.0_spiegel.xml": (
        "rss20", 1, "de", False, "07.02. – die Wochenvorschau", None,
        "2021-02-06T23:01:00+00:00"),
    "feedparser/aaa_illformed.xml": ("rss20", 0, None, True, None, None, None),
    "feedparser/rss_incomplete_cdata.xml": ("rss20", 0, "en", True, None, None, None),
    "miniflux/encoding_WINDOWS-1251.xml": (
        "rss20", 50, "ru", False, "Цитата #17703", "https://ibash.org.ru/quote.php?id=17703",
        "2018-03-21T07:27:32+00:00"),
    "miniflux/no_encoding_ISO-8859-1.xml": (  # Latin-1 bytes, no declaration
        "rss20", 9, None, True, "Perturbateurs endocriniens : quels effets sur le cerveau ?",
        None, "2018-10-17T10:30:00+00:00"),
    "miniflux/rdf_UTF8.xml": (
        "rss090", 60, None, False, "OLED-TVs: Vorsichtsmaßnahmen gegen Einbrennen",
        "https://heise.de/newsticker/meldung/OLED-TVs-Vorsichtsmassnahmen-gegen-Einbrennen"
        "-4205274.html", None),
    "miniflux/urdu_UTF8.xml": (
        "rss20", 26, "ur", False, "امریکی عسکری امداد کی بندش کی وجوہات",
        "https://bbc.com/urdu/pakistan-42575603", "2018-01-05T16:51:00+00:00"),
    "rss-parser/guardian.rss": (
        "rss20", 55, "en", False, "Trump State of the Union address promised unity",
        "https://theguardian.com/us-news/2018/jan/31/donald-trump-state-of-the-union-address"
        "-unity-discord", "2018-01-31T07:26:05+00:00"),
    "rss-parser/uolNoticias.rss": (
        "rss", 15, None, True, "Ibope: Bolsonaro perde de Haddad", None, None),
}


def _parse(body: bytes, spec: FeedSpec = SPEC, **kw: str) -> ParsedFeed:
    return parse_feed(body, spec, fetched_at=NOW, **kw)


def _rss(items: str, channel: str = "", decl: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>{decl}<rss version="2.0"><channel>'
            f"<title>Example News</title><link>https://www.example.com/</link>{channel}"
            f"{items}</channel></rss>").encode()


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_feeds(name: str) -> None:
    version, count, lang, warned, title, url, published = GOLDEN[name]
    parsed = _parse((FEEDS / name).read_bytes())
    assert parsed.version == version
    assert len(parsed.articles) == count
    assert parsed.language == lang
    assert (parsed.warning is not None) == warned
    if count:
        first = parsed.articles[0]
        assert title is not None
        assert first.title.startswith(title)
        if url is not None:
            assert first.url == url
        assert (first.published.isoformat() if first.published else None) == published
        for art in parsed.articles:
            assert art.key == art.seen_keys[0]
            assert art.feed_url == SPEC.url
            assert art.outlet
            assert not _TAG.search(art.summary)
            assert not _TAG.search(art.content)
            assert art.published is None or art.published.tzinfo is UTC


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_entries_older_than_oldest_come_back_as_dates_only(name: str) -> None:
    body = (FEEDS / name).read_bytes()
    full = _parse(body)
    dates = sorted(a.published for a in full.articles if a.published)
    for oldest in {*dates[:1], *dates[len(dates) // 2:][:1], *dates[-1:]}:
        cut = _parse(body, oldest=oldest)
        assert cut.articles == tuple(a for a in full.articles
                                     if a.published is None or a.published >= oldest)
        assert sorted(cut.stale_dates) == [d for d in dates if d < oldest]
        assert replace(cut, articles=full.articles, stale_dates=()) == full
    assert full.stale_dates == ()


def test_stale_entry_without_text_gives_no_date() -> None:
    items = ("<item><guid>a</guid><pubDate>Mon, 01 Dec 2025 10:00:00 GMT</pubDate></item>"
             "<item><title>Old</title><pubDate>Tue, 02 Dec 2025 10:00:00 GMT</pubDate></item>"
             "<item><title>Undated</title></item>")
    parsed = _parse(_rss(items), oldest=NOW)
    assert [a.title for a in parsed.articles] == ["Undated"]
    assert parsed.stale_dates == (datetime(2025, 12, 2, 10, tzinfo=UTC),)


def test_cp1252_list_translates_every_character_as_feedparsers_dict() -> None:
    import feedparser.html
    import feedparser.mixin

    _parse(_rss("<item><title>x</title></item>"))  # the parser installs its table
    fast = feedparser.mixin._cp1252
    assert isinstance(fast, list)
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    expected = every.translate(feedparser.html._cp1252)
    assert every.translate(fast) == expected
    assert expected != every  # the table does map something: U+0080 is the euro sign
    assert "caf\xe9 \x93quoted\x94 \x80 5".translate(fast) == "caf\xe9 \u201cquoted\u201d \u20ac 5"


def test_golden_guardian_fields_are_plain_text() -> None:
    parsed = _parse((FEEDS / "rss-parser/guardian.rss").read_bytes())
    assert parsed.title == "The Guardian"
    for art in parsed.articles:
        assert art.outlet == "The Guardian"  # no FeedSpec.outlet: the feed title
        assert art.language == "en"
        for text in (art.title, art.summary, art.content):
            assert "<p>" not in text
            assert "&amp;" not in text
            assert "  " not in text
    keys = [a.key for a in parsed.articles]
    assert len(set(keys)) == len(keys)


def test_not_a_feed_html_page() -> None:
    with pytest.raises(ParseError) as info:
        _parse((FEEDS / "rss-parser/unrecognized.rss").read_bytes())
    assert info.value.kind == "not_a_feed"
    assert info.value.feed == SPEC.url


@pytest.mark.parametrize("body", [b"", b"   ", b"\x00\xff\xfe garbage \x80", b"{}",
                                  b"<html><body><p>hello</p></body></html>"])
def test_not_a_feed_garbage(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        _parse(body)
    assert info.value.kind == "not_a_feed"


def test_body_that_looks_like_a_path_is_not_opened(tmp_path: Path) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_bytes(_rss("<item><title>from disk</title></item>"))
    with pytest.raises(ParseError):
        _parse(str(secret).encode())


def test_feedparser_exception_becomes_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> object:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(feedparser, "parse", boom)
    with pytest.raises(ParseError) as info:
        _parse(_rss("<item><title>x</title></item>"))
    assert info.value.kind == "parser_crash"
    assert "UnicodeDecodeError" in info.value.detail


def test_entity_expansion_bomb_is_not_expanded() -> None:
    # laid out the way feedparser keeps "safe" entities: one declaration per line,
    # short enough for its 1 KB head; undefended this expands to 18 million characters
    big = "A" * 900
    refs = "&big;" * 20000
    body = _rss(f"<item><title>bomb</title><description>x{refs}y</description></item>",
                decl=f'\n<!DOCTYPE rss [\n<!ENTITY big "{big}">\n]>\n')
    assert len(body) > 100_000
    parsed = _parse(body)
    assert len(parsed.articles) == 1
    assert parsed.articles[0].summary == "xy"
    assert parsed.warning is None  # the document stayed well-formed


def test_entity_bomb_in_utf16_is_defused() -> None:
    body = _rss("<item><title>t</title><description>a&big;&big;b</description></item>",
                decl='<!DOCTYPE rss [<!ENTITY big "' + "B" * 1000 + '">]>')
    utf16 = body.decode().replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16")
    parsed = _parse(utf16)
    assert parsed.articles[0].summary == "ab"


def test_strip_doctype_respects_quotes_and_keeps_the_rest() -> None:
    doc = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "x]>y"> <!ENTITY b \'z\'>]>'
           b"<rss>&a;&b;&amp;</rss>")
    assert strip_doctype(doc) == b'<?xml version="1.0"?><rss>&amp;</rss>'
    plain = b"<rss><channel/></rss>"
    assert strip_doctype(plain) is plain


def test_html_stripped_and_entities_unescaped() -> None:
    item = ("<item><title>Talks &amp;amp; guarantees</title>"
            "<description><![CDATA[<p>First&nbsp;para.</p><p>Second <b>Kyi</b>v para."
            "</p><script>alert(1)</script><img src='x.gif'>]]></description>"
            "<link>https://www.example.com/a?utm_source=rss</link><guid>id-1</guid>"
            "<pubDate>Tue, 11 Mar 2025 10:00:00 +0100</pubDate></item>")
    art = _parse(_rss(item)).articles[0]
    assert art.title == "Talks & guarantees"
    assert art.summary == "First para. Second Kyiv para."
    assert art.url == "https://example.com/a"
    assert art.guid == "id-1"
    assert art.published == datetime(2025, 3, 11, 9, 0, tzinfo=UTC)
    assert art.outlet == "Example News"


def test_spec_outlet_and_language_win() -> None:
    spec = FeedSpec(url="https://feeds.example.com/x", outlet="Example Wire", language="fr-FR")
    parsed = _parse(_rss("<item><title>Bonjour</title></item>",
                         channel="<language>en-us</language>"), spec)
    art = parsed.articles[0]
    assert art.outlet == "Example Wire"
    assert art.language == "fr"


def test_outlet_falls_back_to_host_and_updated_date() -> None:
    body = (b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
            b"<entry><title>No feed title</title><id>urn:x:1</id>"
            b"<updated>2025-03-11T10:00:00Z</updated></entry></feed>")
    parsed = _parse(body, FeedSpec(url="https://www.news.example.org/atom"))
    art = parsed.articles[0]
    assert art.outlet == "news.example.org"
    assert art.published == datetime(2025, 3, 11, 10, 0, tzinfo=UTC)
    assert art.url == ""  # no http link anywhere


def test_empty_entries_dropped_and_relative_links_resolved() -> None:
    items = ("<item><guid>only-guid</guid></item>"
             "<item><title>Rel</title><link>/news/1</link></item>")
    parsed = _parse(_rss(items), base_url="https://www.example.com/feeds/rss.xml")
    assert [a.title for a in parsed.articles] == ["Rel"]
    assert parsed.articles[0].url == "https://example.com/news/1"


def test_an_item_with_an_impossible_port_does_not_cost_the_feed() -> None:
    # urlsplit accepts ":80800", but asking for the port raised, and one such link
    # failed the whole feed on every poll
    items = "".join(f"<item><title>T{i}</title><link>{link}</link></item>" for i, link in
                    enumerate(["https://a.example/1", "http://news.example:80800/b",
                               "https://a.example:x/3", "https://a.example/4"]))
    parsed = _parse(_rss(items))
    assert [a.title for a in parsed.articles] == ["T0", "T1", "T2", "T3"]
    assert parsed.articles[1].url == "http://news.example:80800/b"


@pytest.mark.parametrize("links", [
    ["https://live.example.org/ukraine-live#post-0", "https://live.example.org/ukraine-live#post-1",
     "https://live.example.org/ukraine-live#post-2"],   # a live blog's posts
    ["https://www.example.com/"] * 3,                   # every item links to the home page
])
def test_entries_sharing_one_page_link_are_told_apart_by_guid_and_text(
        links: list[str]) -> None:
    items = "".join(f"<item><title>Post {i}: talks on day {i}</title><link>{link}</link>"
                    f"<description>Update number {i} from the negotiations, with new names."
                    f"</description></item>" for i, link in enumerate(links))
    parsed = _parse(_rss(items))
    keys = [set(a.seen_keys) for a in parsed.articles]
    assert len(keys) == 3 and not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert not any(k.startswith("u:") for ks in keys for k in ks)
    # one entry per link, as in most feeds: the URL stays a key (the same page in two feeds)
    single = _parse(_rss(f"<item><title>Post</title><link>{links[0]}</link></item>"))
    assert any(k.startswith("u:") for k in single.articles[0].seen_keys)


def test_a_live_blog_listing_only_its_newest_post_gives_each_post_its_own_url_key() -> None:
    # one entry a poll, each "#post-N" of one page: the fragment-less page URL was a
    # shared seen-key across polls, and every post after the first was a "repeat"
    def post(n: int, link: str) -> set[str]:
        item = (f"<item><title>Live: update {n}</title><guid>live-{n}</guid>"
                f"<link>{link}</link><description>Update {n}.</description></item>")
        return set(_parse(_rss(item)).articles[0].seen_keys)

    page = "https://live.example.org/ukraine-live"
    assert not post(1, f"{page}#post-1") & post(2, f"{page}#post-2")
    # a fragment that is a parameter, not an anchor, is tracking: the same page still
    assert {k for k in post(3, f"{page}?a=1#xtor=RSS-3") if k.startswith("u:")} == \
        {k for k in post(4, f"{page}?a=1#xtor=RSS-4") if k.startswith("u:")}


def test_ttl_hub_and_content() -> None:
    channel = ('<ttl>30</ttl><atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="hub" '
               'href="https://pubsubhubbub.example.com/"/>')
    item = ('<item xmlns:content="http://purl.org/rss/1.0/modules/content/"><title>T</title>'
            "<description>Short</description>"
            "<content:encoded><![CDATA[<div>Long <i>body</i></div>]]></content:encoded></item>")
    parsed = _parse(_rss(item, channel=channel))
    assert parsed.ttl_seconds == 1800
    assert parsed.hub == "https://pubsubhubbub.example.com/"
    art = parsed.articles[0]
    assert art.summary == "Short"
    assert art.content == "Long body"


def test_same_item_in_two_feeds_shares_url_key() -> None:
    item = "<item><title>Same story</title><link>https://www.example.com/s?utm_medium=x</link></item>"
    a = _parse(_rss(item), FeedSpec(url="https://a.example.net/rss")).articles[0]
    b = _parse(_rss(item), FeedSpec(url="https://b.example.org/rss")).articles[0]
    assert set(a.seen_keys) & set(b.seen_keys)


@pytest.mark.parametrize("ref", ["&#xD800;", "&#55296;", "&#0;", "&#x110000;", "&#99999999999;"])
def test_invalid_char_references_do_not_crash_the_loose_parser(ref: str) -> None:
    # not well-formed (no root close), so feedparser falls back to its loose parser,
    # which died with UnicodeEncodeError on a surrogate reference
    body = f"<rss version='2.0'><channel><item><title>a{ref}b</title><guid>g{ref}</guid>".encode()
    art = _parse(body).articles[0]
    assert art.title in ("a\ufffdb", "ab")
    art.title.encode("utf-8")
    assert art.guid is not None
    art.guid.encode("utf-8")


def test_control_characters_removed() -> None:
    body = _rss("<item><title>x&#1;y\x7fz</title></item>")
    art = _parse(body).articles[0]
    assert art.title == "xyz"


def test_fallback_key_when_nothing_identifies() -> None:
    art = _parse(_rss("<item><title>Hi</title></item>")).articles[0]
    assert art.key.startswith("x:")
    assert art.seen_keys == (art.key,)


def test_long_text_capped() -> None:
    item = f"<item><title>T</title><description>{'word ' * 5000}</description></item>"
    art = _parse(_rss(item)).articles[0]
    assert len(art.summary) <= 5001
    assert art.summary.endswith("…")


def test_parse_result_picklable_and_runs_in_process_pool() -> None:
    body = (FEEDS / "feed-rs/rss_2.0_bbc.xml").read_bytes()
    with ProcessPoolExecutor(max_workers=1) as pool:
        parsed = pool.submit(parse_feed, body, SPEC, fetched_at=NOW).result(timeout=60)
        with pytest.raises(ParseError) as info:
            pool.submit(parse_feed, b"<html></html>", SPEC, fetched_at=NOW).result(timeout=60)
    assert parsed == _parse(body)
    assert pickle.loads(pickle.dumps(parsed)) == parsed
    assert info.value.kind == "not_a_feed"
    assert info.value.feed == SPEC.url


@pytest.mark.parametrize(("value", "expected"), [
    ("en-US", "en"), ("EN_gb", "en"), ("de", "de"), ("uk-UA", "uk"), ("", None),
    ("english", None), (None, None), (5, None), (" fr ", "fr"),
])
def test_normalize_language(value: object, expected: str | None) -> None:
    assert normalize_language(value) == expected


def test_text_helpers() -> None:
    assert html_to_text("a &lt; b") == "a < b"
    assert html_to_text("<ul><li>one</li><li>two</li></ul>") == "one two"
    assert plain_to_text("x <b> y &amp;amp;") == "x <b> y &amp;"
    assert html_to_text("\u200bzero\u00a0width ") == "zero width"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_fuzz_random_bytes_only_parse_error(body: bytes) -> None:
    try:
        parsed = _parse(body)
    except ParseError:
        return
    assert isinstance(parsed, ParsedFeed)


_XMLISH = st.lists(st.sampled_from([
    "<rss>", "</rss>", '<rss version="2.0">', "<channel>", "</channel>", "<item>", "</item>",
    "<title>", "</title>", "<![CDATA[", "]]>", "&amp;", "&#0;", "&#xD800;", "&bogus;",
    "<!DOCTYPE rss [", '<!ENTITY e "v">', "]>", "<feed xmlns='http://www.w3.org/2005/Atom'>",
    "<entry>", "</entry>", "<link href='javascript:x'/>", "<pubDate>Mon, 99 Foo 2025</pubDate>",
    "<updated>0000-00-00</updated>", '<?xml version="1.0" encoding="koi8-r"?>', "\x00",
    "<description>", "</description>", "<guid>", "</guid>", "é", "\ufeff", "<",
]), max_size=40).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_XMLISH)
def test_fuzz_feedlike_bytes_only_parse_error(body: bytes) -> None:
    try:
        parsed = _parse(body)
    except ParseError:
        return
    for art in parsed.articles:
        assert art.key
        art.text.encode("utf-8")  # no lone surrogates reach the matcher, JSON or Redis
