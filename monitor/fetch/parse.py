"""Feed bytes to ``Article`` values: feedparser, made safe and normalized. Pure, no I/O.

``parse_feed`` is a top-level function of picklable arguments, so the service can
run it in a process pool (feedparser parses ~0.6 MB/s in one thread).

Defences (measured on feedparser 6.0.14):

* **Entity expansion.** feedparser blocks XXE and the classic billion laughs, but
  a ~130 KB feed referencing one large internal entity 20,000 times took 15.7 s
  and ~809 MB. We cut every DOCTYPE's internal subset out of the bytes before
  parsing and delete the references to the entities it declared, so nothing is
  expanded and the document stays well-formed (strict parser, fast path).
* **Crashes.** ``feedparser.parse`` raises on some inputs (UnicodeDecodeError,
  ValueError, KeyError found by fuzzing). Any exception becomes ``ParseError``:
  one failed feed, never a dead worker.
* **Local files and URLs.** ``feedparser.parse(bytes)`` opens the bytes as a file
  name or fetches them as a URL when they look like one; we always hand it a
  file object, so it reads exactly the body we fetched.

Not a feed at all (an HTML page, random bytes): no feed version and no entries
raises ``ParseError(kind="not_a_feed")``. A feed that is merely broken but still
yields entries comes back with ``warning`` set.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from monitor.errors import ParseError
from monitor.fetch.text import cap, html_to_text, plain_to_text
from monitor.models import Article, FeedSpec
from monitor.stories.identity import identity_keys
from monitor.stories.urls import canonical_url

TITLE_CHARS = 500
SUMMARY_CHARS = 5_000
CONTENT_CHARS = 20_000
WARNING_CHARS = 300

_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_ENTITY_DECL = re.compile(rb"<!ENTITY\s+([^\s%][^\s\"'>]*)", re.IGNORECASE)
_XML_DECL_ENCODING = re.compile(rb"^(\s*<\?xml[^>]*?encoding\s*=\s*)([\"'])[^\"']*\2",
                                re.IGNORECASE)
_CHARREF = re.compile(rb"&#([xX][0-9a-fA-F]{1,16}|[0-9]{1,20});")
_PREDEFINED = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})
_LANG = re.compile(r"^[a-z]{2,3}$")
_INVALID_CHARS = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)


@dataclass(frozen=True)
class ParsedFeed:
    """One parsed feed document: its metadata and its entries as articles."""

    title: str
    link: str | None
    language: str | None
    ttl_seconds: float | None
    hub: str | None
    articles: tuple[Article, ...]
    warning: str | None = None
    version: str = ""
    self_url: str | None = None  # rel="self": the topic URL a WebSub hub knows the feed by
    # Dates of the entries older than ``parse_feed``'s ``oldest``, left out of ``articles``:
    # the schedule still reads the feed's publishing rate from them.
    stale_dates: tuple[datetime, ...] = ()


# -- byte-level defences --------------------------------------------------------

def _to_utf8(body: bytes) -> bytes:
    """UTF-16/32 documents re-encoded as UTF-8, so the byte scanners below see them."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            try:
                text = body.decode(codec)
            except UnicodeDecodeError:
                return body
            data = text.lstrip("\ufeff").encode("utf-8")
            return _XML_DECL_ENCODING.sub(rb"\1\2utf-8\2", data, count=1)
    return body


def _doctype_end(body: bytes, start: int) -> tuple[int, bytes]:
    """End offset of the DOCTYPE at ``start`` and its internal subset (quotes respected)."""
    i = start + len(b"<!DOCTYPE")
    n = len(body)
    quote = 0
    subset_start = -1
    subset = b""
    while i < n:
        c = body[i]
        if quote:
            if c == quote:
                quote = 0
        elif c in (0x22, 0x27):  # " '
            quote = c
        elif c == 0x5B and subset_start < 0:  # [
            subset_start = i + 1
        elif c == 0x5D and subset_start >= 0 and not subset:  # ]
            subset = body[subset_start:i] or b" "
        elif c == 0x3E and (subset_start < 0 or subset):  # >
            return i + 1, subset.strip()
        i += 1
    return n, body[subset_start:] if subset_start >= 0 else b""


