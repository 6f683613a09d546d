"""Cost per article of the shared-store path: several instances clustering into one set of stories.

The same synthetic stream (``bench/stories.py``'s generator: stories of 1-12 reports,
interleaved) goes through ``Ingestor.ingest`` in polls of ``--batch`` articles, with
the shipped rules, on a throwaway loopback ``redis-server``:

* ``redis-unshared`` - the named baseline: the Redis store driven down the plain path
  (no lease, no catch-up, story from the local cache, group commit), i.e. what the
  Ingestor did before it knew the store was shared; one instance only, as that path
  is only correct for one;
* ``redis-shared`` - one instance on the shared path: per poll, take the ``stories``
  lease, read the members committed since (``members_after``), place each new
  article (its story read from the store unless this poll grew it already), commit
  them all in one pipeline (fenced), release;
* ``redis-shared-x2`` - two instances (two stores, two indexes, one process) each
  ingesting half of the stream at once, so they contend for the lease and each folds
  in the other's members;
* ``sqlite`` - the embedded store, for reference.

Reports microseconds per article (wall clock and this process's CPU), Redis commands
per article as the server counts them (a script's own calls included) and client round
trips per article (requests redis-py wrote; a pipeline is one), and the shared path's
extra cost over the baseline. Both instances share one CPU here, so ``x2`` shows the lease's
overhead under contention, not the scale-out of two machines. Ends with one JSON line.
``--quick``: 1,000 articles (well under 60 s on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import redis.asyncio.connection as aioredis_connection  # noqa: E402

from bench.stories import make_articles  # noqa: E402
from monitor.alerts.policy import AlertPolicy  # noqa: E402
from monitor.ingest import Ingestor  # noqa: E402
from monitor.match.rules import RuleSet, load_rules  # noqa: E402
from monitor.models import Article  # noqa: E402
from monitor.store.base import Store  # noqa: E402
from monitor.store.redis import RedisStore  # noqa: E402
from monitor.store.sqlite import SQLiteStore  # noqa: E402
from monitor.stories.cluster import StoryConfig, StoryIndex  # noqa: E402

BASE = datetime(2025, 3, 11, tzinfo=UTC)


class UnsharedRedisStore(RedisStore):
    """The baseline: the same Redis store, with the Ingestor's single-instance path."""

    @property
    def shared(self) -> bool:
        return False


