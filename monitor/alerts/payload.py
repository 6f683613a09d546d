"""Alert payload v1: the JSON every sink sends and every consumer parses.

The shape is a public contract (``schema: news-monitor.alert/1``); add keys only
in a backwards-compatible way and bump the version for anything else. The
alert ``id`` is derived from the story, the event and the articles it reports,
so a retried delivery carries the same id and consumers can drop repeats.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.models import ALERT_SCHEMA, Alert, AlertEvent, RuleHit, Story


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def alert_id(story: Story, event: AlertEvent) -> str:
    """Stable for (story, event, the set of articles reported)."""
    h = hashlib.blake2b(digest_size=12)
    h.update(story.id.encode())
    h.update(b"\x00" + event.encode())
    for key in sorted(a.key for a in story.articles):
        h.update(b"\x00" + key.encode())
    if story.earlier_count:   # a story past STORY_ARTICLES_KEPT: the list alone is not all
        h.update(b"\x00#" + str(story.earlier_count).encode())
    return "a_" + h.hexdigest()


def build_alert(
    story: Story, event: AlertEvent, hits: Sequence[RuleHit], now: datetime,
    channels: Sequence[str] = (),
) -> Alert:
    return Alert(id=alert_id(story, event), event=event, story=story, rules=tuple(hits),
                 detected_at=now, channels=tuple(channels))


def to_payload(alert: Alert) -> dict[str, Any]:
    story = alert.story
    return {
        "schema": ALERT_SCHEMA,
        "id": alert.id,
        "event": alert.event,
        "story": {
            "id": story.id,
            "title": story.title,
            "first_seen": _iso(story.first_seen),
            "outlets": list(story.outlets),
            "article_count": story.article_count,
            "articles": [
                {
                    "outlet": a.outlet,
                    "url": a.url,
                    "title": a.title,
                    "published": _iso(a.published),
                    "language": a.language,
                }
                for a in story.articles
            ],
            **({"split_from": story.split_from} if story.split_from else {}),
        },
        "rules": [hit.to_payload() for hit in alert.rules],
        "detected_at": _iso(alert.detected_at),
    }


def dumps(alert: Alert) -> str:
    """Compact, key-stable JSON text of the payload (one line: fit for JSONL and streams)."""
    return json.dumps(to_payload(alert), ensure_ascii=False, separators=(",", ":"))


EVENT_SCHEMA = "news-monitor.event/1"


def operator_event(kind: str, feed: str, detail: str, now: datetime) -> tuple[str, str]:
    """An operator event (e.g. ``feed.gone``) for the alert channels: ``(id, JSON text)``.

    It shares the channels with alerts so the people watching them hear about it, and
    carries its own schema so programs that only want alerts can skip it. The id is
    stable per feed, kind and day: a restart on the same day does not repeat it.
    """
    h = hashlib.blake2b(f"{kind}\x00{feed}\x00{now.date().isoformat()}".encode(),
                        digest_size=12)
    eid = "e_" + h.hexdigest()
    payload = {"schema": EVENT_SCHEMA, "id": eid, "event": kind, "feed": feed,
               "detail": detail, "detected_at": _iso(now)}
    return eid, json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def render_text(payload: dict[str, Any]) -> str:
    """A few readable lines for a terminal."""
    if payload.get("schema") == EVENT_SCHEMA:
        return (f"[OPERATOR] {payload['event']}: {payload['feed']}\n  {payload['detail']}\n"
                f"  id={payload['id']} at {payload['detected_at']}")
    story = payload["story"]
    arts = story["articles"]
    rules = ", ".join(f"{r['id']} ({r['severity']})" for r in payload["rules"]) or "-"
    head = "NEW STORY" if payload["event"] == "story.new" else "STORY UPDATE"
    lines = [
        f"[{head}] {story['title']}",
        f"  {story.get('article_count', len(arts))} article(s) from "
        f"{len(story['outlets'])} outlet(s); rules: {rules}",
    ]
    for r in payload["rules"][:3]:
        if r.get("snippet"):
            lines.append(f"  {r['id']}: {r['snippet']}")
    for a in arts:
        lines.append(f"  - {a['outlet']}: {a['title']} <{a['url']}>")
    if story.get("article_count", len(arts)) > len(arts):
        lines.append(f"  (the latest {len(arts)} listed)")
    lines.append(f"  id={payload['id']} story={story['id']} at {payload['detected_at']}")
    return "\n".join(lines)