def strip_doctype(body: bytes) -> bytes:
    """``body`` without DOCTYPE declarations and without references to the entities they declared.

    A DOCTYPE is legal only once, in the prolog; feeds never need their own
    entities, and removing the declarations is what keeps expansion bombs cheap.
    """
    body = _to_utf8(body)
    if not _DOCTYPE.search(body):
        return body
    names: set[bytes] = set()
    for _ in range(16):  # a document with more DOCTYPEs than this is not a feed anyway
        m = _DOCTYPE.search(body)
        if m is None:
            break
        end, subset = _doctype_end(body, m.start())
        names.update(n for n in _ENTITY_DECL.findall(subset) if n not in _PREDEFINED)
        body = body[:m.start()] + body[end:]
    else:
        body = _DOCTYPE.sub(b"", body)
    if names:
        refs = re.compile(b"&(?:" + b"|".join(re.escape(n) for n in sorted(names)) + b");")
        body = refs.sub(b"", body)
    return body


def _charref(m: re.Match[bytes]) -> bytes:
    ref = m.group(1)
    try:
        code = int(ref[1:], 16) if ref[:1] in (b"x", b"X") else int(ref)
    except ValueError:
        return b"&#xFFFD;"
    if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return b"&#xFFFD;"
    return m.group(0)


def fix_charrefs(body: bytes) -> bytes:
    """Numeric character references to surrogates, NUL or past U+10FFFF become U+FFFD.

    feedparser's loose parser encodes ``&#xD800;`` to UTF-8 and dies with
    UnicodeEncodeError (found by fuzzing); one such reference must not cost a feed.
    """
    if b"&#" not in body:
        return body
    return _CHARREF.sub(_charref, body)


# -- field helpers ---------------------------------------------------------------

def normalize_language(value: object) -> str | None:
    """``"en-US"``, ``"EN_gb"`` -> ``"en"``; anything that is not a language tag -> None."""
    if not isinstance(value, str):
        return None
    primary = re.split(r"[-_\s]", value.strip().lower(), maxsplit=1)[0]
    return primary if _LANG.match(primary) else None


def _to_datetime(value: object) -> datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (ValueError, OverflowError, TypeError):
        return None


def _str(value: object) -> str:
    """A string from feedparser's output, without what no text should contain.

    The loose parser turns ``&#xD800;`` into a lone surrogate and keeps NULs and
    other C0 controls; they break UTF-8 encoding (hashing, JSON, Redis) downstream.
    """
    if not isinstance(value, str):
        return ""
    return _INVALID_CHARS.sub("", value) if _INVALID_CHARS.search(value) else value


def _field_text(entry: Mapping[str, Any], key: str, limit: int) -> str:
    value = _str(entry.get(key))
    detail = entry.get(f"{key}_detail")
    kind = _str(detail.get("type")) if isinstance(detail, Mapping) else ""
    if "html" in kind or "xml" in kind:
        return html_to_text(value, limit)
    return plain_to_text(value, limit) if kind == "text/plain" else html_to_text(value, limit)


def _content_text(entry: Mapping[str, Any]) -> str:
    parts = entry.get("content")
    if not isinstance(parts, list):
        return ""
    texts: list[str] = []
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        value = _str(part.get("value"))
        kind = _str(part.get("type"))
        texts.append(plain_to_text(value, CONTENT_CHARS) if kind == "text/plain"
                     else html_to_text(value, CONTENT_CHARS))
    return cap(" ".join(t for t in texts if t), CONTENT_CHARS)


def _http_url(value: str, base: str | None) -> str | None:
    value = value.strip()
    if not value:
        return None
    if base:
        try:
            value = urljoin(base, value)
        except ValueError:
            return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return value


def _entry_language(entry: Mapping[str, Any]) -> str | None:
    for key in ("title_detail", "summary_detail"):
        detail = entry.get(key)
        if isinstance(detail, Mapping):
            lang = normalize_language(detail.get("language"))
            if lang:
                return lang
    return normalize_language(entry.get("language"))


def _host(url: str) -> str:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
    return host[4:] if host.startswith("www.") else host


def _fallback_key(feed_url: str, title: str, summary: str, content: str) -> str:
    raw = "\x00".join((feed_url, title, summary, content[:500]))
    return "x:" + hashlib.blake2b(raw.encode("utf-8"), digest_size=12).hexdigest()


def _published(entry: Mapping[str, Any]) -> datetime | None:
    return (_to_datetime(entry.get("published_parsed"))
            or _to_datetime(entry.get("updated_parsed"))
            or _to_datetime(entry.get("created_parsed")))


