"""The daemon: the one place where fetch, parse, ingest, delivery and the scheduler meet.

Lifecycle::

    start()  open store -> load rules and feeds (fail loudly) -> restore story index
             -> register feeds -> sinks                                  (READY=1)
    run()    APScheduler ticks: claim due feeds and poll them; deliver the outbox;
             expire old stories; flush held-back updates; watch rule files
    SIGHUP   reload config, feeds and rules; a broken change keeps the old ones
    SIGTERM  stop claiming, drain in-flight polls (bounded), flush the outbox, exit 0

A feed failing is one feed failing: every error is caught per feed, logged with
the feed's URL and kind, counted in its state, and the feed is tried again later
with backoff. A store outage pauses polling (nothing is accepted that could not
be recorded) and the daemon keeps running until the store comes back (the systemd
watchdog is still fed; the status line says the store is unavailable). A store that
answers but lost its data is noticed at the next poll tick, which registers the feeds
again (``_restore_schedule``); ``/healthz`` is 503 for as long as it cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import multiprocessing
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger

from monitor import orphans
from monitor.alerts.build import build_sinks, warn_unknown_channels
from monitor.alerts.deadletter import DeadLetters
from monitor.alerts.delivery import LEASE, Deliverer, DeliveryStats
from monitor.alerts.payload import operator_event
from monitor.alerts.sinks import Sink
from monitor.alerts.throttle import RuleThrottle
from monitor.config import Settings, changed_keys, load_settings, prepare_state_dir, redact_url
from monitor.errors import ConfigError, FeedError, ParseError, RuleError, StoreError
from monitor.fetch import feedstate, schedule, websub
from monitor.fetch.feedlist import load_feed_lists
from monitor.fetch.http import Fetcher, FetchLimits, fetch_limits
from monitor.fetch.parse import ParsedFeed, parse_feed
from monitor.fetch.push import PushConfig, PushReceiver, SubscriptionBook, migrate_file
from monitor.ingest import Ingestor, Outcome, Tuning
from monitor.lockfile import InstanceLock
from monitor.match.rules import NO_ACTIVE_RULES, RuleSet, load_rules
from monitor.metrics import Metrics, MetricsServer
from monitor.models import Article, FeedSpec, FeedState, utcnow
from monitor.notify import Notifier
from monitor.outage import Outage
from monitor.store import OutboxItem, Store, open_store
from monitor.stories.cluster import StoryIndex

DRAIN_SECONDS = 6.0  # + up to 2 s of final delivery: out well within 10 s
# How long the event loop may keep the GIL while another thread waits for it. The
# store's thread needs it several times per transaction; at Python's default 5 ms a
# busy loop made every article commit (taken one at a time, under the ingest lock)
# cost tens of ms in a burst of polls (docs/BENCHMARKS.md).
SWITCH_INTERVAL = 0.001


# What a SIGHUP applies: the feed list and rules are reloaded, and these are read
# from the settings at each use. Everything else was built into objects at start
# (the fetcher, the store, sinks, the story index, the scheduler's jobs, logging).
LIVE_ON_RELOAD = (
    "feeds", "rules.paths", "poll.interval", "poll.min_interval", "poll.max_interval",
    "poll.max_backoff", "poll.failing_after", "poll.concurrency", "poll.lease",
    "poll.max_article_age", "websub.fallback_interval",
)


def restart_needed(old: Settings, new: Settings) -> list[str]:
    """The changed settings a reload does not apply, so the operator is told, not surprised."""
    return [k for k in changed_keys(old, new)
            if not any(k == live or k.startswith(live + ".") for live in LIVE_ON_RELOAD)]


@dataclass
class PollReport:
    """What one feed poll did, for logs, ``once`` and tests."""

    url: str
    status: str  # "ok" | "not_modified" | "unchanged" | "error"
    new: int = 0
    duplicates: int = 0
    alerts: int = 0
    error: str | None = None
    recorded: bool = True  # False: the store failed, nothing of the poll was saved


@dataclass(frozen=True)
class Claim:
    """This instance's claim on a feed, as ``Store.release_claim`` names it."""

    at: datetime        # the ``now`` given to ``claim_due``
    lease: float        # seconds, as given to it

    @property
    def until(self) -> datetime:
        return self.at + timedelta(seconds=self.lease)


@dataclass
class RunSummary:
    feeds: int = 0
    failed: int = 0
    new: int = 0
    alerts: int = 0
    delivered: int = 0
    delivery_failures: int = 0  # attempts a sink refused or missed: the alerts wait or are dead
    reports: list[PollReport] = field(default_factory=list)


def _settle_runtime() -> None:
    """After start-up: hand the GIL over sooner, and stop re-scanning start-up objects.

    ``gc.freeze`` moves everything alive now (imports, settings, the feed list, the
    restored story index) out of the collector's reach: they live as long as the
    daemon, and full collections would otherwise walk them again and again while
    polls wait.
    """
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.collect()
    gc.freeze()


