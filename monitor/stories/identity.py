"""The keys under which an article counts as already seen, across every feed.

An article is "seen" when any one of its keys was seen before:

* ``g:`` the feed's GUID, scoped by the feed's host (GUIDs like ``1234`` are not
  unique across publishers, but one publisher's feeds share them);
* ``u:`` the canonical URL (same page in two feeds, tracking variants, AMP), with the
  link's anchor kept (a live blog's ``#post-N``; ``fetch/parse.py``); not for a link
  several entries of one feed share (items that all link to the home page), which
  names a page, not an article;
* ``h:`` a hash of the normalized title and summary (a republished copy under
  another URL). Skipped when the text is too short to identify anything.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import urlsplit

MIN_HASHED_CHARS = 40
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalize_text(text: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form of ``text``."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", stripped.casefold()).strip()


def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode("utf-8"), digest_size=12).hexdigest()


def content_hash(title: str, summary: str) -> str | None:
    norm = normalize_text(f"{title} {summary}")
    if len(norm) < MIN_HASHED_CHARS:
        return None
    return _digest(norm)


def identity_keys(
    *, feed_url: str, guid: str | None, canonical: str | None, title: str, summary: str
) -> tuple[str, ...]:
    """Every seen-key of one article, most specific first."""
    keys: list[str] = []
    if guid:
        host = (urlsplit(feed_url).hostname or feed_url).lower()
        keys.append("g:" + _digest(f"{host}\x00{guid.strip()}"))
    if canonical:
        keys.append("u:" + _digest(canonical))
    h = content_hash(title, summary)
    if h:
        keys.append("h:" + h)
    return tuple(keys)
