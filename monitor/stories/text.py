"""From an article's text to what can tell one event from another. Pure, no I/O.

Two outlets writing about one event share little wording but the same *particulars*:
names of people and places (``Macron``, ``Kryvyi Rih``), numbers (``34``, ``30-day``),
and the words they quote. Two different events on the same theme share the theme
words (``rehab``, ``ceasefire``, ``summit``) but not those particulars. So every term
gets a weight from its frequency *and* its kind, and the online IDF in ``cluster.py``
later demotes whatever is common in the window:

===========  ======  ============================================================
kind         boost   how it is recognised
===========  ======  ============================================================
entity       3.0     capitalised somewhere other than at a sentence start
                     (``Paris``, ``NATO``, ``Glavaš``); titles in Title Case only
                     count where the body agrees
number       2.0     contains a digit (``34``, ``30-day``, ``7,000``)
quoted       1.3     inside quotation marks (“…”, "…", «…», „…“)
===========  ======  ============================================================

Weight = (1 + ln tf) × boost. Language-aware: stop words of the declared language (or
the guessed one, see ``stopwords.py``) are dropped, accents folded, English plurals
reduced by the "S" stemmer (Harman 1991). Only the first ``MAX_CHARS`` of the body are
read: a lead carries the particulars, and the cost stays bounded.

``marks`` are the years, weekdays, months, dates, counts and counted nouns ("26 pirates")
mentioned (``particulars.py``).
``shingles`` (word 3-grams over every token, stop words included) feed the MinHash
near-duplicate fingerprint: wire copy keeps those even when the headline is edited.
"""

from __future__ import annotations

import math
import re
import zlib
from array import array
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter

from monitor.stories.particulars import particulars
from monitor.stories.stopwords import fold, guess_language, stop_words_for

MAX_CHARS = 5000
MAX_SHINGLE_TOKENS = 300
ENTITY_BOOST = 3.0
NUMBER_BOOST = 2.0
QUOTE_BOOST = 1.3

# A word, keeping inner apostrophes, dots and hyphens ("30-day", "U.S", "O'Brien") but
# not a possessive "'s"; the gap before it tells whether it starts a sentence.
# Possessive quantifiers (``++``, ``*+``): a word run is never given back, because what
# may follow it (a separator, the next gap) cannot be a word character; the matches
# are the same as with plain ``+``/``*`` and a lazy gap, and ``re`` does about half the
# work (no backtracking states; the lazy gap retried the word at every gap character).
_WORD = r"[^\W_]++(?:(?:['’](?![sS]\b)|[.\-])[^\W_]++)*+"
_TOKEN = re.compile(_WORD)
_GAP_TOKEN = re.compile(r"([\W_]*+)(" + _WORD + ")")


def ascii_form(pattern: str) -> str:
    r"""The same pattern for ASCII text, with its word and digit classes as plain ranges.

    ``re`` checks ``[^\W_]``, ``[\W_]`` and ``\d`` through the Unicode tables (up to
    four lookups a character for "alphanumeric"), where a range is two compares; on
    an ASCII string the classes hold exactly the same characters, so the matches are
    the same (tested), and a scan over a lead takes a third less time. Only these
    classes change: ``\s`` and ``\b`` stay Unicode (``\s`` includes ``\x1c``-``\x1f``,
    which the ASCII flag would drop).
    """
    return (pattern.replace(r"[^\W_]", "[a-zA-Z0-9]").replace(r"[\W_]", "[^a-zA-Z0-9]")
            .replace(r"\d", "[0-9]"))


_GAP_TOKEN_ASCII = re.compile(ascii_form(_GAP_TOKEN.pattern))
_QUOTE = re.compile(r"“[^”]{1,400}”|\"[^\"\n]{1,400}\"|«[^»]{1,400}»|„[^“”]{1,400}[“”]")
_SENTENCE_END = re.compile(r'[.!?:;\n"“”«»(]')
_DIGIT = re.compile(r"\d")
_SECOND = itemgetter(1)


@dataclass(frozen=True)
class TextFeatures:
    """What one article contributes to clustering, before IDF is applied."""

    weights: dict[str, float]
    language: str
    shingles: list[str]
    marks: tuple[str, ...] = ()   # event particulars (``particulars.py``)
    # CRC32 of each term of ``weights``, same order (``term_hash``); empty: not computed
    hashes: array[int] = field(default_factory=lambda: array("I"))


def _has_digit(token: str) -> bool:
    return not token.isalpha() and _DIGIT.search(token) is not None


def s_stem(word: str) -> str:
    """Harman's S stemmer: English plural to singular, nothing else (cheap and safe)."""
    if len(word) <= 3 or not word.endswith("s"):
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith(("us", "ss")):
        return word
    return word[:-1]


