"""One article's way from "parsed" to "alert queued": seen? -> match -> cluster -> decide -> commit.

The daemon and ``news-monitor replay`` both call ``Ingestor.ingest``, so what
replay measures is exactly what the service does. The deciders it calls
(``RuleSet.match``, ``StoryIndex.place``, ``AlertPolicy.decide``) are pure;
this class only sequences them and talks to the store through its protocol.

The store commit is the point of no return: the article's seen-keys, its
story and the alerts for it are written in one atomic step. A crash before the
commit loses nothing (the article is not seen yet and comes again with the next
poll); a crash after it re-alerts nothing (the alert is in the durable outbox).

Group commit (SQLite, one instance): under the ingest lock a feed's new
articles are only *staged*: placed, added to the story index, their grown
stories kept in a pending overlay, their alerts counted against the throttles.
The commit itself runs outside the lock, in one committer task that writes
every staged article of every waiting feed in one transaction
(``Store.commit_articles``), so a burst of polls costs a few transactions
rather than one store round trip per article under the lock. When the commit
fails, everything staged and not yet committed is taken back (``StoryIndex.remove``,
``RuleThrottle.forget``, the overlay dropped) before the error reaches the
polls: nothing is half-accepted, and the next poll sees those articles as new.

With a ``shared`` store (Redis: several instances), each instance's story
index would miss the others' members and open a second story for the same
event. So placing and committing run under the store's ``stories`` lease,
after folding in the members other instances committed since we last looked
(``members_after``), and the story to grow is read from the store (or from what
this slice staged under the lease), never from this instance's cache. A slice is
staged like a group commit and written with one ``commit_articles`` call that
stops at the first refusal (see ``_commit_slice``). SQLite's path stays as it
was: one instance.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from loguru import logger

from monitor.alerts.hits import StoryHits
from monitor.alerts.payload import build_alert, dumps
from monitor.alerts.policy import AlertPolicy, mark_alerted
from monitor.alerts.routing import Route, route
from monitor.alerts.throttle import RuleThrottle
from monitor.errors import StoreError
from monitor.match.rules import RuleSet, Throttle
from monitor.models import Alert, AlertEvent, Article, RuleHit, Story, StoryArticle, StoryMember
from monitor.store.base import ArticleCommit, OutboxItem, Store
from monitor.stories.cluster import Placement, Split, StoryConfig, StoryIndex

if TYPE_CHECKING:
    from monitor.config import Settings

MAX_KEY_MEMORY = 500_000
STORIES_LEASE = "stories"
LEASE_TTL = 10.0       # seconds; one article's section takes milliseconds, a dead holder
LEASE_WAIT = 30.0      # blocks the others this long at most; waiters give up after this
CATCH_UP_PAGE = 1000   # members read per members_after call
LEASE_BATCH = 50       # new articles of one poll placed per lease (shared stores)
GROUP_ARTICLES = 100   # articles per group-commit transaction, at most (whole polls)


@dataclass(frozen=True)
class Tuning:
    """What the settings decide about stories and alerts, for the daemon and replay alike."""

    stories: StoryConfig
    policy: AlertPolicy
    seen_ttl: timedelta

    @classmethod
    def of(cls, settings: Settings) -> Tuning:
        st = settings.stories
        return cls(StoryConfig(window=st.window, join_threshold=st.join_threshold,
                               split_bar=st.split_bar),
                   AlertPolicy(settings.alerts.updates, settings.alerts.update_interval),
                   settings.alerts.seen_ttl)


@dataclass
class _Staged:
    """One new article placed under the lock and waiting for the group commit."""

    article: Article
    keys: tuple[str, ...]
    hits: tuple[RuleHit, ...]
    placement: Placement
    story: Story
    commit: ArticleCommit
    event: AlertEvent | None
    alert_id: str | None
    where: Route | None
    inserted: bool  # the index gained the member (False: it was a member already)
    now: datetime
    split: Split | None = None     # the story this article's join cut in two
    other: Story | None = None     # the split's other story (the article is in ``story``)
    other_event: AlertEvent | None = None   # its story.new, when the article stayed behind
    other_alert_id: str | None = None
    other_where: Route | None = None
    taken_back: bool = False


@dataclass(frozen=True)
class Outcome:
    """What happened to one article."""

    article: Article
    duplicate: bool
    story_id: str | None
    rule_ids: tuple[str, ...]
    alert: AlertEvent | None = None
    alert_id: str | None = None
    similarity: float | None = None
    new_story: bool = False
    throttled: tuple[str, ...] = ()  # rules whose throttle held this article's alert back
    split: Split | None = None       # the story this article's join cut in two
    split_alert: AlertEvent | None = None   # the split-off story's own story.new, if any


class Ingestor:
    def __init__(
        self, store: Store, rules: RuleSet, index: StoryIndex, policy: AlertPolicy,
        sinks: Sequence[str], *, window: timedelta, seen_ttl: timedelta,
        throttle: RuleThrottle | None = None, key_memory: int = MAX_KEY_MEMORY,
    ) -> None:
        self.store = store
        self.rules = rules
        self.index = index
        self.policy = policy
        self.sinks = tuple(sinks)
        self.window = window
        self.seen_ttl = seen_ttl
        self.throttle = throttle  # None: rules' ``throttle`` is not enforced (replay)
        self.stories: dict[str, Story] = {}
        self.hits = StoryHits()   # why each rule matched each (cached or staged) story
        # seen-key -> story id, so a repeat can still name its story (bounded, oldest out):
        # replay reports it. The daemon does not (``key_memory=0``): at ~0.3 KB per new
        # article it was a few MB of the daemon's memory for nothing.
        self.key_memory = key_memory
        self.key_story: OrderedDict[str, str] = OrderedDict()
        self._lock = asyncio.Lock()
        self._last_created = datetime.min.replace(tzinfo=UTC)
        self._cursor: str | None = None  # members_after position (shared stores)
        # stories the index held when the store lost its data (``store_lost``)
        self._lost_stories: frozenset[str] = frozenset()
        # Group commit: staged articles not yet committed, their stories and keys.
        self._pending: dict[str, Story] = {}
        self._pending_keys: dict[str, str] = {}
        self._queue: list[tuple[list[_Staged], asyncio.Future[list[bool]]]] = []
        self._committer: asyncio.Task[None] | None = None
        # Keys committed while a poll was between its seen_any and the lock: that poll
        # must still see them as repeats. (commit number, keys), pruned when no poll
        # that started before them is left.
        self._commits = 0
        self._recent: deque[tuple[int, tuple[str, ...]]] = deque()
        self._recent_keys: dict[str, int] = {}   # key -> newest commit number in _recent
        self._marks: Counter[int] = Counter()
        # Failed group commits so far: a poll staging while one fails may have built on
        # what it took back, so it takes its own back too (see ``ingest``).
        self._failures = 0
        # The articles the poll holding the lock has staged so far (SQLite path).
        self._staging: dict[int, _Staged] = {}

    async def restore(self, now: datetime) -> None:
        """Reload the window's stories and index after a restart."""
        since = now - self.window
        for story in await self.store.recent_stories(since):
            self._cache(story, ())
        if self.store.shared:
            n = await self._catch_up(now)  # also sets the cursor the next catch-up starts at
        else:
            members = await self.store.recent_members(since)
            self.index.restore(members)
            n = len(members)
        logger.info("restored {} stories and {} story members from the store",
                    len(self.stories), n)

    async def _catch_up(self, now: datetime) -> int:
        """Fold the members other instances committed since the last call into the index.

        Our own members come back too and are skipped (already in the index), as are
        members already out of the window.
        """
        since = now - self.window
        added = 0
        while True:
            members, self._cursor = await self.store.members_after(self._cursor, CATCH_UP_PAGE)
            # a member moved by another instance's split comes again under its new story
            fresh = [m for m in members
                     if m.seen_at >= since and self.index.story_of(m.article_key) != m.story_id]
            for m in fresh:   # its rule explanations follow it
                old = self.index.story_of(m.article_key)
                if old is not None:
                    self.hits.move((m.article_key,), old, m.story_id)
            if fresh:
                self.index.restore(fresh)
                added += len(fresh)
            if len(members) < CATCH_UP_PAGE:
                return added

    def store_lost(self) -> None:
        """The store lost its data (``Store.epoch`` changed): follow its members from the start.

        Its sequence numbers count from one again, so the old cursor would pass over
        every member other instances commit until the count caught up with it, and
        their reports of an event would open stories of their own here. What the
        index holds stays: articles seen again join the stories they were in, whose
        records start afresh (said once here, not once per story).
        """
        self._cursor = None
        self._lost_stories = self.index.story_ids()

    def _remember_keys(self, keys: Sequence[str], story_id: str) -> None:
        if not self.key_memory:
            return
        for k in keys:
            self.key_story[k] = story_id
            self.key_story.move_to_end(k)
        while len(self.key_story) > self.key_memory:
            self.key_story.popitem(last=False)

    def _story_hits(self, story: Story) -> list[RuleHit]:
        """One hit per rule of the story: its first matching article's (``StoryHits``), or
        the rule's name alone where none is known (another instance's article, a restart)."""
        by_id = {r.id: r for r in self.rules.rules}
        out: list[RuleHit] = []
        for rule_id in story.rule_ids:
            found = self.hits.explain(story.id, rule_id)
            if found is None:
                rule = by_id.get(rule_id)
                if rule is None:
                    continue
                found = RuleHit(rule_id=rule.id, title=rule.title, severity=rule.severity,
                                channels=tuple(rule.channels))
            out.append(found)
        return out

    def _limit(self, rule_id: str) -> Throttle | None:
        return next((r.throttle for r in self.rules.rules if r.id == rule_id), None)

    def _targets(self, hits: Sequence[RuleHit], now: datetime) -> Route:
        """Sinks named by the rules' channels (see ``monitor.alerts.routing``), after throttles."""
        return route(hits, self.sinks, self._limit, self.throttle, now)

    def _outbox(self, alert: Alert, where: Route, now: datetime) -> list[OutboxItem]:
        """Outbox items stamped in commit order, so sinks get ``story.new`` before its updates.

        ``now`` is when the poll started; two feeds polled at once would otherwise stamp a
        later commit earlier. The stamp only ever moves forward, and past the story's
        previous alert, which another instance (shared store) may have stamped.
        """
        tick = timedelta(microseconds=1)
        previous = alert.story.last_alert_at
        created = max(now, self._last_created + tick, now if previous is None else previous + tick)
        self._last_created = created
        payload = dumps(alert)
        return [OutboxItem(alert_id=alert.id, sink=s, payload=payload, created_at=created)
                for s in where.sinks]

    def _queued(self, where: Route, story_id: str, now: datetime) -> None:
        """After the commit: count the alert against its throttles, or log why it was held."""
        if self.throttle is None:
            return
        if where.held:
            self.throttle.drop(where.throttled)
            logger.info("alert for story {} dropped: throttle of rule(s) {} is full",
                        story_id, ", ".join(where.throttled))
        else:
            self.throttle.record(where.counted, now)

    def _cache(self, story: Story, hits: Sequence[RuleHit]) -> None:
        """Keep in memory only stories a rule matched: they are the ones that alert again.

        Most articles match no rule; their stories live in the store (``_story_for`` reads
        them back when a later article joins), which keeps the daemon's memory to the
        story index itself rather than every article's story record as well.
        """
        if story.rule_ids:
            self.stories[story.id] = story
        else:
            self.stories.pop(story.id, None)
            if story.id not in self._pending:   # a newer staging of it may have rules
                self.hits.drop(story.id)

    async def _story_for(self, placement: Placement) -> Story | None:
        if placement.is_new:
            return None
        # Staged and not committed yet: on a shared store only this slice's, under the
        # lease, so no other instance can have grown it since. The cache, though, may be
        # stale there: another instance may have grown the story since we cached it.
        story = self._pending.get(placement.story_id)
        if story is None and not self.store.shared:
            story = self.stories.get(placement.story_id)
        if story is None:
            story = await self.store.get_story(placement.story_id)
            if story is None and placement.story_id not in self._lost_stories:
                # The index holds the story but the store no longer does: another
                # instance's clock expired it first. Its record starts afresh.
                logger.warning("story {} was expired from the store while this instance's "
                               "index still held it (clocks apart between instances?); "
                               "its record starts afresh", placement.story_id)
        return story

    @staticmethod
    def _grow(story: Story | None, placement: Placement, article: Article,
              hits: Sequence[RuleHit], now: datetime) -> Story:
        member = StoryArticle(
            key=article.key, outlet=article.outlet, url=article.href, title=article.title,
            published=article.published, language=article.language, seen_at=now,
            similarity=placement.similarity, shared_terms=placement.shared_terms,
            rule_ids=tuple(dict.fromkeys(h.rule_id for h in hits)),
        )
        rule_ids = tuple(dict.fromkeys(
            (*(story.rule_ids if story else ()), *(h.rule_id for h in hits))))
        if story is None:
            return Story(id=placement.story_id, title=article.title, first_seen=now,
                         last_seen=now, articles=(member,), rule_ids=rule_ids)
        # Polls finish out of order (``now`` is when a poll started): the story's times
        # only widen, or expiry, which reads ``last_seen``, would drop from the store a
        # story the index still keeps open by its newest member.
        return replace(story, first_seen=min(story.first_seen, now),
                       last_seen=max(story.last_seen, now),
                       rule_ids=rule_ids).with_article(member)

    async def ingest(self, articles: Sequence[Article], now: datetime) -> list[Outcome]:
        """Process a batch (one feed's new entries). Raises StoreError if the store is gone."""
        if self.store.shared:
            return await self._ingest_shared(articles, now)
        groups = [a.seen_keys or (a.key,) for a in articles]
        mark = self._commits
        self._marks[mark] += 1
        try:
            seen = await self.store.seen_any(groups)
            hits = [self.rules.match(a) for a in articles]
            out: dict[int, Outcome] = {}
            staged: dict[int, _Staged] = {}
            # Placing must not interleave with another feed's, or two reports of one story
            # polled at once would both open a new story; committing may (see the docstring).
            async with self._lock:
                failures = self._failures
                batch_keys: set[str] = set()
                self._staging = staged
                try:
                    for i, (keys, was_seen) in enumerate(zip(groups, seen, strict=True)):
                        # Keys staged by others, or committed since our seen_any (looked up
                        # per article: a commit may settle while we wait in _stage), are seen.
                        if was_seen or any(k in batch_keys or k in self._pending_keys
                                           or self._recent_keys.get(k, mark) > mark
                                           for k in keys):
                            out[i] = self._repeat(articles[i], keys, hits[i])
                            continue
                        batch_keys.update(keys)
                        staged[i] = await self._stage(articles[i], keys, hits[i], now)
                        if self._failures != failures:
                            raise StoreError("a group commit failed while this feed's "
                                             "articles were being placed; they come again "
                                             "with the next poll")
                except BaseException:
                    # Nothing staged here may stay half-accepted: not committed, not queued.
                    self._take_back(list(staged.values()))
                    raise
                finally:
                    self._staging = {}
        finally:
            self._marks[mark] -= 1
            if not self._marks[mark]:
                del self._marks[mark]
            oldest = min(self._marks, default=self._commits)
            while self._recent and self._recent[0][0] <= oldest:
                n, committed = self._recent.popleft()
                for k in committed:
                    if self._recent_keys.get(k) == n:
                        del self._recent_keys[k]
        if staged:
            done = await self._commit(list(staged.values()))
            for (i, s), accepted in zip(staged.items(), done, strict=True):
                out[i] = self._outcome(s, accepted)
        return [out[i] for i in range(len(articles))]

    async def _prepare(self, article: Article, keys: Sequence[str], hits: Sequence[RuleHit],
                       now: datetime) -> _Staged:
        """Place the article and decide its alert: what its commit will write.

        Changes the index (the article, and a split its join causes) and the known rule
        hits (``StoryHits``: this article's, and those a split moves), so the next
        article is placed and its alert explained as if this one were committed
        already; ``_take_back`` undoes both.
        """
        placement = self.index.place(article, now)
        base = await self._story_for(placement)
        inserted = self.index.story_of(article.key) is None
        # The index gains the article here (no await from here on): a join may cut its
        # story in two (``StoryIndex.add``), and the records and alerts below follow the cut.
        split = self.index.add(placement)
        try:
            story = self._grow(base, placement, article, hits, now)
            other = None
            if split is not None:
                story, other = self._split_records(story, split, article.key,
                                                   base.rule_ids if base else ())
                self.hits.move(split.moved, split.story_id, split.new_story_id)
            if inserted:   # an article already a member (seen again) keeps what it had
                self.hits.learn(story.id, article.key, hits)
            story, event, alert_id, where, outbox = self._notice(story, now)
            member = StoryMember(story_id=story.id, article_key=article.key, seen_at=now,
                                 features=placement.features)
            moved: tuple[StoryMember, ...] = ()
            if split is not None:
                moved = tuple(StoryMember(split.new_story_id, key, seen, "")
                              for key, seen in zip(split.moved, split.seen, strict=True)
                              if key != article.key)
            commit = ArticleCommit(tuple(keys), story, member, tuple(outbox), now,
                                   self.seen_ttl.total_seconds(), moved,
                                   () if other is None else (other,),
                                   tuple(split.story_id for _ in moved) if split else ())
        except BaseException:
            self._undo_index(article.key, inserted, split)
            if inserted:
                self.hits.forget(placement.story_id, article.key)
                if split is not None:
                    self.hits.forget(split.new_story_id, article.key)
            if split is not None:
                self.hits.move(split.moved, split.new_story_id, split.story_id)
            raise
        return _Staged(article, tuple(keys), tuple(hits), placement, story, commit, event,
                       alert_id, where, inserted, now, split, other)

    def _notice(self, story: Story, now: datetime
                ) -> tuple[Story, AlertEvent | None, str | None, Route | None, list[OutboxItem]]:
        """The alert the policy decides for ``story`` now: the story as it will be saved,
        the event, the alert id and route (None when none) and its outbox items."""
        event = self.policy.decide(story, now)
        outbox: list[OutboxItem] = []
        alert_id = None
        where: Route | None = None
        if event is not None:
            alert = build_alert(story, event, self._story_hits(story), now)
            where = self._targets(alert.rules, now)
            if not where.held:
                alert_id = alert.id
                outbox = self._outbox(alert, where, now)
            # A story.new a throttle held back leaves the story unannounced: its next report,
            # once a rule has room, is its story.new. Marked, the story would surface later
            # as a story.updated nobody had seen the start of.
            if not where.held or event != "story.new":
                story = mark_alerted(story, now)
        return story, event, alert_id, where, outbox

    @staticmethod
    def _split_records(story: Story, split: Split, article_key: str,
                       before: Sequence[str]) -> tuple[Story, Story]:
        """The grown story's record cut as the index cut it: (the article's part, the other).

        Each part names the rules its own articles matched. The part that leaves is a
        story nobody was told about, so its first alert is a ``story.new`` naming them;
        the part that stays keeps its alert history (it was announced). A rule of the
        story ``before`` this article that no listed article names (articles stored
        before they recorded their rules) stays with the part that stays.
        """
        leaving = set(split.moved)
        kept = tuple(a for a in story.articles if a.key not in leaving)
        gone = tuple(a for a in story.articles if a.key in leaving)
        named = {r for a in story.articles if a.key != article_key for r in a.rule_ids}
        kept_named = {r for a in kept for r in a.rule_ids}
        old = replace(story, articles=kept, rule_ids=tuple(
            r for r in story.rule_ids
            if r in kept_named or (r not in named and r in before)))
        if kept and not story.earlier_count:
            old = replace(old, first_seen=min(a.seen_at for a in kept),
                          last_seen=max(a.seen_at for a in kept))
        first = gone[0] if gone else None
        new = Story(
            id=split.new_story_id, title=first.title if first else story.title,
            first_seen=min((a.seen_at for a in gone), default=story.last_seen),
            last_seen=max((a.seen_at for a in gone), default=story.last_seen),
            articles=gone,
            rule_ids=tuple(dict.fromkeys(r for a in gone for r in a.rule_ids)),
            split_from=split.story_id)
        return (new, old) if article_key in leaving else (old, new)

    def _undo_index(self, article_key: str, inserted: bool, split: Split | None) -> None:
        """Take an article's ``StoryIndex.add`` back: its split first, then the article."""
        if split is not None:
            self.index.move(split.moved, split.story_id)
        if inserted:
            self.index.remove(article_key)

    async def _stage(self, article: Article, keys: Sequence[str], hits: Sequence[RuleHit],
                     now: datetime) -> _Staged:
        """``_prepare``, then the overlay and the throttles gain it at once.

        A split's new story gets its ``story.new`` here when the article itself stayed
        behind (otherwise the article's own alert is that story's ``story.new``), routed
        after the article's own alert is counted against the throttles.
        """
        s = await self._prepare(article, keys, hits, now)
        if self.throttle is not None and s.where is not None and not s.where.held:
            self.throttle.record(s.where.counted, now)  # so the next article sees it counted
        if s.other is not None and s.split is not None and s.other.id == s.split.new_story_id:
            try:
                other, event, alert_id, where, outbox = self._notice(s.other, now)
            except BaseException:
                self._take_back([s])
                raise
            s.other, s.other_event, s.other_alert_id, s.other_where = other, event, alert_id, where
            s.commit = replace(s.commit, stories=(other,), outbox=(*s.commit.outbox, *outbox))
            if self.throttle is not None and where is not None and not where.held:
                self.throttle.record(where.counted, now)
        self._pending[s.story.id] = s.story
        if s.other is not None:
            self._pending[s.other.id] = s.other
        for k in keys:
            self._pending_keys[k] = s.story.id
        return s

    def _commit(self, staged: list[_Staged]) -> asyncio.Future[list[bool]]:
        """Queue staged articles for the committer; the future is one result per article."""
        fut: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._queue.append((staged, fut))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        return fut

    async def _commit_queued(self) -> None:
        """The one committer: what was queued since its last transaction, in one more.

        At most ``GROUP_ARTICLES`` articles a transaction (whole polls; one poll may go
        over): a story read by a poll being staged (``get_story``, under the ingest lock)
        waits in the store's queue behind the transaction running, so it must stay short
        when first polls bring dozens of articles each.
        """
        while self._queue:
            taken = count = 0
            while taken < len(self._queue) and count < GROUP_ARTICLES:
                count += len(self._queue[taken][0])
                taken += 1
            batch, self._queue = self._queue[:taken], self._queue[taken:]
            entries = [s for group, _ in batch for s in group]
            try:
                done = await self.store.commit_articles([s.commit for s in entries])
            except BaseException as e:
                self._failures += 1
                # Polls staged on top of this batch may have grown its stories: take
                # those back too, newest first, and fail their polls with the same error.
                batch += self._queue
                self._queue = []
                # The poll staging now (under the lock, awaiting a story read) is newer
                # than everything queued: its entries go first, since a split undone out
                # of order would leave a story the store never had. It takes back the
                # rest of its own when it sees the failure.
                self._take_back([s for group, _ in batch for s in group]
                                + list(self._staging.values()))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                if not isinstance(e, Exception):
                    raise
                return
            try:
                self._settle(entries, done)
            except BaseException as e:
                # A poll must never wait forever on its commit's future.
                for _, fut in batch + self._queue:
                    if not fut.done():
                        fut.set_exception(e)
                raise
            start = 0
            for group, fut in batch:
                if not fut.done():
                    fut.set_result(done[start:start + len(group)])
                start += len(group)

    def _settle(self, entries: Sequence[_Staged], done: Sequence[bool]) -> None:
        """After the transaction: committed stories leave the overlay for the caches."""
        for s, accepted in zip(entries, done, strict=True):
            if not accepted:  # seen after all (another process on the same file)
                self._take_back([s])
                continue
            for k in s.keys:
                if self._pending_keys.get(k) == s.story.id:
                    del self._pending_keys[k]
            if self._pending.get(s.story.id) is s.story:
                del self._pending[s.story.id]
            self._cache(s.story, s.hits)
            self._remember_keys(s.keys, s.story.id)
            if s.split is not None and s.other is not None:
                self._settle_split(s.split, s.other, s.other_where, s.now)
            self._commits += 1
            if self._marks:
                self._recent.append((self._commits, s.keys))
                for k in s.keys:
                    self._recent_keys[k] = self._commits
            if s.where is not None and s.where.held:
                self._queued(s.where, s.story.id, s.now)

    def _settle_split(self, split: Split, other: Story, where: Route | None,
                      now: datetime) -> None:
        """After the commit of an article that cut a story in two: the other part's caches."""
        if self._pending.get(other.id) is other:
            del self._pending[other.id]
        self._cache(other, ())
        for key in split.moved:
            if key in self.key_story:
                self.key_story[key] = split.new_story_id
        if where is not None and where.held:
            self._queued(where, other.id, now)
        logger.info("story {} split in two: {} report(s) moved to new story {} "
                    "(score {} against the rest, {} kind(s) of particulars in conflict)",
                    split.story_id, len(split.moved), split.new_story_id, split.score,
                    split.conflicts)

    def _take_back(self, entries: Sequence[_Staged]) -> None:
        """Undo staging, newest first: the index, the throttles, the overlay, rule hits.

        Each entry once: a failed group commit may take back a poll's entries before the
        poll itself does.
        """
        for s in reversed(entries):
            if s.taken_back:
                continue
            s.taken_back = True
            self._undo_index(s.article.key, s.inserted, s.split)
            if self.throttle is not None and s.where is not None and not s.where.held:
                self.throttle.forget(s.where.counted, s.now)
            if s.other is not None:
                ow = s.other_where
                if self.throttle is not None and ow is not None and not ow.held:
                    self.throttle.forget(ow.counted, s.now)
                if self._pending.get(s.other.id) is s.other:
                    del self._pending[s.other.id]
            if s.inserted:
                self.hits.forget(s.story.id, s.article.key)
            if s.split is not None:
                self.hits.move(s.split.moved, s.split.new_story_id, s.split.story_id)
            for k in s.keys:
                if self._pending_keys.get(k) == s.story.id:
                    del self._pending_keys[k]
            if self._pending.get(s.story.id) is s.story:
                del self._pending[s.story.id]

    @staticmethod
    def _outcome(s: _Staged, accepted: bool) -> Outcome:
        rule_ids = tuple(h.rule_id for h in s.hits)
        if not accepted:
            return Outcome(s.article, True, None, rule_ids)
        held = s.where is not None and s.where.held
        other_held = s.other_where is not None and s.other_where.held
        return Outcome(s.article, False, s.story.id, rule_ids, None if held else s.event,
                       s.alert_id, s.placement.similarity, s.placement.is_new,
                       s.where.throttled if held and s.where is not None else (),
                       s.split, None if other_held else s.other_event)

    async def drain(self) -> None:
        """Wait until everything staged is committed or taken back (before closing the store)."""
        while self._committer is not None and not self._committer.done():
            await asyncio.wait([self._committer])

    def _repeat(self, article: Article, keys: Sequence[str], hits: Sequence[RuleHit]) -> Outcome:
        story_id = next((self.key_story[k] for k in keys if k in self.key_story), None)
        return Outcome(article, True, story_id, tuple(h.rule_id for h in hits))

    async def _ingest_shared(self, articles: Sequence[Article], now: datetime) -> list[Outcome]:
        """``ingest`` on a shared store: new articles placed and committed under the lease.

        One lease per slice of up to ``LEASE_BATCH`` new articles, not one per article:
        taking, catching up and releasing cost three round trips, and the slice bound
        keeps the hold far below the TTL. Rules are matched before the lease, so other
        instances wait only while we place and commit.
        """
        groups = [a.seen_keys or (a.key,) for a in articles]
        seen = await self.store.seen_any(groups)
        hits = [self.rules.match(a) for a in articles]
        out: dict[int, Outcome] = {}
        fresh: list[int] = []
        batch_keys: set[str] = set()
        for i, (keys, was_seen) in enumerate(zip(groups, seen, strict=True)):
            if was_seen or batch_keys.intersection(keys):
                out[i] = self._repeat(articles[i], keys, hits[i])
            else:
                batch_keys.update(keys)
                fresh.append(i)
        for start in range(0, len(fresh), LEASE_BATCH):
            async with self._lock, self.store.exclusive(STORIES_LEASE, LEASE_TTL,
                                                        wait_seconds=LEASE_WAIT):
                await self._catch_up(now)
                await self._commit_slice(fresh[start:start + LEASE_BATCH], articles, groups,
                                         hits, now, out)
        return [out[i] for i in range(len(articles))]

    async def _commit_slice(self, todo: list[int], articles: Sequence[Article],
                            groups: Sequence[Sequence[str]], hits: Sequence[Sequence[RuleHit]],
                            now: datetime, out: dict[int, Outcome]) -> None:
        """Stage a slice's articles in order, then write them with one ``commit_articles``.

        One store round trip for the slice instead of one per article. Each article is
        staged (index, overlay, throttles, rule hits) before the next is placed, so it
        sees the ones before it as it did when each was committed before the next; the
        story it grows comes from the overlay, which under the lease is what the store
        will hold.

        The commit stops at the first refusal (another instance committed one of its
        keys after our ``seen_any``; or our own write landed and the pipeline was
        retried): an article after it may have joined the refused one's story or been
        placed against it, so it must not be written as decided. The refused article
        and all after it are taken back; the refused one is a duplicate, and the rest
        are placed again without it, after folding in what the store has now (it may
        be our own write) and setting aside those seen meanwhile. Placing them again
        rather than committing them one at a time: one code path, still one round trip
        for the rest, and a refusal is rare.
        """
        while todo:
            staged: list[_Staged] = []
            try:
                for i in todo:
                    staged.append(await self._stage(articles[i], groups[i], hits[i], now))
                done = await self.store.commit_articles([s.commit for s in staged],
                                                        stop_at_refusal=True)
            except BaseException:
                # Not knowing which entries landed, keep none: what did comes back with
                # the next catch-up, what did not with the next poll.
                self._take_back(staged)
                raise
            ok = done.index(False) if False in done else len(done)
            self._settle(staged[:ok], done[:ok])
            for i, s in zip(todo[:ok], staged[:ok], strict=True):
                out[i] = self._outcome(s, True)
            if ok == len(todo):
                return
            self._take_back(staged[ok:])
            out[todo[ok]] = self._outcome(staged[ok], False)
            rest = todo[ok + 1:]
            if not rest:
                return
            await self._catch_up(now)
            seen = await self.store.seen_any([groups[i] for i in rest])
            for i, was_seen in zip(rest, seen, strict=True):
                if was_seen:
                    out[i] = self._repeat(articles[i], groups[i], hits[i])
            todo = [i for i, was_seen in zip(rest, seen, strict=True) if not was_seen]

    async def flush_updates(self, now: datetime) -> list[str]:
        """Queue held-back ``story.updated`` alerts whose interval has passed.

        Under the ingest lock (and the shared lease): a flush that saved a story an
        article commit had just grown would write the story back without that article.
        """
        async with self._lock:
            if not self.store.shared:
                await self.drain()  # a story still in the overlay is about to be saved
                return await self._flush_updates(now)
            async with self.store.exclusive(STORIES_LEASE, LEASE_TTL, wait_seconds=LEASE_WAIT):
                return await self._flush_updates(now)

    async def _flush_updates(self, now: datetime) -> list[str]:
        sent: list[str] = []
        for story in self.policy.due_updates(list(self.stories.values()), now):
            if self.store.shared:  # another instance may have grown or alerted it since
                fresh = await self.store.get_story(story.id)
                if fresh is None or not self.policy.due_updates([fresh], now):
                    if fresh is not None:
                        self.stories[story.id] = fresh
                    continue
                story = fresh
            alert = build_alert(story, "story.updated", self._story_hits(story), now)
            where = self._targets(alert.rules, now)
            story = mark_alerted(story, now)
            outbox = [] if where.held else self._outbox(alert, where, now)
            await self.store.save_story(story, outbox)
            self.stories[story.id] = story
            self._queued(where, story.id, now)
            if not where.held:
                sent.append(alert.id)
        return sent

    async def expire(self, now: datetime) -> int:
        before = now - self.window
        dropped = self.index.expire(before)
        for sid in [s.id for s in self.stories.values() if s.last_seen < before]:
            self.stories.pop(sid, None)
        # the index's stories too: a story another instance made (a split) is not cached here
        self.hits.keep_only((*self.stories, *self._pending, *self.index.story_ids()))
        await self.store.expire(before)
        return dropped
