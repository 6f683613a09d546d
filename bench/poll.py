"""Polling throughput: the daemon's own poll path against a hostile loopback feed farm.

The farm (its own process, bare asyncio HTTP/1.1 with keep-alive, so it is not the
bottleneck) listens on ``--hosts`` loopback addresses (127.0.1.1, 127.0.1.2, ...: one
"publisher" each) and serves real feed files (``../shared/data/feeds`` when present,
else ``tests/data/feeds``). Every answer waits ``--latency`` (default 50 ms: a server
across the internet). Feed ``i`` behaves by ``i mod 20``:

=========  =====  ====================================================================
share      kind   behaviour
=========  =====  ====================================================================
30 %       etag   strong ETag; ``If-None-Match`` with it gets ``304``
15 %       same   200 with the same bytes every time, no validators (hash skip)
25 %       new    200 with one NEW item (dated now) on every request, a fresh ETag
10 %       slow   like ``etag`` but answered ``--slow`` seconds later (default 0.5 s)
5 %        5xx    ``500 Internal Server Error``
5 %        reset  connection reset (RST) instead of an answer
10 %       429    ``429 Too Many Requests`` with ``Retry-After: 3600``
=========  =====  ====================================================================

Three clients poll the same farm (each under its own path prefix, so each sees its
own "new" items), two rounds each: round 1 meets every feed for the first time;
round 2 is the steady state a daemon lives in (validators known, one new item in
every ``new`` feed) and is the figure compared:

``daemon``  ``Service.poll_feed`` for every feed at ``--concurrency`` (default 100),
            default ``poll.per_host`` (2: politeness, which reader does not have;
            ``--per-host 100`` compares on equal terms), aiohttp transport, parser
            process pool, a SQLite store, one rule matching the new items of one block
            of 20 feeds in ``--alert-every`` (4; the other new items are parsed,
            clustered and stored but raise no alert, as most news matches no rule), the
            JSONL sink (one write and one fsync per delivery pass) behind a timing
            wrapper, the delivery loop running: the daemon's path from fetch to alert.
            In a child process, so its peak RSS is its own, started with
            ``MALLOC_ARENA_MAX=2`` as ``systemd/news-monitor.service`` starts it.
``reader``  lemon24/reader ``update_feeds(workers=--concurrency)``, installed in a
            separate venv (``--reader-venv``, default /tmp/reader-venv, created on
            demand with ``python -m venv`` + pip; never a project dependency). Skipped
            with a message when it cannot be installed.
``naive``   ``feedparser.parse(url)`` over the list, one by one, on a slice of the
            farm (it has no state: one round).

Reported: feeds/s, CPU seconds per 1,000 feeds (the client's process and its parser
processes; not the farm), peak RSS, and for the daemon the time from the end of the
fetch that saw a new item to its alert reaching the sink (p50/p99). ``--quick``: 300
feeds (< 60 s on 2 cores); the full run: 10,000 feeds over 100 hosts. A table goes to
stderr, one JSON line to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED_FEEDS = ROOT.parent / "shared" / "data" / "feeds"
TEST_FEEDS = ROOT / "tests" / "data" / "feeds"
KINDS = ("etag",) * 6 + ("same",) * 3 + ("new",) * 4 + ("slow",) * 2 + ("5xx", "reset") \
    + ("429",) * 2 + ("new",)
MALLOC_ARENA_MAX = "2"  # the daemon's environment in systemd/news-monitor.service
RULES = "rules:\n  - id: farm\n    title: Farm news\n    query: benchfarm\n"


def kind_of(i: int) -> str:
    return KINDS[i % len(KINDS)]


def alerting(i: int, every: int) -> bool:
    """Whether feed ``i``'s new items match the rule: one block of 20 feeds in ``every``."""
    return kind_of(i) == "new" and (i // len(KINDS)) % every == 0


def _word(*parts: object) -> str:
    """A pronounceable pseudo-word unique to ``parts``: new items must not cluster."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=6).digest()
    return "".join("bcdfghklmnprstvz"[b >> 4] + "aeiou"[(b & 15) % 5] for b in h)


# -- the farm (runs in its own process) ------------------------------------------------

class _Farm(asyncio.Protocol):
    """Just enough HTTP/1.1 for the mix above: GET, keep-alive, If-None-Match."""

    def __init__(self, shared: _FarmData) -> None:
        self.d = shared
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self._answer(head)

    def _answer(self, head: bytes) -> None:
        assert self.transport is not None
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        path = parts[1].decode() if len(parts) > 1 else "/"
        inm = b""
        for line in lines[1:]:
            if line[:14].lower() == b"if-none-match:":
                inm = line[14:].strip()
        client, _, num = path.strip("/").partition("/")
        try:
            i = int(num)
        except ValueError:
            self._send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0.0)
            return
        kind, delay = kind_of(i), self.d.latency
        body, etag = self.d.bodies[i % len(self.d.bodies)], self.d.etags[i % len(self.d.bodies)]
        if kind == "reset":
            self.d.loop.call_later(delay, self._reset)
            return
        if kind == "5xx":
            self._send(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", delay)
            return
        if kind == "429":
            self._send(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3600\r\n"
                       b"Content-Length: 0\r\n\r\n", delay)
            return
        if kind == "slow":
            delay += self.d.slow
        extra = b""
        if kind in ("etag", "slow"):
            if inm == etag:
                self._send(b"HTTP/1.1 304 Not Modified\r\nETag: " + etag + b"\r\n\r\n", delay)
                return
            extra = b"ETag: " + etag + b"\r\n"
        elif kind == "new":
            key = (client, i)
            n = self.d.counters.get(key, 0)
            self.d.counters[key] = n + 1
            body = self._with_item(body, client, i, n)
            extra = b'ETag: "n' + str(n).encode() + b'"\r\n'
        self._send(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n" + extra
                   + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body, delay)

    def _with_item(self, body: bytes, client: str, i: int, n: int) -> bytes:
        """The real feed with one new entry on top, dated now, on a topic of its own."""
        host = self.d.hosts[i % len(self.d.hosts)]
        link = f"http://{host}/{client}/{i}/item/{n}"
        topic = "Benchfarm" if alerting(i, self.d.alert_every) else "Farmnews"
        title = f"{topic} {_word(client, i, n, 1)} {_word(client, i, n, 2)}"
        summary = " ".join(_word(client, i, n, k) for k in range(3, 9))
        at = body.find(b"<item")
        if at >= 0:
            item = (f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
                    f"<pubDate>{formatdate(usegmt=True)}</pubDate>"
                    f"<description>{summary}.</description></item>")
        else:
            at = max(body.find(b"<entry"), 0)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            item = (f"<entry><id>{link}</id><title>{title}</title><link href=\"{link}\"/>"
                    f"<updated>{stamp}</updated><summary>{summary}.</summary></entry>")
        return body[:at] + item.encode() + body[at:]

    def _send(self, data: bytes, delay: float) -> None:
        if delay > 0:
            self.d.loop.call_later(delay, self._late, data)
        else:
            self._late(data)

    def _late(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _reset(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


@dataclass
class _FarmData:
    bodies: list[bytes]
    etags: list[bytes]
    latency: float
    slow: float
    loop: asyncio.AbstractEventLoop
    alert_every: int = 4
    hosts: list[str] = field(default_factory=list)
    counters: dict[tuple[str, int], int] = field(default_factory=dict)


def _farm(paths: list[str], hosts: int, ready: Any, latency: float, slow: float,
          alert_every: int = 4) -> None:
    from monitor.models import body_digest

    bodies = [Path(p).read_bytes() for p in paths]
    etags = [b'"' + body_digest(b).encode()[:16] + b'"' for b in bodies]

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        data = _FarmData(bodies, etags, latency, slow, loop, alert_every)
        for h in range(hosts):
            addr = f"127.0.{1 + h // 250}.{1 + h % 250}"
            server = await loop.create_server(lambda: _Farm(data), addr, 0, backlog=1024)
            data.hosts.append(f"{addr}:{server.sockets[0].getsockname()[1]}")
        ready.send(data.hosts)
        await asyncio.Event().wait()

    asyncio.run(serve())


def pick_feeds(limit: int) -> tuple[list[str], str]:
    """Real feed files with entries, largest first (up to 400 KB), up to ``limit``."""
    import feedparser

    root = SHARED_FEEDS if SHARED_FEEDS.is_dir() else TEST_FEEDS
    files = [p for p in root.rglob("*") if p.is_file() and 2_000 < p.stat().st_size < 400_000
             and p.suffix.lower() in (".xml", ".rss", ".atom", ".rdf", ".feed", "")]
    files.sort(key=lambda p: (-p.stat().st_size, str(p)))
    out: list[str] = []
    for p in files:
        if len(out) >= limit:
            break
        try:
            d = feedparser.parse(p.read_bytes())
        except Exception:
            continue
        if d.entries and not d.bozo:
            out.append(str(p))
    return out, str(root.relative_to(ROOT.parent) if root.is_relative_to(ROOT.parent) else root)


def feed_urls(hosts: list[str], client: str, n: int) -> list[str]:
    return [f"http://{hosts[i % len(hosts)]}/{client}/{i}" for i in range(n)]


# -- measuring -------------------------------------------------------------------------

@dataclass
class Round:
    client: str
    round: int
    n: int
    seconds: float
    cpu: float
    ok: int = 0
    detail: str = ""

    @property
    def per_s(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0


def _cpu_self() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def _proc_cpu(pids: list[int]) -> float:
    """CPU of live processes (RUSAGE_CHILDREN counts only children that have exited)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def _proc_peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _proc_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# -- (1) the daemon, in a child process ------------------------------------------------

def _daemon(urls: list[str], concurrency: int, per_host: int, transport: str,
            alert_every: int, out: Any) -> None:
    out.send(asyncio.run(_daemon_main(urls, concurrency, per_host, transport, alert_every)))


async def _daemon_main(urls: list[str], concurrency: int, per_host: int,
                       transport: str, alert_every: int = 4) -> dict[str, Any]:
    from loguru import logger

    from monitor.config import load_settings
    from monitor.models import FeedState, FetchResult
    from monitor.service import Service
    from monitor.store import OutboxItem

    logger.remove()  # thousands of deliberately failing feeds: the table says it all
    tmp = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    try:
        (tmp / "feeds.yaml").write_text("".join(f"- url: {u}\n" for u in urls))
        (tmp / "rules.yaml").write_text(RULES)
        (tmp / "monitor.yaml").write_text(textwrap.dedent(f"""\
            state_dir: {tmp / 'state'}
            feeds: {{files: [{tmp / 'feeds.yaml'}]}}
            rules: {{paths: [{tmp / 'rules.yaml'}], watch: false}}
            poll: {{allow_networks: [127.0.0.0/8], concurrency: {concurrency}, per_host: {per_host},
                    transport: {transport}, timeout: 20s}}
            sinks:
              stdout: {{enabled: false}}
              redis: {{enabled: false}}
              jsonl: {{enabled: true, path: {tmp / 'alerts.jsonl'}}}
            metrics: {{enabled: false}}
            """))
        svc = Service(load_settings(tmp / "monitor.yaml", env={}, search=False))
        await svc.start()
        start_rss = _proc_rss_mb(os.getpid())
        assert svc.fetcher is not None and svc.deliverer is not None and svc.store is not None
        fetched: dict[str, float] = {}
        latencies: list[float] = []
        fetch = svc.fetcher.fetch

        async def timed_fetch(url: str, **kw: Any) -> FetchResult:
            res = await fetch(url, **kw)
            fetched[url] = time.monotonic()
            return res

        svc.fetcher.fetch = timed_fetch  # type: ignore[method-assign]
        inner = svc.deliverer.sinks["jsonl"]

        class TimedSink:
            name = "jsonl"

            async def send(self, item: OutboxItem) -> None:
                await self.send_many([item])

            async def send_many(self, items: Sequence[OutboxItem]) -> None:
                await inner.send_many(items)  # on disk (fsynced) when this returns
                now = time.monotonic()
                for item in items:
                    for a in json.loads(item.payload).get("story", {}).get("articles", []):
                        feed = a["url"].split("/item/")[0]
                        if feed in fetched:
                            latencies.append(now - fetched[feed])

            async def aclose(self) -> None:
                await inner.aclose()

        svc.deliverer.sinks["jsonl"] = TimedSink()
        delivery = asyncio.create_task(svc._delivery_loop())
        assert svc.pool is not None
        list(svc.pool.map(int, range(svc.pool._max_workers)))  # parser processes up
        rounds: list[dict[str, Any]] = []
        for r in (1, 2, 3):
            latencies.clear()
            # rounds 1 and 2: every feed due at once, ``concurrency`` polls in flight, as
            # the daemon claims up to its free capacity (throughput); round 3 starts them
            # at half of round 2's rate, as a daemon whose schedule spreads its polls would
            rate = rounds[-1]["n"] / rounds[-1]["seconds"] / 2 if r == 3 else 0.0
            # Each poll reads its feed's state when it starts, as the daemon's claim_due
            # hands out a few at a time: the daemon never holds every feed's state at once.
            todo = iter(enumerate(urls))
            statuses: list[str] = []

            async def worker(rate: float = rate, todo: Any = todo,
                             statuses: list[str] = statuses, start: float = time.monotonic(),
                             ) -> None:
                for k, u in todo:
                    if rate:
                        await asyncio.sleep(max(0.0, start + k / rate - time.monotonic()))
                    st = await svc.store.get_feed_state(u) or FeedState(url=u)
                    statuses.append((await svc.poll_feed(st)).status)

            pids = list(getattr(svc.pool, "_processes", {}) or {})
            c0, t0 = _cpu_self() + _proc_cpu(pids), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            seconds = time.perf_counter() - t0
            cpu = _cpu_self() + _proc_cpu(pids) - c0
            expected = sum(alerting(i, alert_every) for i in range(len(urls)))
            deadline = time.monotonic() + 30
            while len(latencies) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            counts = {s: statuses.count(s) for s in sorted(set(statuses))}
            rounds.append({"round": r, "n": len(urls), "seconds": seconds, "cpu": cpu,
                           "rate": rate,
                           "statuses": counts, "alerts": len(latencies),
                           "expected_alerts": expected,
                           "p50": _quantile(latencies, 0.5), "p99": _quantile(latencies, 0.99),
                           "max": max(latencies, default=float("nan")),
                           "rss_mb": _proc_rss_mb(os.getpid())})
        pool_peak = sum(_proc_peak_mb(p) for p in getattr(svc.pool, "_processes", {}) or {})
        delivery.cancel()
        await svc.close()
        return {"rounds": rounds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                / 1024, "parser_rss_mb": pool_peak, "start_rss_mb": start_rss,
                "workers": svc.settings.poll.parse_workers or os.cpu_count()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_daemon(urls: list[str], concurrency: int, per_host: int, transport: str,
               alert_every: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=_daemon, args=(urls, concurrency, per_host, transport,
                                                   alert_every, theirs))
    # as systemd/news-monitor.service runs it: glibc's malloc reads this at start only
    before = os.environ.get("MALLOC_ARENA_MAX")
    os.environ["MALLOC_ARENA_MAX"] = before or MALLOC_ARENA_MAX
    try:
        proc.start()
    finally:
        if before is None:
            del os.environ["MALLOC_ARENA_MAX"]
    result: dict[str, Any] = ours.recv()
    proc.join()
    return result


# -- (2) lemon24/reader, in its own venv -----------------------------------------------

READER_SCRIPT = r"""
import json, resource, sys, tempfile, time, os, logging
from reader import make_reader
logging.disable(logging.CRITICAL)
urls = json.load(open(sys.argv[1])); workers = int(sys.argv[2])
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
with tempfile.TemporaryDirectory() as tmp:
    rd = make_reader(os.path.join(tmp, "db.sqlite"))
    for u in urls:
        rd.add_feed(u)
    rounds = []
    for r in (1, 2):
        c0, t0 = cpu(), time.perf_counter()
        ok = 0
        for url, value in rd.update_feeds_iter(workers=workers, scheduled=False):
            ok += not isinstance(value, Exception)
        rounds.append({"round": r, "n": len(urls), "seconds": time.perf_counter() - t0,
                       "cpu": cpu() - c0, "ok": ok})
    import reader
    print(json.dumps({"rounds": rounds, "version": reader.__version__,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def reader_python(venv: Path) -> Path | None:
    """The venv's python with ``reader`` importable, creating the venv on first use."""
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import reader"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    print(f"reader: installing into {venv} (benchmark only) ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "reader", "sgmllib3k"], check=True,
                       capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as e:
        print(f"reader: skipped, could not install it: {e}", file=sys.stderr)
        return None
    return py if subprocess.run(check, capture_output=True).returncode == 0 else None


def run_reader(py: Path, urls: list[str], workers: int) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "urls.json"
        listing.write_text(json.dumps(urls))
        proc = subprocess.run([str(py), "-c", READER_SCRIPT, str(listing), str(workers)],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"reader: failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- (3) the naive loop ----------------------------------------------------------------

def run_naive(urls: list[str]) -> Round:
    import feedparser

    def one(url: str) -> bool:
        try:
            return bool(feedparser.parse(url).entries)
        except OSError:  # a reset escapes feedparser: the try a user adds after the first crash
            return False

    c0, t0 = _cpu_self(), time.perf_counter()
    ok = sum(one(u) for u in urls)
    return Round("naive", 1, len(urls), time.perf_counter() - t0, _cpu_self() - c0, ok,
                 "sequential feedparser.parse(url), resets caught")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 feeds (< 60 s on 2 cores)")
    parser.add_argument("--feeds", type=int, default=None, help="farm size (default 10,000)")
    parser.add_argument("--hosts", type=int, default=None,
                        help="loopback hosts (default: feeds / 10)")
    parser.add_argument("--files", type=int, default=None, help="distinct feed files served")
    parser.add_argument("--naive", type=int, default=None, help="feeds for the naive loop")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before answers")
    parser.add_argument("--slow", type=float, default=0.5, help="extra seconds, slow servers")
    parser.add_argument("--per-host", type=int, default=2, help="daemon's poll.per_host")
    parser.add_argument("--alert-every", type=int, default=4,
                        help="one block of 20 feeds in N has new items the rule matches")
    parser.add_argument("--transport", choices=("aiohttp", "httpx"), default="aiohttp")
    parser.add_argument("--reader-venv", type=Path, default=Path("/tmp/reader-venv"))
    parser.add_argument("--no-reader", action="store_true")
    args = parser.parse_args()
    n = args.feeds or (300 if args.quick else 10_000)
    hosts_n = args.hosts or max(20, n // 10)
    paths, source = pick_feeds(args.files or (40 if args.quick else 300))
    if not paths:
        sys.exit("no feed files found")
    sizes = sorted(Path(p).stat().st_size for p in paths)

    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    farm = ctx.Process(target=_farm, args=(paths, hosts_n, theirs, args.latency, args.slow,
                                           args.alert_every), daemon=True)
    farm.start()
    hosts: list[str] = ours.recv()
    results: list[Round] = []
    summary: dict[str, Any] = {"bench": "poll", "feeds": n, "hosts": hosts_n,
                               "files": len(paths), "concurrency": args.concurrency,
                               "per_host": args.per_host,
                               "latency_s": args.latency, "slow_s": args.slow,
                               "alert_every": args.alert_every,
                               "transport": args.transport}
    try:
        d = run_daemon(feed_urls(hosts, "d", n), args.concurrency, args.per_host,
                       args.transport, args.alert_every)
        for r in d["rounds"][:2]:
            results.append(Round("daemon", r["round"], r["n"], r["seconds"], r["cpu"],
                                 sum(v for k, v in r["statuses"].items() if k != "error"),
                                 f"{r['alerts']}/{r['expected_alerts']} alerts, "
                                 f"item->alert p50 {r['p50'] * 1000:.0f} ms "
                                 f"p99 {r['p99'] * 1000:.0f} ms; {r['statuses']}"))
        burst, paced = d["rounds"][1], d["rounds"][2]
        summary.update(p50_alert_latency_s=round(paced["p50"], 3),
                       p99_alert_latency_s=round(paced["p99"], 3),
                       max_alert_latency_s=round(paced["max"], 3),
                       paced_feeds_per_s=round(paced["rate"], 1),
                       burst_p50_alert_latency_s=round(burst["p50"], 3),
                       burst_p99_alert_latency_s=round(burst["p99"], 3),
                       alerts=paced["alerts"], expected_alerts=paced["expected_alerts"],
                       peak_rss_mb=round(d["rss_mb"], 1),
                       start_rss_mb=round(d["start_rss_mb"], 1),
                       rss_after_rounds_mb=[round(r["rss_mb"], 1) for r in d["rounds"]],
                       parser_rss_mb=round(d["parser_rss_mb"], 1),
                       parse_workers=d["workers"])
        py = None if args.no_reader else reader_python(args.reader_venv)
        rd = run_reader(py, feed_urls(hosts, "r", n), args.concurrency) if py else None
        if rd:
            for r in rd["rounds"]:
                results.append(Round("reader", r["round"], r["n"], r["seconds"], r["cpu"],
                                     r["ok"], f"reader {rd['version']} update_feeds("
                                     f"workers={args.concurrency}, scheduled=False)"))
            summary.update(reader_version=rd["version"], reader_rss_mb=round(rd["rss_mb"], 1))
        results.append(run_naive(feed_urls(hosts, "n", args.naive or
                                           (30 if args.quick else 300))))
    finally:
        farm.terminate()

    print(f"farm: {n} feeds on {hosts_n} loopback hosts, {len(paths)} files from {source} "
          f"(median {sizes[len(sizes) // 2] // 1024} KB), {args.latency * 1000:g} ms per answer "
          f"(+{args.slow:g} s slow), concurrency {args.concurrency}", file=sys.stderr)
    print(f"{'client':<8}{'round':>6}{'n':>7}{'ok':>7}{'feeds/s':>9}{'CPU s/1k':>10}  note",
          file=sys.stderr)
    for r in results:
        print(f"{r.client:<8}{r.round:>6}{r.n:>7}{r.ok:>7}{r.per_s:>9.0f}"
              f"{1000 * r.cpu / r.n:>10.2f}  {r.detail}", file=sys.stderr)
    paced = d["rounds"][2]
    print(f"daemon   paced at {paced['rate']:.0f} feeds/s (half of round 2): "
          f"{paced['alerts']}/{paced['expected_alerts']} alerts, item->alert p50 "
          f"{paced['p50'] * 1000:.0f} ms p99 {paced['p99'] * 1000:.0f} ms", file=sys.stderr)
    print(f"daemon peak RSS {summary.get('peak_rss_mb')} MB (+ parser processes "
          f"{summary.get('parser_rss_mb')} MB) at {n} feeds; {summary.get('start_rss_mb')} MB "
          f"once started, {summary.get('rss_after_rounds_mb')} MB after each round",
          file=sys.stderr)

    def steady(client: str) -> Round | None:
        rs = [r for r in results if r.client == client]
        return rs[-1] if rs else None

    for client in ("daemon", "reader", "naive"):
        r = steady(client)
        key = "feeds_per_s" if client == "daemon" else f"{client}_feeds_per_s"
        summary[key] = round(r.per_s, 1) if r else None
        summary[f"{client}_cpu_s_per_1k"] = round(1000 * r.cpu / r.n, 2) if r else None
        first = next((x for x in results if x.client == client and x.round == 1), None)
        if first and first is not r:
            summary[f"{client}_cold_feeds_per_s"] = round(first.per_s, 1)
    summary["vs_naive"] = (round(summary["feeds_per_s"] / summary["naive_feeds_per_s"], 1)
                           if summary.get("naive_feeds_per_s") else None)
    summary["vs_reader"] = (round(summary["feeds_per_s"] / summary["reader_feeds_per_s"], 1)
                            if summary.get("reader_feeds_per_s") else None)
    summary["rounds"] = [asdict(r) for r in results]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