def _stale(entry: Mapping[str, Any], oldest: datetime | None) -> datetime | None:
    """The entry's date when it is older than ``oldest`` and has a title, summary or content.

    Checked before any of its text is normalized: in a steady poll most entries of a
    changed feed are old ones the service would drop as not news (``_fresh``), and
    turning their HTML into text, hashing and canonicalizing was most of ``_article``.
    """
    if oldest is None:
        return None
    published = _published(entry)
    if published is None or published >= oldest:
        return None
    if _str(entry.get("title")).strip() or _str(entry.get("summary")).strip() \
            or entry.get("content"):
        return published
    return None


def _link_base(entry: Mapping[str, Any]) -> str:
    """The entry's link as written, without its fragment: cheap, for counting repeats."""
    return _str(entry.get("link")).strip().partition("#")[0]


def _with_anchor(canonical: str | None, link: str | None) -> str | None:
    """The canonical URL as an identity, with the link's anchor (``#post-3``) kept.

    The canonical form drops every fragment, which is right for the page but not for
    what names a place in it: a live blog whose feed lists only its newest post, one
    ``…/live#post-N`` at a time, would have every post after the first taken for a
    repeat. A fragment holding ``=`` is a parameter (``#xtor=RSS-3``), not an anchor,
    and stays dropped.
    """
    if canonical is None or link is None:
        return canonical
    anchor = link.partition("#")[2]
    return f"{canonical}#{anchor}" if anchor and "=" not in anchor else canonical


def _shared_links(entries: Sequence[Any]) -> frozenset[str]:
    """Links (fragment aside) that more than one entry of the feed points to.

    Such a link names a page, not an article: a live blog's posts (``…/live#post-3``),
    a feed whose items all link to the home page. As a seen-key it would make every
    entry after the first a repeat of it, so those entries are told apart by their
    GUID and text instead.
    """
    counts = Counter(_link_base(e) for e in entries if isinstance(e, Mapping))
    return frozenset(link for link, n in counts.items() if n > 1 and link)


def _article(
    entry: Mapping[str, Any], feed: FeedSpec, base: str | None, outlet: str,
    feed_lang: str | None, shared_links: frozenset[str] = frozenset(),
) -> Article | None:
    title = _field_text(entry, "title", TITLE_CHARS)
    summary = _field_text(entry, "summary", SUMMARY_CHARS)
    content = _content_text(entry)
    if content and (content == summary or summary.startswith(content)):
        content = ""  # feeds often repeat the summary as content
    if not (title or summary or content):
        return None
    guid = _str(entry.get("id")).strip() or None
    link = _http_url(_str(entry.get("link")), base)
    if link is None and guid:
        link = _http_url(guid, None)
    canonical = canonical_url(link) if link else None
    page_link = bool(shared_links) and _link_base(entry) in shared_links
    keys = identity_keys(feed_url=feed.url, guid=guid,
                         canonical=None if page_link else _with_anchor(canonical, link),
                         title=title, summary=summary or content)
    if not keys:
        keys = (_fallback_key(feed.url, title, summary, content),)
    published = _published(entry)
    language = normalize_language(feed.language) or _entry_language(entry) or feed_lang
    return Article(
        key=keys[0], url=canonical or "", link=link or "", title=title, summary=summary,
        content=content, published=published, outlet=outlet, language=language, feed_url=feed.url,
        guid=guid, seen_keys=keys,
    )


def _rel_link(feed: Mapping[str, Any], rel: str) -> str | None:
    links = feed.get("links")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, Mapping) and link.get("rel") == rel:
            href = _http_url(_str(link.get("href")), None)
            if href:
                return href
    return None


def _hub(feed: Mapping[str, Any]) -> str | None:
    return _rel_link(feed, "hub")


def _ttl(feed: Mapping[str, Any]) -> float | None:
    value = _str(feed.get("ttl")).strip()
    if value.isdigit() and 0 < int(value) <= 7 * 24 * 60:
        return float(int(value) * 60)
    return None


def _short(e: BaseException) -> str:
    text = str(e).strip().replace("\n", " ")
    name = type(e).__name__
    msg = f"{name}: {text}" if text else name
    return msg[:WARNING_CHARS]


