"""Text analysis shared by queries and articles: one tokenizer, one normalization.

A query term matches an article token when both normalize to the same string, so
the two sides MUST go through :func:`normalize` — that is the whole contract.

* Tokens are runs of Unicode letters and digits (``[^\\W_]+``): ``Ukraine's`` is
  ``ukraine`` + ``s``, ``Article-5`` is ``article`` + ``5``. A query word that
  splits into several tokens becomes an exact phrase, so both sides agree.
* Normalization is NFKD, combining marks dropped, ``casefold()``, then a few
  letters that carry no combining mark mapped by hand (``ł``, ``ø``, ``đ``...).
  ``Zelenskyj`` and ``Zełenśkyj``, ``säkerhet`` and ``sakerhet``, ``Україна``
  and ``україна`` become equal; ``NATO`` never equals ``NATOnal`` because whole
  tokens are compared, never substrings.
* Each field of an article is tokenized once; positions (for phrases and
  proximity) and character spans (for explanations) are built only when a rule
  actually needs them, because most articles are rejected by the prefilter.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterator
from functools import cached_property
from urllib.parse import urlsplit

from monitor.models import Article

WORD = re.compile(r"[^\W_]+")

#: Fields every query term searches unless scoped with ``field:``.
DEFAULT_FIELDS: tuple[str, ...] = ("title", "summary", "content")
#: Every field a query may name.
FIELDS: tuple[str, ...] = ("title", "summary", "content", "outlet", "url", "language")

# Letters NFKD leaves alone (no combining mark to strip) but analysts type without.
_EXTRA = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i", "æ": "ae",
                        "œ": "oe", "þ": "th", "ð": "d", "ŀ": "l"})
_CACHE: dict[str, str] = {}
_CACHE_MAX = 200_000


def normalize(token: str) -> str:
    """Case- and accent-free form of one token (or of a whole string)."""
    if token.isascii():
        return token.lower()
    cached = _CACHE.get(token)
    if cached is not None:
        return cached
    decomposed = unicodedata.normalize("NFKD", token)
    out = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    out = out.translate(_EXTRA)
    if len(_CACHE) < _CACHE_MAX:
        _CACHE[token] = out
    return out


def tokens(text: str) -> list[str]:
    """Normalized tokens of ``text``, in order."""
    if text.isascii():
        return WORD.findall(text.lower())
    return [normalize(t) for t in WORD.findall(text)]


class FieldText:
    """One field of one article: its tokens, and lazily their positions and spans."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokens(text) if text else []

    @cached_property
    def positions(self) -> dict[str, list[int]]:
        """Token -> every position where it occurs (ascending)."""
        out: dict[str, list[int]] = {}
        for i, tok in enumerate(self.tokens):
            lst = out.get(tok)
            if lst is None:
                out[tok] = [i]
            else:
                lst.append(i)
        return out

    @cached_property
    def vocabulary(self) -> list[str]:
        """Distinct tokens, sorted, so a prefix is found with one bisection."""
        return sorted(self.positions)

    @cached_property
    def spans(self) -> list[tuple[int, int]]:
        """Character span in :attr:`text` of each token, same order as :attr:`tokens`."""
        return [m.span() for m in WORD.finditer(self.text)]

    def with_prefix(self, prefix: str) -> Iterator[str]:
        vocab = self.vocabulary
        i = bisect_left(vocab, prefix)
        while i < len(vocab) and vocab[i].startswith(prefix):
            yield vocab[i]
            i += 1


_EMPTY = FieldText("")


class Document:
    """An article as the matcher sees it: named fields, each tokenized once."""

    def __init__(self, article: Article) -> None:
        self.article = article
        url_text = article.url
        if url_text:
            parts = urlsplit(url_text)
            url_text = f"{parts.netloc} {parts.path} {parts.query}"
        self.fields: dict[str, FieldText] = {
            "title": FieldText(article.title),
            "summary": FieldText(article.summary),
            "content": FieldText(article.content),
            "outlet": FieldText(article.outlet),
            "url": FieldText(url_text),
            "language": FieldText(article.language or ""),
        }

    def field(self, name: str) -> FieldText:
        return self.fields.get(name, _EMPTY)

    @cached_property
    def vocabulary_line(self) -> str:
        """Every distinct token of every field, space-delimited with a space at both ends.

        The prefilter runs its Aho-Corasick automaton over this line: a literal
        ``nato`` is the key `` nato `` and a prefix ``peacekeep`` is `` peacekeep``,
        so hits fall on whole tokens only and each token is scanned once.
        """
        seen: set[str] = set()
        for f in self.fields.values():
            seen.update(f.tokens)
        return " " + " ".join(seen) + " "


def split_query_word(text: str) -> list[str]:
    """Split a query word into token-shaped pieces, keeping ``*`` and ``?`` wildcards."""
    return _QUERY_PIECE.findall(text)


_QUERY_PIECE = re.compile(r"(?:[^\W_]|[*?])+")

