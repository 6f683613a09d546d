"""Story repair: should a story that just grew be cut in two? Pure, no I/O.

A join is decided on one report against a story, and one report's evidence is weak:
two reports of different events on the same theme (the same navy's two anti-piracy
actions) can score above the bar, and once joined, the mixed story attracts the
second event's later reports too (the snowball). A split is decided on two groups of
reports, where the low cosine and the conflicting particulars of several reports add
up, and it undoes the snowball's first wrong step after the fact.

When a join brings a story to a checkpoint size (``CHECKPOINTS``), its members are cut
in two by spherical 2-means over their frozen profiles, terms holding a digit left out
(numbers are the particulars' business; with them in, datelines pull reports
together). The group without the story's oldest member leaves for a story of its own
when all three hold:

* both groups have at least ``MIN_GROUP`` members (one odd report is not an event);
* the younger group's particulars (the marks at least half of its members mentioning
  the kind hold; bare numbers left out, they differ within one event as often as across
  two) conflict with the older group's on at least one kind: different dates, weekdays,
  counted nouns;
* the younger group's score against the older one (cosine of the two groups' profile
  sums cut to ``story_terms`` terms, plus the same particulars evidence a join gets) is
  below ``split_bar``.

Measured on ECB+ (docs/STORIES-LOG.md, thirteenth round): at the shipped join
threshold the merge share of two events' reports falls from 0.051 to 0.033 for +0.001
F1, about +0.02 F1 above what moving the join threshold buys at the same merge share;
the UCI headlines are unchanged (a bar of 0.45 splits one UCI story in two: the bar's
bound). Members, order of joins and settings decide everything here, so a replay of
the same input splits the same stories.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.stories.particulars import evidence, kind_of

# Story sizes at which a join triggers the check: often while a story is young (the
# snowball's first steps), rarely once it is large (2-means costs O(members)). Checking
# after every join measured the same.
CHECKPOINTS = frozenset({3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64})
MIN_GROUP = 2
ITERATIONS = 12

Vector = dict[str, float]


@dataclass(frozen=True)
class SplitMember:
    """What the check reads of one member: its profile without digit terms, its marks."""

    key: str
    seen_at: datetime
    vector: Vector
    marks: tuple[str, ...]


@dataclass(frozen=True)
class SplitDecision:
    """A story to cut: the keys leaving it (oldest first) and the evidence for the log."""

    leaving: tuple[str, ...]
    score: float
    cosine: float
    conflicts: int


def _add(acc: Vector, v: Vector) -> None:
    for t, w in v.items():
        acc[t] = acc.get(t, 0.0) + w


def _norm(v: Vector) -> float:
    return math.sqrt(sum(w * w for w in v.values())) or 1.0


def _cos(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(t, 0.0) for t, w in a.items()) / (_norm(a) * _norm(b))


def _cut(v: Vector, n: int) -> Vector:
    """The ``n`` strongest terms (ties by term, so the cut never depends on dict order)."""
    if len(v) <= n:
        return v
    return dict(sorted(v.items(), key=lambda x: (-x[1], x[0]))[:n])


def two_means(vectors: Sequence[Vector]) -> list[int] | None:
    """Spherical 2-means: a label (0/1) per vector, or None when no two groups form.

    Seeds: the vector farthest from the whole, then the one farthest from it (by index
    on ties), so the result depends on the members' order alone.
    """
    n = len(vectors)
    if n < 2:
        return None
    total: Vector = {}
    for v in vectors:
        _add(total, v)
    a = min(range(n), key=lambda i: (_cos(vectors[i], total), i))
    b = min((i for i in range(n) if i != a), key=lambda i: (_cos(vectors[i], vectors[a]), i))
    centres = [dict(vectors[a]), dict(vectors[b])]
    labels: list[int] | None = None
    for _ in range(ITERATIONS):
        new = [0 if _cos(v, centres[0]) >= _cos(v, centres[1]) else 1 for v in vectors]
        if new == labels:
            break
        labels = new
        if len(set(labels)) < 2:
            return None
        centres = [{}, {}]
        for v, label in zip(vectors, labels, strict=True):
            _add(centres[label], v)
    return labels


def _marks(members: Sequence[SplitMember]) -> tuple[dict[str, int], dict[str, int]]:
    """Members holding each mark, and members mentioning each kind, bare numbers left out."""
    held: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for m in members:
        for mark in m.marks:
            if kind_of(mark) != "n":
                held[mark] = held.get(mark, 0) + 1
        for kind in {kind_of(mark) for mark in m.marks}:
            if kind != "n":
                kinds[kind] = kinds.get(kind, 0) + 1
    return held, kinds


def decide(members: Sequence[SplitMember], *, split_bar: float, story_terms: int,
           agree_bonus: float, conflict_penalty: float,
           agree_share: float) -> SplitDecision | None:
    """Whether to cut a story in two (module docstring); ``members`` oldest first."""
    labels = two_means([m.vector for m in members])
    if labels is None:
        return None
    keep = [m for m, label in zip(members, labels, strict=True) if label == labels[0]]
    leave = [m for m, label in zip(members, labels, strict=True) if label != labels[0]]
    if len(keep) < MIN_GROUP or len(leave) < MIN_GROUP:
        return None
    sums: list[Vector] = [{}, {}]
    for i, group in enumerate((keep, leave)):
        for m in group:
            _add(sums[i], m.vector)
    cosine = _cos(_cut(sums[0], story_terms), _cut(sums[1], story_terms))
    held, kinds = _marks(keep)
    young_held, young_kinds = _marks(leave)
    majority = tuple(mark for mark, c in young_held.items()
                     if c * 2 >= young_kinds.get(kind_of(mark), 0))
    agree, conflict = evidence(majority, held, kinds, agree_share)
    score = cosine + agree_bonus * agree - conflict_penalty * conflict
    if conflict < 1 or score >= split_bar:
        return None
    return SplitDecision(tuple(m.key for m in leave), round(score, 4), round(cosine, 4),
                         conflict)
