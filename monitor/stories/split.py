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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from monitor.stories.particulars import evidence, kind_of

# Story sizes at which a join triggers the check: often while a story is young (the
# snowball's first steps), rarely once it is large (2-means costs O(members)). Checking
# after every join measured the same.
CHECKPOINTS = frozenset({3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64})
MIN_GROUP = 2
ITERATIONS = 12


@dataclass(frozen=True)
class SplitMember:
    """What the check reads of one member: its profile without digit terms, its marks.

    ``terms`` are term ids (any ids, distinct within the member; equal ids across members
    are the same term), ``weights`` their weights, a unit vector x ``SCALE`` or any scale.
    """

    key: str
    seen_at: datetime
    terms: npt.NDArray[np.uint32]
    weights: npt.NDArray[np.float64]
    marks: tuple[str, ...]


@dataclass(frozen=True)
class SplitDecision:
    """A story to cut: the keys leaving it (oldest first) and the evidence for the log."""

    leaving: tuple[str, ...]
    score: float
    cosine: float
    conflicts: int


def may_conflict(marks: Iterable[str]) -> bool:
    """Whether two groups of a story holding these marks could conflict at all.

    A conflict needs two values of one kind (bare numbers aside) in the story; most
    stories have none, and this costs far less than the 2-means it saves.
    """
    seen: set[str] = set()
    for mark in marks:
        kind = kind_of(mark)
        if kind == "n":
            continue
        if kind in seen:
            return True
        seen.add(kind)
    return False


def _matrix(members: Sequence[SplitMember]) -> npt.NDArray[np.float64]:
    """The members' profiles as rows of one dense matrix over the terms they hold."""
    lengths = [len(m.terms) for m in members]
    if not sum(lengths):
        return np.zeros((len(members), 0))
    _, column = np.unique(np.concatenate([m.terms for m in members]), return_inverse=True)
    matrix = np.zeros((len(members), int(column.max()) + 1))
    matrix[np.repeat(np.arange(len(members)), lengths), column] = np.concatenate(
        [m.weights for m in members])
    return matrix


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    norm = float(np.sqrt(v @ v))
    return v / norm if norm else v


def two_means(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_] | None:
    """Spherical 2-means over the rows: True for the rows of the second group, or None
    when no two groups form.

    Rows are compared by cosine; a group's centre is the sum of its rows. Seeds: the
    row farthest from the whole, then the one farthest from it (the first on ties), so
    the result depends on the members' order alone.
    """
    n = len(matrix)
    if n < 2:
        return None
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    unit = matrix / np.where(norms > 0, norms, 1.0)[:, None]
    a = int(np.argmin(unit @ _unit(matrix.sum(axis=0))))
    to_a = unit @ unit[a]
    to_a[a] = np.inf
    b = int(np.argmin(to_a))
    centres = (unit[a], unit[b])
    labels: npt.NDArray[np.bool_] | None = None
    for _ in range(ITERATIONS):
        new = (unit @ _unit(centres[0])) < (unit @ _unit(centres[1]))
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        if labels.all() or not labels.any():
            return None
        centres = (matrix[~labels].sum(axis=0), matrix[labels].sum(axis=0))
    return labels


def _cut(v: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.float64]:
    """``v`` with only its ``n`` strongest terms (ties at the cut all kept), the rest 0."""
    if np.count_nonzero(v) <= n:
        return v
    floor = np.partition(v, len(v) - n)[len(v) - n]
    return np.where(v >= floor, v, 0.0)


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
    matrix = _matrix(members)
    young = two_means(matrix)
    if young is None:
        return None
    if young[0]:   # the group holding the oldest member keeps the story
        young = ~young
    keep = [m for m, y in zip(members, young.tolist(), strict=True) if not y]
    leave = [m for m, y in zip(members, young.tolist(), strict=True) if y]
    if len(keep) < MIN_GROUP or len(leave) < MIN_GROUP:
        return None
    cosine = float(_unit(_cut(matrix[~young].sum(axis=0), story_terms))
                   @ _unit(_cut(matrix[young].sum(axis=0), story_terms)))
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
