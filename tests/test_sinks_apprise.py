"""Apprise sink: a real request crosses loopback to Apprise's generic json:// target."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

pytest.importorskip("apprise")

from monitor.alerts.apprise_sink import AppriseSink, with_timeouts
from monitor.alerts.render import message
from monitor.errors import SinkError
from monitor.store.base import OutboxItem
from tests.support.http_sink import HttpSink

T0 = datetime(2025, 3, 11, 12, 0, tzinfo=UTC)
PAYLOAD = {
    "schema": "news-monitor.alert/1", "id": "a_42", "event": "story.new",
    "story": {"id": "s_1", "title": "Leaders agree on security guarantees for Ukraine",
              "first_seen": "2025-03-11T12:00:00Z", "outlets": ["DW", "BBC"],
              "articles": [
                  {"outlet": "DW", "url": "https://dw.example/a", "title": "Guarantees agreed",
                   "published": None, "language": "en"},
                  {"outlet": "BBC", "url": "https://bbc.example/b", "title": "Deal in Paris",
                   "published": None, "language": "en"}]},
    "rules": [{"id": "guarantees", "title": "Security guarantees", "severity": "high",
               "matched_terms": ["guarantees"], "clauses": [], "snippet": "security guarantees"}],
    "detected_at": "2025-03-11T12:00:00Z",
}


def item(alert_id: str = "a_42") -> OutboxItem:
    return OutboxItem(alert_id=alert_id, sink="apprise:team",
                      payload=json.dumps({**PAYLOAD, "id": alert_id}), created_at=T0)


@pytest.fixture
def rx() -> Iterator[HttpSink]:
    with HttpSink() as server:
        yield server


def json_url(rx: HttpSink, path: str) -> str:
    return f"json://127.0.0.1:{rx.port}{path}"


def test_short_message_names_story_severity_outlets_and_links() -> None:
    msg = message(PAYLOAD)
    assert msg.title == "[HIGH] New story: Leaders agree on security guarantees for Ukraine"
    assert msg.severity == "high"
    assert "2 article(s) from 2 outlet(s)" in msg.body
    assert "https://dw.example/a" in msg.body and "guarantees (high)" in msg.body
    assert msg.body.endswith("id a_42")


def test_timeouts_are_added_unless_set() -> None:
    assert with_timeouts("json://h/p", 7) == "json://h/p?cto=7&rto=7"
    assert with_timeouts("json://h/p?rto=3", 7) == "json://h/p?rto=3&cto=7"
    assert with_timeouts("json://h/p?rto=3&cto=2", 7) == "json://h/p?rto=3&cto=2"


@pytest.mark.anyio
async def test_alert_reaches_a_json_endpoint_over_the_wire(rx: HttpSink) -> None:
    sink = AppriseSink("team", [json_url(rx, "/notify")], timeout=5)
    assert sink.name == "apprise:team"
    await sink.send(item())
    (got,) = rx.received("/notify")
    body = got.json()
    assert body["title"] == message(PAYLOAD).title
    assert "https://bbc.example/b" in body["message"]
    assert body["type"] == "warning"  # high severity


@pytest.mark.anyio
async def test_a_failing_service_is_retried_alone(rx: HttpSink) -> None:
    rx.script("/down", 500, 200)
    sink = AppriseSink("team", [json_url(rx, "/up"), json_url(rx, "/down")], timeout=5)
    with pytest.raises(SinkError) as exc:
        await sink.send(item())
    assert "1 of 2" in str(exc.value) and "URL #2" in str(exc.value)
    await sink.send(item())  # the retry: only /down again
    assert len(rx.received("/up")) == 1
    assert len(rx.received("/down")) == 2


@pytest.mark.anyio
async def test_errors_do_not_show_url_credentials(rx: HttpSink) -> None:
    rx.script("/hook", 403)
    sink = AppriseSink("team", [f"json://bob:pa55word-xyz@127.0.0.1:{rx.port}/hook"], timeout=5)
    with pytest.raises(SinkError) as exc:
        await sink.send(item())
    assert "pa55word-xyz" not in str(exc.value)
    assert rx.received("/hook")[0].headers["authorization"].startswith("Basic ")


def test_an_invalid_url_is_refused_at_start_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="URL #1") as exc:
        AppriseSink("team", ["nosuchscheme://secret-token-123"])
    assert "secret-token-123" not in str(exc.value)
