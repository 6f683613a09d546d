"""WebSub I/O: the callback HTTP server, (re)subscription requests, the subscription book.

The protocol decisions live in ``monitor.fetch.websub`` (pure); this module moves
bytes. The callback server speaks HTTP/1.1 through ``h11`` (already under httpx),
one request per connection, bodies capped at ``max_bytes``. It usually sits on
loopback behind the operator's reverse proxy, which owns the public
``websub.callback_url`` and TLS.

Pushed bodies are handed to ``on_content(feed_url, body, content_type)`` in a
background task, so the hub gets its 2xx at once and a slow parse never makes it
retry. Subscriptions are kept in the store with each feed's state, so a restart
neither re-subscribes every feed nor forgets a lease, and several instances on one
shared store answer for each other's subscriptions. An old ``websub.json`` from
the state directory is moved into the store once (``migrate_file``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import h11
from loguru import logger

from monitor.errors import FetchError
from monitor.fetch import websub
from monitor.fetch.http import Fetcher
from monitor.fetch.websub import Subscription
from monitor.models import FeedState
from monitor.store import Store

ContentHandler = Callable[[str, bytes, "str | None"], Awaitable[None]]
READ_TIMEOUT = 30.0


@dataclass(frozen=True)
class PushConfig:
    """``websub:`` in the config, as plain values."""

    callback_url: str
    secret: str
    host: str = "127.0.0.1"
    port: int = 0
    lease: timedelta = timedelta(days=7)
    renew_before: timedelta = timedelta(days=1)
    retry_after: timedelta = timedelta(hours=1)
    max_bytes: int = 10 * 1024 * 1024


class SubscriptionBook:
    """Subscriptions by feed URL, kept in each feed's stored state (``FeedState.push_*``).

    In the store, not in a file of one instance: with several instances on a shared
    (Redis) store, the hub's verification GET or its push may reach any of them, and
    each must find the subscription another one asked for. Tokens are not stored:
    they are HMACs of the feed URL, so a callback's token is looked up among the
    listed feeds (``feeds()``). ``cached`` holds what this instance last read or wrote,
    for synchronous checks only; every decision that matters reads the store.

    Writes are read-modify-write of the feed's state, changing only the push fields.
    A poll saving the same feed meanwhile can lose one of the two writes; the poll
    side re-reads the push fields just before it saves (``Service._save``), which
    leaves a window of one store round trip.
    """

    def __init__(self, store: Store, secret: str,
                 feeds: Callable[[], Collection[str]]) -> None:
        self.store = store
        self.secret = secret
        self.feeds = feeds
        self.cached: dict[str, Subscription] = {}
        self._tokens: dict[str, str] = {}  # token -> feed URL

    async def get(self, feed: str) -> Subscription | None:
        state = await self.store.get_feed_state(feed)
        sub = websub.from_state(state, self.secret) if state is not None else None
        self._remember(feed, sub)
        return sub

    async def put(self, sub: Subscription) -> None:
        state = await self.store.get_feed_state(sub.feed) or FeedState(url=sub.feed)
        # not rescheduled: a poll of this feed may hold its claim right now (a hub is
        # asked while the poll that found it runs, and may answer before it ends)
        await self.store.save_feed_state(websub.to_state(state, sub), reschedule=False)
        self._remember(sub.feed, sub)

    async def remove(self, feed: str) -> bool:
        """Drop ``feed``'s subscription; True when there was one."""
        self.cached.pop(feed, None)
        state = await self.store.get_feed_state(feed)
        if state is None or state.push_hub is None:
            return False
        await self.store.save_feed_state(websub.to_state(state, None), reschedule=False)
        return True

    async def all(self) -> list[Subscription]:
        """Every listed feed's subscription."""
        out = []
        for state in await self.store.all_feed_states():
            sub = websub.from_state(state, self.secret)
            self._remember(state.url, sub)
            if sub is not None:
                out.append(sub)
        return out

    async def by_token(self, token: str) -> Subscription | None:
        listed = self.feeds()
        feed = self._tokens.get(token)
        if feed is None:
            self._tokens = {websub.callback_token(self.secret, f): f for f in listed}
            feed = self._tokens.get(token)
        if feed is None or feed not in listed:  # a removed feed's callback is dead
            return None
        return await self.get(feed)

    def _remember(self, feed: str, sub: Subscription | None) -> None:
        if sub is None:
            self.cached.pop(feed, None)
        else:
            self.cached[feed] = sub


