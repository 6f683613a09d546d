"""The one storage contract both back ends (SQLite, Redis) fulfil.

Everything that must survive a restart lives behind this protocol: per-feed
polling state, seen-article keys, stories, and the alert outbox. The service
never talks to sqlite3 or redis directly.

Multi-instance safety (Redis back end; SQLite is one process):

* ``claim_due`` is atomic: a claimed feed's ``next_check`` is pushed forward by
  the lease, so no other instance takes it until the lease runs out (a crashed
  instance's feeds come back by themselves).
* ``commit_article`` is atomic: the article's seen-keys, its story and its
  alerts are written together or not at all, and it refuses (returns False)
  when any seen-key already exists, so two instances never both alert on it.
  ``commit_articles`` does the same for many articles in one call (a group
  commit): each entry is refused or written as a whole, in order, and an entry
  whose keys an earlier entry of the batch wrote is refused too. SQLite writes
  the whole batch in one transaction, so an error writes nothing; Redis runs one
  script per entry (all in one pipeline), so an error may leave the first entries
  written, and a retry sees those as refused (their alerts are already queued).
  With ``stop_at_refusal`` nothing after the first refused entry is written either:
  for a caller that decided each entry assuming the ones before it would be written.
  An entry that splits a story carries the split (``ArticleCommit.moved``, ``stories``):
  the members that left are moved to the new story and its record written in the same
  atomic unit as the entry, and only when the entry is written, so a crash or a refusal
  never leaves a story half split.
* Clustering is not one store operation: each instance decides in its own
  in-memory story index. So a ``shared`` store offers a lease
  (``exclusive("stories", ttl)``) for the decide-and-commit section and a change
  feed of members (``members_after``) to catch the index up first; commits made
  inside the lease are refused (StoreError) once the lease was lost. Together
  they make two instances put two reports of one story into one story.

The outbox is one queue per sink, in the order alerts were queued (``created_at``,
then ``alert_id``; the Ingestor stamps ``created_at`` in commit order, a story's
updates after its ``story.new``). ``outbox_due`` hands out only the head of a queue:
an alert waiting for its retry holds back every alert queued after it, so a sink
that failed for a while still gets its alerts in order, and since the retry time is
in the store this holds after a restart and for every instance alike. On a shared
store the deliverer also holds ``exclusive("outbox:<sink>")`` for each pass over a
sink, so one instance at a time reads and sends that sink's head: an alert goes to
a sink once, in order, whichever instance sends it. Inside that lease,
``outbox_done``, ``outbox_done_many`` and ``outbox_retry`` apply only while the
caller's lease still holds, checked atomically with the write, and raise
``LeaseLost`` (writing nothing) once it ran out and another holder took it: two
holders never both settle an alert. SQLite's lease is a process-local lock without
expiry (one daemon per file), which cannot be lost, so there is nothing to check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from monitor.models import FeedState, Story, StoryMember


@dataclass(frozen=True)
class OutboxItem:
    """An alert waiting for one sink. ``payload`` is the JSON text the sink sends."""

    alert_id: str
    sink: str
    payload: str
    created_at: datetime
    attempts: int = 0
    next_attempt: datetime | None = None
    last_error: str | None = None


def due_head(items: Iterable[OutboxItem], now: datetime) -> list[OutboxItem]:
    """``items`` (a queue's head, in queue order) up to the first not due at ``now``.

    Both back ends cut their queue here, so they agree on what is due to the microsecond.
    """
    head: list[OutboxItem] = []
    for item in items:
        if (item.next_attempt or item.created_at) > now:
            break
        head.append(item)
    return head


@dataclass(frozen=True)
class ArticleCommit:
    """One article's writes for ``Store.commit_articles``: ``commit_article``'s arguments."""

    seen_keys: tuple[str, ...]
    story: Story
    member: StoryMember | None
    outbox: tuple[OutboxItem, ...]
    now: datetime
    seen_ttl_seconds: float
    # A story split in two by this entry (``monitor/stories/split.py``): the members
    # that left for the new story, under their new story id (each replaces the key's
    # member under any other story), the story id each of them left (same order), and
    # the other story's record. Written with the entry, atomically, or not at all.
    moved: tuple[StoryMember, ...] = ()
    stories: tuple[Story, ...] = ()
    moved_from: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.moved_from) != len(self.moved):
            raise ValueError(
                f"ArticleCommit: {len(self.moved)} moved member(s) but {len(self.moved_from)}"
                " story id(s) they moved from")


@runtime_checkable
class Store(Protocol):
    """Async storage contract. All datetimes are UTC-aware."""

    async def open(self) -> None:
        """Connect and create what is missing (tables, scripts). Raises StoreError."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the back end answers now; never raises."""

    async def epoch(self) -> str:
        """A token for the data the store holds: another one once it lost all of it.

        A Redis can come back empty under a running daemon (restarted without
        persistence, flushed, failed over to an empty replica), and answers as if
        nothing happened. A daemon that compares this with what it read before can
        tell that its memory of the store (a change-feed cursor) is stale, and say
        that the seen articles, stories and queued alerts are gone. SQLite keeps its
        file open: its token never changes. Cheap (the daemon reads it every poll tick),
        and it tells a loss even when the store cannot write a new token just then.
        """

    # -- feeds -------------------------------------------------------------
    async def sync_feeds(self, urls: Sequence[str], now: datetime) -> None:
        """Register listed feeds (new ones due at ``now``); unlisted ones are no longer claimed."""

    async def register_missing(self, urls: Sequence[str], now: datetime) -> int:
        """When fewer feeds are scheduled than ``urls`` lists, add those missing; how many.

        ``sync_feeds`` runs only at start and on a reload, and ``claim_due`` finds nothing
        in a schedule that is gone: a Redis that came back empty (restarted without
        persistence, flushed, evicted, failed over to an empty replica) would never have
        a feed polled again. So the daemon calls this every minute, and it costs one count
        when nothing is missing. It only adds, due at ``now``: a feed still scheduled keeps
        its due time, claim and state, and feeds other instances list are left alone.
        """

    async def get_feed_state(self, url: str) -> FeedState | None: ...

    async def all_feed_states(self) -> list[FeedState]:
        """Every listed feed's state, for ``news-monitor feeds`` and metrics."""

    async def save_feed_state(self, state: FeedState, *, reschedule: bool = True) -> None:
        """Write state after a poll; ``state.next_check`` also releases the claim.

        ``reschedule=False`` writes the state only, for changes that are not a poll's
        end (the push fields): the feed keeps its place in the schedule, so a claim on
        it holds until the poll that made it saves.
        """

    async def claim_due(self, now: datetime, lease_seconds: float, limit: int) -> list[FeedState]:
        """Atomically take up to ``limit`` listed feeds due at ``now``, earliest first."""

    async def release_claim(self, url: str, claimed: datetime, lease_seconds: float,
                            due: datetime) -> bool:
        """Make ``url`` due at ``due`` if the claim made at ``claimed`` still holds it.

        For a poll the store could not record (it failed meanwhile): nothing of it was
        saved, so its claim would keep the feed for the whole lease after the store is
        back. ``claimed`` and ``lease_seconds`` are what that ``claim_due`` was given;
        the feed is handed back only while its due time is still the lease end that
        claim set, so a claim taken since (the lease ran out and another instance, or
        this one, claimed the feed again) is never undone. False, changing nothing, when
        the claim is gone, or the feed is not listed (or lost) any more.
        """

    async def release_claims(self) -> int:
        """Hand back claims a dead poller left; returns how many.

        Only a caller that knows no other poller is alive may call it: the embedded
        store's one daemon, under its lock file. Without it a ``kill -9`` mid-poll
        would keep that feed unpolled for a whole lease. A shared store returns 0:
        other instances may be polling, so its claims run out with their lease.
        """

    # -- seen keys ---------------------------------------------------------
    async def seen_any(self, keys: Sequence[Sequence[str]]) -> list[bool]:
        """For each group of keys: True when any of them was seen before. Read-only."""

    # -- stories -----------------------------------------------------------
    async def commit_article(
        self,
        seen_keys: Sequence[str],
        story: Story,
        member: StoryMember | None,
        outbox: Sequence[OutboxItem],
        now: datetime,
        seen_ttl_seconds: float,
    ) -> bool:
        """Atomically mark keys seen, upsert the story, add the member and enqueue alerts.

        Returns False and writes nothing when any key was already seen.
        """

    async def commit_articles(
        self, commits: Sequence[ArticleCommit], *, stop_at_refusal: bool = False
    ) -> list[bool]:
        """``commit_article`` for each entry, in order, in one call; one result per entry.

        SQLite: one transaction, all or nothing when it raises. Redis: each entry atomic
        on its own (see the module docstring). ``stop_at_refusal``: the entries after
        the first refused one write nothing and come back False too. The shared ingest
        path needs it: each article of its slice was placed seeing the ones before it,
        so one that joined a refused article's story must not be written with it.

        An entry's split (``moved``, ``moved_from``, ``stories``) is part of that entry:
        each moved member leaves its old story (``recent_members`` gives it once, under
        its new story id) and is fed again by ``members_after`` under the new id; the
        extra story records are upserted like the entry's own. Written with the entry or
        not at all, because the split was decided with the entry: a crash between the
        two would leave a story half split.
        """

    async def save_story(self, story: Story, outbox: Sequence[OutboxItem]) -> None:
        """Atomically upsert a story and enqueue alerts about it (held-back updates)."""

    async def get_story(self, story_id: str) -> Story | None: ...

    async def recent_members(self, since: datetime) -> list[StoryMember]:
        """Members seen at or after ``since``, oldest first: rebuilds the story index."""

    async def recent_stories(self, since: datetime) -> list[Story]:
        """Stories whose ``last_seen`` is at or after ``since``."""

    async def expire(self, before: datetime) -> int:
        """Drop stories and members last seen before ``before``; returns stories dropped."""

    # -- sharing stories between instances --------------------------------
    @property
    def shared(self) -> bool:
        """True when other instances may write the same stories (Redis), False for SQLite."""

    async def members_after(
        self, cursor: str | None, limit: int
    ) -> tuple[list[StoryMember], str]:
        """Up to ``limit`` members committed after ``cursor``, in commit order, and the next cursor.

        ``cursor`` is an opaque string from an earlier call, None for the start. A
        member committed again (same story and key) moves to the end, and so does one a
        split moved to another story, under its new story id only. Expired members
        are gone from the feed as from ``recent_members``. With nothing new, the
        returned cursor is the one given.
        """

    def exclusive(
        self, name: str, ttl_seconds: float, *, wait_seconds: float = 30.0
    ) -> AbstractAsyncContextManager[None]:
        """``async with``: hold the lease ``name`` against every instance of this store.

        A holder that dies frees it after ``ttl_seconds``; a waiter gives up with
        LeaseHeld (a StoreError) naming the lease after ``wait_seconds``. Not reentrant.
        """

    # -- outbox ------------------------------------------------------------
    async def outbox_put(self, items: Iterable[OutboxItem]) -> None:
        """Enqueue alerts outside an article commit; idempotent per (alert_id, sink)."""

    async def outbox_due(self, sink: str, now: datetime, limit: int) -> list[OutboxItem]:
        """The head of ``sink``'s queue: up to ``limit`` items in queue order, due at ``now``.

        Queue order is ``created_at``, then ``alert_id``. An item is due when its
        ``next_attempt`` (or, unset, its ``created_at``) is not after ``now``; the items
        returned stop before the first one that is not due (``due_head``), because a
        later alert must not overtake one that waits for its retry.
        """

    async def outbox_done(self, sink: str, alert_id: str) -> None:
        """The sink took the alert: remove it from that sink's queue.

        Inside ``exclusive``, only while that lease holds: else LeaseLost, nothing
        removed (the module docstring). So too ``outbox_done_many`` and ``outbox_retry``.
        """

    async def outbox_done_many(self, sink: str, alert_ids: Sequence[str]) -> None:
        """The sink took all these alerts (one batch, one write): remove them together.

        One round trip instead of one per alert: a burst of alerts is acknowledged
        while the event loop is busiest. Ids not queued (already done) are ignored.
        """

    async def outbox_retry(
        self, sink: str, alert_id: str, next_attempt: datetime, error: str
    ) -> None:
        """The sink failed: count the attempt, remember why, try again at ``next_attempt``.

        The item keeps its place in the queue, so the items queued after it wait too.
        """

    async def outbox_depth(self) -> dict[str, int]:
        """Pending items per sink."""