def polls(arts: list[Article], batch: int) -> list[tuple[list[Article], datetime]]:
    step = timedelta(seconds=20)
    return [(arts[i:i + batch], BASE + (i // batch) * step) for i in range(0, len(arts), batch)]


class RoundTrips:
    """Counts requests the redis-py asyncio client writes (one per command or pipeline)."""

    def __init__(self) -> None:
        self.count = 0
        self._conn = aioredis_connection.AbstractConnection
        self._send = self._conn.send_packed_command

    def __enter__(self) -> RoundTrips:
        send = self._send

        async def counted(conn: Any, *args: Any, **kwargs: Any) -> None:
            self.count += 1
            await send(conn, *args, **kwargs)

        self._conn.send_packed_command = counted  # type: ignore[method-assign, assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send_packed_command = self._send  # type: ignore[method-assign]


def commands(url: str) -> int:
    """Commands the Redis server has processed so far (a script's own calls count too)."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_commands_processed"])  # type: ignore[index]
    finally:
        client.close()


async def run(stores: list[Store], rules: RuleSet, arts: list[Article],
              batch: int, url: str) -> dict[str, float]:
    """Each store gets its own Ingestor and an interleaved share of the polls."""
    for s in stores:
        await s.open()
    try:
        cfg = StoryConfig()
        ings = [Ingestor(s, rules, StoryIndex(cfg), AlertPolicy("every_outlet"), ["jsonl"],
                         window=cfg.window, seen_ttl=cfg.window) for s in stores]
        for ing in ings:
            await ing.restore(BASE)
        work = polls(arts, batch)
        story_ids: set[str] = set()

        async def worker(k: int) -> None:
            for group, now in work[k::len(ings)]:
                for o in await ings[k].ingest(group, now):
                    if o.story_id:
                        story_ids.add(o.story_id)

        n0, t0, c0 = commands(url), time.perf_counter(), time.process_time()
        with RoundTrips() as trips:
            await asyncio.gather(*(worker(k) for k in range(len(ings))))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        sent = commands(url) - n0 - 1  # less the INFO call itself
        return {"us_per_article": elapsed / len(arts) * 1e6, "articles_per_s": len(arts) / elapsed,
                "cpu_us_per_article": cpu / len(arts) * 1e6,
                "redis_commands_per_article": sent / len(arts),
                "round_trips_per_article": trips.count / len(arts),
                "stories": float(len(story_ids))}
    finally:
        for s in stores:
            await s.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, under 60 s")
    parser.add_argument("-n", type=int, default=None, help="articles (default 5000; quick 1000)")
    parser.add_argument("--batch", type=int, default=10, help="articles per poll")
    args = parser.parse_args()
    n = args.n or (1000 if args.quick else 5000)
    if not shutil.which("redis-server"):
        print(json.dumps({"bench": "shared", "skipped": "no redis-server"}))
        return
    from tests.support.redis_server import RedisServer

    arts = make_articles(n)
    rules = load_rules([ROOT / "rules"])
    results: dict[str, dict[str, float]] = {}
    server = RedisServer()
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="nm-bench-") as tmp:
            runs: dict[str, list[Store]] = {
                "redis-unshared": [UnsharedRedisStore(server.url, prefix="b-unshared")],
                "redis-shared": [RedisStore(server.url, prefix="b-shared")],
                "redis-shared-x2": [RedisStore(server.url, prefix="b-x2"),
                                    RedisStore(server.url, prefix="b-x2")],
                "sqlite": [SQLiteStore(Path(tmp) / "state.db")],
            }
            for name, stores in runs.items():
                results[name] = await run(stores, rules, arts, args.batch, server.url)
    finally:
        server.cleanup()

    print(f"{'path':<18}{'us/article':>12}{'cpu us/art':>12}{'articles/s':>12}"
          f"{'redis cmd/art':>15}{'trips/art':>11}{'stories':>9}", file=sys.stderr)
    for name, f in results.items():
        cmds = f"{f['redis_commands_per_article']:.2f}" if name != "sqlite" else "-"
        trips = f"{f['round_trips_per_article']:.2f}" if name != "sqlite" else "-"
        print(f"{name:<18}{f['us_per_article']:>12.0f}{f['cpu_us_per_article']:>12.0f}"
              f"{f['articles_per_s']:>12.0f}{cmds:>15}{trips:>11}{f['stories']:>9.0f}",
              file=sys.stderr)
    base = results["redis-unshared"]["us_per_article"]
    print(json.dumps({
        "bench": "shared",
        "n": n,
        "batch": args.batch,
        "baseline": "redis-unshared",
        "us_per_article": {k: round(f["us_per_article"], 1) for k, f in results.items()},
        "articles_per_s": {k: round(f["articles_per_s"], 1) for k, f in results.items()},
        "cpu_us_per_article": {k: round(f["cpu_us_per_article"], 1) for k, f in results.items()},
        "redis_commands_per_article": {k: round(f["redis_commands_per_article"], 2)
                                       for k, f in results.items() if k != "sqlite"},
        "round_trips_per_article": {k: round(f["round_trips_per_article"], 2)
                                    for k, f in results.items() if k != "sqlite"},
        "stories": {k: int(f["stories"]) for k, f in results.items()},
        "shared_extra_us_per_article": {
            k: round(results[k]["us_per_article"] - base, 1)
            for k in ("redis-shared", "redis-shared-x2")},
    }))


if __name__ == "__main__":
    asyncio.run(main())
