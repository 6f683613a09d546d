"""Feed HTML to the plain text the matcher and the alerts read. Pure, no I/O.

Summaries arrive as HTML (often escaped twice), with scripts, tracking pixels and
``&nbsp;`` everywhere. selectolax's lexbor engine (a forgiving HTML5 parser in C)
turns them into text; we only add what it does not do:

* a space where a block element ends (``<p>a</p><p>b</p>`` is "a b", not "ab"),
  while inline tags do not split words (``<b>Kyi</b>v`` stays "Kyiv");
* ``<script>``, ``<style>``, ``<noscript>`` and friends are dropped with their content;
* entities left after parsing (double escaping: ``&amp;amp;``) are unescaped once more;
* whitespace (incl. NBSP and zero-width characters) collapsed to single spaces;
* the result capped at a length, cut at a word boundary.
"""

from __future__ import annotations

import html
import re

from selectolax.lexbor import LexborHTMLParser

_BLOCK_END = re.compile(
    r"(<(?:br|hr|img)\b[^>]*>|</(?:p|div|li|ul|ol|h[1-6]|tr|td|th|table|blockquote|section"
    r"|article|header|footer|figure|figcaption|pre|dd|dt|aside|nav)\s*>)",
    re.IGNORECASE,
)
_DROP = ["script", "style", "noscript", "template", "iframe", "object", "svg", "head"]
_SPACE = re.compile(r"[\s\u00a0\u200b\u200c\u200d\u2060\ufeff]+")
_MARKUP = re.compile(r"<[a-zA-Z/!]|&[#a-zA-Z0-9]+;")


def collapse(text: str) -> str:
    """Whitespace (including NBSP and zero-width marks) folded to single spaces."""
    return _SPACE.sub(" ", text).strip()


def cap(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"


def html_to_text(value: str, limit: int = 20_000) -> str:
    """Plain text of an HTML fragment (or of text that merely contains entities)."""
    if not value:
        return ""
    if not _MARKUP.search(value):
        return cap(collapse(value), limit)
    if "<" in value:
        tree = LexborHTMLParser(_BLOCK_END.sub(r"\1 ", value))
        tree.strip_tags(_DROP)
        text = tree.text(separator="")
    else:
        text = value
    if "&" in text:
        text = html.unescape(text)
    return cap(collapse(text), limit)


def plain_to_text(value: str, limit: int = 20_000) -> str:
    """A field declared plain text: unescape stray entities, never parse tags away."""
    if not value:
        return ""
    if "&" in value:
        value = html.unescape(value)
    return cap(collapse(value), limit)
