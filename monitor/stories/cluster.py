"""Online story clustering: which story does this article belong to? Pure, no I/O.

Every article, matching a rule or not, is placed into a story within a sliding
window. ``place`` decides without changing anything; ``add`` commits the decision
(the service calls it once the store accepted the article). A placement says why:
how it joined (``method``), its similarity and the terms it shares with the story.

Decision, in order:

1. ``same-article``: its key is already a member (a replayed or re-placed article).
2. ``near-duplicate``: a member's MinHash fingerprint (``fingerprint.py``) has
   estimated Jaccard >= ``duplicate_threshold`` over word 3-grams: wire copy,
   edited headlines, republished copies.
3. ``similar``: the score between the article and a story is >= ``join_threshold``
   and they share >= ``min_shared_terms`` profile terms. The score is the cosine
   of their profiles, plus ``agree_bonus`` for each kind of event particular
   (year, weekday, month, calendar date, count, counted noun such as "26 pirates";
   ``particulars.py``) on which the article agrees with two thirds of the story's
   members, minus ``conflict_penalty`` for each kind where none of the article's
   values occurs in the story at all. Names and theme words say *what*;
   particulars say *which time* (and how many of what), which is what separates
   the same protagonists' two events (the same coach fired, then hired; the same
   navy's two anti-piracy actions).
   The profile is the article's ``profile_terms`` strongest terms by
   weight × IDF (``text.py`` weights names, places, numbers and quotes up),
   IDF learnt online over the window's members. A story's profile is
   the sum of its members' profiles, cut to its ``story_terms`` strongest terms
   (kept implicit: the integer sums, the cut value and the norm, so a change
   costs one partial sort of an int array, not a rebuilt dict).
   Candidate stories come from an inverted index over each story's
   ``INDEXED_TERMS`` strongest terms, queried with the article's
   ``QUERY_TERMS`` strongest: no all-pairs comparison.
4. otherwise ``new``: a story whose id is ``"s_"`` + a digest of the article key,
   so a replay of the same input gives the same ids.

``add`` then commits the decision, and a join that brings a story to a checkpoint size
may cut that story in two (story repair, ``split.py``): one report against a story is
weak evidence, two groups of reports against each other are not.

=========================  =======  ==================================================
setting (``StoryConfig``)  default  why
=========================  =======  ==================================================
``window``                 72 h     stories older than this are closed and forgotten
``join_threshold``         0.34     score; tuned on ECB+ topics 1-22 (docs/STORIES.md)
``agree_bonus``            0.05     per kind of particular the story agrees on
``conflict_penalty``       0.10     per kind of particular the story contradicts
``min_shared_terms``       2        one shared name is a theme, not an event
``duplicate_threshold``    0.5      MinHash Jaccard over 3-grams: copy, not rewrite
``profile_terms``          40       distinctive terms kept per article
``story_terms``            80       terms kept per story profile
``candidates``             24       stories fully scored per article
``expire_slack``           0.01     share of the window members may outstay it (0: none)
``split_bar``              0.40     story repair (``split.py``): below it, a story is cut
                                    in two; 0: never. Tuned on ECB+, bounded by UCI
=========================  =======  ==================================================

Memory is bounded by the window: ``add`` forgets members seen before
``seen_at - window`` (and stories left without members), in batches: only once the
oldest member is older than that by more than ``expire_slack`` × window (43 min of
72 h), and then every member past the window at once. A batch is cheaper than the
same removals one by one (one numpy call for all their document frequencies and
vocabulary references, one profile refresh per story instead of one per member),
and removal costs about what an insert does. The price: memory and IDF follow the
window within the slack, i.e. members up to ``window × (1 + expire_slack)`` old may
still count in document frequencies, their stories' profiles, near-duplicate and
same-article lookups. Which stories an article can join does not move: a story is
live by its newest member, against the exact window. ``expire_slack = 0`` removes
every member as soon as it leaves the window (the decisions are then exactly those
of removing them one by one). ``expire`` is always exact, whatever the slack.
Ties are broken by story id so that decisions never depend on dict order.

Memory per member is what the daemon's RSS is made of, so the layout is compact:
profile terms get integer ids from one vocabulary (reference-counted per member,
recycled at zero, id 0 never given); a story's sums are two uint32 arrays (term ids
ascending, sums); a member keeps its ids and weights in one bytes object and its
df-table buckets in 3 bytes each; an LSH bucket holds a bare key until a second one
lands in it; a posting (by term id) is the packed slot numbers of its stories, a story
alone sharing its own 4-byte object. Ids and slots never decide anything: every ranking
is by sum, then by term, and ties between stories go to the larger story id.

Cost, measured (``bench/stories.py``, docs/STORIES.md): removing an expired member
alone costs about as much as adding one (document frequencies of its 192 first terms,
16 LSH buckets, the story's sums and a profile refresh), which is why expiry is
batched (``expire_slack``) and why the steady state is still slower than filling the
window; garbage collection plays no part (a few
generation-0 collections per thousand articles once the window is full).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import operator
import struct
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import compress, repeat
from typing import Literal

import numpy as np
import numpy.typing as npt

from monitor.models import Article, StoryMember
from monitor.stories import fingerprint
from monitor.stories.features import SCALE, Features
from monitor.stories.particulars import evidence, kind_of
from monitor.stories.split import CHECKPOINTS, SplitMember, decide, may_conflict
from monitor.stories.text import extract, term_hash

Method = Literal["new", "same-article", "near-duplicate", "similar"]

QUERY_TERMS = 20
INDEXED_TERMS = 16
MAX_DF_TERMS = 192
SHARED_SHOWN = 8
# 1M buckets x 4 bytes = 4 MB, whatever the window. At a 100k window (~300k distinct
# terms) about a quarter of the terms share a bucket, mostly with another rare term:
# such a term looks a few per cent commoner. ECB+ and UCI decisions are the same as with
# 4M buckets (16 MB, which the daemon's RSS felt); 3 of 25k synthetic placements moved.
DF_BITS = 20
DF_MASK = (1 << DF_BITS) - 1
AGREE_SHARE = 2 / 3   # of a story's members mentioning a kind, to count as agreement


@dataclass(frozen=True)
class StoryConfig:
    """Clustering settings; see the table in the module docstring."""

    window: timedelta = timedelta(hours=72)
    join_threshold: float = 0.34
    min_shared_terms: int = 2
    duplicate_threshold: float = 0.5
    profile_terms: int = 40
    story_terms: int = 80
    candidates: int = 24
    agree_bonus: float = 0.05
    conflict_penalty: float = 0.10
    expire_slack: float = 0.01
    split_bar: float = 0.40

    def __post_init__(self) -> None:
        if self.window <= timedelta(0):
            raise ValueError("story window must be positive")
        if not 0.0 < self.join_threshold <= 1.0:
            raise ValueError("join_threshold must be in (0, 1]")
        if not 0.0 < self.duplicate_threshold <= 1.0:
            raise ValueError("duplicate_threshold must be in (0, 1]")
        if self.agree_bonus < 0 or self.conflict_penalty < 0:
            raise ValueError("agree_bonus and conflict_penalty must be >= 0")
        if self.profile_terms < 1 or self.story_terms < 1 or self.candidates < 1:
            raise ValueError("profile_terms, story_terms and candidates must be >= 1")
        if not 0.0 <= self.expire_slack < 1.0:
            raise ValueError("expire_slack must be in [0, 1)")
        if not 0.0 <= self.split_bar <= 1.0:
            raise ValueError("split_bar must be in [0, 1] (0: never split)")


@dataclass(frozen=True)
class Placement:
    """The decision for one article: which story, how, and why."""

    article_key: str
    story_id: str
    is_new: bool
    similarity: float | None
    shared_terms: tuple[str, ...]
    features: str
    method: Method
    seen_at: datetime
    matched_key: str | None = None   # the member it duplicates (near-duplicate only)
    language: str = ""
    parsed: Features | None = field(default=None, repr=False, compare=False)

    def member(self) -> StoryMember:
        """What the store keeps so that ``StoryIndex.restore`` can rebuild this decision."""
        return StoryMember(story_id=self.story_id, article_key=self.article_key,
                           seen_at=self.seen_at, features=self.features)


@dataclass(frozen=True)
class Split:
    """A story ``add`` cut in two (``split.py``): the members that left, for the store.

    ``story_id`` keeps the story's oldest member; ``moved`` (oldest first) now belong
    to ``new_story_id``, ``story_id_for`` the first of them, so a replay agrees.
    """

    story_id: str
    new_story_id: str
    moved: tuple[str, ...]
    seen: tuple[datetime, ...]   # when each of ``moved`` was seen (its member's time)
    score: float
    cosine: float
    conflicts: int


def story_id_for(article_key: str) -> str:
    """Deterministic story id: replays and restarts agree on it."""
    return "s_" + hashlib.blake2b(article_key.encode("utf-8"), digest_size=8).hexdigest()


def _df_buckets(df_hashes: bytes) -> tuple[bytes, bytes | None]:
    """A member's df-table buckets as kept (3 bytes each; counts uint32, see ``_buckets``)."""
    buckets, counts = _buckets(df_hashes)
    return _pack3(buckets), None if counts is None else counts.tobytes()


