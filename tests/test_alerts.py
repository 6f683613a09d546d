"""Alert payload, policy and sinks: the stable id, once per story, exactly once in the stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from monitor.alerts.delivery import Deliverer, retry_delay
from monitor.alerts.payload import alert_id, build_alert, dumps, render_text, to_payload
from monitor.alerts.policy import AlertPolicy, mark_alerted
from monitor.alerts.sinks import JsonlSink, RedisSink
from monitor.errors import SinkError
from monitor.models import RuleHit, Story, StoryArticle
from monitor.store.base import OutboxItem
from monitor.store.redis import RedisStore
from monitor.store.sqlite import SQLiteStore
from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent

T0 = datetime(2025, 3, 11, 12, 0, tzinfo=UTC)


def art(key: str, outlet: str) -> StoryArticle:
    return StoryArticle(key=key, outlet=outlet, url=f"https://{outlet.lower()}.example/{key}",
                        title=f"Title {key}", published=T0, language="en", seen_at=T0)


def story(*arts: StoryArticle, rules: tuple[str, ...] = ("r1",)) -> Story:
    return Story(id="s_1", title="Paris meeting", first_seen=T0, last_seen=T0,
                 articles=arts, rule_ids=rules)


HIT = RuleHit(rule_id="r1", title="Peacekeepers", severity="high", terms=("peacekeeping",),
              snippet="deploying peacekeeping troops")


def test_payload_matches_schema_v1() -> None:
    a = build_alert(story(art("k1", "DW"), art("k2", "RT")), "story.new", [HIT], T0)
    p = to_payload(a)
    assert set(p) == {"schema", "id", "event", "story", "rules", "detected_at"}
    assert p["story"]["article_count"] == 2
    assert p["schema"] == "news-monitor.alert/1"
    assert p["detected_at"] == "2025-03-11T12:00:00Z"
    assert [x["outlet"] for x in p["story"]["articles"]] == ["DW", "RT"]
    assert set(p["story"]["articles"][0]) == {"outlet", "url", "title", "published", "language"}
    assert p["rules"][0]["matched_terms"] == ["peacekeeping"]
    assert json.loads(dumps(a)) == p
    assert "NEW STORY" in render_text(p) and "RT" in render_text(p)


def test_alert_id_is_stable_and_distinguishes_events_and_articles() -> None:
    s1 = story(art("k1", "DW"))
    s2 = story(art("k1", "DW"), art("k2", "RT"))
    assert alert_id(s1, "story.new") == alert_id(replace(s1, title="other"), "story.new")
    assert alert_id(s1, "story.new") != alert_id(s1, "story.updated")
    assert alert_id(s1, "story.updated") != alert_id(s2, "story.updated")


def test_a_long_story_lists_its_latest_articles_and_counts_the_rest() -> None:
    # a story stays open while reports keep coming: its record, each commit rewriting it
    # and each alert listing it must not grow with it
    s = story()
    for n in range(5):
        s = s.with_article(art(f"k{n}", f"O{n % 4}"), keep=3)
    assert [a.key for a in s.articles] == ["k2", "k3", "k4"]
    assert (s.article_count, s.earlier_count) == (5, 2)
    assert s.outlets == ("O0", "O1", "O2", "O3")   # the outlets of the unlisted ones too
    again = s.with_article(art("k3", "O3"), keep=3)   # the same article seen again
    assert [a.key for a in again.articles] == ["k2", "k4", "k3"] and again.article_count == 5
    p = to_payload(build_alert(s, "story.updated", [HIT], T0))
    assert (p["story"]["article_count"], len(p["story"]["articles"])) == (5, 3)
    assert "5 article(s)" in render_text(p) and "latest 3 listed" in render_text(p)
    # the id moves when an article leaves the list, as when one joins it
    assert alert_id(s, "story.updated") != alert_id(replace(s, earlier_count=3), "story.updated")


@pytest.mark.parametrize(("mode", "gap", "expected"), [
    ("every_outlet", timedelta(0), "story.updated"),
    ("interval", timedelta(minutes=5), None),
    ("interval", timedelta(minutes=31), "story.updated"),
    ("off", timedelta(days=1), None),
])
def test_policy_updates(mode: str, gap: timedelta, expected: str | None) -> None:
    policy = AlertPolicy(mode, timedelta(minutes=30))  # type: ignore[arg-type]
    s = story(art("k1", "DW"))
    assert policy.decide(s, T0) == "story.new"
    s = mark_alerted(s, T0)
    assert policy.decide(s, T0 + gap) is None  # nothing new
    grown = replace(s, articles=(*s.articles, art("k2", "RT")))
    assert policy.decide(grown, T0 + gap) == expected
    same_outlet = replace(s, articles=(*s.articles, art("k3", "DW")))
    assert policy.decide(same_outlet, T0 + gap) is None
    assert policy.decide(replace(s, rule_ids=("r1", "r2")), T0 + gap) == expected


def test_policy_never_alerts_without_rules_and_never_twice_new() -> None:
    policy = AlertPolicy("every_outlet")
    assert policy.decide(story(art("k1", "DW"), rules=()), T0) is None
    s = mark_alerted(story(art("k1", "DW")), T0)
    assert policy.decide(s, T0 + timedelta(days=1)) is None
    assert policy.due_updates([s], T0) == []


def test_held_back_updates_become_due() -> None:
    policy = AlertPolicy("interval", timedelta(minutes=30))
    s = mark_alerted(story(art("k1", "DW")), T0)
    grown = replace(s, articles=(*s.articles, art("k2", "RT")))
    assert policy.due_updates([grown], T0 + timedelta(minutes=10)) == []
    assert policy.due_updates([grown], T0 + timedelta(minutes=30)) == [grown]


def item(alert: str = "a_1", payload: dict[str, str] | None = None) -> OutboxItem:
    body = json.dumps(payload or {"id": alert, "event": "story.new"})
    return OutboxItem(alert_id=alert, sink="redis", payload=body, created_at=T0)


@pytest.mark.anyio
async def test_redis_sink_publishes_and_streams_exactly_once(redis_url: str) -> None:
    sink = RedisSink(redis_url, channel="news-monitor:alerts", stream="news-monitor:alerts",
                     maxlen=1000)
    listener = aioredis.Redis.from_url(redis_url)
    pubsub = listener.pubsub()
    await pubsub.subscribe("news-monitor:alerts")
    await pubsub.get_message(timeout=1)  # subscribe confirmation
    try:
        await sink.send(item("a_1"))
        await sink.send(item("a_1"))  # a retry after a lost reply: no second entry
        await sink.send(item("a_2"))
        entries = await listener.xrange("news-monitor:alerts")
        assert [e[1][b"id"] for e in entries] == [b"a_1", b"a_2"]
        assert entries[0][1][b"event"] == b"story.new"
        got = []
        for _ in range(5):
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if msg:
                got.append(json.loads(msg["data"])["id"])
        assert got == ["a_1", "a_2"]
    finally:
        await pubsub.aclose()
        await listener.aclose()
        await sink.aclose()


@pytest.mark.anyio
async def test_redis_sink_down_raises_sink_error_without_password() -> None:
    sink = RedisSink(f"redis://:hunter2@127.0.0.1:{free_port()}/0", channel="c", stream="s",
                     maxlen=1000)
    with pytest.raises(SinkError) as exc:
        await sink.send(item())
    assert "hunter2" not in str(exc.value) and "127.0.0.1" in str(exc.value)
    await sink.aclose()


@pytest.mark.anyio
async def test_jsonl_sink_appends_lines(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "sub" / "alerts.jsonl")
    await sink.send(item("a_1"))
    await sink.send(item("a_2"))
    lines = (tmp_path / "sub" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["a_1", "a_2"]


@pytest.mark.anyio
async def test_jsonl_sink_unwritable_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    sink = JsonlSink(blocker / "alerts.jsonl")
    with pytest.raises(SinkError) as exc:
        await sink.send(item())
    assert str(blocker / "alerts.jsonl") in str(exc.value)


FILLING_DISK = """
import asyncio, json, resource, sys
from pathlib import Path
from monitor.alerts.sinks import JsonlSink
from monitor.errors import SinkError
from monitor.store.base import OutboxItem
from datetime import UTC, datetime

