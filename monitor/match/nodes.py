"""The compiled form of a query: a small tree evaluated against a :class:`Document`.

Every node answers two questions. ``matches(doc)`` is the hot path: a plain
bool, no allocation beyond what lookups need. ``collect(doc, out)`` answers the
same question and also appends *why* (which term, in which field, at which
token positions) — it runs only for rules that matched, or for ``explain``.

Semantics follow Lucene where Lucene is defined:

* ``a b`` (no operator) is a Lucene Boolean group: ``+x`` clauses are required,
  ``-x`` clauses are forbidden, plain clauses are optional when a required
  clause exists and otherwise at least one must match. A group made only of
  ``-x`` clauses matches every article lacking them (Lucene would match
  nothing; an analyst writing ``-gaza`` alone means "anything but Gaza").
* ``"a b"`` is an exact phrase on consecutive tokens of one field.
* ``"a b"~N`` needs every word within a window of ``N`` extra tokens, in any order.
* ``a NEAR/N b`` needs an occurrence of ``a`` and one of ``b`` in the same
  field no more than ``N`` tokens apart, in either order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from heapq import merge
from typing import Literal, Protocol

from monitor.match.text import Document, FieldText

#: (field, term as written, token positions) — one piece of evidence.
Evidence = tuple[str, str, tuple[int, ...]]


class Matcher(Protocol):
    """What a wildcard or a user regex must offer: ``re`` and ``re2`` patterns both do."""

    def fullmatch(self, string: str) -> object: ...


@dataclass(frozen=True)
class Pattern:
    """One query token: a literal, a trailing-``*`` prefix, or a wildcard / regex.

    A regex (``kind == "re"``) is matched against whole normalized words, as in
    Lucene: ``/peace.?keep(ing|ers?)/`` matches the word ``peacekeepers``.
    """

    kind: Literal["lit", "pre", "re"]
    text: str  # normalized literal or prefix; the wildcard or regex as written for "re"
    regex: Matcher | None = None

    def positions(self, f: FieldText) -> list[int]:
        if self.kind == "lit":
            return f.positions.get(self.text, [])
        if self.kind == "pre":
            words = list(f.with_prefix(self.text))
        else:
            assert self.regex is not None
            rx = self.regex
            words = [w for w in f.vocabulary if rx.fullmatch(w)]
        if not words:
            return []
        if len(words) == 1:
            return f.positions[words[0]]
        return list(merge(*(f.positions[w] for w in words)))

    def present(self, f: FieldText) -> bool:
        if self.kind == "lit":
            return self.text in f.positions
        if self.kind == "pre":
            return next(f.with_prefix(self.text), None) is not None
        assert self.regex is not None
        rx = self.regex
        return any(rx.fullmatch(w) for w in f.vocabulary)


class Node:
    """Base of the compiled query tree."""

    source: str = ""

    def matches(self, doc: Document) -> bool:
        raise NotImplementedError

    def collect(self, doc: Document, out: list[Evidence]) -> bool:
        raise NotImplementedError


class Seq(Node):
    """A term, an exact phrase, or a proximity phrase, searched in some fields."""

    def __init__(
        self, words: Sequence[Pattern], fields: tuple[str, ...], source: str,
        slop: int | None = None,
    ) -> None:
        self.words = tuple(words)
        self.fields = fields
        self.source = source
        self.slop = slop
        only = self.words[0] if len(self.words) == 1 else None
        self._literal = only.text if only is not None and only.kind == "lit" else None
        self._required = tuple(w.text for w in self.words if w.kind == "lit")

    def occurrences(self, f: FieldText, first_only: bool) -> list[tuple[int, ...]]:
        words = self.words
        if len(words) == 1:
            ps = words[0].positions(f)
            return [(p,) for p in (ps[:1] if first_only else ps)]
        lists = [w.positions(f) for w in words]
        if any(not ps for ps in lists):
            return []
        if self.slop is None:
            sets = [set(ps) for ps in lists[1:]]
            out: list[tuple[int, ...]] = []
            for p in lists[0]:
                if all(p + i in s for i, s in enumerate(sets, 1)):
                    out.append(tuple(range(p, p + len(words))))
                    if first_only:
                        break
            return out
        return _windows(lists, self.slop + len(words) - 1, first_only)

    def matches(self, doc: Document) -> bool:
        fields = doc.fields
        if self._literal is not None:
            lit = self._literal
            for n in self.fields:  # noqa: SIM110 - a plain loop is faster on this hot path
                if lit in fields[n].positions:
                    return True
            return False
        if len(self.words) == 1:
            w = self.words[0]
            return any(w.present(fields[n]) for n in self.fields)
        required = self._required
        for n in self.fields:
            f = fields[n]
            pos = f.positions
            # cheap rejection first: every literal word of the phrase must occur
            if all(r in pos for r in required) and self.occurrences(f, True):
                return True
        return False

    def collect(self, doc: Document, out: list[Evidence]) -> bool:
        found = False
        for name in self.fields:
            for occ in self.occurrences(doc.field(name), False):
                out.append((name, self.source, occ))
                found = True
        return found


def _windows(lists: list[list[int]], width: int, first_only: bool) -> list[tuple[int, ...]]:
    """Smallest windows holding one position from every list, of span <= ``width``."""
    events = sorted((p, i) for i, ps in enumerate(lists) for p in ps)
    last: dict[int, int] = {}
    out: list[tuple[int, ...]] = []
    k = len(lists)
    for p, i in events:
        last[i] = p
        if len(last) == k:
            lo = min(last.values())
            if p - lo <= width:
                occ = tuple(sorted(last.values()))
                if not out or out[-1] != occ:
                    out.append(occ)
                if first_only:
                    break
    return out


class AnyWord(Node):
    """An OR of plain single words (typically a term list): one set lookup per field."""

    def __init__(self, words: dict[str, str], fields: tuple[str, ...], source: str) -> None:
        self.words = words  # normalized -> as written
        self.keys = frozenset(words)
        self.fields = fields
        self.source = source

    def matches(self, doc: Document) -> bool:
        keys = self.keys
        fields = doc.fields
        for name in self.fields:
            pos = fields[name].positions
            if len(pos) < len(keys):
                if any(map(keys.__contains__, pos)):
                    return True
            elif any(map(pos.__contains__, keys)):
                return True
        return False

    def collect(self, doc: Document, out: list[Evidence]) -> bool:
        found = False
        for name in self.fields:
            pos = doc.field(name).positions
            for key, written in self.words.items():
                for p in pos.get(key, ()):
                    out.append((name, written, (p,)))
                    found = True
        return found


class And(Node):
    def __init__(self, children: Sequence[Node], source: str) -> None:
        self.children = tuple(children)
        self.source = source

    def matches(self, doc: Document) -> bool:
        for c in self.children:  # noqa: SIM110 - a plain loop is faster on this hot path
            if not c.matches(doc):
                return False
        return True

    def collect(self, doc: Document, out: list[Evidence]) -> bool:
        if not self.matches(doc):
            return False
        for c in self.children:
            c.collect(doc, out)
        return True


class Or(Node):
    def __init__(self, children: Sequence[Node], source: str) -> None:
        self.children = tuple(children)
        self.source = source

    def matches(self, doc: Document) -> bool:
        for c in self.children:  # noqa: SIM110 - a plain loop is faster on this hot path
            if c.matches(doc):
                return True
        return False

    def collect(self, doc: Document, out: list[Evidence]) -> bool:
        found = False
        for c in self.children:
            if c.collect(doc, out):
                found = True
        return found


class Not(Node):
    def __init__(self, child: Node, source: str) -> None:
        self.child = child
        self.source = source

    def matches(self, doc: Document) -> bool:
        return not self.child.matches(doc)

    def collect(self, doc: Document, out: list[Evidence]) -> bool:
        return not self.child.matches(doc)


class Group(Node):
    """Lucene's Boolean group: required, optional and forbidden clauses."""

    def __init__(
        self, must: Sequence[Node], should: Sequence[Node], must_not: Sequence[Node],
        source: str,
    ) -> None:
        self.must = tuple(must)
        self.should = tuple(should)
        self.must_not = tuple(must_not)
        self.source = source

    def matches(self, doc: Document) -> bool:
        if any(c.matches(doc) for c in self.must_not):
            return False
        if not all(c.matches(doc) for c in self.must):
            return False
        if self.must or not self.should:
            return True
        return any(c.matches(doc) for c in self.should)

    def collect(self, doc: Document, out: list[Evidence]) -> bool:
        if not self.matches(doc):
            return False
        for c in self.must + self.should:
            c.collect(doc, out)
        return True