def _buckets(df_hashes: bytes) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32] | None]:
    """A member's df-table buckets, with how many of its terms fall in each.

    Two terms can share a bucket, and ``table[b] += 1`` would count them once; that is
    rare (a few members in a thousand), so the counts (uint32) are only kept then
    (``None``: one term per bucket). ``np.unique`` on every insert and removal cost more
    than the table update itself, and ``np.add.at`` is ~10x slower still. Bytes, not
    arrays: an ndarray header costs 80 bytes more per member; 3 bytes, not 4: a bucket
    has ``DF_BITS`` (20) bits.
    """
    ordered = np.frombuffer(df_hashes, dtype=np.uint32) & np.uint32(DF_MASK)
    ordered.sort()
    if not (ordered[1:] == ordered[:-1]).any():
        return ordered, None
    unique, counts = np.unique(ordered, return_counts=True)
    return unique, counts.astype(np.uint32)


def _pack3(buckets: npt.NDArray[np.uint32]) -> bytes:
    """Little-endian uint32 values below 2**24 as 3 bytes each."""
    return buckets.astype("<u4", copy=False).view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def _unpack3(packed: bytes) -> npt.NDArray[np.uint32]:
    """The values packed by ``_pack3``: a uint32 read every 3 bytes, its top byte masked."""
    wide: npt.NDArray[np.uint32] = np.ndarray((len(packed) // 3,), dtype="<u4",
                                              buffer=packed + b"\0", strides=(3,))
    return wide & np.uint32(0xFFFFFF)


def _count(df: npt.NDArray[np.uint32], buckets: npt.NDArray[np.uint32],
           counts: npt.NDArray[np.uint32] | None, sign: int) -> None:
    """Add (``sign`` 1) or take out (-1) one member's terms in the document frequencies."""
    if counts is None:
        if sign > 0:
            df[buckets] += 1
        else:
            df[buckets] -= 1
    elif sign > 0:
        df[buckets] += counts
    else:
        df[buckets] -= counts


def _distinct(values: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """``values`` sorted, without repeats (a sort and a compare; CRC32s of distinct terms
    almost never repeat, and ``np.unique`` costs 5x more)."""
    ordered = np.sort(values)
    if (ordered[1:] == ordered[:-1]).any():
        return np.unique(ordered)
    return ordered


class _Vocabulary:
    """Profile term <-> small integer id, for the terms some member of the window holds.

    Story sums and member profiles are arrays over these ids instead of dicts and
    tuples of strings (a 28-byte int and a dict entry per term per story before). Each
    id counts the members holding its term; at zero the term is forgotten and its id
    reused, so the vocabulary is bounded by the window like everything else. Ids carry
    no meaning: every order that decides anything is by sum, then by term. Id 0
    (``UNKNOWN``) is never given: it stands for a term no member holds.
    """

    __slots__ = ("changes", "free", "has_digit", "ids", "refs", "terms")

    UNKNOWN = 0

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.terms: list[str] = [""]            # by id; "" for a free id (and for 0)
        self.refs: npt.NDArray[np.int32] = np.zeros(1024, dtype=np.int32)
        # by id: the term holds a digit (story repair leaves those out, ``split.py``)
        self.has_digit: npt.NDArray[np.bool_] = np.zeros(1024, dtype=np.bool_)
        self.free: list[int] = []
        self.changes = 0   # ids given or forgotten so far: ids looked up before still hold
                           # while this has not moved

    def __len__(self) -> int:
        return len(self.ids)

    def _give(self, term: str) -> int:
        """A new id for ``term`` (a free one first)."""
        if self.free:
            tid = self.free.pop()
            self.terms[tid] = term
        else:
            tid = len(self.terms)
            self.terms.append(term)
            if tid >= len(self.refs):
                self.refs = np.concatenate((self.refs, np.zeros_like(self.refs)))
                self.has_digit = np.concatenate((self.has_digit,
                                                 np.zeros_like(self.has_digit)))
        self.has_digit[tid] = any(map(str.isdigit, term))
        self.ids[term] = tid
        self.changes += 1
        return tid

    def take(self, terms: Sequence[str],
             looked_up: npt.NDArray[np.intp] | None = None) -> npt.NDArray[np.uint32]:
        """The ids of ``terms`` (distinct), new ones for unknown terms; one reference each.

        ``looked_up``: the ids of ``terms`` as found since the last change (``changes``),
        ``UNKNOWN`` where there was none; only those then get a lookup (a placed article
        is looked up when placed, ``StoryIndex._load_query``, and added right after).
        """
        if looked_up is not None:
            got = looked_up.astype(np.uint32)
            if not got.all():
                for i in np.flatnonzero(got == _Vocabulary.UNKNOWN).tolist():
                    got[i] = self._give(terms[i])
        else:
            known = list(map(self.ids.get, terms))
            if None in known:   # ids are >= 1: only a missing one is falsy
                for t in compress(terms, map(operator.not_, known)):
                    self._give(t)
                known = list(map(self.ids.__getitem__, terms))
            got = np.array(known, dtype=np.uint32)
        self.refs[got] += 1
        return got

    def release(self, tids: npt.NDArray[np.uint32], repeats: bool = False) -> None:
        """Drop one reference to each of ``tids``; forget the terms left with none.

        ``repeats``: the ids of several members end to end, so an id may occur more
        than once (one unbuffered subtract in C instead of one call per member).
        """
        refs = self.refs
        if repeats:
            np.subtract.at(refs, tids, 1)
        else:
            refs[tids] -= 1
        gone = tids[refs[tids] == 0]
        if len(gone):
            if repeats:
                gone = np.unique(gone)
            for tid in gone.tolist():
                del self.ids[self.terms[tid]]
                self.terms[tid] = ""
            self.free.extend(gone.tolist())
            self.changes += 1


class _Member:
    """What the index keeps of one member: exactly what taking it out again needs.

    ``terms`` is its profile as term ids (uint32) followed by their weights (uint16,
    same order) in one bytes object: ~6 bytes a term against ~14 for a tuple of
    shared strings and an array of weights, and one object header instead of two.
    """

    __slots__ = ("buckets", "counts", "key", "marks", "seen_at", "terms")

    def __init__(self, feats: Features, tids: npt.NDArray[np.uint32],
                 buckets: npt.NDArray[np.uint32], counts: npt.NDArray[np.uint32] | None) -> None:
        self.key = feats.key
        self.seen_at = feats.seen_at
        self.terms = tids.tobytes() + feats.weights.tobytes()
        self.marks = feats.marks
        self.buckets = _pack3(buckets)
        self.counts = None if counts is None else counts.tobytes()

    def profile(self) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint16]]:
        """Its term ids and their weights."""
        k = len(self.terms) // 6
        return (np.frombuffer(self.terms, dtype=np.uint32, count=k),
                np.frombuffer(self.terms, dtype=np.uint16, count=k, offset=4 * k))