def _tokens(text: str) -> tuple[list[str], set[str]]:
    """Casefolded tokens in order, and those capitalised other than at a sentence start."""
    pairs = (_GAP_TOKEN_ASCII if text.isascii() else _GAP_TOKEN).findall(text)
    names = {tok.casefold() for gap, tok in pairs[1:]
             if tok[0].isupper() and _SENTENCE_END.search(gap) is None}
    return list(map(str.casefold, map(_SECOND, pairs))), names


# Memo of the per-word decisions that do not depend on the article: stop word or too
# short (None), else (term when not a name, contains a digit, CRC32 of that term). Pure
# memoization: a cleared memo gives the same results, so it is simply emptied when it
# grows too big. The bound is on all languages together (it was per language, so up to
# ~30 MB for each language met): ~190 bytes a word with its strings, 100k words ~19 MB.
# The CRC32 rides along so that a term costs one lookup in one big table, not two
# (``cluster.py`` kept its own term -> CRC32 memo, ~12 MB, and a cache miss per term
# at a 100k window).
_WordInfo = tuple[str, bool, int] | None
_WORD_CACHE: dict[tuple[str, bool], dict[str, _WordInfo]] = {}
WORD_CACHE_MAX = 100_000
_LOG1P = [0.0] + [1.0 + math.log(n) for n in range(1, 64)]   # 1 + ln tf
_UNKNOWN: _WordInfo = ("\0unknown", False, 0)   # identity-compared sentinel


def term_hash(term: str) -> int:
    """CRC32 of a term: stable across processes (unlike ``hash``), so document
    frequencies and the persisted ``d`` field mean the same after a restart."""
    return zlib.crc32(term.encode("utf-8"))


def _word_info(low: str, stops: frozenset[str], stem: bool) -> _WordInfo:
    if low in stops:
        return None
    digit = _has_digit(low)
    if len(low) < 2 and not digit:
        return None
    term = s_stem(low) if stem and not digit else low
    return term, digit, term_hash(term)


def extract(title: str, body: str, language: str | None = None) -> TextFeatures:
    """Weighted terms, language and shingles of one article (see the module docstring).

    The per-token work happens in ``re`` and ``Counter``; Python code runs once per
    distinct word, which keeps a 300-word article well under a millisecond.
    """
    title = fold(title)
    body = fold(body[:MAX_CHARS])
    title_toks, title_caps = _tokens(title)
    body_toks, proper = _tokens(body)
    stops = stop_words_for(language)
    lang = (language or "").strip().lower()[:2]
    if stops is None:
        lang = guess_language(title_toks + body_toks)
        stops = stop_words_for(lang) or frozenset()
    stem = lang == "en"
    # Title Case headlines capitalise everything: trust title capitals only when the
    # title is mostly lower case, or the body is empty (headline-only feeds).
    if not body_toks or len(title_caps) <= 0.6 * max(1, len(set(title_toks))):
        proper |= title_caps
    quoted_words: set[str] = set()
    for m in _QUOTE.finditer(body):
        quoted_words.update(t.casefold() for t in _TOKEN.findall(m.group()))

    counts: dict[str, int] = {}
    hashes = array("I")   # CRC32 of each term of ``counts``, same order
    boosts: dict[str, float] = {}
    if sum(map(len, _WORD_CACHE.values())) > WORD_CACHE_MAX:
        _WORD_CACHE.clear()
    cache = _WORD_CACHE.setdefault((lang, stem), {})
    special: list[tuple[str, str, bool]] = []   # (word, term, has digit) boosted words
    tfs = Counter(title_toks + body_toks)
    for low, tf in tfs.items():
        info = cache.get(low, _UNKNOWN)
        if info is _UNKNOWN:
            info = cache[low] = _word_info(low, stops, stem)
        if info is None:
            continue
        term, digit, crc = info
        if low in proper:
            if term != low:   # names are not plurals: "Paris", "Reuters" stay whole
                term, crc = low, term_hash(low)
            special.append((low, term, digit))
        elif digit or low in quoted_words:
            special.append((low, term, digit))
        n = counts.get(term)
        if n is None:
            counts[term] = tf
            hashes.append(crc)
        else:
            counts[term] = n + tf
    # Most words are plain (boost 1); only names, numbers and quoted words are not.
    for low, term, digit in special:
        boost = ENTITY_BOOST if low in proper else 1.0
        if digit:
            boost *= NUMBER_BOOST
        if low in quoted_words:
            boost *= QUOTE_BOOST
        if boost > boosts.get(term, 1.0):
            boosts[term] = boost
    log = _LOG1P
    weights = {term: (log[tf] if tf < len(log) else 1.0 + math.log(tf)) * boosts.get(term, 1.0)
               for term, tf in counts.items()}

    stream = (title_toks + body_toks)[:MAX_SHINGLE_TOKENS]
    shingles = list(map(" ".join, zip(stream, stream[1:], stream[2:], strict=False)))
    return TextFeatures(weights=weights, language=lang, shingles=shingles,
                        marks=particulars(title + "\n" + body, tfs.keys(), lang), hashes=hashes)
