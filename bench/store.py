"""State store throughput: the operations one poll cycle makes, per back end.

Back ends measured in the same run:

* ``sqlite`` - ``SQLiteStore`` as shipped (WAL, ``synchronous=NORMAL``);
* ``sqlite-defaults`` - the named baseline: the same store with SQLite's own defaults
  (rollback journal, ``synchronous=FULL``), i.e. what a plain ``sqlite3.connect`` gives;
* ``redis`` - ``RedisStore`` on a throwaway loopback ``redis-server`` (skipped when
  none is installed), Lua scripts over one connection.

Operations, each awaited one at a time (the daemon's poll loop is sequential per
article):

* ``commit``: ``commit_article`` with 3 seen keys, a story upsert, a member and one
  outbox item - the write for every new matching article;
* ``seen``: ``seen_any`` for a feed's worth of 20 articles x 3 keys;
* ``claim``: ``claim_due`` of 10 feeds followed by their ``save_feed_state``;
* ``outbox``: ``outbox_due`` of 10 items then ``outbox_done`` for each.

Prints a table to stderr and ends with one JSON line of figures (operations/s).
``--quick`` uses small counts (well under 60 s on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.models import (  # noqa: E402
    FeedState,
    Story,
    StoryArticle,
    StoryMember,
)
from monitor.store.base import OutboxItem, Store  # noqa: E402
from monitor.store.redis import RedisStore  # noqa: E402
from monitor.store.sqlite import SQLiteStore  # noqa: E402

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


class SQLiteDefaults(SQLiteStore):
    """The baseline: SQLite's out-of-the-box journal and sync settings."""

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = FULL")


def story(i: int) -> Story:
    when = T0 + timedelta(seconds=i)
    article = StoryArticle(key=f"k{i}", outlet="Outlet", url=f"https://news.example/{i}",
                           title="Security guarantees for Ukraine discussed " * 2,
                           published=when, language="en", seen_at=when)
    return Story(id=f"s{i % 500}", title=article.title, first_seen=T0, last_seen=when,
                 articles=(article,) * 3, rule_ids=("ua-sec",))


async def rate(n: int, op: Callable[[int], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for i in range(n):
        await op(i)
    return n / (time.perf_counter() - start)


async def measure(store: Store, n: int) -> dict[str, float]:
    await store.open()
    try:
        async def commit(i: int) -> object:
            s = story(i)
            keys = [f"g:feed/{i}", f"u:https://news.example/{i}", f"h:{i:032x}"]
            member = StoryMember(s.id, keys[0], s.last_seen, '{"mh":[1,2,3,4,5,6,7,8]}')
            item = OutboxItem(f"al-{i}", "redis", '{"schema":"news-monitor.alert/1"}' * 10,
                              s.last_seen)
            return await store.commit_article(keys, s, member, [item], s.last_seen, 86400)

        async def seen(i: int) -> object:
            return await store.seen_any(
                [[f"g:feed/{j}", f"u:https://news.example/{j}", f"h:{j:032x}"]
                 for j in range(i * 20, i * 20 + 20)]
            )

        feeds = [f"https://feeds.example/{i}" for i in range(max(100, n))]
        await store.sync_feeds(feeds, T0)

        async def claim(i: int) -> object:
            now = T0 + timedelta(seconds=i)
            for state in await store.claim_due(now, 300, 10):
                await store.save_feed_state(FeedState(url=state.url, etag=f"e{i}",
                                                      next_check=now + timedelta(hours=1)))
            return None

        async def outbox(i: int) -> object:
            for item in await store.outbox_due("redis", T0 + timedelta(days=1), 10):
                await store.outbox_done("redis", item.alert_id)
            return None

        return {
            "commit": await rate(n, commit),
            "seen": await rate(n, seen),
            "claim": await rate(max(1, n // 10), claim),
            "outbox": await rate(max(1, n // 10), outbox),
        }
    finally:
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, under 60 s")
    parser.add_argument("-n", type=int, default=None, help="articles per operation")
    args = parser.parse_args()
    n = args.n or (500 if args.quick else 5000)

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="nm-bench-") as tmp:
        results["sqlite"] = await measure(SQLiteStore(Path(tmp) / "wal.db"), n)
        results["sqlite-defaults"] = await measure(SQLiteDefaults(Path(tmp) / "defaults.db"), n)
        if shutil.which("redis-server"):
            from tests.support.redis_server import RedisServer

            server = RedisServer()
            server.start()
            try:
                results["redis"] = await measure(RedisStore(server.url, prefix="bench"), n)
            finally:
                server.cleanup()

    ops = ["commit", "seen", "claim", "outbox"]
    print(f"{'backend':<16}" + "".join(f"{op + '/s':>12}" for op in ops), file=sys.stderr)
    for name, figures in results.items():
        print(f"{name:<16}" + "".join(f"{figures[op]:>12.0f}" for op in ops), file=sys.stderr)
    base = results["sqlite-defaults"]["commit"]
    summary = {
        "bench": "store",
        "n": n,
        "baseline": "sqlite-defaults",
        "ops_per_s": {k: {op: round(v, 1) for op, v in f.items()} for k, f in results.items()},
        "commit_speedup_vs_baseline": {k: round(f["commit"] / base, 2)
                                       for k, f in results.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