def item(n):
    return OutboxItem(f"a_{n}", "jsonl", json.dumps({"id": f"a_{n}", "pad": "x" * 200}),
                      datetime(2025, 3, 11, tzinfo=UTC))

path = Path(sys.argv[1])
sink = JsonlSink(path)
asyncio.run(sink.send(item(1)))
size = path.stat().st_size
# The file may grow by 100 more bytes: the next batch (two ~230-byte lines) is cut short,
# as on a disk that fills up while it is written.
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))
try:
    asyncio.run(sink.send_many([item(2), item(3)]))
    error = None
except SinkError as e:
    error = str(e)
after_failure = path.stat().st_size
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again: the retry
asyncio.run(sink.send_many([item(2), item(3)]))
print(json.dumps({"error": error, "size": size, "after_failure": after_failure}))
"""


def test_jsonl_sink_on_a_filling_disk_leaves_no_half_line(tmp_path: Path) -> None:
    # A write the file system takes only in part (RLIMIT_FSIZE stands in for a full disk:
    # the kernel takes what fits, then refuses) must not leave half an alert before the
    # retry appends the whole batch again.
    out = tmp_path / "alerts.jsonl"
    res = subprocess.run([sys.executable, "-c", FILLING_DISK, str(out)], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["error"] is not None
    assert f"jsonl sink {out}" in report["error"]
    assert "File too large" in report["error"]  # the kernel's reason, not a byte count
    assert report["after_failure"] == report["size"]  # the part written was cut off
    lines = out.read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["a_1", "a_2", "a_3"]


@pytest.mark.anyio
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
async def test_jsonl_sink_on_a_full_device_names_the_cause(tmp_path: Path) -> None:
    link = tmp_path / "alerts.jsonl"
    link.symlink_to("/dev/full")
    with pytest.raises(SinkError, match="No space left on device") as exc:
        await JsonlSink(link).send(item())
    assert str(link) in str(exc.value)


def test_retry_delay_backs_off_with_a_cap() -> None:
    lo, hi = timedelta(seconds=1), timedelta(seconds=30)
    assert [retry_delay(n, lo, hi).total_seconds() for n in (1, 2, 3, 6, 50)] == [
        1, 2, 4, 30, 30]


class FlakySink:
    name = "flaky"

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.got: list[str] = []

    async def send(self, it: OutboxItem) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise SinkError("flaky: down")
        self.got.append(it.alert_id)

    async def aclose(self) -> None:
        return None


@pytest.mark.anyio
async def test_outbox_keeps_alerts_until_the_sink_takes_them(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.outbox_put([replace(item("a_1"), sink="flaky"),
                                replace(item("a_2"), sink="flaky")])
        sink = FlakySink(fail=1)
        d = Deliverer(store, {"flaky": sink}, retry_min=timedelta(seconds=10),
                      retry_max=timedelta(minutes=1))
        stats = await d.deliver_due(T0)
        assert (stats.sent, stats.failed, sink.got) == (0, 1, [])
        assert (await store.outbox_depth())["flaky"] == 2
        await d.deliver_due(T0 + timedelta(seconds=5))  # a_1 waits for its retry time ...
        assert sink.got == []                            # ... and a_2 waits behind it
        await d.deliver_due(T0 + timedelta(seconds=11))
        assert sink.got == ["a_1", "a_2"]
        assert (await store.outbox_depth()).get("flaky", 0) == 0
    finally:
        await store.close()


class CountingStore(SQLiteStore):
    """A real SQLite store that counts the queue reads."""

    reads = 0

    async def outbox_due(self, sink: str, now: datetime, limit: int) -> list[OutboxItem]:
        self.reads += 1
        return await super().outbox_due(sink, now, limit)


@pytest.mark.anyio
async def test_a_queue_waiting_for_its_heads_retry_is_not_read_until_then(
        tmp_path: Path) -> None:
    # while the head waits, a read could only hand out nothing, at up to a batch a pass
    store = CountingStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.outbox_put([replace(item("a_1"), sink="flaky")])
        sink = FlakySink(fail=1)
        d = Deliverer(store, {"flaky": sink}, retry_min=timedelta(seconds=10),
                      retry_max=timedelta(minutes=1))
        await d.deliver_due(T0)
        reads = store.reads
        for second in range(1, 10):
            await d.deliver_due(T0 + timedelta(seconds=second))
        assert store.reads == reads and sink.got == []
        await d.deliver_due(T0 + timedelta(seconds=11))
        assert store.reads > reads and sink.got == ["a_1"]
    finally:
        await store.close()


def story_alerts(sink: str, first: int, count: int) -> list[OutboxItem]:
    """Alerts as the Ingestor queues them for three stories reported in turn: each story's
    ``story.new`` first, then its updates, stamped a microsecond apart in commit order."""
    out = []
    for n in range(first, first + count):
        story_id, event = f"s{n % 3}", "story.new" if n < 3 else "story.updated"
        payload = json.dumps({"id": f"a_{n:02d}", "event": event, "story": {"id": story_id}})
        out.append(OutboxItem(alert_id=f"a_{n:02d}", sink=sink, payload=payload,
                              created_at=T0 + timedelta(microseconds=n)))
    return out


def in_order(ids: list[str], count: int) -> None:
    assert ids == [f"a_{n:02d}" for n in range(count)], ids


@pytest.mark.anyio
async def test_a_jsonl_sink_back_from_a_failure_gets_its_alerts_in_order_after_a_restart(
        tmp_path: Path) -> None:
    # The chaos test: the JSONL file's disk refused writes for a while. The alerts queued
    # after the failed batch must not be written before it, not even by a restarted daemon
    # that no longer remembers the failure.
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")   # the file cannot be created: a failing disk
    out = blocker / "alerts.jsonl"
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.outbox_put(story_alerts("jsonl", 0, 6))
        d = Deliverer(store, {"jsonl": JsonlSink(out)}, retry_min=timedelta(seconds=10),
                      retry_max=timedelta(minutes=1), batch=2)
        assert (await d.deliver_due(T0 + timedelta(seconds=1))).failed == 1  # a_00, a_01
    finally:
        await store.close()
    blocker.unlink()  # the disk is back; the daemon restarts before the retry is due
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        d = Deliverer(store, {"jsonl": JsonlSink(out)}, retry_min=timedelta(seconds=10),
                      retry_max=timedelta(minutes=1), batch=2)
        assert (await d.deliver_due(T0 + timedelta(seconds=5))).sent == 0
        assert not out.exists()
        await store.outbox_put(story_alerts("jsonl", 6, 3))   # queued meanwhile
        for n in range(11, 16):
            await d.deliver_due(T0 + timedelta(seconds=n))
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        in_order([x["id"] for x in lines], 9)
        assert await store.outbox_depth() == {}
    finally:
        await store.close()


@pytest.mark.anyio
@pytest.mark.redis
async def test_a_redis_sink_error_keeps_the_stream_in_queue_order(
        redis_url: str, own_redis_persistent: RedisServer) -> None:
    # One connection error on a story.new: its updates, due meanwhile, must not enter the
    # stream before it.
    sink = RedisSink(own_redis_persistent.url, channel="alerts", stream="alerts", maxlen=1000)
    reader = aioredis.Redis.from_url(own_redis_persistent.url)
    async with RedisStore(redis_url, prefix="nm-order") as store:
        try:
            await store.outbox_put(story_alerts("redis", 0, 3))
            d = Deliverer(store, {"redis": sink}, retry_min=timedelta(seconds=10),
                          retry_max=timedelta(minutes=1))
            assert (await d.deliver_due(T0 + timedelta(seconds=1))).sent == 3
            await store.outbox_put(story_alerts("redis", 3, 6))
            own_redis_persistent.stop()
            assert (await d.deliver_due(T0 + timedelta(seconds=2))).failed == 1   # on a_03
            own_redis_persistent.start()
            assert (await d.deliver_due(T0 + timedelta(seconds=5))).sent == 0
            for n in range(12, 15):
                await d.deliver_due(T0 + timedelta(seconds=n))
            entries = await reader.xrange("alerts")
            in_order([e[1][b"id"].decode() for e in entries], 9)
            assert await store.outbox_depth() == {}
        finally:
            await d.aclose()
            await reader.aclose()


class RecordingStore(SQLiteStore):
    """A real SQLite store that notes, at each acknowledgement, what the JSONL file held."""

    def __init__(self, path: Path, jsonl: Path, events: list[str]) -> None:
        super().__init__(path)
        self.jsonl = jsonl
        self.events = events
        self.lines_at_done: list[int] = []

    async def outbox_done_many(self, sink: str, alert_ids: Sequence[str]) -> None:
        self.events.append(f"done {len(alert_ids)}")
        self.lines_at_done.append(len(self.jsonl.read_text().splitlines()))
        await super().outbox_done_many(sink, alert_ids)


@pytest.mark.anyio
async def test_jsonl_batch_is_written_and_fsynced_once_before_it_is_acknowledged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # the real fsync, noted in order
        real_fsync(fd)
        events.append("fsync")

    monkeypatch.setattr("monitor.alerts.sinks.os.fsync", fsync)
    out = tmp_path / "alerts.jsonl"
    store = RecordingStore(tmp_path / "s.db", out, events)
    await store.open()
    try:
        await store.outbox_put([replace(item(f"a_{i}"), sink="jsonl", created_at=T0
                                        + timedelta(microseconds=i)) for i in range(30)])
        d = Deliverer(store, {"jsonl": JsonlSink(out)}, retry_min=timedelta(seconds=10),
                      retry_max=timedelta(minutes=1))
        stats = await d.deliver_due(T0 + timedelta(seconds=1))
        assert (stats.sent, stats.failed) == (30, 0)
        assert events == ["fsync", "done 30"]          # one fsync, then one acknowledgement
        assert store.lines_at_done == [30]             # every line on disk before it
        assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == [
            f"a_{i}" for i in range(30)]               # in outbox order
        assert await store.outbox_depth() == {}
    finally:
        await store.close()


@pytest.mark.anyio
async def test_jsonl_batch_that_cannot_be_written_stays_due(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    blocker = tmp_path / "dir"
    blocker.write_text("not a directory")  # the sink's directory cannot be created
    try:
        await store.outbox_put([replace(item(f"a_{i}"), sink="jsonl") for i in range(5)])
        d = Deliverer(store, {"jsonl": JsonlSink(blocker / "alerts.jsonl")},
                      retry_min=timedelta(seconds=10), retry_max=timedelta(minutes=1))
        stats = await d.deliver_due(T0)
        assert (stats.sent, stats.failed) == (0, 1)
        assert await store.outbox_due("jsonl", T0 + timedelta(seconds=5), 10) == []
        due = await store.outbox_due("jsonl", T0 + timedelta(seconds=11), 10)
        assert sorted(i.alert_id for i in due) == [f"a_{i}" for i in range(5)]
        assert {(i.attempts, str(blocker) in (i.last_error or "")) for i in due} == {(1, True)}
        blocker.unlink()  # the disk is back: the whole batch goes out on the next pass
        stats = await d.deliver_due(T0 + timedelta(seconds=11))
        assert stats.sent == 5
        lines = (blocker / "alerts.jsonl").read_text().splitlines()
        assert sorted(json.loads(x)["id"] for x in lines) == [f"a_{i}" for i in range(5)]
        assert await store.outbox_depth() == {}
    finally:
        await store.close()


def test_errors_survive_pickling_across_the_parser_pool() -> None:
    import pickle

    from monitor.errors import ConfigError, FetchError, ParseError, Problem

    e = pickle.loads(pickle.dumps(ParseError("http://x/feed", "not_a_feed", "garbage")))
    assert (type(e), e.feed, e.kind, str(e)) == (
        ParseError, "http://x/feed", "not_a_feed", "feed http://x/feed: not_a_feed: garbage")
    f = pickle.loads(pickle.dumps(FetchError("u", "rate_limited", "429", status=429,
                                             retry_after=30.0)))
    assert (f.status, f.retry_after) == (429, 30.0)
    c = pickle.loads(pickle.dumps(ConfigError([Problem("f.yaml", "a.b", "bad", 3, 1)])))
    assert c.problems[0].line == 3