async def migrate_file(path: Path, book: SubscriptionBook) -> int:
    """Move subscriptions from an old ``websub.json`` into the store, once.

    Feeds whose stored state already has a subscription keep it (the store is newer).
    The file is renamed ``websub.json.migrated`` afterwards, so this runs only once;
    an unreadable file is left in place with a warning. Returns subscriptions moved.
    """
    try:
        # a small file read once at start: not worth a thread
        data = json.loads(path.read_text("utf-8"))  # noqa: ASYNC240
        subs = [Subscription.from_json(d) for d in data]
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.warning("websub: not migrating unreadable {}: {}", path, e)
        return 0
    moved = 0
    for sub in subs:
        if await book.get(sub.feed) is None:
            await book.put(sub)
            moved += 1
    os.replace(path, path.with_name(path.name + ".migrated"))
    logger.info("websub: moved {} subscription(s) from {} into the store", moved, path)
    return moved


class PushReceiver:
    """Subscribes feeds that advertise a hub and takes what their hubs push."""

    def __init__(self, config: PushConfig, fetcher: Fetcher, book: SubscriptionBook,
                 on_content: ContentHandler, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.fetcher = fetcher
        self.book = book
        self.on_content = on_content
        self.clock = clock
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.leaving: dict[str, Subscription] = {}  # token -> what we asked a hub to end
        self._base_path = urlsplit(config.callback_url).path.rstrip("/")

    # -- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int | None:
        if self.server is None or not self.server.sockets:
            return None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.config.host, self.config.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=5.0)

    # -- subscriptions ---------------------------------------------------------------
    def active(self, feed: str) -> bool:
        """As this instance last saw it (the daemon decides from the polled state)."""
        return websub.is_active(self.book.cached.get(feed), self.clock())

    async def offer(self, feed: str, hub: str, topic: str) -> None:
        """A poll saw ``hub``: subscribe unless we already are (or were refused lately)."""
        sub = await self.book.get(feed)
        if sub is not None and sub.hub == hub and sub.topic == topic and not self._due(sub):
            return
        await self._subscribe(feed, hub, topic)

    async def forget(self, feeds: Iterable[str]) -> int:
        """End these feeds' subscriptions (removed from the feed list); returns how many.

        Each hub is asked to unsubscribe, and its check of that intent is confirmed
        (``leaving``, in memory: the check comes within seconds, and if this process is
        gone by then the lease simply lapses). The callback answers 410 to their
        pushes from now on (tokens are looked up among listed feeds only).
        """
        gone: list[Subscription] = []
        for feed in feeds:
            sub = await self.book.get(feed)
            if await self.book.remove(feed) and sub is not None:
                gone.append(sub)
        for sub in gone:
            await self._unsubscribe(sub)
        if gone:
            logger.info("websub: ended {} subscription(s) of removed feeds", len(gone))
        return len(gone)

    async def _unsubscribe(self, sub: Subscription) -> None:
        cfg = self.config
        self.leaving[sub.token] = sub
        form = websub.subscribe_form(sub, websub.callback_url(cfg.callback_url, sub.token),
                                     cfg.secret, cfg.lease, mode="unsubscribe")
        with logger.contextualize(feed=sub.feed):
            try:
                status = await self.fetcher.post_form(sub.hub, form)
            except FetchError as e:
                logger.warning("websub: unsubscription request to {} failed (the lease will "
                               "lapse): {}: {}", sub.hub, e.kind, e.detail)
                self.leaving.pop(sub.token, None)
                return
            if not 200 <= status < 300:
                logger.warning("websub: hub {} refused to unsubscribe (HTTP {}); the lease "
                               "will lapse", sub.hub, status)
                self.leaving.pop(sub.token, None)

    async def renew_due(self) -> int:
        """Re-subscribe whatever is near its lease end or was never verified; returns count."""
        due = [s for s in await self.book.all() if self._due(s)]
        for sub in due:
            await self._subscribe(sub.feed, sub.hub, sub.topic)
        return len(due)

    def _due(self, sub: Subscription) -> bool:
        return websub.renewal_due(sub, self.clock(), renew_before=self.config.renew_before,
                                  retry_after=self.config.retry_after)

    async def _subscribe(self, feed: str, hub: str, topic: str) -> None:
        cfg = self.config
        token = websub.callback_token(cfg.secret, feed)
        old = await self.book.get(feed)
        keep_lease = old is not None and old.state == "active" and old.hub == hub \
            and old.topic == topic
        sub = Subscription(feed=feed, hub=hub, topic=topic, token=token,
                           state="active" if keep_lease else "requested",
                           requested_at=self.clock(),
                           lease_until=old.lease_until if keep_lease and old else None)
        await self.book.put(sub)  # before the request: the hub may call back before it answers
        form = websub.subscribe_form(sub, websub.callback_url(cfg.callback_url, token),
                                     cfg.secret, cfg.lease)
        with logger.contextualize(feed=feed):
            try:
                status = await self.fetcher.post_form(hub, form)
            except FetchError as e:
                logger.warning("websub: subscription request to {} failed: {}: {}", hub,
                               e.kind, e.detail)
                return
            if 200 <= status < 300:
                logger.info("websub: asked {} for pushes of {} (HTTP {})", hub, topic, status)
            else:
                logger.warning("websub: hub {} refused the subscription: HTTP {}", hub, status)

    # -- the callback server ---------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    request, body = await self._read(conn, reader)
                status, payload = await self._dispatch(request, body)
            except _TooLarge:
                status, payload = 413, b"too large\n"
            except (h11.RemoteProtocolError, TimeoutError, ValueError):
                status, payload = 400, b"bad request\n"
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                headers = [("content-type", "text/plain; charset=utf-8"),
                           ("content-length", str(len(payload))), ("connection", "close")]
                data = conn.send(h11.Response(status_code=status, headers=headers)) or b""
                data += conn.send(h11.Data(data=payload)) or b""
                data += conn.send(h11.EndOfMessage()) or b""
                writer.write(data)
                await writer.drain()
        except (ConnectionError, h11.LocalProtocolError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _read(self, conn: h11.Connection,
                    reader: asyncio.StreamReader) -> tuple[h11.Request, bytes]:
        request: h11.Request | None = None
        parts: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(64 * 1024))
                continue
            if isinstance(event, h11.Request):
                request = event
                length = dict(event.headers).get(b"content-length", b"")
                if length.isdigit() and int(length) > self.config.max_bytes:
                    raise _TooLarge
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.config.max_bytes:
                    raise _TooLarge
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, b"".join(parts)
            elif isinstance(event, h11.ConnectionClosed):
                raise ValueError("connection closed mid-request")

    async def _dispatch(self, request: h11.Request, body: bytes) -> tuple[int, bytes]:
        target = request.target.decode("latin-1")
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        prefix = self._base_path + "/"
        token = path[len(prefix):] if path.startswith(prefix) else ""
        sub = await self.book.by_token(token) if token and "/" not in token else None
        method = request.method.upper()
        if method == b"GET":
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            leaving = self.leaving.get(token) if sub is None else None
            reply = websub.verify_intent(params, sub, self.clock(), leaving)
            if leaving is not None and reply.status == 200:
                self.leaving.pop(token, None)
                logger.info("websub: {} confirmed the end of the subscription to {}",
                            leaving.hub, leaving.topic)
            if reply.subscription is not None and reply.subscription != sub:
                await self.book.put(reply.subscription)
                new = reply.subscription
                with logger.contextualize(feed=new.feed):
                    if new.state == "active":
                        logger.info("websub: {} verified the subscription, lease until {}",
                                    new.hub, new.lease_until)
                    elif new.state == "denied":
                        logger.warning("websub: {} denied the subscription: {}", new.hub,
                                       new.detail)
            return reply.status, reply.body
        if method == b"POST":
            if sub is None:  # 410: the spec lets the hub drop a subscription on it
                return 410, b"no such subscription\n"
            headers = {k.lower(): v for k, v in request.headers}
            signature = headers.get(b"x-hub-signature", b"").decode("latin-1") or None
            key = websub.hub_secret(self.config.secret, sub.topic)
            if not websub.verify_signature(signature, body, key):
                with logger.contextualize(feed=sub.feed):
                    logger.warning("websub: dropped a push with a {} signature",
                                   "wrong" if signature else "missing")
                return 202, b""  # the spec's 2xx either way: a forger learns nothing
            ctype = headers.get(b"content-type", b"").decode("latin-1") or None
            task = asyncio.create_task(self._deliver(sub.feed, body, ctype),
                                       name=f"push {sub.feed}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return 202, b""
        return 405, b"GET or POST\n"

    async def _deliver(self, feed: str, body: bytes, content_type: str | None) -> None:
        try:
            await self.on_content(feed, body, content_type)
        except Exception as e:  # one bad push must not take the server down
            logger.opt(exception=e).error("websub: pushed content for {} failed: {}", feed, e)


class _TooLarge(Exception):
    pass