def _decrement(counts: dict[str, int], keys: Iterable[str]) -> None:
    for k in keys:
        n = counts.get(k, 0) - 1
        if n > 0:
            counts[k] = n
        else:
            counts.pop(k, None)


# Sums of uint16 weights fit a uint32 while a story has fewer members than this; a
# bigger one (not seen in practice) moves its sums to int64, so sums stay exact.
_WIDE_AT = 65_536


class _Story:
    __slots__ = ("cut", "first_seen", "id", "ids", "indexed", "kinds", "last_seen", "marks",
                 "members", "norm", "slot", "slot_key", "sums")

    def __init__(self, story_id: str, seen_at: datetime, slot: int) -> None:
        self.id = story_id
        # Its number in the postings (``_Postings``) and that number as the 4 bytes a
        # posting holds; a posting of this story alone is this very object.
        self.slot = slot
        self.slot_key = _SLOT.pack(slot)
        self.members: dict[str, _Member] = {}
        # The sum of its members' weights for each term id in ``ids`` (ascending, all > 0).
        self.ids: npt.NDArray[np.uint32] = np.zeros(0, dtype=np.uint32)
        self.sums: npt.NDArray[np.uint32] | npt.NDArray[np.int64] = np.zeros(0, dtype=np.uint32)
        # The profile is implicit: the terms of ``sums`` >= ``cut`` (the story's
        # ``story_terms`` strongest, ties included), divided by ``norm``.
        self.cut = 0
        self.norm = 1.0
        # the ids of its INDEXED_TERMS strongest terms (uint32: 4 bytes a term, not an int object)
        self.indexed: array[int] = array("I")
        self.marks: dict[str, int] = {}    # members holding each particular
        self.kinds: dict[str, int] = {}    # members mentioning each kind of particular
        self.first_seen = seen_at
        self.last_seen = seen_at

    def join(self, ids: npt.NDArray[np.uint32], weights: npt.NDArray[np.uint16]) -> None:
        """Add a member's profile (distinct term ids and their weights) to the sums."""
        if len(self.members) >= _WIDE_AT and self.sums.dtype == np.uint32:
            self.sums = self.sums.astype(np.int64)
        if not len(ids):
            return
        # all the ids, sorted; runs of one id summed (an id occurs at most twice)
        both = np.concatenate((self.ids, ids))
        order = both.argsort()
        ranked = both[order]
        first = np.empty(len(ranked), dtype=np.bool_)
        first[0] = True
        np.not_equal(ranked[1:], ranked[:-1], out=first[1:])
        starts = first.nonzero()[0]
        self.ids = ranked[starts]
        self.sums = np.add.reduceat(np.concatenate((self.sums, weights))[order], starts,
                                    dtype=self.sums.dtype)   # not reduce's default uint64

    def admit(self, member: _Member) -> None:
        """A member whose profile ``join`` added: its particulars and time bounds."""
        self.members[member.key] = member
        for mark in member.marks:
            self.marks[mark] = self.marks.get(mark, 0) + 1
        for kind in {kind_of(mark) for mark in member.marks}:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.first_seen = min(self.first_seen, member.seen_at)
        self.last_seen = max(self.last_seen, member.seen_at)

    def leave(self, ids: npt.NDArray[np.uint32], weights: npt.NDArray[np.uint16],
              repeats: bool = False) -> None:
        """Take a member's profile out of the sums; drop the terms at zero.

        ``repeats``: the profiles of several members end to end, so an id may occur
        more than once (``sums[pos] -= w`` would take out only one of them).
        """
        pos = self.ids.searchsorted(ids)
        sums = self.sums
        if repeats:
            np.subtract.at(sums, pos, weights)
        else:
            sums[pos] -= weights
        if not sums[pos].all():
            keep = sums != 0
            self.ids = self.ids[keep]
            self.sums = sums[keep]

    def indexed_terms(self, vocab: _Vocabulary) -> tuple[str, ...]:
        """Its indexed terms, strongest first (for tests and inspection)."""
        return tuple(map(vocab.terms.__getitem__, self.indexed))

    def term_sums(self, vocab: _Vocabulary) -> dict[str, int]:
        """Term -> sum (for tests and inspection)."""
        return dict(zip(map(vocab.terms.__getitem__, self.ids.tolist()), self.sums.tolist(),
                        strict=True))


