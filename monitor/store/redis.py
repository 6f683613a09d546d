"""The shared store: any number of daemon instances cooperate through one Redis.

Why it looks like this:

* **Atomic steps are Lua scripts** (``redis_scripts.py``), registered once per
  client and run by EVALSHA: ``claim_due`` (take due feeds and push their due time
  to the lease end), ``release_claim`` (hand one back while that lease end is still
  its due time), ``commit_article`` (refuse when any seen key exists, else write
  keys, story, member, outbox items and a story split's moves together),
  ``sync_feeds`` and ``register_missing``, ``outbox_put``, ``outbox_done``,
  ``outbox_retry``, ``expire``.
  ``commit_articles`` sends one ``commit_article`` script per entry in one pipeline
  (not a transaction): one round trip per batch.
* **Every key under one prefix**, named in ``keys.py`` only.
* **Seen keys carry a Redis TTL** (``PX``), so Redis forgets them by itself; the
  TTL counts from the commit, in real time.
* **Times are integer microseconds** in sorted-set scores: exact in a double.
* **Failures are ``StoreError``** naming the URL with its password masked. The
  client retries a dropped connection a few times (redis-py's default back-off),
  has socket timeouts so a hung server cannot stall the daemon forever, and checks
  idle connections before use (``health_check_interval``). A retried
  ``commit_article`` whose first run did land returns False (keys already seen):
  its alerts are already in the outbox, so nothing is lost or doubled.

* **Stories are shared through a lease and a change feed.** Clustering an
  article is read-decide-write over the whole story index, which no single
  script can do (the decision is Python). So the daemon (``Ingestor``) takes
  ``exclusive("stories")``, catches up on the members other instances committed
  (``members_after``: a sequence-scored zset written by the commit script), decides,
  and commits. The lease is ``SET NX PX`` with a random token, released by a
  compare-and-delete script; a holder that died frees it after its TTL. A holder
  that merely stalled past its TTL is *fenced*: ``commit_article`` and
  ``save_story`` inside the lease check in the same script that the token still
  holds, and refuse with ``LeaseLost`` (a ``StoreError``) otherwise, so a stale
  decision is never written. Why a lease rather than optimistic versioning (commit
  only when no member was added since the catch-up, else retry): with one global story
  index every commit by any instance would invalidate every in-flight decision,
  so under load the optimistic path retries often, each retry re-reading and
  re-deciding; the lease costs three round trips per poll (take, catch up,
  release; the Ingestor places a poll's new articles under one lease) and never
  wastes a decision. With fencing it is exactly as safe (``bench/shared.py``).

* **An outbox queue is a sorted set scored by ``created_at``**: its order, which a
  retry leaves alone (``Store.outbox_due``). Versions before outbox layout 2 scored a
  retried item by its retry time; ``open`` moves such items back to their place once
  per deployment (``{prefix}:outbox:layout``). Upgrade every instance together: an
  older one still running would score its retries the old way again. A delivery
  pass holds ``exclusive("outbox:<sink>")``, and its ``outbox_done``,
  ``outbox_done_many`` and ``outbox_retry`` are fenced like commits: a pass that
  outlived its lease settles nothing the next holder may be sending.

Redis Cluster: the scripts touch keys in several hash slots, so this store wants a
single primary (with Sentinel for failover: ``redis+sentinel://``, see ``redis_url.py``),
not a Cluster.
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from contextvars import ContextVar
from datetime import datetime
from types import TracebackType
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from monitor.errors import LeaseHeld, LeaseLost, StoreError
from monitor.models import FeedState, Story, StoryMember
from monitor.redis_url import connect
from monitor.store import redis_scripts as lua
from monitor.store.base import ArticleCommit, OutboxItem, due_head
from monitor.store.keys import DEFAULT_PREFIX, Keys, member_id
from monitor.store.redact import redact_url, scrub
from monitor.store.serde import (
    dt_from_text,
    dt_to_text,
    feed_state_from_json,
    feed_state_to_json,
    lease_end,
    member_from_json,
    member_to_json,
    story_from_json,
    story_to_json,
    to_micros,
)

SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 15
PING_TIMEOUT = 2.0
LEASE_POLL_MIN = 0.002  # seconds between tries for a held lease, doubling ...
LEASE_POLL_MAX = 0.05   # ... up to this, with jitter so waiters do not march in step
GUARD_TTL_MS = 60_000   # a batch's guard key outlives its pipeline even if the DEL is lost
OUTBOX_LAYOUT = "2"     # queues scored by created_at (see the module docstring)
LAYOUT_CHUNK = 1000     # queue items read per round trip while moving them to their place
EPOCH_UNSET = "-"       # ``epoch`` of a server that lost the token and refuses a new one


def _item_fields(item: OutboxItem) -> list[str]:
    """The item's hash fields as a flat list; unset optional fields are left out."""
    fields = {
        "alert_id": item.alert_id,
        "sink": item.sink,
        "payload": item.payload,
        "created_at": dt_to_text(item.created_at),
        "attempts": str(item.attempts),
        "next_attempt": dt_to_text(item.next_attempt),
        "last_error": item.last_error,
    }
    return [x for k, v in fields.items() if v is not None for x in (k, v)]


