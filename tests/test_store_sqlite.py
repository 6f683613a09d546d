"""What only the SQLite store promises: its file settings and its error messages."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from monitor.errors import StoreError
from monitor.models import FeedState, Story
from monitor.store.serde import dt_to_text, to_micros
from monitor.store.sqlite import _MIGRATIONS, SCHEMA_VERSION, SQLiteStore

pytestmark = pytest.mark.anyio

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


async def test_open_creates_directory_wal_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state" / "state.db"
    async with SQLiteStore(path) as store:
        assert await store.ping() is True
        # Settings of the store's own connection, read through it.
        sync = await store._run("t", lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        busy = await store._run("t", lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0])
        assert sync == 1  # NORMAL
        assert busy == 5000
    conn = raw(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


async def test_reopen_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SQLiteStore(path) as store:
        await store.sync_feeds(["a"], T0)
    async with SQLiteStore(path) as store:
        assert [s.url for s in await store.all_feed_states()] == ["a"]


async def test_unwritable_location_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    path = blocker / "state.db"
    with pytest.raises(StoreError) as info:
        await SQLiteStore(path).open()
    assert str(path) in str(info.value)
    assert "not a directory" in str(info.value).lower()


async def test_directory_in_place_of_database_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.mkdir()
    with pytest.raises(StoreError) as info:
        await SQLiteStore(path).open()
    assert str(path) in str(info.value)
    assert "unable to open" in str(info.value)


async def test_corrupt_file_names_the_path_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not an SQLite database, just text " * 100)
    with pytest.raises(StoreError) as info:
        await SQLiteStore(path).open()
    assert str(path) in str(info.value)
    assert "not a database" in str(info.value)
    assert not isinstance(info.value.__cause__, StoreError)  # the sqlite3 error is chained


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = raw(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this program"):
        await SQLiteStore(path).open()


async def test_locked_database_becomes_store_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SQLiteStore(path, busy_timeout=0.05) as store:
        other = raw(path)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(StoreError) as info:
                await store.sync_feeds(["a"], T0)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert str(path) in str(info.value)
        assert "locked" in str(info.value)
        # Once the lock is gone the same store carries on.
        await store.sync_feeds(["a"], T0)
        assert [s.url for s in await store.all_feed_states()] == ["a"]


async def test_full_disk_becomes_store_error_and_keeps_earlier_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SQLiteStore(path) as store:
        await store.sync_feeds(["a"], T0)
        # Cap the file at its current size: the next growth fails like a full disk.
        await store._run("t", lambda c: c.execute(
            "PRAGMA max_page_count = " + str(c.execute("PRAGMA page_count").fetchone()[0])
        ))
        big = Story(id="big", title="x" * 200_000, first_seen=T0, last_seen=T0)
        with pytest.raises(StoreError) as info:
            await store.commit_article(["k"], big, None, [], T0, 60)
        assert str(path) in str(info.value)
        assert "full" in str(info.value)
        # The failed transaction wrote nothing; what was there is still there.
        assert await store.seen_any([["k"]]) == [False]
        assert [s.url for s in await store.all_feed_states()] == ["a"]


async def test_expire_purges_expired_seen_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    story = Story(id="s", title="t", first_seen=T0, last_seen=T0)
    async with SQLiteStore(path) as store:
        assert await store.commit_article(["short"], story, None, [], T0, 0.01)
        assert await store.commit_article(["long"], story, None, [], T0, 3600)
        await anyio.sleep(0.1)
        await store.expire(T0)
        conn = raw(path)
        try:
            keys = [r[0] for r in conn.execute("SELECT key FROM seen ORDER BY key")]
        finally:
            conn.close()
    assert keys == ["long"]


async def test_naive_datetime_is_refused_before_writing(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "state.db") as store:
        with pytest.raises(ValueError, match="naive"):
            await store.sync_feeds(["a"], datetime(2024, 5, 1))
        assert await store.all_feed_states() == []


async def test_concurrent_feed_state_saves_share_transactions_and_all_land(
        tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "s.db") as store:
        saves = [FeedState(url=f"https://f{i % 150}/feed", etag=f"e{i}",
                           next_check=T0 + timedelta(seconds=i)) for i in range(300)]
        async with anyio.create_task_group() as tg:
            for st in saves:   # started in order, so the later save of a feed wins
                tg.start_soon(store.save_feed_state, st)
        got = {s.url: s for s in await store.all_feed_states()}
        assert got == {}  # saved, never listed: not in the listing ...
        for i in range(150):  # ... but every row is there, with its last save
            st = await store.get_feed_state(f"https://f{i}/feed")
            assert st is not None and st.etag == f"e{i + 150}"
            assert st.next_check == T0 + timedelta(seconds=i + 150)


async def test_a_failed_feed_state_batch_does_not_swallow_later_saves(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    with pytest.raises(StoreError, match="not open"):
        await store.save_feed_state(FeedState(url="https://a/feed", etag="lost"))
    async with store:
        await store.save_feed_state(FeedState(url="https://a/feed", etag="kept"))
        st = await store.get_feed_state("https://a/feed")
        assert st is not None and st.etag == "kept"


async def test_a_v2_file_reads_its_outbox_in_queue_order(tmp_path: Path) -> None:
    # Version 2 kept a retried alert's place as its retry time: the alerts queued after it
    # came first. The upgrade puts it back at the head, where it holds them back.
    path = tmp_path / "state.db"
    conn = raw(path)
    try:
        for step in _MIGRATIONS[:2]:
            assert isinstance(step, str)
            conn.executescript(step)
        conn.execute("PRAGMA user_version = 2")
        retry = T0 + timedelta(seconds=100)
        conn.executemany(
            "INSERT INTO outbox (sink, alert_id, due, payload, created_at, attempts,"
            " next_attempt, last_error) VALUES (?, ?, ?, '{}', ?, ?, ?, ?)",
            [("jsonl", "a-new", to_micros(retry), dt_to_text(T0), 1, dt_to_text(retry), "x"),
             ("jsonl", "a-upd", to_micros(T0) + 1, dt_to_text(T0 + timedelta(microseconds=1)),
              0, None, None),
             ("jsonl", "a-upd2", to_micros(T0) + 10**6, dt_to_text(T0 + timedelta(seconds=1)),
              0, None, None)],
        )
    finally:
        conn.close()
    async with SQLiteStore(path) as store:
        assert await store.outbox_due("jsonl", T0 + timedelta(seconds=50), 10) == []
        due = await store.outbox_due("jsonl", T0 + timedelta(seconds=100), 10)
        assert [i.alert_id for i in due] == ["a-new", "a-upd", "a-upd2"]
        assert (due[0].attempts, due[0].created_at) == (1, T0)
