"""Find the feed behind a web page, for ``news-monitor feeds add URL``.

Operators paste a site's home page, not its feed. In order:

1. the URL itself is a feed (it parses as one);
2. the page advertises feeds: ``<link rel="alternate" type="application/rss+xml|atom+xml|
   rdf+xml|feed+json" href=...>`` in its HTML (what browsers and feed readers use);
3. common feed paths on the same site (``/feed``, ``/rss``, ``/rss.xml``, ...), the
   first that parses as a feed wins.

``find_feed_links`` is pure (HTML in, URLs out); ``discover`` does the requests
through the shared ``Fetcher``, so every politeness rule and limit applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from monitor.errors import FeedError, FetchError
from monitor.fetch.http import Fetcher
from monitor.fetch.parse import parse_feed
from monitor.models import FeedSpec

FEED_TYPES = frozenset({
    "application/rss+xml", "application/atom+xml", "application/rdf+xml",
    "application/feed+json", "application/json+feed", "application/x.atom+xml",
    "application/xml", "text/xml",
})
COMMON_PATHS = ("/feed", "/rss", "/feed.xml", "/rss.xml", "/atom.xml", "/index.xml",
                "/feeds/posts/default", "/rss/", "/feed/")


@dataclass(frozen=True)
class FeedLink:
    url: str
    title: str | None
    type: str


def find_feed_links(html: bytes | str, base_url: str) -> list[FeedLink]:
    """Feeds a page advertises with ``<link rel="alternate">``, in page order, no duplicates."""
    text = html.decode("utf-8", "replace") if isinstance(html, bytes) else html
    tree = LexborHTMLParser(text)
    base = base_url
    base_tag = tree.css_first("base[href]")
    if base_tag is not None:
        base = urljoin(base_url, (base_tag.attributes.get("href") or "").strip())
    out: list[FeedLink] = []
    seen: set[str] = set()
    for node in tree.css("link[href]"):
        rel = (node.attributes.get("rel") or "").lower().split()
        kind = (node.attributes.get("type") or "").lower().split(";")[0].strip()
        if "alternate" not in rel or kind not in FEED_TYPES:
            continue
        href = (node.attributes.get("href") or "").strip()
        url = urljoin(base, href)
        if urlsplit(url).scheme not in ("http", "https") or url in seen:
            continue
        seen.add(url)
        title = (node.attributes.get("title") or "").strip() or None
        out.append(FeedLink(url, title, kind))
    return out


def _is_feed(body: bytes | None, url: str) -> bool:
    if body is None:
        return False
    try:
        parse_feed(body, FeedSpec(url=url), fetched_at=datetime.now(UTC), base_url=url)
    except FeedError:
        return False
    return True


async def discover(fetcher: Fetcher, url: str, *, try_common_paths: bool = True) -> list[str]:
    """Feed URLs for ``url``: itself, its advertised feeds, or a common path. Empty: none found.

    Raises ``FetchError`` only when ``url`` itself cannot be fetched.
    """
    page = await fetcher.fetch(url)
    final = page.final_url or url
    if _is_feed(page.body, final):
        return [final]
    links = [link.url for link in find_feed_links(page.body or b"", final)]
    if links:
        return links
    if not try_common_paths:
        return []
    parts = urlsplit(final)
    root = f"{parts.scheme}://{parts.netloc}"
    for path in COMMON_PATHS:
        candidate = root + path
        try:
            res = await fetcher.fetch(candidate)
        except FetchError:
            continue
        if _is_feed(res.body, res.final_url or candidate):
            return [res.final_url or candidate]
    return []
