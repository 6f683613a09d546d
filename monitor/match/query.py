"""Compile an analyst's Lucene-syntax query into a :mod:`monitor.match.nodes` tree.

Parsing is luqum's job (the Lucene grammar, operator precedence, positions); this
module only turns luqum's tree into ours and refuses, with a position and a
plain reason, whatever we do not support or what is almost surely a typo:

=======================  ==============================================================
syntax                   meaning here
=======================  ==============================================================
``a AND b``, ``a && b``  both (``&&``/``||``/``!`` are rejected: write AND/OR/NOT)
``a OR b``               either
``NOT a``, ``-a``        not
``+a``                   required inside an implicit group (Lucene semantics)
``a b``                  implicit operator: the file's ``default_operator`` (OR, as Lucene)
``(...)``                grouping
``"a b"``                exact phrase (consecutive tokens, one field)
``"a b"~8``              all words within 8 extra tokens of each other, any order
``a NEAR/5 b``           a term/phrase within 5 tokens of another
``guarantee*``           trailing wildcard (prefix of at least 2 characters)
``gu?rant*e``            general wildcard (``?`` one char, ``*`` any run; slower)
``title:x``              field scope: title, summary, content, outlet, url, language,
                         text (= title+summary+content, the default)
``@ukraine``             a named term list (any of its entries)
``*``                    every article (with a field scope or NOT)
``x^2``                  boost: accepted and ignored (no scoring here)
=======================  ==============================================================

``/peace.?keep.*/``      a regular expression over whole words (RE2: linear time;
                         needs google-re2, refused without it)

Rejected: fuzzy ``word~2``, ranges ``[a TO b]``, unknown fields,
unknown term lists, words without letters or digits, lowercase ``and``/``or``/``not``
used bare (almost always meant as operators; quote them to search for them).
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Literal

from luqum import tree
from luqum.exceptions import IllegalCharacterError, ParseError
from luqum.parser import parser

from monitor.match.nodes import (
    And,
    AnyWord,
    Group,
    MatchAll,
    Matcher,
    Near,
    Node,
    Not,
    Or,
    Pattern,
    Seq,
    is_positional,
)
from monitor.match.text import DEFAULT_FIELDS, FIELDS, normalize, split_query_word

Operator = Literal["AND", "OR"]
MIN_PREFIX = 2
_NEAR = re.compile(r"NEAR(?:/(\d+))?")
_POSITION = re.compile(r"at position (\d+)")
_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    **{f: (f,) for f in FIELDS},
    "text": DEFAULT_FIELDS,
    "body": ("content",),
    "lang": ("language",),
    "source": ("outlet",),
}


class QueryError(Exception):
    """A query the engine refuses; ``position`` is a 0-based offset into the query."""

    def __init__(self, reason: str, position: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.position = position


@dataclass(frozen=True)
class Clause:
    """A top-level clause of a query: the unit an explanation reports on."""

    source: str
    node: Node
    negated: bool = False


@dataclass(frozen=True)
class Query:
    source: str
    root: Node
    clauses: tuple[Clause, ...]
    combine: Literal["all", "any", "one"]


def compile_entry(entry: str, fields: tuple[str, ...] = DEFAULT_FIELDS) -> Seq:
    """One term-list entry (a word, a phrase, a prefix) as a node."""
    pieces = split_query_word(entry)
    if not pieces:
        raise QueryError(f"term {entry!r} has no letters or digits")
    return Seq([_pattern(p, entry) for p in pieces], fields, entry)


def check_balance(text: str) -> None:
    """Name the unbalanced parenthesis or quote before luqum gives a vaguer message."""
    stack: list[int] = []
    quote: int | None = None
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if quote is not None:
            if c == '"':
                quote = None
        elif c == '"':
            quote = i
        elif c == "(":
            stack.append(i)
        elif c == ")":
            if not stack:
                raise QueryError("unbalanced parenthesis: ')' has no matching '('", i)
            stack.pop()
        i += 1
    if quote is not None:
        raise QueryError('unbalanced quote: \'"\' is never closed', quote)
    if stack:
        raise QueryError("unbalanced parenthesis: '(' is never closed", stack[-1])


def parse_query(
    text: str, terms: Mapping[str, Sequence[str]], default_operator: Operator = "OR",
) -> Query:
    """Parse and compile ``text``; raise :class:`QueryError` with a reason and position."""
    if not text or not text.strip():
        raise QueryError("empty query")
    check_balance(text)
    try:
        parsed = parser.parse(text)
    except IllegalCharacterError as e:
        raise QueryError(f"illegal character: {e}") from e
    except ParseError as e:
        msg = str(e)
        m = _POSITION.search(msg)
        reason = msg.replace("Syntax error in input : ", "syntax error: ").rstrip("!")
        raise QueryError(reason, int(m.group(1)) if m else len(text)) from e
    compiler = _Compiler(terms, default_operator)
    root = compiler.node(parsed, DEFAULT_FIELDS)
    top = parsed
    while isinstance(top, tree.Group) and len(top.children) == 1:
        top = top.children[0]
    clauses: list[Clause] = []
    combine: Literal["all", "any", "one"] = "one"
    if isinstance(top, tree.AndOperation | tree.OrOperation | tree.UnknownOperation):
        if isinstance(top, tree.AndOperation):
            combine = "all"
        elif isinstance(top, tree.OrOperation):
            combine = "any"
        else:
            has_must = any(isinstance(c, tree.Plus) for c in top.children)
            combine = "all" if default_operator == "AND" or has_must else "any"
        for child in top.children:
            if isinstance(child, tree.Word) and _NEAR.fullmatch(child.value):
                return Query(text, root, (Clause(text.strip(), root),), "one")
            negated = isinstance(child, tree.Not | tree.Prohibit)
            inner = child.children[0] if negated else child
            node = compiler.node(inner, DEFAULT_FIELDS)
            clauses.append(Clause(str(child).strip(), node, negated))
    else:
        clauses.append(Clause(text.strip(), root))
    return Query(text, root, tuple(clauses), combine)


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def _pattern(piece: str, where: str, pos: int | None = None) -> Pattern:
    norm = normalize(piece)
    if "*" not in norm and "?" not in norm:
        return Pattern("lit", norm)
    if norm.endswith("*") and "*" not in norm[:-1] and "?" not in norm:
        prefix = norm[:-1]
        if len(prefix) < MIN_PREFIX:
            raise QueryError(
                f"wildcard {piece!r} in {where!r} is too broad: give at least "
                f"{MIN_PREFIX} letters before '*'", pos)
        return Pattern("pre", prefix)
    if not norm.strip("*?"):
        raise QueryError(f"wildcard {piece!r} in {where!r} has no letters", pos)
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in norm)
    return Pattern("re", norm, re.compile(rx))


def _regex(value: str, pos: int | None) -> Pattern:
    """A ``/regex/`` term, compiled with RE2 so that it runs in linear time.

    Python's ``re`` can backtrack exponentially on a careless pattern; a rule file
    must never be able to stall the matcher, so without google-re2 installed the
    syntax is refused rather than run with ``re``. The pattern sees normalized
    words (lowercase, accents removed), so it is compiled case-insensitive and its
    own accents are removed the same way.
    """
    try:
        re2 = importlib.import_module("re2")
    except ImportError as e:
        raise QueryError(
            "regular expressions (/.../) need the google-re2 package, which is not "
            "installed: use wildcards or a term list", pos) from e
    body = value[1:-1]
    decomposed = unicodedata.normalize("NFKD", body)
    body = "".join(c for c in decomposed if not unicodedata.combining(c))
    if not body:
        raise QueryError("empty regular expression", pos)
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    try:
        compiled = re2.compile(body, options)
    except re2.error as e:
        detail = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        raise QueryError(f"regular expression {value} cannot run under RE2: {detail}",
                         pos) from e
    matcher: Matcher = compiled
    return Pattern("re", value, matcher)


class _Compiler:
    def __init__(self, terms: Mapping[str, Sequence[str]], default_operator: Operator) -> None:
        self.terms = terms
        self.default_and = default_operator == "AND"

    def node(self, n: tree.Item, fields: tuple[str, ...]) -> Node:
        src = str(n).strip()
        pos = getattr(n, "pos", None)
        if isinstance(n, tree.SearchField):
            name = n.name.lower()
            scoped = _FIELD_ALIASES.get(name)
            if scoped is None:
                known = ", ".join([*FIELDS, "text"])
                raise QueryError(f"unknown field {n.name!r} (known: {known})", pos)
            return self.node(n.expr, scoped)
        if isinstance(n, tree.Group | tree.FieldGroup):
            return self.node(n.expr, fields)
        if isinstance(n, tree.Word):
            return self.word(n.value, fields, pos)
        if isinstance(n, tree.Phrase):
            return self.phrase(n.value, fields, pos, None)
        if isinstance(n, tree.Proximity):
            degree = 1 if n.degree is None else int(n.degree)
            if isinstance(n.term, tree.Phrase):
                return self.phrase(n.term.value, fields, pos, degree)
            raise QueryError(
                f"'~{degree}' after a single word is fuzzy matching, which is not "
                "supported: use a wildcard (guarant*) or a term list", pos)
        if isinstance(n, tree.Fuzzy):
            raise QueryError(
                "fuzzy matching (word~N) is not supported: use a wildcard or a term list", pos)
        if isinstance(n, tree.Regex):
            return Seq([_regex(n.value, pos)], fields, n.value)
        if isinstance(n, tree.Range | tree.From | tree.To):
            raise QueryError("ranges ([a TO b]) are not supported", pos)
        if isinstance(n, tree.Boost):
            return self.node(n.expr, fields)
        if isinstance(n, tree.Not | tree.Prohibit):
            return Not(self.node(n.children[0], fields), src)
        if isinstance(n, tree.Plus):
            return self.node(n.children[0], fields)
        if isinstance(n, tree.AndOperation):
            return And([self.node(c, fields) for c in n.children], src)
        if isinstance(n, tree.OrOperation):
            return _merge_or([self.node(c, fields) for c in n.children], src)
        if isinstance(n, tree.UnknownOperation):
            return self.implicit(list(n.children), fields, src)
        raise QueryError(f"unsupported syntax {src!r} ({type(n).__name__})", pos)

    def implicit(self, children: list[tree.Item], fields: tuple[str, ...], src: str) -> Node:
        items: list[tuple[str, Node]] = []  # (kind, node): kind in must/should/not
        i = 0
        while i < len(children):
            c = children[i]
            if isinstance(c, tree.Word) and (m := _NEAR.fullmatch(c.value)):
                if not items or i + 1 >= len(children):
                    raise QueryError("NEAR needs a term on both sides", c.pos)
                kind, left = items.pop()
                right = self.node(children[i + 1], fields)
                if kind != "should" or not is_positional(left) or not is_positional(right):
                    raise QueryError(
                        "NEAR joins terms, phrases, term lists or OR-groups of them; "
                        "with AND/OR/NOT around it, wrap it in parentheses: (a NEAR/5 b)",
                        c.pos)
                dist = int(m.group(1)) if m.group(1) else 10
                left_src = left.source if isinstance(left, Near) else str(children[i - 1])
                near_src = f"{left_src.strip()} {c.value} {str(children[i + 1]).strip()}"
                items.append(("should", Near(left, right, dist, near_src)))
                i += 2
                continue
            if isinstance(c, tree.Plus):
                items.append(("must", self.node(c.children[0], fields)))
            elif isinstance(c, tree.Prohibit | tree.Not):
                items.append(("not", self.node(c.children[0], fields)))
            else:
                items.append(("should", self.node(c, fields)))
            i += 1
        must = [n for k, n in items if k == "must"]
        should = [n for k, n in items if k == "should"]
        must_not = [n for k, n in items if k == "not"]
        if self.default_and:
            must, should = must + should, []
        if len(items) == 1 and not must_not:
            return items[0][1]
        return Group(must, should, must_not, src)

    def word(self, value: str, fields: tuple[str, ...], pos: int | None) -> Node:
        if value.startswith("@"):
            return self.term_list(value[1:], fields, pos)
        if value == "*":
            return MatchAll()
        if value in ("and", "or", "not"):
            raise QueryError(
                f"lowercase {value!r} is read as a search word: write {value.upper()} for "
                f'the operator, or "{value}" to search for the word', pos)
        if value in ("&&", "||", "!"):
            raise QueryError(f"{value!r} is not supported: write AND, OR or NOT", pos)
        text = _unescape(value)
        pieces = split_query_word(text)
        if not pieces:
            raise QueryError(f"{value!r} has no letters or digits to search for", pos)
        return Seq([_pattern(p, value, pos) for p in pieces], fields, value)

    def phrase(
        self, value: str, fields: tuple[str, ...], pos: int | None, slop: int | None,
    ) -> Node:
        inner = _unescape(value[1:-1])
        pieces = split_query_word(inner)
        if not pieces:
            raise QueryError(f"phrase {value} has no letters or digits", pos)
        src = value if slop is None else f"{value}~{slop}"
        return Seq([_pattern(p, value, pos) for p in pieces], fields, src,
                   slop if len(pieces) > 1 else None)

    def term_list(self, name: str, fields: tuple[str, ...], pos: int | None) -> Node:
        entries = self.terms.get(name.casefold())
        if entries is None:
            close = get_close_matches(name.casefold(), list(self.terms), n=1)
            if close:
                hint = f"did you mean @{close[0]}?"
            else:
                hint = "known: " + (", ".join("@" + k for k in sorted(self.terms)) or "none")
            raise QueryError(f"unknown term list '@{name}' ({hint})", pos)
        nodes: list[Node] = [compile_entry(e, fields) for e in entries]
        return _merge_or(nodes, "@" + name)


def _merge_or(nodes: list[Node], source: str) -> Node:
    """Fold the plain single words of an OR into one :class:`AnyWord` set lookup."""
    words: dict[tuple[str, ...], dict[str, str]] = {}
    rest: list[Node] = []
    for n in nodes:
        if isinstance(n, Seq) and len(n.words) == 1 and n.words[0].kind == "lit":
            words.setdefault(n.fields, {}).setdefault(n.words[0].text, n.source)
        else:
            rest.append(n)
    merged: list[Node] = [AnyWord(w, f, source) for f, w in words.items()]
    out = merged + rest
    if len(out) == 1:
        return out[0]
    return Or(out, source)
