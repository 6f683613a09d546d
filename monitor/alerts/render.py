"""Short human messages (a title and a few lines) for chat and push channels.

Chat services cut long messages (Telegram at 4096 characters, ntfy at 4 KB),
and a person glancing at a phone wants the story, how many outlets, the
strongest rule and a link, not the whole JSON. The full payload stays in the
Redis stream, the JSONL file and webhooks.

Works from the payload (the JSON text in the outbox), not from model objects,
so what a channel shows is exactly what the stream consumers got, and a digest
(``news-monitor.digest/1``) renders through the same entry point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")
MAX_BODY = 3500
MAX_ARTICLES = 5
MAX_DIGEST_LINES = 40


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    severity: str  # the highest severity among the rules, "info" without rules


def top_severity(rules: list[dict[str, Any]]) -> str:
    found = [r.get("severity", "info") for r in rules]
    ranked = [s for s in found if s in SEVERITY_ORDER]
    return max(ranked, key=SEVERITY_ORDER.index) if ranked else "info"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def alert_message(payload: dict[str, Any]) -> Message:
    story = payload["story"]
    rules = list(payload.get("rules") or [])
    severity = top_severity(rules)
    arts = list(story.get("articles") or [])
    outlets = story.get("outlets") or sorted({a.get("outlet", "") for a in arts})
    what = "New story" if payload.get("event") == "story.new" else "Story update"
    title = _cut(f"[{severity.upper()}] {what}: {story.get('title', '')}", 250)
    total = int(story.get("article_count") or len(arts))   # the list may be the latest only
    lines = [f"{total} article(s) from {len(outlets)} outlet(s)"]
    if rules:
        lines.append("Rules: " + ", ".join(f"{r['id']} ({r.get('severity', '?')})"
                                           for r in rules))
        snippet = next((r["snippet"] for r in rules if r.get("snippet")), "")
        if snippet:
            lines.append(f"“…{_cut(snippet, 300)}…”")
    for a in arts[:MAX_ARTICLES]:
        lines.append(f"- {a.get('outlet', '?')}: {a.get('title', '')} {a.get('url', '')}")
    shown = min(len(arts), MAX_ARTICLES)
    if total > shown:
        lines.append(f"- … and {total - shown} more")
    lines.append(f"id {payload.get('id', '?')}")
    return Message(title, _cut("\n".join(lines), MAX_BODY), severity)


def digest_message(payload: dict[str, Any]) -> Message:
    alerts = list(payload.get("alerts") or [])
    severity = top_severity([r for a in alerts for r in a.get("rules") or []])
    start = str(payload.get("period_start", ""))[:16].replace("T", " ")
    end = str(payload.get("period_end", ""))[11:16]
    title = f"news-monitor digest: {len(alerts)} alert(s), {start}–{end} UTC"
    lines = []
    for a in alerts[:MAX_DIGEST_LINES]:
        story = a.get("story") or {}
        arts = story.get("articles") or []
        sev = top_severity(list(a.get("rules") or []))
        link = arts[0].get("url", "") if arts else ""
        mark = "new" if a.get("event") == "story.new" else "update"
        lines.append(f"- [{sev.upper()}] ({mark}) {_cut(story.get('title', ''), 160)} — "
                     f"{len(story.get('outlets') or [])} outlet(s) {link}")
    if len(alerts) > MAX_DIGEST_LINES:
        lines.append(f"- … and {len(alerts) - MAX_DIGEST_LINES} more")
    lines.append(f"id {payload.get('id', '?')}")
    return Message(title, _cut("\n".join(lines), MAX_BODY), severity)


def message(payload: dict[str, Any]) -> Message:
    """A title and body for one alert or one digest."""
    schema = str(payload.get("schema", ""))
    if schema.startswith("news-monitor.digest/"):
        return digest_message(payload)
    if schema.startswith("news-monitor.event/"):
        return Message(_cut(f"[OPERATOR] {payload.get('event')}: {payload.get('feed')}", 250),
                       _cut(str(payload.get("detail", "")), MAX_BODY), "high")
    return alert_message(payload)
