"""Alerts for a person at a terminal (``news-monitor tail``), drawn with rich.

An analyst following the stream wants to see at a glance how serious it is, what
the story is, who reports it and why a rule fired, and to click through to the
articles. So: one panel per alert, coloured by the highest rule severity, the rule's
own matched words highlighted in its snippet, and every article a terminal link.
rich drops the colours and links itself when the output is not a terminal, so the
same code serves a pipe into ``less`` or a log file.

Works from the payload (what the stream carries), never from model objects, and
never raises on a payload it does not know: that one is shown as its JSON.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from monitor.alerts.payload import EVENT_SCHEMA
from monitor.alerts.render import top_severity

SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow",
                  "low": "cyan", "info": "dim"}
MAX_ARTICLES = 12


def renderable(payload: dict[str, Any]) -> RenderableType:
    """One alert, operator event or unknown payload as something rich can print."""
    try:
        if payload.get("schema") == EVENT_SCHEMA:
            return _event(payload)
        return _story(payload)
    except (KeyError, TypeError, AttributeError):
        return Panel(Text(json.dumps(payload, ensure_ascii=False, indent=2)),
                     title="unrecognised payload", border_style="magenta")


def _event(payload: dict[str, Any]) -> RenderableType:
    body = Text.assemble((str(payload["feed"]), "bold"), "\n", str(payload.get("detail", "")))
    return Panel(body, title=f"OPERATOR  {payload['event']}", title_align="left",
                 subtitle=f"{payload['id']} · {payload.get('detected_at', '')}",
                 subtitle_align="right", border_style="bold yellow")


def _story(payload: dict[str, Any]) -> RenderableType:
    story = payload["story"]
    rules: list[dict[str, Any]] = list(payload.get("rules") or [])
    severity = top_severity(rules)
    style = SEVERITY_STYLE.get(severity, "")
    head = "NEW STORY" if payload["event"] == "story.new" else "STORY UPDATE"
    articles: list[dict[str, Any]] = list(story["articles"])
    outlets: list[str] = list(story.get("outlets") or [])
    total = int(story.get("article_count") or len(articles))   # the list may be the latest only

    parts: list[RenderableType] = [
        Text(str(story["title"]), style="bold"),
        Text(f"{total} article(s) from {len(outlets)} outlet(s): "
             + ", ".join(outlets), style="dim"),
    ]
    if rules:
        table = Table(show_header=False, box=None, padding=(0, 1), expand=False)
        table.add_column(no_wrap=True)
        table.add_column()
        for rule in rules:
            table.add_row(Text(str(rule["id"]), style=SEVERITY_STYLE.get(
                str(rule.get("severity")), "")), _why(rule))
        parts.append(table)
    listing = Table(show_header=False, box=None, padding=(0, 1), expand=False)
    listing.add_column(no_wrap=True, style="bold")
    listing.add_column()
    listing.add_column(style="dim", no_wrap=True)
    for a in articles[:MAX_ARTICLES]:
        title = Text(str(a.get("title") or a["url"]))
        title.stylize(f"link {a['url']}")
        listing.add_row(str(a.get("outlet") or "?"), title, str(a.get("published") or "")[:16])
    shown = min(len(articles), MAX_ARTICLES)
    if total > shown:
        listing.add_row("", Text(f"… and {total - shown} more", style="dim"), "")
    parts.append(listing)
    return Panel(Group(*parts), title=f"{head}  {severity.upper()}", title_align="left",
                 subtitle=f"{story['id']} · {payload.get('detected_at', '')}",
                 subtitle_align="right", border_style=style or "white")


def _why(rule: dict[str, Any]) -> Text:
    """The snippet with the rule's matched words highlighted, else the words alone."""
    words = [str(w) for w in rule.get("matched_terms") or [] if str(w).strip()]
    snippet = str(rule.get("snippet") or "")
    if not snippet:
        return Text(", ".join(words), style="italic")
    text = Text(snippet)
    text.highlight_words(words, style="bold underline", case_sensitive=False)
    return text