def delivery_lease(settings: Settings) -> timedelta:
    """How long one delivery pass over a sink may hold that sink against other instances.

    A pass starts no send after a third of it and cuts one off at two thirds
    (``monitor.alerts.delivery``), so it must leave a slow receiver room for its own
    ``timeout``: a minute, or six times the longest webhook or Apprise timeout.
    """
    timeouts = [w.timeout for w in settings.sinks.webhooks]
    timeouts += [a.timeout for a in settings.sinks.apprise]
    return max([LEASE, *(6 * t for t in timeouts)])


def load_feeds(settings: Settings) -> dict[str, FeedSpec]:
    """Every listed feed, first listing wins; raises ConfigError naming the file."""
    return {spec.url: spec for spec in load_feed_lists(settings.feeds.files)}


def _warn_if_idle(rules: RuleSet) -> None:
    """Said at start and on every reload: an empty or all-disabled rule set (an editor's
    truncated file, a wrong ``rules.paths``) is valid, and would otherwise pass unnoticed."""
    if not rules.active:
        logger.warning(NO_ACTIVE_RULES)


def _rule_files_signature(paths: list[Path]) -> tuple[tuple[str, float, int], ...]:
    """(path, mtime, size) of every rule file: cheap change detection without inotify."""
    out: list[tuple[str, float, int]] = []
    for p in paths:
        files = sorted(p.rglob("*.y*ml")) if p.is_dir() else [p]
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            out.append((str(f), st.st_mtime, st.st_size))
    return tuple(out)


