"""``news-monitor replay``: run recorded articles through the daemon's own ingest path.

Contract (benchmarks and evaluations rely on it):

* input: UTF-8 JSON lines with ``id`` (required, a string or an integer),
  ``title``/``summary``/``content`` (at least one), optional ``url``, ``outlet``,
  ``published`` (ISO 8601; absent, null or empty: undated), ``language``; unknown keys
  ignored; a bad line (not UTF-8, not a JSON object, a required field missing, a field of
  the wrong type, a ``published`` that is not ISO 8601) is reported with its number and
  skipped;
* processing: in ``published`` order (stable for ties; undated lines keep their place after
  the dated ones before them), with fresh temporary SQLite state, no network;
* output: one object per input article in input order:
  ``{"id", "story_id", "rules": [...], "alert": "story.new" | "story.updated" | null}``,
  ``id`` exactly as given (``7`` stays a number, ``"7"`` a string), so results join back
  to their input by plain equality. ``story_id`` is the story the article is in at the
  end of the run (a later report may have cut its story in two and moved it to a new
  one, ``monitor/stories/split.py``; a repeat reports its original's); ``alert`` is
  what the article's own commit queued, and the summary's alert counts also include
  the ``story.new`` of a story split off by a later report.

The clock during replay is each article's ``published`` time (never going backwards), so
story windows and update intervals behave as they would have live.

Tuning comes from the config as the daemon reads it (``stories.window``,
``stories.join_threshold``, ``stories.split_bar``, ``alerts.updates``, ``alerts.update_interval``,
``alerts.seen_ttl``; the defaults without a config), so a replay
shows what a change to those keys would do. Rules' ``throttle`` is never applied: replay
reports each story's alert decision, and a throttle, a delivery budget, would hide some of
the very decisions being compared.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.alerts.policy import AlertPolicy
from monitor.ingest import Ingestor
from monitor.match.rules import RuleSet
from monitor.models import Article
from monitor.store.sqlite import SQLiteStore
from monitor.stories.cluster import StoryConfig, StoryIndex
from monitor.stories.identity import identity_keys
from monitor.stories.urls import canonical_url

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class ReplayStats:
    lines: int = 0
    bad: list[str] = field(default_factory=list)
    articles: int = 0
    duplicates: int = 0
    matched: int = 0
    stories: int = 0
    alerts: dict[str, int] = field(default_factory=dict)


def parse_time(value: Any) -> datetime | None:
    """``published`` as UTC; None when absent. ValueError for a value that is not ISO 8601.

    Such a line is skipped rather than kept undated: an undated article takes the clock
    of the line before it, so a date that was meant but misread would silently move the
    article, and every story decision after it, to another time. Replays exist to be
    compared, so the line is reported and left out; the fix belongs in the data.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError("'published' must be an ISO 8601 string")
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'published' is not an ISO 8601 time: {value[:40]!r}") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def article_from_record(rec: dict[str, Any]) -> Article:
    """Build the same ``Article`` the feed parser would: canonical URL and seen-keys included."""
    rid = rec.get("id")
    if not isinstance(rid, str | int) or isinstance(rid, bool) or str(rid) == "":
        raise ValueError("'id' is required (string or number)")

    def text(name: str) -> str:
        v = rec.get(name)
        if v is None:
            return ""
        if not isinstance(v, str):
            raise ValueError(f"{name!r} must be a string")
        # Keep line breaks: sentence and paragraph ends help tell names from words.
        lines = (" ".join(line.split()) for line in v.splitlines())
        return "\n".join(line for line in lines if line)

    title, summary, content = text("title"), text("summary"), text("content")
    if not (title or summary or content):
        raise ValueError("needs at least one of 'title', 'summary', 'content'")
    url = text("url")
    canonical = canonical_url(url) if url else ""
    outlet = text("outlet")
    keys = identity_keys(feed_url="", guid=None, canonical=canonical or None,
                         title=title, summary=summary or content[:500])
    key = keys[0] if keys else f"r:{rid}"
    lang = rec.get("language")
    return Article(
        key=key, url=canonical or url, link=url, title=title, summary=summary, content=content,
        published=parse_time(rec.get("published")), outlet=outlet or "unknown",
        language=lang.lower() if isinstance(lang, str) and lang else None,
        seen_keys=keys or (key,),
    )


def read_records(lines: Iterable[bytes | str],
                 stats: ReplayStats) -> Iterator[tuple[str | int, Article]]:
    """Each good line's id (as given) and article; bad lines go to ``stats.bad``.

    Lines may come as bytes, decoded here one at a time: a line that is not UTF-8 is then
    one bad line among the others instead of the end of the whole run.
    """
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        stats.lines += 1
        try:
            try:
                line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            except UnicodeDecodeError as e:
                raise ValueError(f"not UTF-8 (byte {e.start + 1}: {e.reason})") from None
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            art = article_from_record(rec)
        except (ValueError, TypeError) as e:
            stats.bad.append(f"line {n}: {e}")
            continue
        yield rec["id"], art


async def replay(
    lines: Iterable[bytes | str], rules: RuleSet, *, story_config: StoryConfig | None = None,
    policy: AlertPolicy | None = None, seen_ttl: timedelta | None = None,
) -> tuple[list[dict[str, Any]], ReplayStats]:
    stats = ReplayStats()
    items = list(read_records(lines, stats))
    order: list[int] = []
    last = EPOCH
    clock: list[datetime] = []
    for art in (a for _, a in items):
        last = art.published or last
        clock.append(last)
    order = sorted(range(len(items)), key=lambda i: clock[i])
    results: list[dict[str, Any] | None] = [None] * len(items)
    cfg = story_config or StoryConfig()
    with tempfile.TemporaryDirectory(prefix="news-monitor-replay-") as tmp:
        store = SQLiteStore(Path(tmp) / "replay.db")
        await store.open()
        try:
            ingestor = Ingestor(store, rules, StoryIndex(cfg), policy or AlertPolicy(), sinks=(),
                                window=cfg.window, seen_ttl=seen_ttl or cfg.window * 10)
            now = EPOCH
            final: dict[str, str] = {}   # article key -> its story (later splits move some)
            owner: dict[str, str] = {}   # seen key -> the article that brought it
            refs: dict[int, str] = {}    # result -> the article whose story it reports
            for i in order:
                rid, art = items[i]
                now = max(now, clock[i])
                (outcome,) = await ingestor.ingest([art], now)
                stats.articles += 1
                stats.duplicates += outcome.duplicate
                stats.matched += bool(outcome.rule_ids)
                for event in (outcome.alert, outcome.split_alert):
                    if event:
                        stats.alerts[event] = stats.alerts.get(event, 0) + 1
                keys = art.seen_keys or (art.key,)
                if not outcome.duplicate and outcome.story_id:
                    final[art.key] = outcome.story_id
                    for k in keys:
                        owner.setdefault(k, art.key)
                    refs[i] = art.key
                else:
                    ref = next((owner[k] for k in keys if k in owner), None)
                    if ref is not None:
                        refs[i] = ref
                if outcome.split is not None:
                    for k in outcome.split.moved:
                        final[k] = outcome.split.new_story_id
                results[i] = {"id": rid, "story_id": outcome.story_id,
                              "rules": list(outcome.rule_ids), "alert": outcome.alert}
            for i, ref in refs.items():
                row = results[i]
                if row is not None and ref in final:
                    row["story_id"] = final[ref]
            stats.stories = len(set(final.values()))
        finally:
            await store.close()
    return [r for r in results if r is not None], stats
