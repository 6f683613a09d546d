"""Which rules could possibly match an article, decided with one automaton pass.

This is the Lucene Monitor "presearcher" idea. For every rule we derive
*requirements*: sets of anchors (tokens or token prefixes), every set of which
must be hit by at least one anchor for the rule to have any chance:

* a term requires itself, a prefix wildcard its prefix;
* a phrase (or proximity) requires each of its words;
* ``a AND b`` requires what ``a`` requires and what ``b`` requires;
* ``a OR b`` requires one set: the union of each side's most selective set;
* ``NOT a``, general wildcards and ``*`` require nothing (they are skipped
  inside an AND; a rule with no requirement at all is an *always-candidate*,
  evaluated on every article — correct, just slower).

Each rule keeps its three most selective sets. All anchors of all rules go into
ONE pyahocorasick automaton. An article's distinct tokens are joined into
`` tok1 tok2 ... `` and scanned once: a literal anchor ``nato`` is the key
`` nato `` (whole token), a prefix ``peacekeep`` is `` peacekeep`` (token start),
so there are no substring hits. A rule is a candidate when every one of its
sets was hit; only candidates are evaluated.

"Selective" is a guess at rarity without corpus statistics: long tokens are
rarer than short ones, prefixes are broader than words, and a short list of
function words in the languages we monitor is nearly free to avoid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ahocorasick

from monitor.match.nodes import And, AnyWord, Group, Near, Node, Or, Pattern, Seq
from monitor.match.text import Document

Anchor = tuple[str, bool]  # (normalized text, is_prefix)
Anchors = frozenset[Anchor]

_COMMON_WORDS = (
    "a an the of in on at to for and or not is are was be by with from as that this it its "
    "s t der die das und in im zu den von mit ist le la les de des et du un une en pour "
    "i och att det som pa av for med till ett w z na i do sie nie o и в на не с что по к "
    "у о за от та з до"
)
_COMMON = frozenset(_COMMON_WORDS.split())


def token_cost(anchor: Anchor) -> float:
    text, prefix = anchor
    if text in _COMMON:
        return 1000.0
    n = float(max(len(text), 1))
    cost = 10.0 / (n * math.sqrt(n))
    return cost * (3.0 if prefix else 1.0)


def set_cost(anchors: Anchors) -> float:
    return sum(token_cost(a) for a in anchors)


def _pattern_anchor(p: Pattern) -> Anchor | None:
    if p.kind == "lit":
        return (p.text, False)
    if p.kind == "pre":
        return (p.text, True)
    return None


def anchors(node: Node) -> Anchors | None:
    """A set of anchors of which the article must contain one, or None: cannot tell."""
    reqs = requirements(node)
    if not reqs:
        return None
    return min(reqs, key=set_cost)


def requirements(node: Node) -> list[Anchors] | None:
    """Anchor sets that must ALL be hit (each by at least one of its anchors), or None.

    This is a conjunction of disjunctions: ``a AND "b c" AND (d OR e*)`` needs
    ``{a}``, ``{b}``, ``{c}`` and ``{d, e*}``. Requiring several sets, not just the
    rarest one, is what keeps rules built of individually common words from
    being evaluated on every article that mentions one of them.
    """
    if isinstance(node, Seq):
        out = [frozenset([a]) for a in map(_pattern_anchor, node.words) if a is not None]
        return out or None
    if isinstance(node, AnyWord):
        return [frozenset((w, False) for w in node.keys)]
    if isinstance(node, Near):
        return _all([node.left, node.right])
    if isinstance(node, And):
        return _all(node.children)
    if isinstance(node, Or):
        return _one_of(node.children)
    if isinstance(node, Group):
        if node.must:
            return _all(node.must)
        if node.should:
            return _one_of(node.should)
        return None
    return None  # Not, MatchAll, anything new: cannot be anchored


def _all(children: Sequence[Node]) -> list[Anchors] | None:
    out: list[Anchors] = []
    for c in children:
        out.extend(requirements(c) or ())
    return out or None


def _one_of(children: Sequence[Node]) -> list[Anchors] | None:
    union: set[Anchor] = set()
    for c in children:
        reqs = requirements(c)
        if not reqs:
            return None
        best: Anchors = min(reqs, key=set_cost)
        union.update(best)
    return [frozenset(union)]


class Prefilter:
    """Maps an article to the indexes of the rules worth evaluating on it.

    Each rule keeps its :data:`MAX_REQUIREMENTS` most selective requirement sets;
    it is a candidate when the automaton hit every one of them.
    """

    MAX_REQUIREMENTS = 3

    def __init__(self, roots: Sequence[Node]) -> None:
        self.always: list[int] = []
        keyed: dict[str, list[tuple[int, int]]] = {}
        self._full: list[int] = []
        #: per rule, the requirement sets the automaton checks (for explanations)
        self.required: list[list[Anchors]] = []
        for i, root in enumerate(roots):
            reqs = requirements(root)
            if not reqs:
                self.always.append(i)
                self._full.append(0)
                self.required.append([])
                continue
            chosen = sorted(set(reqs), key=set_cost)[: self.MAX_REQUIREMENTS]
            self.required.append(chosen)
            self._full.append((1 << len(chosen)) - 1)
            for k, req in enumerate(chosen):
                for text, prefix in req:
                    key = f" {text}" if prefix else f" {text} "
                    keyed.setdefault(key, []).append((i, 1 << k))
        self.anchored = len(roots) - len(self.always)
        self.keys = len(keyed)
        self._automaton: ahocorasick.Automaton | None = None
        if keyed:
            automaton = ahocorasick.Automaton()
            for key, entries in keyed.items():
                automaton.add_word(key, tuple(entries))
            automaton.make_automaton()
            self._automaton = automaton

    def candidates(self, doc: Document) -> list[int]:
        """Rule indexes to evaluate, ascending (so hits come out in rule order)."""
        found: list[int] = list(self.always)
        if self._automaton is not None:
            seen: dict[int, int] = {}
            get = seen.get
            for _end, entries in self._automaton.iter(doc.vocabulary_line):
                for rule, bit in entries:
                    seen[rule] = get(rule, 0) | bit
            full = self._full
            found.extend(r for r, mask in seen.items() if mask == full[r])
            found.sort()
        return found

    def missing(self, index: int, doc: Document) -> Anchors | None:
        """The first requirement set of rule ``index`` that ``doc`` does not hit."""
        line = doc.vocabulary_line
        for req in self.required[index]:
            if not any((f" {t}" if p else f" {t} ") in line for t, p in req):
                return req
        return None