class Near(Node):
    """``a NEAR/N b``: an occurrence of each side, same field, at most N tokens apart.

    Each side is *positional*: a term, a phrase, a term list, an OR of those, or
    another NEAR — anything that can say where in a field it occurs.
    """

    def __init__(self, left: Node, right: Node, distance: int, source: str) -> None:
        self.left = left
        self.right = right
        self.distance = distance
        self.fields = tuple(f for f in fields_of(left) if f in fields_of(right))
        self.source = source

    def pairs(self, name: str, f: FieldText, first_only: bool) -> list[tuple[int, ...]]:
        lefts = occurrences(self.left, name, f)
        if not lefts:
            return []
        rights = occurrences(self.right, name, f)
        out: list[tuple[int, ...]] = []
        for a in lefts:
            for b in rights:
                gap = max(b[0] - a[-1], a[0] - b[-1])
                if gap <= self.distance:
                    out.append(tuple(sorted(a + b)))
                    if first_only:
                        return out
        return out

    def matches(self, doc: Document) -> bool:
        return any(self.pairs(n, doc.field(n), True) for n in self.fields)

    def collect(self, doc: Document, out: list[Evidence]) -> bool:
        found = False
        for name in self.fields:
            for occ in self.pairs(name, doc.field(name), False):
                out.append((name, self.source, occ))
                found = True
        return found


def is_positional(node: Node) -> bool:
    """Whether ``node`` can report token positions (so it may stand beside NEAR)."""
    if isinstance(node, Seq | AnyWord | Near):
        return True
    return isinstance(node, Or) and all(is_positional(c) for c in node.children)


def fields_of(node: Node) -> tuple[str, ...]:
    if isinstance(node, Seq | AnyWord | Near):
        return node.fields
    if isinstance(node, Or):
        out: dict[str, None] = {}
        for c in node.children:
            out.update(dict.fromkeys(fields_of(c)))
        return tuple(out)
    return ()


def occurrences(node: Node, name: str, f: FieldText) -> list[tuple[int, ...]]:
    """Every occurrence of a positional node in field ``name`` as token positions."""
    if isinstance(node, Seq):
        return node.occurrences(f, False) if name in node.fields else []
    if isinstance(node, AnyWord):
        if name not in node.fields:
            return []
        pos = f.positions
        return [(p,) for k in node.keys for p in pos.get(k, ())]
    if isinstance(node, Near):
        return node.pairs(name, f, False) if name in node.fields else []
    if isinstance(node, Or):
        return [o for c in node.children for o in occurrences(c, name, f)]
    return []


class MatchAll(Node):
    """``*``: every article (useful with ``language:`` or ``outlet:`` scoping alone)."""

    source = "*"

    def matches(self, doc: Document) -> bool:
        return True

    def collect(self, doc: Document, out: list[Evidence]) -> bool:
        return True