def parse_feed(
    body: bytes, feed: FeedSpec, *, fetched_at: datetime, base_url: str | None = None,
    content_type: str | None = None, oldest: datetime | None = None,
) -> ParsedFeed:
    """Parse one fetched body into articles. Raises only ``ParseError``.

    ``fetched_at`` is when the bytes arrived (kept for the signature's sake and for
    entries without a date: the service may treat ``published=None`` as "now").
    ``oldest``: entries dated before it become no article, only a date in
    ``stale_dates`` (the service passes ``now - poll.max_article_age`` and drops such
    articles anyway; this skips their text work and their trip back from the parser
    process). Undated entries are always kept.
    """
    del fetched_at  # reserved: dating undated entries is the service's policy
    try:
        return _parse(body, feed, base_url, content_type, oldest)
    except ParseError:
        raise
    except Exception as e:  # a parse must never take a worker down
        raise ParseError(feed.url, "parser_crash", _short(e)) from e


@functools.cache
def _faster_cp1252() -> None:
    """Give feedparser its Windows-1252 table as a list: the same text, ~2.3x as fast.

    feedparser maps the C1 characters U+0080-U+009F of every element's text with
    ``str.translate(dict)``, and on non-ASCII text CPython raises and clears a
    KeyError for each character the dict lacks: ~10 % of a parser process's time on
    the bench's feeds. A list indexed by code point (itself everywhere but the 27
    mapped ones) never misses below U+10000; past it, IndexError is a LookupError,
    which ``translate`` treats as a missing key, so every string maps as before
    (tests/test_parse.py). 2.3 MB per parser process. Left alone if feedparser's
    table is not the dict of code points this expects.
    """
    import feedparser.mixin

    table = getattr(feedparser.mixin, "_cp1252", None)
    if not (isinstance(table, dict) and table
            and all(isinstance(k, int) and 0 <= k < 0x10000 for k in table)):
        return
    fast: list[int | str] = list(range(0x10000))
    for code, text in table.items():
        fast[code] = text
    feedparser.mixin._cp1252 = fast


def _parse(
    body: bytes, feed: FeedSpec, base_url: str | None, content_type: str | None,
    oldest: datetime | None = None,
) -> ParsedFeed:
    if not body.strip():
        raise ParseError(feed.url, "not_a_feed", "empty body")
    safe = fix_charrefs(strip_doctype(body))
    # without a Content-Type feedparser flags every document as bozo; XML is what
    # a feed is, and charset detection then follows the XML declaration
    headers: dict[str, str] = {"content-type": content_type or "application/xml"}
    # no Content-Location for feedparser: it would also "resolve" GUIDs against it,
    # and a GUID must not change when the feed moves; links are joined below
    base = base_url or feed.url
    import feedparser  # here, not at the top: only parser processes need it (~6 MB)

    _faster_cp1252()

    try:
        result = feedparser.parse(
            io.BytesIO(safe), response_headers=headers,
            sanitize_html=False, resolve_relative_uris=False,
        )
    except Exception as e:
        raise ParseError(feed.url, "parser_crash", _short(e)) from e
    version = _str(result.get("version"))
    entries = result.get("entries") or []
    if not version and not entries:
        exc = result.get("bozo_exception")
        reason = _short(exc) if isinstance(exc, BaseException) else "no feed version, no entries"
        raise ParseError(feed.url, "not_a_feed", reason)
    meta: Mapping[str, Any] = result.get("feed") or {}
    title = plain_to_text(_str(meta.get("title")), TITLE_CHARS)
    link = _http_url(_str(meta.get("link")), base)
    feed_lang = normalize_language(meta.get("language"))
    outlet = feed.outlet or title or feed.title or _host(link or feed.url) or feed.url
    articles: list[Article] = []
    stale: list[datetime] = []
    shared_links = _shared_links(entries)
    for entry in entries:
        if isinstance(entry, Mapping):
            date = _stale(entry, oldest)
            if date is not None:
                stale.append(date)
                continue
            art = _article(entry, feed, base, outlet, feed_lang, shared_links)
            if art is not None:
                articles.append(art)
    warning = None
    if result.get("bozo"):
        exc = result.get("bozo_exception")
        warning = _short(exc) if isinstance(exc, BaseException) else "malformed feed"
    return ParsedFeed(
        title=title, link=link, language=normalize_language(feed.language) or feed_lang,
        ttl_seconds=_ttl(meta), hub=_hub(meta), articles=tuple(articles), warning=warning,
        version=version, self_url=_rel_link(meta, "self"), stale_dates=tuple(stale),
    )