def _item_from_hash(data: dict[str, str]) -> OutboxItem | None:
    created_at = dt_from_text(data.get("created_at"))
    if created_at is None or "alert_id" not in data:
        return None  # done meanwhile, or not ours
    return OutboxItem(
        alert_id=data["alert_id"],
        sink=data.get("sink", ""),
        payload=data.get("payload", ""),
        created_at=created_at,
        attempts=int(data.get("attempts", "0")),
        next_attempt=dt_from_text(data.get("next_attempt")),
        last_error=data.get("last_error"),
    )


def _cursor_value(cursor: str | None, url: str) -> int:
    """A ``members_after`` cursor as the sequence number it stands for (None: 0)."""
    if cursor is None:
        return 0
    try:
        return max(0, int(cursor))
    except ValueError:
        raise StoreError(
            f"Redis store {redact_url(url)}: members_after: bad cursor {cursor!r}") from None


def _ttl_ms(seen_ttl_seconds: float) -> int:
    """Milliseconds for ``SET PX``; 0 means no expiry (non-positive or infinite TTL)."""
    if not 0 < seen_ttl_seconds < math.inf:
        return 0
    return max(1, math.ceil(seen_ttl_seconds * 1000))


class RedisStore:
    """``Store`` on a Redis server. ``await open()`` before use, or ``async with``."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.url = url
        self.keys = Keys(prefix)
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        # (lease key, token) held by the current task: commits and outbox settling inside
        # it are fenced.
        self._lease: ContextVar[tuple[str, str] | None] = ContextVar(
            f"redis-store-lease-{id(self)}", default=None)

    @property
    def shared(self) -> bool:
        """Other instances may write the same stories: clustering goes through the lease."""
        return True

    def __repr__(self) -> str:
        return f"RedisStore({redact_url(self.url)!r}, prefix={self.keys.prefix!r})"

    async def __aenter__(self) -> RedisStore:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- plumbing ------------------------------------------------------------

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except (RedisError, OSError, ValueError) as e:
            reason = scrub(str(e) or type(e).__name__, self.url)
            raise StoreError(f"Redis store {redact_url(self.url)}: {what}: {reason}") from e

    @property
    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise StoreError(f"Redis store {redact_url(self.url)}: store is not open")
        return self._client

    async def _eval(self, name: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        if self._client is None:
            raise StoreError(f"Redis store {redact_url(self.url)}: store is not open")
        return await self._scripts[name](keys=list(keys), args=list(args))

    # -- lifecycle -----------------------------------------------------------

    async def open(self) -> None:
        if self._client is not None:
            return
        with self._errors("open"):
            client = connect(
                self.url,
                decode_responses=True,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=CONNECT_TIMEOUT,
                health_check_interval=HEALTH_CHECK_INTERVAL,
            )
            try:
                await client.ping()
            except BaseException:
                await client.aclose()
                raise
        self._client = client
        self._scripts = {
            name: client.register_script(source)
            for name, source in {
                "claim_due": lua.CLAIM_DUE,
                "release_claim": lua.RELEASE_CLAIM,
                "sync_feeds": lua.SYNC_FEEDS,
                "register_missing": lua.REGISTER_MISSING,
                "commit_article": lua.COMMIT_ARTICLE,
                "members_after": lua.MEMBERS_AFTER,
                "release": lua.RELEASE,
                "outbox_put": lua.OUTBOX_PUT,
                "outbox_done": lua.OUTBOX_DONE,
                "outbox_retry": lua.OUTBOX_RETRY,
                "expire": lua.EXPIRE,
            }.items()
        }
        try:
            with self._errors("open"):
                await self._outbox_layout()
        except BaseException:
            self._client = None
            with suppress(RedisError, OSError):
                await client.aclose()
            raise

    async def _outbox_layout(self) -> None:
        """Once per deployment: score the items an older version queued by ``created_at``.

        Only a retried item was scored otherwise (by its retry time, behind alerts queued
        after it). ``ZADD XX`` leaves alone an item another instance finished meanwhile,
        and running this twice (two instances starting at once) moves nothing more.
        """
        r = self._redis
        if await r.get(self.keys.outbox_layout) == OUTBOX_LAYOUT:
            return
        for sink in sorted(cast(set[str], await r.smembers(self.keys.outbox_sinks))):
            queue = self.keys.outbox_queue(sink)
            scored = cast(list[tuple[str, float]],
                          await r.zrange(queue, 0, -1, withscores=True))
            for start in range(0, len(scored), LAYOUT_CHUNK):
                chunk = scored[start:start + LAYOUT_CHUNK]
                async with r.pipeline(transaction=False) as pipe:
                    for alert_id, _ in chunk:
                        pipe.hget(self.keys.outbox_item(sink, alert_id), "created_at")
                    texts = await pipe.execute()
                moves: dict[str, int] = {}
                for (alert_id, score), text in zip(chunk, texts, strict=True):
                    created = dt_from_text(text)
                    if created is not None and to_micros(created) != int(score):
                        moves[alert_id] = to_micros(created)
                if moves:
                    await r.zadd(queue, moves, xx=True)
        await r.set(self.keys.outbox_layout, OUTBOX_LAYOUT)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with self._errors("close"):
                await client.aclose()

    async def ping(self) -> bool:
        client = self._client
        if client is None:
            return False
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                return bool(await client.ping())
        except Exception:
            return False

    async def epoch(self) -> str:
        """Read the token (one ``GET``); when it is gone, set a fresh one and read that.

        The daemon reads it every poll tick, so the usual call is a read only. ``SET NX``
        in a transaction with the ``GET``: instances that find the key gone at once all
        read the one token that won. The key has no TTL, so only a loss of data (or
        ``allkeys-*`` eviction, which loses data too) takes it away. A server back empty
        that refuses writes (a read-only replica, ``maxmemory``, ``min-replicas-to-write``)
        cannot take a new token; ``EPOCH_UNSET`` stands for it, so the loss is seen all
        the same, and the first instance able to write sets the token everyone reads.
        """
        with self._errors("epoch"):
            token = await self._redis.get(self.keys.epoch)
            if token is not None:
                return str(token)
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.set(self.keys.epoch, secrets.token_hex(8), nx=True)
                    pipe.get(self.keys.epoch)
                    _, token = await pipe.execute()
            except ResponseError:   # the write was refused; the server answered
                return EPOCH_UNSET
        return str(token)

    # -- feeds -----------------------------------------------------------------

    @staticmethod
    def _listing_args(urls: Sequence[str], now: datetime) -> list[str | int]:
        args: list[str | int] = [to_micros(now)]
        for url in urls:
            args += [url, feed_state_to_json(FeedState(url=url, next_check=now))]
        return args

    async def sync_feeds(self, urls: Sequence[str], now: datetime) -> None:
        args = self._listing_args(list(dict.fromkeys(urls)), now)
        with self._errors("sync_feeds"):
            await self._eval("sync_feeds", [self.keys.feeds_due, self.keys.feeds_state], args)

    async def register_missing(self, urls: Sequence[str], now: datetime) -> int:
        """One ZCARD when nothing is missing: the list goes to Redis only when some is.

        Redis loses a key as a whole (a flush, an empty restart, eviction), so a lost
        schedule shows as a short count. Only instances listing different feeds can hide
        one of ours behind theirs; a reload here lists it again.
        """
        listed = list(dict.fromkeys(urls))
        with self._errors("register_missing"):
            if not listed or int(await self._redis.zcard(self.keys.feeds_due)) >= len(listed):
                return 0
            return int(await self._eval(
                "register_missing", [self.keys.feeds_due, self.keys.feeds_state],
                self._listing_args(listed, now)))

    async def get_feed_state(self, url: str) -> FeedState | None:
        with self._errors("get_feed_state"):
            text = cast(str | None, await self._redis.hget(self.keys.feeds_state, url))
        return None if text is None else feed_state_from_json(text)

    async def all_feed_states(self) -> list[FeedState]:
        with self._errors("all_feed_states"):
            urls = sorted(cast(list[str], await self._redis.zrange(self.keys.feeds_due, 0, -1)))
            texts = cast(
                list[str | None],
                await self._redis.hmget(self.keys.feeds_state, urls) if urls else [],
            )
        return [
            feed_state_from_json(t) if t is not None else FeedState(url=u)
            for u, t in zip(urls, texts, strict=True)
        ]

    async def save_feed_state(self, state: FeedState, *, reschedule: bool = True) -> None:
        text = feed_state_to_json(state)
        due = 0 if state.next_check is None else to_micros(state.next_check)
        with self._errors("save_feed_state"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.keys.feeds_state, state.url, text)
                if reschedule:
                    # XX: only a listed feed is rescheduled; an unlisted one stays out.
                    pipe.zadd(self.keys.feeds_due, {state.url: due}, xx=True)
                await pipe.execute()

    async def claim_due(self, now: datetime, lease_seconds: float, limit: int) -> list[FeedState]:
        if limit <= 0:
            return []
        with self._errors("claim_due"):
            flat = await self._eval(
                "claim_due", [self.keys.feeds_due, self.keys.feeds_state],
                [to_micros(now), lease_end(now, lease_seconds), limit],
            )
        return [
            feed_state_from_json(text) if text else FeedState(url=url)
            for url, text in zip(flat[::2], flat[1::2], strict=True)
        ]

    async def release_claim(self, url: str, claimed: datetime, lease_seconds: float,
                            due: datetime) -> bool:
        with self._errors("release_claim"):
            done = await self._eval("release_claim", [self.keys.feeds_due],
                                    [url, lease_end(claimed, lease_seconds), to_micros(due)])
        return bool(done)

    async def release_claims(self) -> int:
        return 0

    # -- seen keys ---------------------------------------------------------------

    async def seen_any(self, keys: Sequence[Sequence[str]]) -> list[bool]:
        groups = [list(g) for g in keys]
        with self._errors("seen_any"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for group in groups:
                    if group:
                        pipe.exists(*(self.keys.seen(k) for k in group))
                counts = iter(await pipe.execute())
        return [bool(group) and int(next(counts)) > 0 for group in groups]

    # -- stories -----------------------------------------------------------------

    def _outbox_keys_args(self, items: Sequence[OutboxItem]) -> tuple[list[str], list[str | int]]:
        keys: list[str] = []
        args: list[str | int] = []
        for item in items:
            fields = _item_fields(item)
            keys += [self.keys.outbox_queue(item.sink), self.keys.outbox_item(item.sink,
                                                                             item.alert_id)]
            args += [item.sink, item.alert_id, to_micros(item.created_at), len(fields) // 2,
                     *fields]
        return keys, args

    def _commit_call(
        self, c: ArticleCommit, guard: str | None
    ) -> tuple[list[str], list[str | int], tuple[str, str] | None]:
        """``COMMIT_ARTICLE``'s keys and arguments for one entry, and the lease fencing it."""
        seen = [self.keys.seen(k) for k in dict.fromkeys(c.seen_keys)]
        out_keys, out_args = self._outbox_keys_args(list(c.outbox))
        k = self.keys
        keys = [k.stories, k.stories_data, k.members, k.members_data, k.outbox_sinks,
                k.members_seq, k.members_counter, *seen, *out_keys]
        story, member = c.story, c.member
        args: list[str | int] = [
            len(seen), _ttl_ms(c.seen_ttl_seconds),
            story.id, to_micros(story.last_seen), story_to_json(story),
        ]
        if member is None:
            args += ["", 0, ""]
        else:
            args += [member_id(member.story_id, member.article_key), to_micros(member.seen_at),
                     member_to_json(member)]
        args += [len(c.outbox), *out_args, len(c.stories)]
        for extra in c.stories:
            args += [extra.id, to_micros(extra.last_seen), story_to_json(extra)]
        args.append(len(c.moved))
        for moved, old_story in zip(c.moved, c.moved_from, strict=True):
            args += [member_id(old_story, moved.article_key),
                     member_id(moved.story_id, moved.article_key), to_micros(moved.seen_at),
                     member_to_json(moved)]
        if guard is None:
            args.append("")
        else:
            keys.append(guard)
            args.append(GUARD_TTL_MS)
        return keys, args, self._fence(keys, args)

    def _fenced(self, what: str, lease: tuple[str, str] | None, written: str) -> LeaseLost:
        assert lease is not None
        return LeaseLost(
            f"Redis store {redact_url(self.url)}: {what}: lease {lease[0]!r} was"
            f" lost (held past its TTL, now someone else's); {written}")

    async def commit_article(
        self,
        seen_keys: Sequence[str],
        story: Story,
        member: StoryMember | None,
        outbox: Sequence[OutboxItem],
        now: datetime,
        seen_ttl_seconds: float,
    ) -> bool:
        keys, args, lease = self._commit_call(
            ArticleCommit(tuple(seen_keys), story, member, tuple(outbox), now,
                          seen_ttl_seconds), None)
        with self._errors("commit_article"):
            done = int(await self._eval("commit_article", keys, args))
        if done == -1:
            raise self._fenced("commit_article", lease, "nothing written")
        return done > 0

    async def commit_articles(
        self, commits: Sequence[ArticleCommit], *, stop_at_refusal: bool = False
    ) -> list[bool]:
        """Every entry's script in one pipeline: one round trip, not one per article.

        Not a transaction: each script is atomic on its own, and an error leaves the
        entries before it written (a retry sees them refused), as with one call each.
        ``SCRIPT LOAD`` goes first in the same pipeline rather than redis-py's
        ``SCRIPT EXISTS`` check before it: one round trip, and no entry can meet
        ``NOSCRIPT`` (a flushed script cache) after an earlier one was written.
        ``stop_at_refusal`` chains the entries through a guard key of this call's own
        (see ``COMMIT_ARTICLE``), deleted at the end of the same pipeline.
        """
        if not commits:
            return []
        guard = self.keys.batch(secrets.token_hex(16)) if stop_at_refusal else None
        calls = [self._commit_call(c, guard) for c in commits]
        with self._errors("commit_articles"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.script_load(lua.COMMIT_ARTICLE)
                sha = self._scripts["commit_article"].sha
                for keys, args, _ in calls:
                    pipe.evalsha(sha, len(keys), *keys, *args)
                if guard is not None:
                    pipe.delete(guard)
                results = await pipe.execute()
        codes = [int(r) for r in results[1:1 + len(calls)]]
        for n, (code, (_, _, lease)) in enumerate(zip(codes, calls, strict=True)):
            if code == -1:
                raise self._fenced("commit_articles", lease,
                                   f"entry {n + 1} of {len(calls)} and those after it not written")
        return [code > 0 for code in codes]

    async def save_story(self, story: Story, outbox: Sequence[OutboxItem]) -> None:
        # commit_article with no seen keys never refuses: the same script, one code path.
        await self.commit_article((), story, None, outbox, story.last_seen, 0)

    async def get_story(self, story_id: str) -> Story | None:
        with self._errors("get_story"):
            text = cast(str | None, await self._redis.hget(self.keys.stories_data, story_id))
        return None if text is None else story_from_json(text)

    async def _recent(self, zkey: str, hkey: str, since: datetime) -> list[str]:
        ids = cast(list[str], await self._redis.zrangebyscore(zkey, to_micros(since), "+inf"))
        if not ids:
            return []
        texts = cast(list[str | None], await self._redis.hmget(hkey, ids))
        return [t for t in texts if t is not None]

    async def recent_members(self, since: datetime) -> list[StoryMember]:
        with self._errors("recent_members"):
            texts = await self._recent(self.keys.members, self.keys.members_data, since)
        members = [member_from_json(t) for t in texts]
        # Equal scores come back by member id; sort like SQLite: time, story, article.
        return sorted(members, key=lambda m: (m.seen_at, m.story_id, m.article_key))

    async def recent_stories(self, since: datetime) -> list[Story]:
        with self._errors("recent_stories"):
            texts = await self._recent(self.keys.stories, self.keys.stories_data, since)
        return [story_from_json(t) for t in texts]

    async def expire(self, before: datetime) -> int:
        k = self.keys
        with self._errors("expire"):
            n = await self._eval(
                "expire", [k.stories, k.stories_data, k.members, k.members_data, k.members_seq],
                [to_micros(before)],
            )
        return int(n)

    # -- sharing stories between instances -----------------------------------------

    async def members_after(
        self, cursor: str | None, limit: int
    ) -> tuple[list[StoryMember], str]:
        start = _cursor_value(cursor, self.url)
        if limit <= 0:
            return [], str(start)
        with self._errors("members_after"):
            flat = await self._eval(
                "members_after", [self.keys.members_seq, self.keys.members_data],
                [start, limit],
            )
        members = [member_from_json(text) for text in flat[2::2]]
        return members, str(int(float(flat[0])))

    @asynccontextmanager
    async def exclusive(
        self, name: str, ttl_seconds: float, *, wait_seconds: float = 30.0
    ) -> AsyncIterator[None]:
        """Hold the lease ``name`` across instances; see the module docstring.

        Tries ``SET NX PX`` with a fresh random token, sleeping a few milliseconds
        (doubling, jittered) between tries, and raises ``LeaseHeld`` naming the lease
        after ``wait_seconds``. Not reentrant. Commits inside are fenced by the token.
        """
        key = self.keys.lock(name)
        token = secrets.token_hex(16)
        ttl_ms = _ttl_ms(ttl_seconds) or 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, wait_seconds)
        delay = LEASE_POLL_MIN
        while True:
            with self._errors(f"lease {name!r}"):
                if await self._redis.set(key, token, nx=True, px=ttl_ms):
                    break
            left = deadline - loop.time()
            if left <= 0:
                raise LeaseHeld(
                    f"Redis store {redact_url(self.url)}: lease {name!r} ({key}) still held by"
                    f" another instance after waiting {wait_seconds:g} s")
            await asyncio.sleep(min(left, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * 2, LEASE_POLL_MAX)
        mark = self._lease.set((key, token))
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            # An abandoned holder finalized in another context has nothing to undo here.
            with suppress(ValueError):
                self._lease.reset(mark)
            try:
                with self._errors(f"release lease {name!r}"):
                    await self._eval("release", [key], [token])
            except StoreError:
                if not failed:  # else keep the body's error; the lease runs out by itself
                    raise

    # -- outbox ------------------------------------------------------------------

    async def outbox_put(self, items: Iterable[OutboxItem]) -> None:
        batch = list(items)
        if not batch:
            return
        keys, args = self._outbox_keys_args(batch)
        with self._errors("outbox_put"):
            await self._eval("outbox_put", [self.keys.outbox_sinks, *keys], [len(batch), *args])

    async def outbox_due(self, sink: str, now: datetime, limit: int) -> list[OutboxItem]:
        if limit <= 0:
            return []
        with self._errors("outbox_due"):
            # The head by rank: ties in created_at go by alert id, as in SQLite.
            ids = cast(list[str], await self._redis.zrange(self.keys.outbox_queue(sink), 0,
                                                           limit - 1))
            if not ids:
                return []
            async with self._redis.pipeline(transaction=False) as pipe:
                for alert_id in ids:
                    pipe.hgetall(self.keys.outbox_item(sink, alert_id))
                hashes = await pipe.execute()
        return due_head([item for h in hashes if (item := _item_from_hash(h)) is not None],
                        now)

    def _fence(self, keys: list[str], args: list[str | int]) -> tuple[str, str] | None:
        """Append the lease held in this context (key, token) to a fenced script's call.

        A delivery pass settles its sink's queue under ``exclusive("outbox:<sink>")``;
        its acknowledgements and retry marks are written only while its token still
        holds that lease, in the same script, so a pass that outlived its lease cannot
        settle what the new holder is working on. Outside a lease: '' (unchecked).
        """
        lease = self._lease.get()
        if lease is None:
            args.append("")
        else:
            keys.append(lease[0])
            args.append(lease[1])
        return lease

    async def outbox_done(self, sink: str, alert_id: str) -> None:
        await self._outbox_done("outbox_done", sink, [alert_id])

    async def outbox_done_many(self, sink: str, alert_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(alert_ids))
        if ids:
            await self._outbox_done("outbox_done_many", sink, ids)

    async def _outbox_done(self, what: str, sink: str, ids: list[str]) -> None:
        """One script for any number of ids: all removed, or none once the lease is lost."""
        keys = [self.keys.outbox_queue(sink), *(self.keys.outbox_item(sink, a) for a in ids)]
        args: list[str | int] = list(ids)
        lease = self._fence(keys, args)
        with self._errors(what):
            done = int(await self._eval("outbox_done", keys, args))
        if done == -1:
            raise self._fenced(what, lease, f"{len(ids)} alert(s) of {sink} left queued")

    async def outbox_retry(
        self, sink: str, alert_id: str, next_attempt: datetime, error: str
    ) -> None:
        keys = [self.keys.outbox_item(sink, alert_id)]
        args: list[str | int] = [dt_to_text(next_attempt) or "", error]
        lease = self._fence(keys, args)
        with self._errors("outbox_retry"):
            done = int(await self._eval("outbox_retry", keys, args))
        if done == -1:
            raise self._fenced("outbox_retry", lease, f"alert {alert_id} of {sink} unchanged")

    async def outbox_depth(self) -> dict[str, int]:
        with self._errors("outbox_depth"):
            sinks = sorted(cast(set[str], await self._redis.smembers(self.keys.outbox_sinks)))
            if not sinks:
                return {}
            async with self._redis.pipeline(transaction=False) as pipe:
                for sink in sinks:
                    pipe.zcard(self.keys.outbox_queue(sink))
                counts = await pipe.execute()
        return {s: int(n) for s, n in zip(sinks, counts, strict=True) if int(n) > 0}