_SLOT = struct.Struct("<I")


class _Postings:
    """Indexed term id -> the stories indexing it, as their slot numbers packed in bytes.

    Finding candidates joins the article's postings end to end and looks for slots
    that occur twice (``StoryIndex._candidates``): with bytes that is one
    ``bytes.join`` and a sort of a uint32 array in C, where sets of story-id strings
    had every id touched, reference-counted and compared as a string (a cache miss
    each at a 100k window). A posting of one story is that story's own ``slot_key``
    (no object of its own, like the bare story id before); a slot is in a posting at
    most once. Slots are recycled when their story goes; nothing is decided by them:
    votes are sums of weights and ties go to the larger story id, as before.
    Postings are a list indexed by term id (``_Vocabulary``), not a dict keyed by the
    term: no hashing or string compare per query term. An indexed term always has an
    id, since some member of the story holds it.
    """

    __slots__ = ("by_term", "free", "keys", "sids")

    def __init__(self) -> None:
        self.by_term: list[bytes | None] = []
        self.sids: list[str] = []          # story id by slot ("" for a free slot)
        self.keys: list[bytes] = []        # packed slot by slot
        self.free: list[int] = []

    def new_slot(self, story_id: str) -> int:
        if self.free:
            slot = self.free.pop()
            self.sids[slot] = story_id
        else:
            slot = len(self.sids)
            self.sids.append(story_id)
            self.keys.append(_SLOT.pack(slot))
        return slot

    def free_slot(self, slot: int) -> None:
        self.sids[slot] = ""
        self.free.append(slot)

    def hold(self, term: int, story: _Story) -> None:
        by_term = self.by_term
        if term >= len(by_term):
            by_term.extend([None] * (term + 1024 - len(by_term)))
        held = by_term[term]
        by_term[term] = story.slot_key if held is None else held + story.slot_key

    def release(self, term: int, story: _Story) -> None:
        held = self.by_term[term] if term < len(self.by_term) else None
        if held is None:
            return
        if len(held) == 4:
            if held == story.slot_key:
                self.by_term[term] = None
            return
        slots = array("I", held)
        slots.remove(story.slot)
        # back to the shared object when one story is left
        self.by_term[term] = self.keys[slots[0]] if len(slots) == 1 else slots.tobytes()


