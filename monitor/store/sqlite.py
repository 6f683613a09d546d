"""The embedded default store: one SQLite file, nothing to install.

Why it looks like this:

* **One connection, one thread.** sqlite3 connections must stay on the thread that
  made them, and SQLite serializes writers anyway, so a one-thread executor owns
  the connection and every call is ``run_in_executor`` on it. The event loop never
  blocks on disk.
* **WAL, ``synchronous=NORMAL``, ``busy_timeout``.** Readers do not block the
  writer; a commit costs no fsync (a power cut may lose the last transactions, never
  corrupt the file); a second process on the same file (``news-monitor feeds`` while
  the daemon runs) waits for the lock instead of failing at once.
* **``BEGIN IMMEDIATE`` for every write.** Taking the write lock up front lets
  busy_timeout do its job; a deferred transaction that upgrades to a writer gets
  SQLITE_BUSY at once. It also makes ``claim_due`` and ``commit_article``'s check
  and write atomic across processes.
* **Times as integer microseconds** (``serde.to_micros``): exact and orderable.
* **Seen keys live ``seen_ttl_seconds`` of real time** from their commit, judged by
  the wall clock, like a Redis ``PX`` TTL. Tying expiry to the ``now`` argument
  would make a replay of old articles forget every key at once.
* **One instance per file**, so ``shared`` is False and ``exclusive`` is a
  process-local lock: the Ingestor's plain path needs neither, and the lease's
  contract (mutual exclusion, a deadline naming the lease) still holds for any
  caller in this process. Such a lease has no expiry, so no other holder can take
  it from a slow one: the outbox acknowledgements and retry marks a delivery pass
  writes under it (each one transaction) need no token check, unlike Redis's.
  ``members_after`` reads an AUTOINCREMENT column.
* **Feed states are group-committed.** Every poll ends with ``save_feed_state``;
  at hundreds of polls a second, one transaction each kept the store's thread
  busy and every article commit queued behind them. Saves that arrive while one
  is waiting for the thread share its transaction (``executemany``, in arrival
  order, so the last save of a feed wins); each caller still returns only once
  its row is committed, and a failure reaches every caller of the batch.
* **Schema versioned with ``PRAGMA user_version``**: each entry of ``_MIGRATIONS``
  (SQL, or a function where the rows need Python, such as parsing a time) takes the
  file one version up, inside one transaction; a file from a newer version is
  refused rather than misread.
* **The outbox is read in queue order** (``created``, then ``alert_id``; see
  ``Store.outbox_due``): a retry moves ``due``, never the item's place.

Every sqlite3 or OS error becomes ``StoreError`` naming the file and the reason.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from monitor.errors import LeaseHeld, StoreError
from monitor.models import FeedState, Story, StoryMember
from monitor.store.base import ArticleCommit, OutboxItem, due_head
from monitor.store.serde import (
    dt_from_text,
    dt_to_text,
    feed_state_from_json,
    feed_state_to_json,
    from_micros,
    lease_end,
    story_from_json,
    story_to_json,
    to_micros,
)

T = TypeVar("T")

BUSY_TIMEOUT = 5.0  # seconds a writer waits for another process's lock
_CHUNK = 500  # host parameters per IN (...) query, well under SQLite's limit

# Process-local leases by (database file, name): every SQLiteStore on one file in this
# process shares them, as every RedisStore on one server shares its leases.
_LEASES: dict[tuple[str, str], asyncio.Lock] = {}


def _outbox_queue_order(conn: sqlite3.Connection) -> None:
    """3: each outbox row's place in its queue, ``created_at`` as exact microseconds.

    Version 2 read the outbox by ``due``, which a retry moves: the alerts queued after
    a failed one overtook it. ``created`` never moves; rows already queued get theirs
    from the ``created_at`` text they were written with.
    """
    conn.execute("ALTER TABLE outbox ADD COLUMN created INTEGER NOT NULL DEFAULT 0")
    rows = conn.execute("SELECT sink, alert_id, created_at FROM outbox").fetchall()
    conn.executemany(
        "UPDATE outbox SET created = ? WHERE sink = ? AND alert_id = ?",
        ((to_micros(dt_from_text(created) or from_micros(0)), sink, alert_id)
         for sink, alert_id, created in rows),
    )
    conn.execute("DROP INDEX outbox_due")
    conn.execute("CREATE INDEX outbox_order ON outbox (sink, created, alert_id)")


_MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    # 1: feeds, seen keys, stories, members, outbox
    """
    CREATE TABLE feeds (
        url    TEXT PRIMARY KEY,
        listed INTEGER NOT NULL DEFAULT 0,
        due    INTEGER NOT NULL,          -- claim order: next_check, or the lease end
        state  TEXT NOT NULL              -- FeedState JSON (serde)
    );
    CREATE INDEX feeds_due ON feeds (listed, due, url);
    CREATE TABLE seen (
        key     TEXT PRIMARY KEY,
        expires INTEGER                   -- wall-clock microseconds; NULL: never
    );
    CREATE INDEX seen_expires ON seen (expires) WHERE expires IS NOT NULL;
    CREATE TABLE stories (
        id        TEXT PRIMARY KEY,
        last_seen INTEGER NOT NULL,
        data      TEXT NOT NULL           -- Story JSON (serde)
    );
    CREATE INDEX stories_last_seen ON stories (last_seen);
    CREATE TABLE members (
        story_id    TEXT NOT NULL,
        article_key TEXT NOT NULL,
        seen_at     INTEGER NOT NULL,
        features    TEXT NOT NULL,
        PRIMARY KEY (story_id, article_key)
    );
    CREATE INDEX members_seen_at ON members (seen_at);
    CREATE TABLE outbox (
        sink         TEXT NOT NULL,
        alert_id     TEXT NOT NULL,
        due          INTEGER NOT NULL,    -- next_attempt, or created_at when unset
        payload      TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT,
        last_error   TEXT,
        PRIMARY KEY (sink, alert_id)
    );
    CREATE INDEX outbox_due ON outbox (sink, due, alert_id);
    """,
    # 2: members in commit order (members_after): AUTOINCREMENT never reuses a number,
    # even after the newest rows were expired, so a cursor never skips a later member.
    """
    CREATE TABLE members_v2 (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        story_id    TEXT NOT NULL,
        article_key TEXT NOT NULL,
        seen_at     INTEGER NOT NULL,
        features    TEXT NOT NULL,
        UNIQUE (story_id, article_key)
    );
    INSERT INTO members_v2 (story_id, article_key, seen_at, features)
        SELECT story_id, article_key, seen_at, features FROM members ORDER BY rowid;
    DROP TABLE members;
    ALTER TABLE members_v2 RENAME TO members;
    CREATE INDEX members_seen_at ON members (seen_at);
    """,
    _outbox_queue_order,
)
SCHEMA_VERSION = len(_MIGRATIONS)


def _wall_micros() -> int:
    return time.time_ns() // 1000


def _ttl_expiry(seen_ttl_seconds: float) -> int | None:
    """Absolute expiry for a key written now; None (never) for a non-positive or infinite TTL."""
    if not 0 < seen_ttl_seconds < float("inf"):
        return None
    return _wall_micros() + max(1, round(seen_ttl_seconds * 1_000_000))


def _outbox_due(item: OutboxItem) -> int:
    return to_micros(item.next_attempt if item.next_attempt is not None else item.created_at)


def _describe(error: BaseException) -> str:
    name = getattr(error, "sqlite_errorname", None)
    text = str(error) or type(error).__name__
    return f"{text} ({name})" if name else text


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    conn.execute("COMMIT")


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements (``executescript`` would COMMIT our transaction)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:60]}")


class _StateBatch:
    """Feed-state rows waiting for one shared transaction (see the module docstring)."""

    __slots__ = ("closed", "done", "rows")

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, str, bool]] = []  # url, due, state, reschedule
        self.closed = False  # set by the store's thread when it takes the rows
        self.done: asyncio.Future[None] | None = None


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


class SQLiteStore:
    """``Store`` on one SQLite file. ``await open()`` before use, or ``async with``.

    ``busy_timeout``: seconds to wait for another process's write lock before the
    operation fails with StoreError ("database is locked").
    """

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._states: _StateBatch | None = None
        self._states_lock = threading.Lock()  # the loop adds rows, the store's thread takes them

    @property
    def shared(self) -> bool:
        """One instance owns the file: its in-memory story index is never stale."""
        return False

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- plumbing ------------------------------------------------------------

    def _fail(self, what: str, error: BaseException) -> StoreError:
        return StoreError(f"SQLite state {self.path}: {what}: {_describe(error)}")

    async def _run(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            raise StoreError(f"SQLite state {self.path}: {what}: store is not open")

        def call() -> T:
            if self._conn is None:
                raise StoreError(f"SQLite state {self.path}: {what}: store is not open")
            try:
                return fn(self._conn)
            except (sqlite3.Error, OSError) as e:
                raise self._fail(what, e) from e

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            # mkdir on an existing file says "File exists", which misleads; say what it is.
            reason = "not a directory" if isinstance(e, FileExistsError) else e.strerror or e
            where = e.filename or self.path.parent
            raise StoreError(
                f"SQLite state {self.path}: cannot create directory {where}: {reason}"
            ) from e
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            self._configure(conn)
            self._migrate(conn)
        except (sqlite3.Error, OSError) as e:
            if conn is not None:
                conn.close()
            raise self._fail("open", e) from e
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        self._conn = conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        """Connection settings (see the module docstring); bench/store.py swaps them."""
        conn.execute(f"PRAGMA busy_timeout = {max(0, round(self.busy_timeout * 1000))}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"SQLite state {self.path}: open: cannot use WAL (got {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with _transaction(conn):
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"SQLite state {self.path}: schema version {version} is newer than this "
                    f"program's {SCHEMA_VERSION}; upgrade news-monitor or use another file"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                step = _MIGRATIONS[target - 1]
                if callable(step):
                    step(conn)
                else:
                    for statement in _statements(step):
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")

    # -- lifecycle -----------------------------------------------------------

    async def open(self) -> None:
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await asyncio.get_running_loop().run_in_executor(executor, shut)
        finally:
            executor.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            await self._run("ping", lambda c: c.execute("SELECT 1").fetchone())
        except Exception:
            return False
        return True

    async def epoch(self) -> str:
        return ""

    # -- feeds -----------------------------------------------------------------

    @staticmethod
    def _list_feeds(conn: sqlite3.Connection, listed: Sequence[str], now: datetime,
                    *, unlist: bool) -> int:
        """List ``listed`` (inside the caller's transaction); returns how many were not."""
        due = to_micros(now)
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS listing (url TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM temp.listing")
        conn.executemany("INSERT INTO temp.listing VALUES (?)", ((u,) for u in listed))
        if unlist:
            conn.execute(
                "UPDATE feeds SET listed = 0 WHERE listed = 1"
                " AND url NOT IN (SELECT url FROM temp.listing)"
            )
        added = conn.total_changes
        # A feed listed again is due at once; its validators and counters are kept.
        conn.execute(
            "UPDATE feeds SET listed = 1, due = ? WHERE listed = 0"
            " AND url IN (SELECT url FROM temp.listing)",
            (due,),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO feeds (url, listed, due, state) VALUES (?, 1, ?, ?)",
            ((u, due, feed_state_to_json(FeedState(url=u, next_check=now))) for u in listed),
        )
        added = conn.total_changes - added
        conn.execute("DELETE FROM temp.listing")
        return added

    async def sync_feeds(self, urls: Sequence[str], now: datetime) -> None:
        listed = list(dict.fromkeys(urls))

        def sync(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                self._list_feeds(conn, listed, now, unlist=True)

        await self._run("sync_feeds", sync)

    async def register_missing(self, urls: Sequence[str], now: datetime) -> int:
        """A count, and nothing written, when every feed is listed (always, here).

        The file cannot lose rows under the daemon, and no other process lists feeds
        in it, so this only guards the contract; it must stay cheap and write nothing
        on a full disk.
        """
        listed = list(dict.fromkeys(urls))

        def register(conn: sqlite3.Connection) -> int:
            (count,) = conn.execute("SELECT COUNT(*) FROM feeds WHERE listed = 1").fetchone()
            if int(count) >= len(listed):
                return 0
            with _transaction(conn):
                return self._list_feeds(conn, listed, now, unlist=False)

        return await self._run("register_missing", register)

    async def get_feed_state(self, url: str) -> FeedState | None:
        row = await self._run(
            "get_feed_state",
            lambda c: c.execute("SELECT state FROM feeds WHERE url = ?", (url,)).fetchone(),
        )
        return None if row is None else feed_state_from_json(row[0])

    async def all_feed_states(self) -> list[FeedState]:
        rows = await self._run(
            "all_feed_states",
            lambda c: c.execute("SELECT state FROM feeds WHERE listed = 1 ORDER BY url").fetchall(),
        )
        return [feed_state_from_json(r[0]) for r in rows]

    async def save_feed_state(self, state: FeedState, *, reschedule: bool = True) -> None:
        text = feed_state_to_json(state)
        due = 0 if state.next_check is None else to_micros(state.next_check)
        with self._states_lock:
            batch = self._states
            # a new batch when the last one was taken, or failed before it could be
            first = batch is None or batch.closed or (batch.done is not None
                                                       and batch.done.done())
            if first or batch is None:
                batch = self._states = _StateBatch()
            batch.rows.append((state.url, due, text, reschedule))
        if first:
            taken = batch

            def save(conn: sqlite3.Connection) -> None:
                with self._states_lock:
                    taken.closed = True
                    rows = list(taken.rows)
                with _transaction(conn):
                    conn.executemany(
                        "INSERT INTO feeds (url, listed, due, state) VALUES (?1, 0, ?2, ?3)"
                        " ON CONFLICT (url) DO UPDATE SET"
                        " due = CASE WHEN ?4 THEN excluded.due ELSE feeds.due END,"
                        " state = excluded.state",
                        rows,
                    )

            batch.done = asyncio.ensure_future(self._run("save_feed_state", save))
            # read the outcome even if every caller was cancelled meanwhile (no warning)
            batch.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        assert batch.done is not None
        # shielded: one caller cancelled (a poll at shutdown) must not cancel the others' write
        await asyncio.shield(batch.done)

    async def claim_due(self, now: datetime, lease_seconds: float, limit: int) -> list[FeedState]:
        if limit <= 0:
            return []
        now_us = to_micros(now)
        until = lease_end(now, lease_seconds)

        def claim(conn: sqlite3.Connection) -> list[str]:
            with _transaction(conn):
                rows = conn.execute(
                    "SELECT url, state FROM feeds WHERE listed = 1 AND due <= ?"
                    " ORDER BY due, url LIMIT ?",
                    (now_us, limit),
                ).fetchall()
                conn.executemany(
                    "UPDATE feeds SET due = ? WHERE url = ?", ((until, r[0]) for r in rows)
                )
            return [r[1] for r in rows]

        return [feed_state_from_json(s) for s in await self._run("claim_due", claim)]

    async def release_claim(self, url: str, claimed: datetime, lease_seconds: float,
                            due: datetime) -> bool:
        row = (to_micros(due), url, lease_end(claimed, lease_seconds))

        def release(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                done = conn.execute(
                    "UPDATE feeds SET due = ? WHERE url = ? AND listed = 1 AND due = ?", row)
            return done.rowcount > 0

        return await self._run("release_claim", release)

    async def release_claims(self) -> int:
        """A claim pushes ``due`` past the state's next_check; nothing else does.

        (A feed listed again is due *earlier* than its next_check, and stays so.)
        """

        def release(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                rows = conn.execute("SELECT url, due, state FROM feeds").fetchall()
                fixes = []
                for url, due, text in rows:
                    check = feed_state_from_json(text).next_check
                    want = 0 if check is None else to_micros(check)
                    if due > want:
                        fixes.append((want, url))
                conn.executemany("UPDATE feeds SET due = ? WHERE url = ?", fixes)
            return len(fixes)

        return int(await self._run("release_claims", release))

    # -- seen keys ---------------------------------------------------------------

    @staticmethod
    def _seen_among(conn: sqlite3.Connection, keys: Sequence[str]) -> set[str]:
        now_us = _wall_micros()
        found: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in conn.execute(
                    f"SELECT key FROM seen WHERE key IN ({marks})"
                    " AND (expires IS NULL OR expires > ?)",
                    (*chunk, now_us),
                )
            )
        return found

    async def seen_any(self, keys: Sequence[Sequence[str]]) -> list[bool]:
        groups = [list(g) for g in keys]
        flat = [k for g in groups for k in g]
        found = await self._run("seen_any", lambda c: self._seen_among(c, flat))
        return [any(k in found for k in g) for g in groups]

    # -- stories -----------------------------------------------------------------

    @staticmethod
    def _put_outbox(conn: sqlite3.Connection, items: Iterable[OutboxItem]) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO outbox (sink, alert_id, due, created, payload, created_at,"
            " attempts, next_attempt, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    i.sink, i.alert_id, _outbox_due(i), to_micros(i.created_at), i.payload,
                    dt_to_text(i.created_at), i.attempts, dt_to_text(i.next_attempt),
                    i.last_error,
                )
                for i in items
            ),
        )

    async def commit_article(
        self,
        seen_keys: Sequence[str],
        story: Story,
        member: StoryMember | None,
        outbox: Sequence[OutboxItem],
        now: datetime,
        seen_ttl_seconds: float,
    ) -> bool:
        entry = ArticleCommit(tuple(seen_keys), story, member, tuple(outbox), now,
                              seen_ttl_seconds)
        return (await self._commit("commit_article", [entry]))[0]

    async def commit_articles(
        self, commits: Sequence[ArticleCommit], *, stop_at_refusal: bool = False
    ) -> list[bool]:
        if not commits:
            return []
        return await self._commit("commit_articles", commits, stop_at_refusal)

    async def _commit(self, what: str, commits: Sequence[ArticleCommit],
                      stop_at_refusal: bool = False) -> list[bool]:
        """Every entry in one transaction; an entry whose keys are seen writes nothing."""
        rows = []
        for c in commits:
            for item in c.outbox:
                _outbox_due(item)  # refuse naive datetimes before the transaction starts
            member_row = (
                None
                if c.member is None
                else (c.member.story_id, c.member.article_key, to_micros(c.member.seen_at),
                      c.member.features)
            )
            story_rows = [(s.id, to_micros(s.last_seen), story_to_json(s))
                          for s in (c.story, *c.stories)]
            moved_rows = [(m.story_id, m.article_key, to_micros(m.seen_at), m.features, old)
                          for m, old in zip(c.moved, c.moved_from, strict=True)]
            rows.append((
                list(dict.fromkeys(c.seen_keys)), story_rows, member_row, c.outbox,
                c.seen_ttl_seconds, moved_rows,
            ))

        def commit(conn: sqlite3.Connection) -> list[bool]:
            done: list[bool] = []
            with _transaction(conn):
                for keys, story_rows, member_row, items, ttl, moved_rows in rows:
                    if self._seen_among(conn, keys):
                        done.append(False)
                        if stop_at_refusal:
                            break
                        continue
                    expires = _ttl_expiry(ttl)
                    conn.executemany(
                        "INSERT OR REPLACE INTO seen (key, expires) VALUES (?, ?)",
                        ((k, expires) for k in keys),
                    )
                    conn.execute(
                        "INSERT OR REPLACE INTO stories (id, last_seen, data) VALUES (?, ?, ?)",
                        story_rows[0],
                    )
                    if member_row is not None:
                        conn.execute(
                            "INSERT OR REPLACE INTO members"
                            " (story_id, article_key, seen_at, features) VALUES (?, ?, ?, ?)",
                            member_row,
                        )
                    self._put_outbox(conn, items)
                    if len(story_rows) > 1 or moved_rows:
                        self._split(conn, story_rows[1:], moved_rows)
                    done.append(True)
            return done + [False] * (len(rows) - len(done))

        return await self._run(what, commit)

    @staticmethod
    def _split(conn: sqlite3.Connection, story_rows: Sequence[tuple[str, int, str]],
               moved_rows: Sequence[tuple[str, str, int, str, str]]) -> None:
        """An entry's split, inside its transaction: the other story, the members moved.

        A moved member's row under the story it left goes, and the new row takes the
        next ``seq``: ``members_after`` feeds it again, under its new story id. Empty
        features keep the stored ones (the index does not keep members' texts); a member
        no longer stored (expired meanwhile) is then not moved.
        """
        conn.executemany(
            "INSERT OR REPLACE INTO stories (id, last_seen, data) VALUES (?, ?, ?)",
            story_rows,
        )
        for new_story, key, seen_at, features, old_story in moved_rows:
            if features:
                conn.execute(
                    "INSERT OR REPLACE INTO members (story_id, article_key, seen_at, features)"
                    " VALUES (?, ?, ?, ?)", (new_story, key, seen_at, features))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO members (story_id, article_key, seen_at, features)"
                    " SELECT ?, article_key, seen_at, features FROM members"
                    " WHERE story_id = ? AND article_key = ?", (new_story, old_story, key))
            if old_story != new_story:
                conn.execute("DELETE FROM members WHERE story_id = ? AND article_key = ?",
                             (old_story, key))

    async def save_story(self, story: Story, outbox: Sequence[OutboxItem]) -> None:
        # commit_article with no seen keys never refuses: the same transaction, one code path.
        await self.commit_article((), story, None, outbox, story.last_seen, 0)

    async def get_story(self, story_id: str) -> Story | None:
        row = await self._run(
            "get_story",
            lambda c: c.execute("SELECT data FROM stories WHERE id = ?", (story_id,)).fetchone(),
        )
        return None if row is None else story_from_json(row[0])

    async def recent_members(self, since: datetime) -> list[StoryMember]:
        rows = await self._run(
            "recent_members",
            lambda c: c.execute(
                "SELECT story_id, article_key, seen_at, features FROM members"
                " WHERE seen_at >= ? ORDER BY seen_at, story_id, article_key",
                (to_micros(since),),
            ).fetchall(),
        )
        return [StoryMember(r[0], r[1], from_micros(r[2]), r[3]) for r in rows]

    async def recent_stories(self, since: datetime) -> list[Story]:
        rows = await self._run(
            "recent_stories",
            lambda c: c.execute(
                "SELECT data FROM stories WHERE last_seen >= ? ORDER BY last_seen, id",
                (to_micros(since),),
            ).fetchall(),
        )
        return [story_from_json(r[0]) for r in rows]

    async def expire(self, before: datetime) -> int:
        cutoff = to_micros(before)

        def purge(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                dropped = conn.execute("DELETE FROM stories WHERE last_seen < ?", (cutoff,))
                conn.execute("DELETE FROM members WHERE seen_at < ?", (cutoff,))
                conn.execute(
                    "DELETE FROM seen WHERE expires IS NOT NULL AND expires <= ?",
                    (_wall_micros(),),
                )
            return int(dropped.rowcount)

        return await self._run("expire", purge)

    # -- sharing stories between instances -----------------------------------------

    async def members_after(
        self, cursor: str | None, limit: int
    ) -> tuple[list[StoryMember], str]:
        try:
            start = 0 if cursor is None else max(0, int(cursor))
        except ValueError:
            raise StoreError(
                f"SQLite state {self.path}: members_after: bad cursor {cursor!r}") from None
        if limit <= 0:
            return [], str(start)
        rows = await self._run(
            "members_after",
            lambda c: c.execute(
                "SELECT seq, story_id, article_key, seen_at, features FROM members"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (start, limit),
            ).fetchall(),
        )
        members = [StoryMember(r[1], r[2], from_micros(r[3]), r[4]) for r in rows]
        return members, str(rows[-1][0] if rows else start)

    @asynccontextmanager
    async def exclusive(
        self, name: str, ttl_seconds: float, *, wait_seconds: float = 30.0
    ) -> AsyncIterator[None]:
        """A process-local lease (see the module docstring); ``ttl_seconds`` has no use here.

        Not reentrant. Raises LeaseHeld naming the lease after ``wait_seconds``.
        """
        lock = _LEASES.setdefault((str(self.path.resolve()), name), asyncio.Lock())
        try:
            async with asyncio.timeout(max(0.0, wait_seconds)):
                await lock.acquire()
        except TimeoutError:
            raise LeaseHeld(
                f"SQLite state {self.path}: lease {name!r} still held after waiting"
                f" {wait_seconds:g} s") from None
        try:
            yield
        finally:
            lock.release()

    # -- outbox ------------------------------------------------------------------

    async def outbox_put(self, items: Iterable[OutboxItem]) -> None:
        batch = list(items)
        for item in batch:
            _outbox_due(item)

        def put(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                self._put_outbox(conn, batch)

        await self._run("outbox_put", put)

    async def outbox_due(self, sink: str, now: datetime, limit: int) -> list[OutboxItem]:
        if limit <= 0:
            return []
        rows = await self._run(
            "outbox_due",
            lambda c: c.execute(
                "SELECT alert_id, sink, payload, created_at, attempts, next_attempt, last_error"
                " FROM outbox WHERE sink = ? ORDER BY created, alert_id LIMIT ?",
                (sink, limit),
            ).fetchall(),
        )
        items = []
        for alert_id, sink_name, payload, created, attempts, next_attempt, last_error in rows:
            created_at = dt_from_text(created)
            if created_at is None:  # NOT NULL column; keeps the type checker honest
                continue
            items.append(
                OutboxItem(
                    alert_id=alert_id, sink=sink_name, payload=payload, created_at=created_at,
                    attempts=int(attempts), next_attempt=dt_from_text(next_attempt),
                    last_error=last_error,
                )
            )
        return due_head(items, now)

    async def outbox_done(self, sink: str, alert_id: str) -> None:
        def done(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(
                    "DELETE FROM outbox WHERE sink = ? AND alert_id = ?", (sink, alert_id)
                )

        await self._run("outbox_done", done)

    async def outbox_done_many(self, sink: str, alert_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(alert_ids))
        if not ids:
            return

        def done(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(
                    "DELETE FROM outbox WHERE sink = ? AND alert_id = ?",
                    ((sink, a) for a in ids),
                )

        await self._run("outbox_done_many", done)

    async def outbox_retry(
        self, sink: str, alert_id: str, next_attempt: datetime, error: str
    ) -> None:
        due = to_micros(next_attempt)
        text = dt_to_text(next_attempt)

        def retry(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, due = ?, next_attempt = ?,"
                    " last_error = ? WHERE sink = ? AND alert_id = ?",
                    (due, text, error, sink, alert_id),
                )

        await self._run("outbox_retry", retry)

    async def outbox_depth(self) -> dict[str, int]:
        rows = await self._run(
            "outbox_depth",
            lambda c: c.execute(
                "SELECT sink, COUNT(*) FROM outbox GROUP BY sink ORDER BY sink"
            ).fetchall(),
        )
        return {str(sink): int(n) for sink, n in rows}
