"""WebSub: the pure protocol decisions (tables), then subscriber and daemon against a loopback hub.

The fake hub is the test itself: ``FeedServer`` records the subscription POST at
``/hub``; the test then does what a hub does, over real HTTP to our callback
server: the intent-verification GET, then signed content POSTs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import anyio
import httpx
import pytest

from monitor.config import load_settings
from monitor.fetch import websub
from monitor.fetch.http import Fetcher, FetchLimits
from monitor.fetch.push import PushConfig, PushReceiver, SubscriptionBook, migrate_file
from monitor.fetch.websub import Subscription
from monitor.service import Service
from monitor.store.sqlite import SQLiteStore
from tests.support.feed_server import LOOPBACK, FeedServer
from tests.support.redis_server import free_port
from tests.test_e2e import rss, seed_item

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "correct horse battery staple"
TOPIC = "https://example.org/feed.xml"


def _sub(**kw: object) -> Subscription:
    base = Subscription(feed=TOPIC, hub="https://hub.example/", topic=TOPIC,
                        token=websub.callback_token(SECRET, TOPIC), state="requested",
                        requested_at=T0)
    return replace(base, **kw)  # type: ignore[arg-type]


# -- pure ---------------------------------------------------------------------------

@pytest.mark.parametrize("algo", ["sha1", "sha256", "sha384", "sha512"])
def test_signature_verifies_for_each_algorithm(algo: str) -> None:
    body = b"<rss>pushed</rss>"
    header = websub.sign(body, "k3y", algo)
    assert websub.verify_signature(header, body, "k3y")
    assert websub.verify_signature(header.upper().replace(algo.upper(), algo), body, "k3y")
    assert not websub.verify_signature(header, body + b" ", "k3y")
    assert not websub.verify_signature(header, body, "other key")


@pytest.mark.parametrize("header", [None, "", "sha256", "md5=abc", "sha256=", "sha256=zz"])
def test_missing_or_malformed_signature_fails(header: str | None) -> None:
    assert not websub.verify_signature(header, b"body", "k3y")


def test_tokens_and_hub_secrets_are_stable_and_distinct() -> None:
    a = websub.callback_token(SECRET, "https://a.example/feed")
    assert a == websub.callback_token(SECRET, "https://a.example/feed")
    assert a != websub.callback_token(SECRET, "https://b.example/feed")
    assert a != websub.callback_token("another secret!!", "https://a.example/feed")
    assert "/" not in a and "?" not in a
    s1, s2 = websub.hub_secret(SECRET, "t1"), websub.hub_secret(SECRET, "t2")
    assert s1 != s2
    assert SECRET not in s1
    assert len(s1.encode()) < 200


def test_intent_echoes_the_challenge_of_our_own_subscription() -> None:
    params = {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.challenge": "c-123",
              "hub.lease_seconds": "600"}
    reply = websub.verify_intent(params, _sub(), T0)
    assert reply.status == 200
    assert reply.body == b"c-123"
    assert reply.subscription is not None
    assert reply.subscription.state == "active"
    assert reply.subscription.lease_until == T0 + timedelta(seconds=600)


@pytest.mark.parametrize(("params", "status"), [
    ({"hub.mode": "subscribe", "hub.topic": "https://evil.example/", "hub.challenge": "x"}, 404),
    ({"hub.mode": "subscribe", "hub.topic": TOPIC}, 400),
    ({"hub.mode": "unsubscribe", "hub.topic": TOPIC, "hub.challenge": "x"}, 404),
    ({"hub.mode": "bogus", "hub.topic": TOPIC, "hub.challenge": "x"}, 400),
])
def test_intent_refused(params: dict[str, str], status: int) -> None:
    reply = websub.verify_intent(params, _sub(), T0)
    assert reply.status == status
    assert reply.body != b"x"
    assert reply.subscription == _sub()


def test_intent_for_an_unknown_callback_is_404() -> None:
    reply = websub.verify_intent({"hub.mode": "subscribe", "hub.topic": TOPIC,
                                  "hub.challenge": "x"}, None, T0)
    assert reply.status == 404


def test_only_an_unsubscription_we_asked_for_is_confirmed() -> None:
    leaving = _sub(state="active")
    ask = {"hub.mode": "unsubscribe", "hub.topic": TOPIC, "hub.challenge": "bye"}
    assert websub.verify_intent(ask, None, T0, leaving).body == b"bye"
    assert websub.verify_intent(ask, None, T0).status == 404  # nothing leaving
    assert websub.verify_intent(ask, _sub(state="active"), T0).status == 404  # still wanted
    other = {**ask, "hub.topic": "https://other.example/"}
    assert websub.verify_intent(other, None, T0, leaving).status == 404
    # a subscription check never passes for a leaving topic
    sub_ask = {**ask, "hub.mode": "subscribe"}
    assert websub.verify_intent(sub_ask, None, T0, leaving).status == 404


@pytest.mark.parametrize(("header", "expected"), [
    (None, {}),
    ("", {}),
    ('<https://hub.example/>; rel="hub", <https://pub.example/feed>; rel="self"',
     {"hub": "https://hub.example/", "self": "https://pub.example/feed"}),
    ("<https://hub.example/>; rel=hub", {"hub": "https://hub.example/"}),
    ('<https://a.example/>; title="x, y"; rel="hub self"',
     {"hub": "https://a.example/", "self": "https://a.example/"}),
    ('<https://first.example/>; rel="hub", <https://second.example/>; rel="hub"',
     {"hub": "https://first.example/"}),
    ('<https://x.example/>; rel="alternate"; type="application/rss+xml"',
     {"alternate": "https://x.example/"}),
    ("garbage without brackets; rel=hub", {}),
])
def test_link_header_relations(header: str | None, expected: dict[str, str]) -> None:
    assert websub.link_relations(header) == expected


def test_denial_is_recorded() -> None:
    reply = websub.verify_intent({"hub.mode": "denied", "hub.topic": TOPIC,
                                  "hub.reason": "not allowed"}, _sub(), T0)
    assert reply.subscription is not None
    assert reply.subscription.state == "denied"
    assert reply.subscription.detail == "not allowed"


def test_absurd_lease_is_capped() -> None:
    reply = websub.verify_intent({"hub.mode": "subscribe", "hub.topic": TOPIC,
                                  "hub.challenge": "x", "hub.lease_seconds": "99999999999"},
                                 _sub(), T0)
    assert reply.subscription is not None and reply.subscription.lease_until is not None
    assert reply.subscription.lease_until - T0 == websub.MAX_LEASE


DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(("sub", "now", "due"), [
    (_sub(state="active", lease_until=T0 + 10 * DAY), T0 + 8 * DAY, False),
    (_sub(state="active", lease_until=T0 + 10 * DAY), T0 + 9 * DAY, True),
    # a short lease renews at half its length, not a day before (which would be now)
    (_sub(state="active", lease_until=T0 + 4 * HOUR), T0 + HOUR, False),
    (_sub(state="active", lease_until=T0 + 4 * HOUR), T0 + 2 * HOUR, True),
    (_sub(state="active", lease_until=None), T0 + 400 * DAY, False),
    (_sub(state="requested"), T0 + 30 * timedelta(minutes=1), False),
    (_sub(state="requested"), T0 + HOUR, True),
    (_sub(state="denied"), T0 + 23 * HOUR, False),
    (_sub(state="denied"), T0 + DAY, True),
])
def test_renewal_schedule(sub: Subscription, now: datetime, due: bool) -> None:
    assert websub.renewal_due(sub, now, renew_before=DAY, retry_after=HOUR) is due


@pytest.mark.anyio
async def test_subscriptions_live_in_the_feed_state_and_websub_json_moves_in_once(
        tmp_path: Path) -> None:
    other = "https://example.org/other.xml"
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        await store.sync_feeds([TOPIC, other], T0)
        book = SubscriptionBook(store, SECRET, lambda: {TOPIC, other})
        sub = _sub(state="active", lease_until=T0 + DAY)
        await book.put(sub)
        again = SubscriptionBook(store, SECRET, lambda: {TOPIC, other})
        assert await again.get(TOPIC) == sub
        assert await again.by_token(sub.token) == sub
        assert await again.by_token("nope") is None
        stored = await store.get_feed_state(TOPIC)
        assert stored is not None and stored.push_state == "active"
        assert stored.push_lease_until == T0 + DAY

        # a file from before: what the store lacks moves in, the store's own wins
        legacy = tmp_path / "websub.json"
        older = _sub(feed=other, token=websub.callback_token(SECRET, other), state="denied",
                     detail="quota")
        stale = _sub(state="requested")
        legacy.write_text(json.dumps([older.to_json(), stale.to_json()]))
        assert await migrate_file(legacy, again) == 1
        assert not legacy.exists() and (tmp_path / "websub.json.migrated").exists()
        assert await again.get(other) == older
        assert await again.get(TOPIC) == sub
        assert await migrate_file(legacy, again) == 0  # once
        assert sorted(s.feed for s in await again.all()) == sorted([TOPIC, other])

        # a feed that left the list answers nothing, whatever is stored
        shrunk = SubscriptionBook(store, SECRET, lambda: {other})
        assert await shrunk.by_token(sub.token) is None
        assert await shrunk.remove(TOPIC) is True
        assert await shrunk.remove(TOPIC) is False
        assert await again.get(TOPIC) is None

        (tmp_path / "broken.json").write_text("{not json")
        assert await migrate_file(tmp_path / "broken.json", again) == 0
        assert (tmp_path / "broken.json").exists()
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_subscription_written_during_a_poll_leaves_the_claim_alone(
        tmp_path: Path) -> None:
    # The poll that finds a hub asks it at once, and the hub's check may come before
    # that poll ends: neither write may hand the feed to the next tick meanwhile.
    async with SQLiteStore(tmp_path / "state.db") as store:
        await store.sync_feeds([TOPIC], T0)
        assert [s.url for s in await store.claim_due(T0, 300, 10)] == [TOPIC]
        book = SubscriptionBook(store, SECRET, lambda: {TOPIC})
        await book.put(_sub())
        await book.put(_sub(state="active", lease_until=T0 + DAY))
        assert await store.claim_due(T0 + timedelta(seconds=1), 300, 10) == []
        assert await book.remove(TOPIC) is True
        assert await store.claim_due(T0 + timedelta(seconds=2), 300, 10) == []


# -- the subscriber against a loopback hub --------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def hub() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        srv.set("/hub", status=202)
        yield srv


def _form(req_body: bytes) -> dict[str, str]:
    return dict(parse_qsl(req_body.decode()))


class Harness:
    def __init__(self, receiver: PushReceiver, pushed: list[tuple[str, bytes, str | None]],
                 got: anyio.Event, store: SQLiteStore, feeds: set[str]) -> None:
        self.receiver = receiver
        self.pushed = pushed
        self.got = got
        self.store = store
        self.feeds = feeds

    async def close(self) -> None:
        await self.receiver.close()
        await self.store.close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.receiver.port}/websub"


async def _harness(tmp_path: Path, fetcher: Fetcher, clock: Clock) -> Harness:
    pushed: list[tuple[str, bytes, str | None]] = []
    got = anyio.Event()

    async def on_content(feed: str, body: bytes, ctype: str | None) -> None:
        pushed.append((feed, body, ctype))
        got.set()

    config = PushConfig(callback_url="http://placeholder/websub", secret=SECRET,
                        lease=timedelta(days=2), renew_before=timedelta(hours=6),
                        max_bytes=64 * 1024)
    feeds = {"http://feeds.example/world.xml", "http://feeds.example/x.xml"}
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    await store.sync_feeds(sorted(feeds), clock())
    receiver = PushReceiver(config, fetcher, SubscriptionBook(store, SECRET, lambda: feeds),
                            on_content, clock)
    await receiver.start()
    receiver.config = replace(config, callback_url=f"http://127.0.0.1:{receiver.port}/websub")
    return Harness(receiver, pushed, got, store, feeds)


@pytest.mark.anyio
async def test_subscribe_verify_push_and_renew(tmp_path: Path, hub: FeedServer) -> None:
    clock = Clock()
    feed = "http://feeds.example/world.xml"
    limits = FetchLimits(trust_env=False, allow_networks=LOOPBACK, total_timeout=5.0)
    async with Fetcher(limits) as fetcher:
        h = await _harness(tmp_path, fetcher, clock)
        try:
            await h.receiver.offer(feed, hub.url("/hub"), TOPIC)
            posts = hub.requests("/hub")
            assert len(posts) == 1
            assert posts[0].method == "POST"
            form = _form(posts[0].body)
            assert form["hub.mode"] == "subscribe"
            assert form["hub.topic"] == TOPIC
            assert form["hub.lease_seconds"] == str(2 * 24 * 3600)
            assert form["hub.secret"] == websub.hub_secret(SECRET, TOPIC)
            callback = form["hub.callback"]
            assert callback.startswith(h.base + "/")
            assert not h.receiver.active(feed)

            async with httpx.AsyncClient() as client:
                # a stranger verifying another topic on our callback gets nothing
                bad = await client.get(callback, params={
                    "hub.mode": "subscribe", "hub.topic": "https://evil.example/",
                    "hub.challenge": "nope"})
                assert bad.status_code == 404
                ok = await client.get(callback, params={
                    "hub.mode": "subscribe", "hub.topic": TOPIC, "hub.challenge": "ch-42",
                    "hub.lease_seconds": "3600"})
                assert ok.status_code == 200
                assert ok.text == "ch-42"
                assert h.receiver.active(feed)
                stored = await h.store.get_feed_state(feed)
                assert stored is not None and stored.push_state == "active"

                # an offer while active sends nothing new
                await h.receiver.offer(feed, hub.url("/hub"), TOPIC)
                assert hub.hits("/hub") == 1

                body = rss([seed_item(0, "http://feeds.example/a")])
                forged = await client.post(callback, content=body, headers={
                    "X-Hub-Signature": websub.sign(body, "wrong key"),
                    "Content-Type": "application/rss+xml"})
                assert forged.status_code == 202
                unsigned = await client.post(callback, content=body)
                assert unsigned.status_code == 202
                stranger = await client.post(h.base + "/not-a-token", content=body,
                                             headers={"X-Hub-Signature": websub.sign(body, "x")})
                assert stranger.status_code == 410
                huge = await client.post(callback, content=b"x" * (65 * 1024), headers={
                    "X-Hub-Signature": websub.sign(b"x" * (65 * 1024), "x")})
                assert huge.status_code == 413
                assert h.pushed == []

                key = websub.hub_secret(SECRET, TOPIC)
                good = await client.post(callback, content=body, headers={
                    "X-Hub-Signature": websub.sign(body, key),
                    "Content-Type": "application/rss+xml"})
                assert good.status_code == 202
                with anyio.fail_after(5):
                    await h.got.wait()
                assert h.pushed == [(feed, body, "application/rss+xml")]

            # the lease (1 h, as the hub granted) renews at half-life, not before
            clock.now += timedelta(minutes=20)
            assert await h.receiver.renew_due() == 0
            clock.now += timedelta(minutes=11)
            assert await h.receiver.renew_due() == 1
            assert hub.hits("/hub") == 2
            assert _form(hub.requests("/hub")[1].body)["hub.callback"] == callback
            assert h.receiver.active(feed)  # still active while the renewal is verified

            # the feed leaves the feed list: the hub is asked to end it, nothing renews it
            h.feeds.discard(feed)
            assert await h.receiver.forget([feed, "http://never.subscribed/"]) == 1
            assert not h.receiver.active(feed)
            assert hub.hits("/hub") == 3
            bye = _form(hub.requests("/hub")[2].body)
            assert bye == {"hub.mode": "unsubscribe", "hub.topic": TOPIC,
                           "hub.callback": callback}
            async with httpx.AsyncClient() as client:
                # the hub checks that intent: confirmed for this topic only, and once
                wrong = await client.get(callback, params={
                    "hub.mode": "unsubscribe", "hub.topic": "https://other.example/",
                    "hub.challenge": "c1"})
                assert wrong.status_code == 404
                ok = await client.get(callback, params={
                    "hub.mode": "unsubscribe", "hub.topic": TOPIC, "hub.challenge": "c2"})
                assert (ok.status_code, ok.text) == (200, "c2")
                again = await client.get(callback, params={
                    "hub.mode": "unsubscribe", "hub.topic": TOPIC, "hub.challenge": "c3"})
                assert again.status_code == 404
                late = await client.post(callback, content=body, headers={
                    "X-Hub-Signature": websub.sign(body, key)})
            assert late.status_code == 410  # the spec's "subscription deleted"
            assert h.pushed == [(feed, body, "application/rss+xml")]
            clock.now += timedelta(days=30)
            assert await h.receiver.renew_due() == 0
            assert await h.receiver.book.all() == []
        finally:
            await h.close()


@pytest.mark.anyio
async def test_hub_on_a_private_address_is_not_contacted(tmp_path: Path, hub: FeedServer) -> None:
    limits = FetchLimits(trust_env=False, total_timeout=5.0)  # guard on, nothing allowed
    async with Fetcher(limits) as fetcher:
        h = await _harness(tmp_path, fetcher, Clock())
        try:
            await h.receiver.offer("http://feeds.example/x.xml", hub.url("/hub"), TOPIC)
            assert hub.hits("/hub") == 0
            sub = await h.receiver.book.get("http://feeds.example/x.xml")
            assert sub is not None and sub.state == "requested"
        finally:
            await h.close()


@pytest.mark.anyio
async def test_denied_subscription_is_not_active(tmp_path: Path, hub: FeedServer) -> None:
    limits = FetchLimits(trust_env=False, allow_networks=LOOPBACK, total_timeout=5.0)
    async with Fetcher(limits) as fetcher:
        h = await _harness(tmp_path, fetcher, Clock())
        try:
            await h.receiver.offer("http://feeds.example/x.xml", hub.url("/hub"), TOPIC)
            callback = _form(hub.requests("/hub")[0].body)["hub.callback"]
            async with httpx.AsyncClient() as client:
                res = await client.get(callback + "?" + urlencode(
                    {"hub.mode": "denied", "hub.topic": TOPIC, "hub.reason": "quota"}))
            assert res.status_code == 200
            assert not h.receiver.active("http://feeds.example/x.xml")
            sub = await h.receiver.book.get("http://feeds.example/x.xml")
            assert sub is not None and sub.detail == "quota"
        finally:
            await h.close()


# -- the daemon: poll sees the hub, push brings the alert ------------------------------

def _hub_rss(items: list[dict[str, str]], hub: str, self_url: str) -> bytes:
    links = (f'<atom:link rel="hub" href="{hub}"/>'
             f'<atom:link rel="self" href="{self_url}"/>')
    return (rss(items).replace(b'<rss version="2.0">',
                               b'<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">')
            .replace(b"<channel>", b"<channel>" + links.encode()))




@pytest.mark.anyio
async def test_daemon_subscribes_and_alerts_on_a_push(tmp_path: Path, hub: FeedServer) -> None:
    feed = hub.url("/feed.xml")
    self_url = "https://publisher.example/feed.xml"
    hub.set("/feed.xml", _hub_rss([], hub.url("/hub"), self_url))
    port = free_port()
    (tmp_path / "feeds.yaml").write_text(f"- url: {feed}\n  outlet: Loopback\n")
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(
        f"state_dir: {tmp_path / 'state'}\nfeeds:\n  files: [feeds.yaml]\n"
        f"rules:\n  paths: [{ROOT / 'rules'}]\n"
        "sinks:\n  stdout:\n    enabled: false\nmetrics:\n  enabled: false\n"
        "poll:\n  allow_networks: [127.0.0.0/8]\n  parse_workers: 1\n"
        f"websub:\n  callback_url: http://127.0.0.1:{port}/hooks/websub\n"
        f"  listen: 127.0.0.1:{port}\n  secret: {SECRET}\n  fallback_interval: 5h\n")
    svc = Service(load_settings(cfg, env={}))
    await svc.start()
    try:
        await svc.start_push()
        assert svc.push is not None
        summary = await svc.run_once()
        assert summary.failed == 0
        form = _form(hub.requests("/hub")[0].body)
        assert form["hub.topic"] == self_url  # rel="self", as the hub knows the feed
        callback = form["hub.callback"]
        assert callback.startswith(f"http://127.0.0.1:{port}/hooks/websub/")
        assert svc.store is not None
        claimed = await svc.store.get_feed_state(feed)  # a poll in flight holds this copy
        assert claimed is not None and claimed.push_state == "requested"
        async with httpx.AsyncClient() as client:
            ok = await client.get(callback, params={
                "hub.mode": "subscribe", "hub.topic": self_url, "hub.challenge": "abc",
                "hub.lease_seconds": "86400"})
            assert ok.text == "abc"
            # while pushes arrive, the feed is polled only at the fallback interval
            # the poll that was in flight during the verification does not undo it
            assert (await svc.poll_feed(claimed)).status in ("ok", "unchanged", "not_modified")
            state = await svc.store.get_feed_state(feed)
            assert state is not None and state.push_state == "active"
            assert svc._fixed_interval(state) == 5 * 3600
            body = _hub_rss([seed_item(0, "https://publisher.example/a")], hub.url("/hub"),
                            self_url)
            res = await client.post(callback, content=body, headers={
                "X-Hub-Signature": websub.sign(body, websub.hub_secret(SECRET, self_url)),
                "Content-Type": "application/rss+xml"})
            assert res.status_code == 202
        alerts = tmp_path / "state" / "alerts.jsonl"
        with anyio.fail_after(20):
            while True:
                await svc.deliver()
                if alerts.exists() and alerts.read_text().strip():
                    break
                await anyio.sleep(0.1)
        lines = [json.loads(x) for x in alerts.read_text().splitlines()]
        assert len(lines) == 1
        assert lines[0]["event"] == "story.new"
        assert lines[0]["story"]["articles"][0]["url"] == "https://publisher.example/a"
    finally:
        await svc.close()


@pytest.mark.parametrize(("websub_yaml", "needle"), [
    ("  callback_url: https://monitor.example/websub\n", "websub.secret"),
    ("  callback_url: https://monitor.example/websub\n  secret: short\n", "websub.secret"),
    ("  callback_url: ftp://monitor.example/\n  secret: " + SECRET + "\n", "websub.callback_url"),
    ("  listen: nowhere\n", "websub.listen"),
])
def test_websub_config_errors_name_the_key(tmp_path: Path, websub_yaml: str,
                                           needle: str) -> None:
    from monitor.errors import ConfigError

    (tmp_path / "feeds.yaml").write_text("[]\n")
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"feeds:\n  files: [feeds.yaml]\nrules:\n  paths: [{ROOT / 'rules'}]\n"
                   f"websub:\n{websub_yaml}")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={})
    assert needle in str(info.value)


# -- two instances on one shared (Redis) store ------------------------------------------

@pytest.mark.anyio
async def test_any_instance_answers_for_a_subscription_another_asked_for(
        tmp_path: Path, hub: FeedServer, redis_url: str) -> None:
    """Behind one public callback URL, the hub's GET and POST may reach either instance."""
    from monitor.store import open_store

    feed = "http://feeds.example/world.xml"
    clock = Clock()
    config = PushConfig(callback_url="http://placeholder/websub", secret=SECRET,
                        lease=timedelta(days=2), max_bytes=64 * 1024)
    pushed: list[str] = []
    got = anyio.Event()

    async def on_content(f: str, body: bytes, ctype: str | None) -> None:
        pushed.append(f)
        got.set()

    limits = FetchLimits(trust_env=False, allow_networks=LOOPBACK, total_timeout=5.0)
    stores = [open_store(redis_url, prefix="nm-websub", state_dir=tmp_path) for _ in range(2)]
    receivers: list[PushReceiver] = []
    async with Fetcher(limits) as fetcher:
        try:
            for store in stores:
                await store.open()
                await store.sync_feeds([feed], clock())
                r = PushReceiver(config, fetcher, SubscriptionBook(store, SECRET, lambda: {feed}),
                                 on_content, clock)
                await r.start()
                receivers.append(r)
            a, b = receivers
            a.config = replace(config, callback_url=f"http://127.0.0.1:{a.port}/websub")
            await a.offer(feed, hub.url("/hub"), TOPIC)
            token = _form(hub.requests("/hub")[0].body)["hub.callback"].rsplit("/", 1)[1]
            on_b = f"http://127.0.0.1:{b.port}/websub/{token}"
            async with httpx.AsyncClient() as client:
                ok = await client.get(on_b, params={
                    "hub.mode": "subscribe", "hub.topic": TOPIC, "hub.challenge": "b-answers",
                    "hub.lease_seconds": "3600"})
                assert (ok.status_code, ok.text) == (200, "b-answers")
                sub = await a.book.get(feed)  # A sees what B confirmed
                assert sub is not None and sub.state == "active"
                assert a.active(feed)
                await a.offer(feed, hub.url("/hub"), TOPIC)
                assert hub.hits("/hub") == 1  # nothing asked twice
                body = rss([seed_item(0, "http://feeds.example/a")])
                res = await client.post(on_b, content=body, headers={
                    "X-Hub-Signature": websub.sign(body, websub.hub_secret(SECRET, TOPIC))})
                assert res.status_code == 202
                with anyio.fail_after(5):
                    await got.wait()
            assert pushed == [feed]
        finally:
            for r in receivers:
                await r.close()
            for store in stores:
                await store.close()