class StoryIndex:
    """The window's stories, with the indexes that find the right one for an article."""

    def __init__(self, config: StoryConfig | None = None) -> None:
        self.config = config or StoryConfig()
        self._stories: dict[str, _Story] = {}
        self._member_story: dict[str, str] = {}
        # Document frequencies in a fixed table indexed by the low DF_BITS bits of
        # each term's CRC32: fixed memory, vectorised updates, and the rare shared
        # bucket only makes a term look a little commoner than it is.
        self._df: npt.NDArray[np.uint32] = np.zeros(1 << DF_BITS, dtype=np.uint32)
        self._docs = 0
        # indexed term -> the slots of the stories indexing it (``_Postings``)
        self._postings = _Postings()
        self._lsh = fingerprint.LSHIndex()
        self._expiry: list[tuple[datetime, str]] = []
        # how far past the window the oldest member may be before ``add`` expires a batch
        self._slack = self.config.window * self.config.expire_slack
        self.restore_skipped = 0
        self._vocab = _Vocabulary()
        # Scratch for scoring: the article's weight by term id, zero elsewhere; the
        # ids of its QUERY_TERMS strongest terms (0: a term no member holds).
        self._query: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._query_ids: list[int] = []
        # the article's weights at each story scored by the current place() (``_scores``)
        self._scored: dict[str, npt.NDArray[np.int64]] = {}
        # the last query's terms, their ids and the vocabulary's ``changes`` then:
        # ``add`` reuses the ids when nothing changed in between
        self._looked_up: tuple[tuple[str, ...], npt.NDArray[np.intp], int] | None = None

    # -- queries -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._stories)

    @property
    def members(self) -> int:
        return len(self._member_story)

    def story_of(self, article_key: str) -> str | None:
        return self._member_story.get(article_key)

    def story_ids(self) -> frozenset[str]:
        return frozenset(self._stories)

    def story_members(self, story_id: str) -> tuple[str, ...]:
        story = self._stories.get(story_id)
        return tuple(story.members) if story else ()

    # -- deciding ------------------------------------------------------------
    def features_of(self, article: Article, now: datetime) -> Features:
        """The article's features under the current document frequencies."""
        tf = extract(article.title, "\n".join(p for p in (article.summary, article.content) if p),
                     article.language)
        terms_all = list(tf.weights)
        n_terms = len(terms_all)
        # CRC32s of the terms, from the word memo (``text.term_hash``)
        hashes = (np.frombuffer(tf.hashes, dtype=np.uint32) if len(tf.hashes) == n_terms
                  else np.fromiter(map(term_hash, terms_all), dtype=np.uint32, count=n_terms))
        buckets = hashes & np.uint32(DF_MASK)
        # weight x smoothed IDF, ln((N + 1) / (df + 1)) + 1
        idf = (math.log(self._docs + 1) + 1.0) - np.log1p(self._df[buckets])
        scores = np.fromiter(tf.weights.values(), dtype=np.float64, count=n_terms) * idf
        order = np.argsort(-scores, kind="stable")[:self.config.profile_terms]
        top = scores[order]
        norm = float(np.sqrt(np.dot(top, top))) or 1.0
        quantized = np.rint(top * (SCALE / norm)).astype(np.int64).tolist()
        # Non-increasing, so the positive weights are a prefix.
        k = len(quantized)
        while k and quantized[k - 1] <= 0:
            k -= 1
        terms = tuple(map(terms_all.__getitem__, order[:k].tolist()))
        sig = fingerprint.signature(tf.shingles)
        return Features(
            key=article.key, story_id="", seen_at=now.astimezone(UTC), language=tf.language,
            terms=terms, weights=array("H", quantized[:k]),
            df_hashes=_distinct(hashes[:MAX_DF_TERMS]).tobytes(),
            signature=sig, scheme=fingerprint.SCHEME, marks=tf.marks,
        )

    def _live(self, story: _Story, now: datetime) -> bool:
        return story.last_seen >= now - self.config.window

    def place(self, article: Article, now: datetime) -> Placement:
        """Decide the article's story. Does not change the index (see ``add``)."""
        feats = self.features_of(article, now)
        loaded = self._load_query(feats)
        try:
            return self._decide(feats, now)
        finally:
            self._query[loaded] = 0
            self._scored = {}

    def _load_query(self, feats: Features) -> npt.NDArray[np.intp]:
        """Spread the article's weights over the scratch vector by term id; the ids set.

        Terms no member holds have no id and cannot be shared with any story.
        """
        tids = np.fromiter(map(self._vocab.ids.get, feats.terms, repeat(_Vocabulary.UNKNOWN)),
                           dtype=np.intp, count=len(feats.terms))
        if len(self._query) < len(self._vocab.refs):
            self._query = np.zeros(len(self._vocab.refs), dtype=np.int64)
        self._query[tids] = feats.weights
        self._query[_Vocabulary.UNKNOWN] = 0
        self._query_ids = tids[:QUERY_TERMS].tolist()
        self._looked_up = (feats.terms, tids, self._vocab.changes)
        return tids

    def _decide(self, feats: Features, now: datetime) -> Placement:
        existing = self._member_story.get(feats.key)
        if existing is not None:
            return self._placement(feats, existing, "same-article", 1.0, None)

        if feats.signature is not None:
            hit = self._lsh.best(feats.signature)
            if hit is not None and hit[1] >= self.config.duplicate_threshold:
                sid = self._member_story[hit[0]]
                if self._live(self._stories[sid], now):
                    return self._placement(feats, sid, "near-duplicate", hit[1], hit[0])

        best = self._best_story(feats, now)
        if best is not None:
            sid, sim = best
            return self._placement(feats, sid, "similar", sim, None)
        return self._placement(feats, story_id_for(feats.key), "new", None, None)

    def _best_story(self, feats: Features, now: datetime) -> tuple[str, float] | None:
        stories = [story for story in map(self._stories.__getitem__, self._candidates(feats))
                   if self._live(story, now)]
        best: tuple[str, float] | None = None
        for story, (sim, shared) in zip(stories, self._scores(feats, stories), strict=True):
            if shared < self.config.min_shared_terms or sim < self.config.join_threshold:
                continue
            sid = story.id
            if best is None or sim > best[1] or (sim == best[1] and sid < best[0]):
                best = (sid, sim)
        return best

    def _candidates(self, feats: Features) -> list[str]:
        """The stories worth a full comparison: at most ``candidates``, strongest vote first.

        Only the stories sharing >= 2 of their indexed terms with the article's
        ``QUERY_TERMS`` strongest count; their vote is the article's weight summed over
        the shared ones (ties: the larger story id). A story is in a posting at most
        once, so the stories sharing two terms are those found twice: the postings'
        slots (``_Postings``) are joined end to end as one uint32 array and sorted, and
        a repeat is a slot equal to the one before it, all in C with no object per
        story met. At a 100k window an article meets ~180 slots in its postings (~5
        per posting) and keeps about two of them, so only those two are voted on.
        """
        by_term = self._postings.by_term
        known = len(by_term)
        blobs: list[bytes] = []
        votes_by: list[int] = []
        for tid, w in zip(self._query_ids, feats.weights[:QUERY_TERMS], strict=True):
            held = by_term[tid] if tid < known else None   # id 0 is never held
            if held is not None:
                blobs.append(held)
                votes_by.append(w)
        if not blobs:
            return []
        found = np.frombuffer(b"".join(blobs), dtype=np.uint32)
        if min(self.config.min_shared_terms, 2) == 2:
            ordered = np.sort(found)
            repeats = ordered[1:][ordered[1:] == ordered[:-1]]
            if not len(repeats):
                return []
            eligible = set(repeats.tolist())   # a few; np.unique costs ~10 us more
        else:
            eligible = set(found.tolist())
        # each found slot's vote: the weight of the query term whose posting held it
        weight_of = np.repeat(np.array(votes_by, dtype=np.int64),
                              [len(b) >> 2 for b in blobs])
        sids = self._postings.sids
        votes = [(int(weight_of[found == slot].sum()), sids[slot]) for slot in eligible]
        return [sid for _, sid in heapq.nlargest(self.config.candidates, votes)]

    def _weights_in(self, story: _Story) -> npt.NDArray[np.int64]:
        """The article's weight (from the loaded query) for each of the story's profile terms.

        Aligned with ``story.ids``; zero for the terms the article lacks and for those
        below the story's cut (a story with at most ``story_terms`` terms has none).
        """
        weights = self._query.take(story.ids)
        if len(weights) > self.config.story_terms:
            weights[story.sums < story.cut] = 0
        return weights

    def _scores(self, feats: Features, stories: list[_Story]) -> list[tuple[float, int]]:
        """The article's score against each story, and how many profile terms they share.

        Score = cosine of the two profiles (the story's cut to its strongest terms)
        + ``agree_bonus`` per kind of particular the story agrees on
        - ``conflict_penalty`` per kind it contradicts (module docstring). The article's
        weights are in the scratch vector (``_load_query``): a story's dot product is
        a gather at its ids and one integer product, all in C.
        """
        out = []
        scored = self._scored = {}
        for story in stories:
            weights = scored[story.id] = self._weights_in(story)
            dot = int(weights @ story.sums)
            agree, conflict = evidence(feats.marks, story.marks, story.kinds, AGREE_SHARE)
            sim = (dot / (SCALE * story.norm) + self.config.agree_bonus * agree
                   - self.config.conflict_penalty * conflict)
            out.append((sim, int(np.count_nonzero(weights))))
        return out

    def _shared_terms(self, story_id: str) -> tuple[str, ...]:
        """The article's strongest profile terms in the story's profile (``_load_query``)."""
        story = self._stories.get(story_id)
        if story is None:
            return ()
        weights = self._scored.get(story_id)   # this place()'s scoring had them
        if weights is None:
            weights = self._weights_in(story)
        shared = weights.nonzero()[0]
        if not len(shared):
            return ()
        # strongest product first, ties by term: (-product, term) pairs in their natural order
        both = sorted(zip((-(weights[shared] * story.sums[shared])).tolist(),
                          map(self._vocab.terms.__getitem__, story.ids[shared].tolist()),
                          strict=True))
        return tuple(t for _, t in both[:SHARED_SHOWN])

    def _placement(self, feats: Features, story_id: str, method: Method,
                   similarity: float | None, matched: str | None) -> Placement:
        feats = feats.with_story(story_id)
        return Placement(
            article_key=feats.key, story_id=story_id, is_new=method == "new",
            similarity=None if similarity is None else round(similarity, 4),
            shared_terms=self._shared_terms(story_id) if method != "new" else (),
            features=feats.to_json(), method=method, seen_at=feats.seen_at,
            matched_key=matched, language=feats.language, parsed=feats,
        )

    # -- committing ----------------------------------------------------------
    def add(self, placement: Placement) -> Split | None:
        """Commit a placement from ``place``; forget what left the window; repair the story.

        Expiry: only once the oldest member is past the window by more than the slack
        (``StoryConfig.expire_slack``), and then all that left it: one batch
        (``_remove_many``) instead of a removal per add.

        Repair: a join that brings a story to a checkpoint size may cut it in two
        (``split.py``). The index has then moved the members already; the caller must
        write the move with the article (``Split``) or take both back (``move`` the
        members back, ``remove`` the article).
        """
        if placement.method == "same-article" and placement.article_key in self._member_story:
            return None
        feats = placement.parsed or Features.from_json(placement.features)
        self._insert(feats)
        before = feats.seen_at - self.config.window
        if self._expiry and self._expiry[0][0] < before - self._slack:
            self.expire(before)
        if placement.method == "new" or not self.config.split_bar:
            return None
        return self._repair(placement.story_id)

    def _repair(self, story_id: str) -> Split | None:
        """Cut the story in two when ``split.decide`` says so (at checkpoint sizes only)."""
        story = self._stories.get(story_id)
        if (story is None or len(story.members) not in CHECKPOINTS
                or not may_conflict(story.marks)):
            return None
        has_digit = self._vocab.has_digit
        members = []
        for m in sorted(story.members.values(), key=lambda m: (m.seen_at, m.key)):
            ids, weights = m.profile()
            words = ~has_digit[ids]
            members.append(SplitMember(m.key, m.seen_at, ids[words],
                                       weights[words].astype(np.float64), m.marks))
        c = self.config
        found = decide(members, split_bar=c.split_bar, story_terms=c.story_terms,
                       agree_bonus=c.agree_bonus, conflict_penalty=c.conflict_penalty,
                       agree_share=AGREE_SHARE)
        if found is None:
            return None
        new_id = story_id_for(found.leaving[0])
        if new_id in self._stories:   # its key opened a story once, still open: leave it be
            return None
        self.move(found.leaving, new_id)
        seen = {m.key: m.seen_at for m in members}
        return Split(story_id, new_id, found.leaving, tuple(seen[k] for k in found.leaving),
                     found.score, found.cosine, found.conflicts)

    def move(self, keys: Iterable[str], story_id: str) -> None:
        """Move members to the story ``story_id`` (created when missing).

        For a split, for taking one back, and nothing else: their document
        frequencies, fingerprints and vocabulary references stay, only the stories'
        sums, particulars and postings change. Keys not in the index are ignored.
        """
        leaving: dict[str, list[_Member]] = {}
        for key in keys:
            sid = self._member_story.get(key)
            if sid is not None and sid != story_id:
                leaving.setdefault(sid, []).append(self._stories[sid].members[key])
        if not leaving:
            return
        moving = sorted((m for ms in leaving.values() for m in ms),
                        key=lambda m: (m.seen_at, m.key))
        for sid, gone in leaving.items():
            story = self._stories[sid]
            for m in gone:
                del story.members[m.key]
            if not story.members:
                self._drop_story(story)
                continue
            profiles = [m.profile() for m in gone]
            story.leave(np.concatenate([ids for ids, _ in profiles]),
                        np.concatenate([w for _, w in profiles]), repeats=len(gone) > 1)
            self._left(story, gone)
        target = self._stories.get(story_id)
        if target is None:
            target = self._stories[story_id] = _Story(
                story_id, moving[0].seen_at, self._postings.new_slot(story_id))
        for m in moving:
            target.join(*m.profile())
            target.admit(m)
            self._member_story[m.key] = story_id
        self._refresh(target)

    def _insert(self, feats: Features) -> None:
        if feats.key in self._member_story:
            self._remove_member(feats.key)
        story = self._stories.get(feats.story_id)
        if story is None:
            story = self._stories[feats.story_id] = _Story(
                feats.story_id, feats.seen_at, self._postings.new_slot(feats.story_id))
        looked_up = self._looked_up
        if (looked_up is not None and looked_up[0] is feats.terms
                and looked_up[2] == self._vocab.changes):
            tids = self._vocab.take(feats.terms, looked_up[1])
        else:
            tids = self._vocab.take(feats.terms)
        self._looked_up = None
        story.join(tids, np.frombuffer(feats.weights, dtype=np.uint16))
        buckets, counts = _buckets(feats.df_hashes)
        story.admit(_Member(feats, tids, buckets, counts))
        self._member_story[feats.key] = feats.story_id
        self._refresh(story)
        _count(self._df, buckets, counts, 1)
        self._docs += 1
        if feats.signature is not None and feats.scheme == fingerprint.SCHEME:
            self._lsh.add(feats.key, feats.signature)
        heapq.heappush(self._expiry, (feats.seen_at, feats.key))

    def _refresh(self, story: _Story) -> None:
        """Recompute a story's profile cut and norm from its sums; re-index its strongest terms.

        One sort of the sums array finds the cut (ties at the cut are all kept); the
        indexed terms are the ``INDEXED_TERMS`` strongest, ties broken by the larger
        term, so nothing depends on the order members came in or on term ids. Only
        the few terms at or above the last indexed sum are paired with their names.
        """
        sums = story.sums
        n = self.config.story_terms
        if len(sums) > n:
            # the n-th largest sum, found by a partial sort; then only the terms >= it sorted
            cut = int(np.partition(sums, len(sums) - n)[len(sums) - n])
            vals: list[int] = np.sort(sums[sums >= cut])[::-1].tolist()
        else:
            vals = np.sort(sums)[::-1].tolist()
            cut = vals[-1] if vals else 0
        story.cut = cut
        story.norm = math.hypot(*vals) or 1.0
        if not vals:
            indexed = array("I")
        else:
            floor = vals[min(INDEXED_TERMS, len(vals)) - 1]
            top = sums >= floor
            ids: list[int] = story.ids[top].tolist()
            # by sum, then by term (distinct within a story: the id never decides)
            head = sorted(zip(sums[top].tolist(), map(self._vocab.terms.__getitem__, ids), ids,
                              strict=True), reverse=True)
            indexed = array("I", [tid for _, _, tid in head[:INDEXED_TERMS]])
        old, new = set(story.indexed), set(indexed)
        story.indexed = indexed
        postings = self._postings
        for t in old - new:
            postings.release(t, story)
        for t in new - old:
            postings.hold(t, story)

    def _remove_member(self, key: str) -> bool:
        """Forget one member; True when its story went with it."""
        sid = self._member_story.pop(key, None)
        if sid is None:
            return False
        story = self._stories[sid]
        member = story.members.pop(key)
        _count(self._df, _unpack3(member.buckets),
               None if member.counts is None else np.frombuffer(member.counts, dtype=np.uint32),
               -1)
        self._docs -= 1
        self._lsh.remove(key)
        ids, weights = member.profile()
        self._vocab.release(ids)
        if not story.members:
            self._drop_story(story)
            return True
        story.leave(ids, weights)
        self._left(story, (member,))
        return False

    def _drop_story(self, story: _Story) -> None:
        """Forget a story whose last member left, with its postings and slot."""
        for t in story.indexed:
            self._postings.release(t, story)
        self._postings.free_slot(story.slot)
        del self._stories[story.id]

    def _left(self, story: _Story, leaving: Sequence[_Member]) -> None:
        """The story's particulars and time bounds without ``leaving`` (whose profiles
        have left its sums), then its profile refresh."""
        for m in leaving:
            _decrement(story.marks, m.marks)
            _decrement(story.kinds, {kind_of(mark) for mark in m.marks})
        # members leave oldest first: only a bound that left needs the scan
        if min(m.seen_at for m in leaving) <= story.first_seen:
            story.first_seen = min(m.seen_at for m in story.members.values())
        if max(m.seen_at for m in leaving) >= story.last_seen:
            story.last_seen = max(m.seen_at for m in story.members.values())
        self._refresh(story)

    def remove(self, article_key: str) -> bool:
        """Take a member back out, as if it had never been added; True when its story went too.

        For a placement whose commit failed after ``add``: the index must not keep an
        article the store never accepted, or a retry would see it as ``same-article``.
        """
        return self._remove_member(article_key)

    def expire(self, before: datetime) -> int:
        """Forget members seen before ``before``; returns how many stories went with them.

        Exact whatever ``expire_slack``: the slack only decides when ``add`` calls this.
        """
        expiry = self._expiry
        member_story = self._member_story
        stories = self._stories
        # by key: a key re-added with the same time is in the heap twice
        due: dict[str, _Member] = {}
        while expiry and expiry[0][0] < before:
            seen_at, key = heapq.heappop(expiry)
            story_id = member_story.get(key)
            if story_id is None:
                continue
            member = stories[story_id].members[key]
            if member.seen_at != seen_at:
                continue  # re-added later; its newer heap entry decides
            due[key] = member
        if len(due) <= 1:
            return sum(map(self._remove_member, due))
        return self._remove_many(due)

    def _remove_many(self, due: dict[str, _Member]) -> int:
        """Forget several members at once; returns how many stories went with them.

        The same end state as ``_remove_member`` on each (tested), for less: one
        unbuffered numpy subtract for all their document frequencies and one for their
        vocabulary references, the LSH buckets table by table, and per story one
        ``leave`` of its leaving members' profiles end to end and one ``_refresh``
        (none at all for a story that goes entirely). Ids, slots and the order of
        postings differ from one-by-one removal, but nothing is decided by them.
        """
        member_story = self._member_story
        stories = self._stories
        by_story: dict[str, list[_Member]] = {}
        for key, member in due.items():
            by_story.setdefault(member_story.pop(key), []).append(member)
        members = list(due.values())
        df = self._df
        single = [m.buckets for m in members if m.counts is None]
        if single:
            np.subtract.at(df, _unpack3(b"".join(single)), np.uint32(1))
        for m in members:
            if m.counts is not None:   # a few in a thousand: two terms in one bucket
                _count(df, _unpack3(m.buckets), np.frombuffer(m.counts, dtype=np.uint32), -1)
        self._docs -= len(members)
        self._lsh.remove_many(due)
        # a member's terms are 4 bytes an id, then 2 a weight: the ids of all, end to end
        self._vocab.release(np.frombuffer(
            b"".join([m.terms[:len(m.terms) // 6 * 4] for m in members]), dtype=np.uint32),
            repeats=True)
        dropped = 0
        for sid, leaving in by_story.items():
            story = stories[sid]
            for m in leaving:
                del story.members[m.key]
            if not story.members:
                self._drop_story(story)
                dropped += 1
                continue
            if len(leaving) == 1:
                story.leave(*leaving[0].profile())
            else:
                profiles = [m.profile() for m in leaving]
                story.leave(np.concatenate([ids for ids, _ in profiles]),
                            np.concatenate([w for _, w in profiles]), repeats=True)
            self._left(story, leaving)
        return dropped

    def restore(self, members: Iterable[StoryMember]) -> None:
        """Rebuild from persisted members (``Placement.member()``), e.g. after a restart.

        Members whose features cannot be read are skipped and counted in
        ``restore_skipped``: losing one article's clustering beats refusing to start.
        """
        parsed: list[Features] = []
        for m in members:
            try:
                f = Features.from_json(m.features)
            except ValueError:
                self.restore_skipped += 1
                continue
            parsed.append(f.with_story(m.story_id))
        parsed.sort(key=lambda f: (f.seen_at, f.key))
        for f in parsed:
            self._insert(f)
        if parsed:
            self.expire(parsed[-1].seen_at - self.config.window)
