"""Prometheus metrics and the health check, served on a loopback port.

One registry per service instance (not the global default), so tests and
embedded uses never see each other's counts. The HTTP side is a few lines on
``asyncio.start_server``: two fixed read-only paths do not justify a web framework.

=========================================  =================================================
metric                                     meaning
=========================================  =================================================
news_monitor_polls_total{outcome}          feed polls: ok, not_modified, unchanged, error
news_monitor_poll_errors_total{kind}       failed polls by error kind (deadline, http_5xx ...)
news_monitor_articles_total{outcome}       parsed entries: new, duplicate
news_monitor_rule_hits_total{rule}         new articles matched, per rule
news_monitor_stories_total                 stories opened
news_monitor_alerts_total{event}           alerts queued: story.new, story.updated
news_monitor_alerts_throttled_total{rule}  alerts a rule's ``throttle`` held back
news_monitor_deliveries_total{sink,outcome} deliveries: ok, error
news_monitor_outbox_depth{sink}            alerts waiting per sink
news_monitor_feeds / _feeds_failing        listed feeds / feeds past ``failing_after``
news_monitor_alert_latency_seconds         article published -> alert queued
=========================================  =================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

HealthCheck = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "news_monitor_"
        self.polls = Counter(p + "polls", "Feed polls by outcome", ["outcome"], registry=r)
        self.poll_errors = Counter(p + "poll_errors", "Failed polls by kind", ["kind"],
                                   registry=r)
        self.articles = Counter(p + "articles", "Parsed entries by outcome", ["outcome"],
                                registry=r)
        self.rule_hits = Counter(p + "rule_hits", "New articles matched per rule", ["rule"],
                                 registry=r)
        self.stories = Counter(p + "stories", "Stories opened", registry=r)
        self.splits = Counter(p + "story_splits", "Stories cut in two by story repair",
                              registry=r)
        self.alerts = Counter(p + "alerts", "Alerts queued by event", ["event"], registry=r)
        self.throttled = Counter(p + "alerts_throttled", "Alerts a rule's throttle held back",
                                 ["rule"], registry=r)
        self.deliveries = Counter(p + "deliveries", "Deliveries by sink and outcome",
                                  ["sink", "outcome"], registry=r)
        self.outbox_depth = Gauge(p + "outbox_depth", "Alerts waiting per sink", ["sink"],
                                  registry=r)
        self.feeds = Gauge(p + "feeds", "Listed feeds", registry=r)
        self.feeds_failing = Gauge(p + "feeds_failing", "Feeds failing", registry=r)
        self.alert_latency = Histogram(
            p + "alert_latency_seconds", "From an article's published time to its alert",
            buckets=(30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400), registry=r)

    def delivery(self, sink: str, ok: bool) -> None:
        self.deliveries.labels(sink, "ok" if ok else "error").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``GET /metrics`` (Prometheus text) and ``GET /healthz`` (200 ready / 503 not)."""

    def __init__(self, metrics: Metrics, health: HealthCheck) -> None:
        self.metrics = metrics
        self.health = health
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int | None:
        if self.server is None or not self.server.sockets:
            return None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._handle, host, port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self.metrics.render()
            elif path in ("/healthz", "/health"):
                ok, detail = await self.health()
                status = "200 OK" if ok else "503 Service Unavailable"
                ctype, body = "application/json", json.dumps(detail).encode() + b"\n"
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            writer.write(head + (b"" if parts and parts[0] == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeError) as e:
            logger.debug("metrics request dropped: {}", e)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