class Service:
    def __init__(self, settings: Settings, *, notifier: Notifier | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self.notifier = notifier or Notifier()
        self.store: Store | None = None
        self.fetcher: Fetcher | None = None
        self.pool: ProcessPoolExecutor | None = None
        self.feeds: dict[str, FeedSpec] = {}
        self.rules: RuleSet | None = None
        self.ingestor: Ingestor | None = None
        self.deliverer: Deliverer | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.inflight: set[asyncio.Task[PollReport]] = set()
        self.stopping = asyncio.Event()
        self.wake_delivery = asyncio.Event()
        self.rules_sig: tuple[tuple[str, float, int], ...] = ()
        self.last_progress = time.monotonic()
        self.failing: set[str] = set()
        self.store_ok = True   # at its last claim or poll recorded, or the watchdog's ping
        # The store's failures, logged when they start and end (``outage.py``): claiming
        # due feeds, and recording what a poll found (a full disk may refuse the latter only).
        self.claims = Outage("store")
        self.records = Outage("store")
        self.metrics = Metrics()
        self.rng = random.Random()
        self.web: MetricsServer | None = None
        self.push: PushReceiver | None = None
        self.lock: InstanceLock | None = None
        self.epoch = ""   # the store's (``Store.epoch``), to notice it lost its data
        # When this instance found the store had lost its data, until the feeds are
        # registered again: nothing is polled meanwhile, and ``/healthz`` says so.
        self.lost_at: datetime | None = None
        self.relisting = Outage("store")   # registering them again fails (writes refused)
        self._restoring = asyncio.Lock()   # one schedule check at a time (poll and maintenance)
        # Feeds whose polls the store could not record, still claimed: see ``_hand_back``.
        self.unrecorded: dict[str, Claim] = {}

    # -- setup -----------------------------------------------------------------
    def _fetch_limits(self) -> FetchLimits:
        return fetch_limits(self.settings.poll)

    def _sinks(self) -> dict[str, Sink]:
        """Every configured sink by name (``webhook:<name>``, ``apprise:<name>`` ...)."""
        sinks = build_sinks(self.settings)
        assert self.rules is not None
        warn_unknown_channels({r.id: r.channels for r in self.rules.rules}, sinks)
        return sinks

    async def start(self) -> None:
        """Open everything; raises MonitorError subclasses naming what is wrong."""
        st = self.settings
        for problem in prepare_state_dir(st):
            logger.warning("{}: alerts for it wait (retried) until it can be written", problem)
        self.rules = load_rules(st.rules.paths)
        self.rules_sig = _rule_files_signature(st.rules.paths)
        self.feeds = load_feeds(st)
        self.store = open_store(st.store_url(), prefix=st.store.prefix, state_dir=st.state_dir)
        if not self.store.shared:
            self.lock = InstanceLock(st.state_dir / "daemon.lock")
            self.lock.acquire()
        await self.store.open()
        now = self.clock()
        if not self.store.shared and (released := await self.store.release_claims()):
            logger.warning("{} feed(s) were mid-poll when the last run died; due again now",
                           released)
        await self.store.sync_feeds(list(self.feeds), now)
        self.epoch = await self.store.epoch()
        sinks = self._sinks()
        tuning = Tuning.of(st)
        self.ingestor = Ingestor(self.store, self.rules, StoryIndex(tuning.stories),
                                 tuning.policy, list(sinks),
                                 window=tuning.stories.window, seen_ttl=tuning.seen_ttl,
                                 throttle=RuleThrottle(), key_memory=0)
        await self.ingestor.restore(now)
        self.deliverer = Deliverer(self.store, sinks, retry_min=st.sinks.retry_min,
                                   retry_max=st.sinks.retry_max,
                                   on_result=self.metrics.delivery,
                                   dead_letters=DeadLetters(st.sinks.dead_letter),
                                   give_up_after=st.sinks.give_up_after,
                                   lease=delivery_lease(st))
        self.metrics.feeds.set(len(self.feeds))
        self.fetcher = Fetcher(self._fetch_limits())
        self.pool = self._new_pool()
        _settle_runtime()
        logger.info("news-monitor started: {} feeds, {} rules, store {}, sinks {}",
                    len(self.feeds), len(self.rules), redact_url(st.store_url() or
                                                                   str(st.state_dir / "state.db")),
                    ", ".join(sinks) or "none")
        _warn_if_idle(self.rules)

    def _new_pool(self) -> ProcessPoolExecutor:
        """Parser processes: feedparser is CPU-bound and must not block the event loop.

        The fork server preloads only the parser (not ``__main__``, which
        for ``news-monitor run`` imports the whole daemon), and the job pickled to the
        workers is ``parse_feed`` itself: a worker holds the parser, not numpy, aiohttp
        and the story index's imports (about 35 MB instead of 80 MB each).
        """
        workers = self.settings.poll.parse_workers or (os.cpu_count() or 1)
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([parse_feed.__module__, "feedparser"])
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                   initializer=orphans.exit_with, initargs=(os.getpid(),))

    async def health(self) -> tuple[bool, dict[str, object]]:
        """Ready when feeds are being polled: the store answers and takes claims, it holds
        the feed schedule, and the scheduler runs (or we are in ``once`` mode).

        A store that answers a ping may still poll nothing: it lost its data and the
        feeds are not registered again yet (it refuses writes, say), or it refuses the
        claims themselves. Both are 503 with a ``reason``, not 200 until the next sign.
        """
        store_ok = self.store is not None and await self.store.ping()
        sched_ok = self.scheduler is None or bool(self.scheduler.running)
        detail: dict[str, object] = {
            "store": store_ok, "scheduler": sched_ok, "feeds": len(self.feeds),
            "failing": len(self.failing), "polling": len(self.inflight),
            "seconds_since_progress": round(time.monotonic() - self.last_progress, 1),
        }
        reasons = []
        if not store_ok:
            reasons.append("the store does not answer")
        if self.lost_at is not None:
            detail["store_data_lost_at"] = self.lost_at.isoformat()
            reasons.append(f"the store lost its data at {self.lost_at.isoformat()} and its "
                           f"{len(self.feeds)} feed(s) are not registered again yet: nothing "
                           "is polled")
        elif store_ok and self.claims.down:
            reasons.append("the store refuses claims: polling paused")
        if not sched_ok:
            reasons.append("the scheduler is not running")
        if self.stopping.is_set():
            reasons.append("stopping")
        if reasons:
            detail["reason"] = "; ".join(reasons)
        return not reasons, detail

    async def start_metrics(self) -> None:
        m = self.settings.metrics
        if not m.enabled:
            return
        web = MetricsServer(self.metrics, self.health)
        try:
            await web.start(m.host, m.port)
        except OSError as e:
            logger.warning("metrics endpoint not started on {}:{}: {}", m.host, m.port, e)
            return
        self.web = web
        logger.info("metrics on http://{}:{}/metrics, health on /healthz", m.host, web.port)

    async def start_push(self) -> None:
        """WebSub callback server, when ``websub.callback_url`` is configured."""
        ws = self.settings.websub
        if not ws.callback_url or ws.secret is None or self.fetcher is None:
            return
        host, port = ws.host_port()
        config = PushConfig(
            callback_url=ws.callback_url, secret=ws.secret.get_secret_value(), host=host,
            port=port, lease=ws.lease, renew_before=ws.renew_before,
            retry_after=ws.retry_after, max_bytes=self.settings.poll.max_bytes)
        assert self.store is not None
        book = SubscriptionBook(self.store, config.secret, lambda: self.feeds)
        try:
            await migrate_file(self.settings.state_dir / "websub.json", book)
        except StoreError as e:
            logger.error("websub: could not move websub.json into the store (next start "
                         "tries again): {}", e)
        push = PushReceiver(config, self.fetcher, book, self.receive_push, self.clock)
        try:
            await push.start()
        except OSError as e:
            logger.error("websub callback server not started on {}: {}", ws.listen, e)
            return
        self.push = push
        logger.info("websub callbacks on {}:{} for {}", host, push.port, ws.callback_url)

    async def renew_push(self) -> None:
        if self.push is not None:
            await self.push.renew_due()

    async def receive_push(self, feed: str, body: bytes, content_type: str | None) -> None:
        """A hub pushed ``feed``'s new content: the same parse and ingest as a poll, at once."""
        assert self.ingestor is not None
        spec = self.feeds.get(feed)
        if spec is None:
            logger.info("websub: push for {} ignored: no longer in the feed list", feed)
            return
        now = self.clock()
        with logger.contextualize(feed=feed):
            try:
                parsed = await self._parse(body, spec, now, feed, content_type)
                fresh = self._fresh(parsed.articles, now)
                outcomes = await self.ingestor.ingest(fresh, now) if fresh else []
            except FeedError as e:
                logger.warning("websub: pushed content not usable: {}: {}", e.kind, e.detail)
                return
            except StoreError as e:
                logger.error("store unavailable, pushed content dropped (polling will "
                             "catch up): {}", e)
                return
            self._count(outcomes, now)
            self.metrics.polls.labels("push").inc()
            new = sum(not o.duplicate for o in outcomes)
            alerts = sum(o.alert is not None for o in outcomes)
            if alerts:
                self.wake_delivery.set()
            logger.info("websub: pushed {} entr(ies), {} new, {} alert(s)", len(outcomes), new,
                        alerts)

    async def _offer_push(self, feed: str, parsed: ParsedFeed, fetched_url: str,
                          link_header: str | None) -> None:
        if self.push is None:
            return
        # the spec prefers the header's links to the document's; they may be relative
        links = {rel: urljoin(fetched_url, url)
                 for rel, url in websub.link_relations(link_header).items()}
        hub = links.get("hub") or parsed.hub
        if not hub:
            return
        topic = links.get("self") or parsed.self_url or fetched_url
        try:
            await self.push.offer(feed, hub, topic)
        except Exception as e:  # push is a bonus: it must never fail the poll
            logger.opt(exception=e).warning("websub: could not subscribe: {}", e)

    async def close(self) -> None:
        if self.push is not None:
            await self.push.close()
        if self.web is not None:
            await self.web.close()
        if self.deliverer is not None:
            await self.deliverer.aclose()
        if self.fetcher is not None:
            await self.fetcher.aclose()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        if self.ingestor is not None:
            await self.ingestor.drain()  # a group commit in flight ends before the store does
        if self.store is not None:
            await self.store.close()
        if self.lock is not None:
            self.lock.release()

    # -- one feed ----------------------------------------------------------------
    async def _parse(self, body: bytes, spec: FeedSpec, now: datetime,
                     base_url: str, content_type: str | None) -> ParsedFeed:
        """``parse_feed`` in the pool; entries ``_fresh`` would drop come back as dates only."""
        assert self.pool is not None
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, functools.partial(
                parse_feed, body, spec, fetched_at=now, base_url=base_url,
                content_type=content_type, oldest=now - self.settings.poll.max_article_age))
        except BrokenProcessPool:
            # A worker died (killed, out of memory): replace the pool, fail this feed only.
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
            raise ParseError(spec.url, "parser_crash", "the parser process died") from None

    def _fresh(self, articles: tuple[Article, ...], now: datetime) -> list[Article]:
        """Drop entries older than ``poll.max_article_age``: a new feed's archive is not news."""
        oldest = now - self.settings.poll.max_article_age
        return [a for a in articles if a.published is None or a.published >= oldest]

    async def poll_feed(self, state: FeedState) -> PollReport:
        """Fetch, parse and ingest one feed; never raises except on cancellation."""
        assert self.fetcher is not None and self.store is not None and self.ingestor is not None
        spec = self.feeds.get(state.url) or FeedSpec(url=state.url)
        policy = self._policy()
        url = feedstate.moved_to(state, policy) or state.url
        now = self.clock()
        with logger.contextualize(feed=state.url):
            try:
                result = await self.fetcher.fetch(url, etag=state.etag,
                                                  last_modified=state.last_modified)
                if feedstate.unchanged(state, result):
                    status = "not_modified" if result.body is None else "unchanged"
                    new_state = feedstate.after_fetch(
                        state, result, now=now, policy=policy, rng=self.rng,
                        fixed_interval=self._fixed_interval(state))
                    return await self._save(state, new_state, PollReport(state.url, status))
                assert result.body is not None
                parsed = await self._parse(result.body, spec, now, result.final_url or url,
                                           result.headers.get("content-type"))
                if parsed.warning:
                    logger.debug("feed parsed with a warning: {}", parsed.warning)
                await self._offer_push(state.url, parsed, result.final_url or url,
                                       result.headers.get("link"))
                fresh = self._fresh(parsed.articles, now)
                outcomes = await self.ingestor.ingest(fresh, now) if fresh else []
                report = PollReport(state.url, "ok")
                report.new = sum(not o.duplicate for o in outcomes)
                report.alerts = sum(o.alert is not None for o in outcomes)
                report.duplicates = len(outcomes) - report.new
                self._count(outcomes, now)
                if report.alerts:
                    self.wake_delivery.set()
                if report.new:
                    logger.info("{} new article(s), {} alert(s)", report.new, report.alerts)
                new_state = feedstate.after_fetch(
                    state, result, now=now, policy=policy, rng=self.rng,
                    published=[*(a.published for a in parsed.articles if a.published),
                               *parsed.stale_dates],
                    ttl_seconds=parsed.ttl_seconds, new_items=report.new,
                    fixed_interval=self._fixed_interval(state))
                return await self._save(state, new_state, report)
            except FeedError as e:
                return await self._failed(state, now, e)
            except StoreError as e:
                # Nothing of this poll is recorded: the claim is handed back once the
                # store answers again (``_hand_back``), or runs out. Claims may still work
                # (a full disk takes small overwrites): the status says "not recorded"
                # rather than "paused" unless they fail too.
                self.records.failed(e, "feed will be retried")
                return PollReport(state.url, "error", error=f"store: {e}", recorded=False)
            except Exception as e:  # a bug must not kill the daemon: report it with the feed
                logger.opt(exception=e).error("unexpected error while polling: {}", e)
                return await self._failed(state, now, FeedError(state.url, "internal", repr(e)))

    def _count(self, outcomes: list[Outcome], now: datetime) -> None:
        m = self.metrics
        for o in outcomes:
            m.articles.labels("duplicate" if o.duplicate else "new").inc()
            if o.duplicate:
                continue
            for rule in o.rule_ids:
                m.rule_hits.labels(rule).inc()
            for rule in o.throttled:
                m.throttled.labels(rule).inc()
            if o.new_story:
                m.stories.inc()
            if o.split is not None:
                m.splits.inc()
                m.stories.inc()
            if o.split_alert:
                m.alerts.labels(o.split_alert).inc()
            if o.alert:
                m.alerts.labels(o.alert).inc()
                if o.article.published is not None:
                    m.alert_latency.observe(max(0.0, (now - o.article.published).total_seconds()))

    async def _operator_event(self, kind: str, feed: str, now: datetime, detail: str) -> None:
        """Tell the people on the alert channels, through the same durable outbox."""
        assert self.store is not None and self.deliverer is not None
        eid, payload = operator_event(kind, feed, detail, now)
        try:
            await self.store.outbox_put(
                [OutboxItem(alert_id=eid, sink=s, payload=payload, created_at=now)
                 for s in self.deliverer.sinks])
            self.wake_delivery.set()
        except StoreError as e:
            logger.error("could not queue the {} event: {}", kind, e)

    async def _save(self, before: FeedState, after: FeedState, report: PollReport) -> PollReport:
        assert self.store is not None
        policy = self._policy()
        if feedstate.recovered(before, after, policy):
            logger.info("feed recovered after {} failure(s)", before.failures)
        self.failing.discard(after.url)
        moved = feedstate.moved_to(after, policy)
        if moved and moved != feedstate.moved_to(before, policy):
            logger.warning("feed moved permanently to {}; polling the new URL (update the "
                           "feed list)", moved)
        await self.store.save_feed_state(await self._keep_push(after))
        self.metrics.polls.labels(report.status).inc()
        self.metrics.feeds_failing.set(len(self.failing))
        self.last_progress = time.monotonic()
        self.store_ok = True
        self.records.recovered("polls recorded again")
        return report

    async def _failed(self, state: FeedState, now: datetime, err: FeedError) -> PollReport:
        assert self.store is not None
        policy = self._policy()
        new_state = feedstate.after_failure(state, err, now=now, policy=policy, rng=self.rng,
                                            fixed_interval=self._fixed_interval(state))
        self.metrics.polls.labels("error").inc()
        self.metrics.poll_errors.labels(err.kind).inc()
        failing = feedstate.is_failing(new_state, policy)
        if failing:
            self.failing.add(state.url)
        wait = int((new_state.next_check - now).total_seconds()) if new_state.next_check else 0
        logger.log("ERROR" if failing else "WARNING",
                   "poll failed ({} in a row, next try in {}s): {}: {}",
                   new_state.failures, wait, err.kind, err.detail)
        if new_state.gone and not state.gone:
            logger.error("feed is gone (HTTP 410): remove it from the feed list")
            await self._operator_event("feed.gone", state.url, now,
                                       f"HTTP 410 Gone: the publisher removed this feed; remove "
                                       f"it from the feed list ({err.detail})")
        recorded = True
        try:
            await self.store.save_feed_state(await self._keep_push(new_state))
            self.records.recovered("feed states recorded again")
        except StoreError as e:
            self.records.failed(e, "the feed's failure not recorded")
            recorded = False
        self.last_progress = time.monotonic()
        return PollReport(state.url, "error", error=f"{err.kind}: {err.detail}",
                          recorded=recorded)

    async def _keep_push(self, state: FeedState) -> FeedState:
        """``state`` with the push fields as stored now, not as they were at the claim.

        A hub may verify or deny a subscription (on any instance) while the feed is
        being polled; saving the poll's copy would undo that answer.
        """
        if self.push is None:
            return state
        assert self.store is not None
        current = await self.store.get_feed_state(state.url)
        return websub.with_push_of(state, current) if current is not None else state

    def _policy(self) -> schedule.SchedulePolicy:
        p = self.settings.poll
        return schedule.SchedulePolicy(
            min_interval=p.min_interval.total_seconds(),
            max_interval=p.max_interval.total_seconds(),
            default_interval=max(p.min_interval, min(p.interval, p.max_interval)).total_seconds(),
            backoff_cap=max(p.max_backoff, p.min_interval).total_seconds(),
            # a server's Retry-After is honoured up to the operator's own longest wait
            max_retry_after=max(p.max_backoff, p.min_interval).total_seconds(),
            failing_after=p.failing_after,
        )

    def _fixed_interval(self, state: FeedState) -> float | None:
        spec = self.feeds.get(state.url)
        fixed = spec.interval if spec and spec.interval else None
        if self.push is not None and websub.state_is_active(state, self.clock()):
            # pushes bring the news; polling is only the safety net if the hub goes quiet
            return max(fixed or 0.0, self.settings.websub.fallback_interval.total_seconds())
        return fixed

    # -- cycles ------------------------------------------------------------------
    async def poll_due(self) -> int:
        """Claim what is due (up to free capacity) and start polling it; returns feeds started."""
        assert self.store is not None
        free = self.settings.poll.concurrency - len(self.inflight)
        if free <= 0 or self.stopping.is_set():
            return 0
        await self._restore_schedule()
        now, lease = self.clock(), self.settings.poll.lease.total_seconds()
        try:
            claimed = await self.store.claim_due(now, lease, free)
            self.store_ok = True
            self.claims.recovered("polling resumed")
        except StoreError as e:
            self.store_ok = False
            self.claims.failed(e, "polling paused")
            return 0
        for state in claimed:
            task = asyncio.create_task(self._poll_claimed(state, Claim(now, lease)),
                                       name=f"poll {state.url}")
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)
        if self.unrecorded:
            await self._hand_back()
        return len(claimed)

    async def _poll_claimed(self, state: FeedState, claim: Claim) -> PollReport:
        report = await self.poll_feed(state)
        if not report.recorded:
            self.unrecorded[state.url] = claim
        return report

    async def _hand_back(self) -> None:
        """Make the feeds whose polls the store could not record due ``min_interval`` after.

        Nothing of such a poll was saved, so its claim would keep the feed for the whole
        ``poll.lease`` after the store is back. Due at once would not do either: a full
        disk may take claims and refuse commits, and the same feeds would be fetched at
        every tick while it lasts; ``poll.min_interval`` is the most often a feed is ever
        polled. Runs on the poll job's ticks, once a claim went through (the store
        answers); ``release_claim`` leaves alone a claim taken since, by any instance.
        """
        assert self.store is not None
        now, gap = self.clock(), self.settings.poll.min_interval
        for url, claim in list(self.unrecorded.items()):
            if now < claim.until and claim.at + gap < claim.until:   # else nothing to gain
                try:
                    await self.store.release_claim(url, claim.at, claim.lease, claim.at + gap)
                except StoreError as e:
                    logger.debug("claim on {} not handed back yet: {}", url, e)
                    return
            if self.unrecorded.get(url) is claim:   # not polled and lost again meanwhile
                del self.unrecorded[url]

    async def _restore_schedule(self) -> None:
        """Notice a store that lost its data, and register again the feeds it lost.

        The schedule is written at start and on a reload only: a Redis that came back
        empty would answer every claim with nothing, and the daemon would poll nothing
        again, healthy by every other sign, until a SIGHUP. So every poll tick, before
        its claim, reads ``Store.epoch`` and asks ``register_missing`` (one ``GET`` and
        one count when nothing is missing: two round trips per ``poll.tick``), and the
        feeds lost are claimed in the same tick; the maintenance job checks too.

        Noticed but not registered again (a Redis back empty that refuses writes: a
        read-only replica, ``maxmemory``, ``min-replicas-to-write``), the loss is held in
        ``lost_at``: ``/healthz`` and the status line say so, an ERROR says why (again
        every minute while it lasts), and each tick tries again. The one warning naming
        the loss comes once the feeds are registered again. Any other store failure
        here fails the claims too, which say so; this check only waits for the next tick.
        """
        assert self.store is not None and self.ingestor is not None
        async with self._restoring:
            try:
                epoch = await self.store.epoch()
            except StoreError as e:
                logger.debug("store epoch not read: {}", e)
                return
            if epoch != self.epoch:
                self.epoch = epoch
                self.ingestor.store_lost()
                self.lost_at = self.lost_at or self.clock()
            try:
                added = await self.store.register_missing(list(self.feeds), self.clock())
            except StoreError as e:
                if self.lost_at is None:
                    logger.debug("feed schedule not checked: {}", e)
                    return
                first = not self.relisting.down
                self.relisting.failed(e, "it lost its data and its feeds are not "
                                         "registered again yet: nothing is polled")
                if first:
                    await self._status()
                return
            if self.lost_at is not None:
                self.lost_at = None
                if self.relisting.down:
                    self.relisting.recovered("the feeds it lost are registered again")
                    await self._status()
                logger.warning("the store lost its data (a Redis restarted without "
                               "persistence, flushed, evicted or failed over to an empty "
                               "replica?): the seen articles, stories and queued alerts it "
                               "held are gone, so articles still in the feeds may alert "
                               "again; {}",
                               f"{added} feed(s) re-registered, due now" if added
                               else "its feed schedule is whole again")
            elif not added:
                return
            elif added == len(self.feeds):
                logger.warning("the store lost the feed schedule (a Redis restarted without "
                               "persistence, flushed, evicted or failed over to an empty "
                               "replica?): {} feed(s) re-registered, due now", added)
            else:
                logger.warning("the store's feed schedule lacked {} of {} feeds (lost, or "
                               "unlisted by an instance with another feed list): "
                               "re-registered, due now", added, len(self.feeds))

    async def deliver(self) -> DeliveryStats:
        """One delivery pass over what is due now (nothing when no sink is configured)."""
        if self.deliverer is None:
            return DeliveryStats()
        return await self.deliverer.deliver_due(self.clock())

    async def maintenance(self) -> None:
        assert self.ingestor is not None
        await self._restore_schedule()
        now = self.clock()
        try:
            if await self.ingestor.flush_updates(now):
                self.wake_delivery.set()
            await self.ingestor.expire(now)
        except StoreError as e:
            self.records.failed(e, "story expiry and held updates wait")
        await self._status()

    async def _status(self) -> None:
        depth = 0
        if self.store is not None:
            with contextlib.suppress(StoreError):
                per_sink = await self.store.outbox_depth()
                depth = sum(per_sink.values())
                for sink in (self.deliverer.sinks if self.deliverer else {}):
                    self.metrics.outbox_depth.labels(sink).set(per_sink.get(sink, 0))
        self.metrics.feeds_failing.set(len(self.failing))
        down = ("store lost its data, feeds not registered again yet: " if self.lost_at
                else "store unavailable, polling paused: " if not self.store_ok
                else "store refusing writes, polls not recorded: " if self.records.down
                else "")
        self.notifier.status(f"{down}{len(self.feeds)} feeds, {len(self.failing)} failing, "
                             f"{len(self.inflight)} polling, outbox {depth}")

    # -- reload ------------------------------------------------------------------
    def reload_rules(self) -> bool:
        """Swap in the rule files as they are now; keep the old set if they are broken."""
        assert self.ingestor is not None
        sig = _rule_files_signature(self.settings.rules.paths)
        try:
            rules = load_rules(self.settings.rules.paths)
        except RuleError as e:
            self.rules_sig = sig
            logger.error("rule change rejected, keeping the last good rules:\n{}", e)
            return False
        self.rules = self.ingestor.rules = rules
        self.rules_sig = sig
        logger.info("rules reloaded: {} rules", len(rules))
        _warn_if_idle(rules)
        return True

    async def watch_rules(self) -> None:
        if _rule_files_signature(self.settings.rules.paths) != self.rules_sig:
            self.reload_rules()

    async def reload(self) -> None:
        """SIGHUP: config, feeds, rules. Settings that need a restart say so."""
        assert self.store is not None
        self.notifier.reloading()
        try:
            fresh = load_settings(
                Path(self.settings.source) if self.settings.source not in (None, "<defaults>")
                else None, search=False)
            feeds = load_feeds(fresh)
        except ConfigError as e:
            logger.error("reload rejected, keeping the running config:\n{}", e)
            self.notifier.ready()
            return
        later = restart_needed(self.settings, fresh)
        if later:
            logger.warning("changed, but in effect only after a restart: {}", ", ".join(later))
        self.settings = fresh
        added = set(feeds) - set(self.feeds)
        removed = set(self.feeds) - set(feeds)
        self.feeds = feeds
        if self.push is not None:
            try:
                await self.push.forget(removed)
            except StoreError as e:
                logger.error("websub: could not drop removed feeds' subscriptions: {}", e)
        try:
            await self.store.sync_feeds(list(feeds), self.clock())
        except StoreError as e:
            logger.error("could not register the feed list: {}", e)
        logger.info("config reloaded: {} feeds (+{} -{})", len(feeds), len(added), len(removed))
        self.reload_rules()
        self.notifier.ready()

    # -- entry points --------------------------------------------------------------
    async def run_once(self) -> RunSummary:
        """Poll every listed feed once, deliver, return (for cron, debugging and tests)."""
        assert self.store is not None
        summary = RunSummary(feeds=len(self.feeds))
        states = []
        for url in self.feeds:
            states.append(await self.store.get_feed_state(url) or FeedState(url=url))
        sem = asyncio.Semaphore(self.settings.poll.concurrency)

        async def one(st: FeedState) -> PollReport:
            async with sem:
                return await self.poll_feed(st)

        summary.reports = list(await asyncio.gather(*(one(s) for s in states)))
        summary.failed = sum(r.status == "error" for r in summary.reports)
        summary.new = sum(r.new for r in summary.reports)
        summary.alerts = sum(r.alerts for r in summary.reports)
        stats = await self.deliver()
        summary.delivered, summary.delivery_failures = stats.sent, stats.failed
        return summary

    async def _delivery_loop(self) -> None:
        """One delivery pass whenever an alert is queued, and at least once a second.

        The wake-up is cleared *before* the pass: an alert committed while the pass
        runs (it read the outbox at its start) sets it again, and the next pass starts
        at once instead of a second later.
        """
        while True:
            self.wake_delivery.clear()
            try:
                await self.deliver()
            except Exception as e:
                logger.opt(exception=e).error("delivery pass failed: {}", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake_delivery.wait(), timeout=1.0)

    async def _watchdog_loop(self, interval: float) -> None:
        """WATCHDOG=1 while the loop and the scheduler run, whether or not the store answers.

        The watchdog is for a hung process, which only a restart cures. A store outage
        is not one: polling pauses and resumes by itself once the store answers, with
        the story index and the held alerts still in memory, while a restart would only
        fail to open the store and go round every ``RestartSec``. So an outage goes to
        the status line (``systemctl status``), the log and ``/healthz``, and the
        watchdog is still fed.
        """
        assert self.store is not None
        answered = True
        while True:
            if self.scheduler is None or self.scheduler.running:
                self.notifier.watchdog()
            answering = await self.store.ping()
            if answering != answered:   # the status line follows at once, not at maintenance
                answered = self.store_ok = answering
                await self._status()
            await asyncio.sleep(interval)

    async def run(self) -> None:
        """The daemon's main loop, until SIGTERM/SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        st = self.settings
        sched = AsyncIOScheduler(event_loop=loop, timezone="UTC")
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        sched.add_job(self.poll_due, "interval", seconds=st.poll.tick.total_seconds(),
                      id="poll", next_run_time=datetime.now().astimezone(), **common)
        sched.add_job(self.maintenance, "interval", seconds=60, id="maintenance", **common)
        if st.rules.watch:
            sched.add_job(self.watch_rules, "interval",
                          seconds=st.rules.watch_interval.total_seconds(), id="rules", **common)
        sched.start()
        self.scheduler = sched
        await self.start_metrics()
        await self.start_push()
        if self.push is not None:
            # reads every feed's state: leases run for days, ten minutes is early enough
            sched.add_job(self.renew_push, "interval", seconds=600, id="websub", **common)
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(self._delivery_loop(), name="delivery")]
        wd = self.notifier.watchdog_interval()
        if wd:
            tasks.append(asyncio.create_task(self._watchdog_loop(wd), name="watchdog"))
        self.notifier.ready(f"{len(self.feeds)} feeds, {len(self.rules or ())} rules")
        logger.info("polling {} feeds every {} (tick {})", len(self.feeds), st.poll.interval,
                    st.poll.tick)
        await self.stopping.wait()
        logger.info("stopping: draining {} poll(s)", len(self.inflight))
        self.notifier.stopping()
        sched.shutdown(wait=False)
        if self.inflight:
            _, pending = await asyncio.wait(set(self.inflight), timeout=DRAIN_SECONDS)
            for poll in pending:
                poll.cancel()  # its feed's claim expires and it is polled again later
        for t in tasks:
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(StoreError, TimeoutError):
            await asyncio.wait_for(self.deliver(), timeout=2.0)
        logger.info("stopped")

