"""An Ingestor on a SQLite store in a temp folder, with rules from YAML text: alert-path tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from monitor.alerts.policy import AlertPolicy
from monitor.alerts.throttle import RuleThrottle
from monitor.ingest import Ingestor
from monitor.match.rules import load_rules
from monitor.models import Article
from monitor.store.sqlite import SQLiteStore
from monitor.stories.cluster import StoryConfig, StoryIndex

WORDS = ("harbour", "vineyard", "glacier", "orchestra", "railway", "lantern", "meadow",
         "volcano", "bakery", "telescope", "canyon", "library", "festival", "satellite")


def article(n: int, topic: str, at: datetime, outlet: str = "Daily") -> Article:
    """A distinct story per ``n`` (its own rare words), matching rules on ``topic``."""
    a, b, c = WORDS[n % len(WORDS)], WORDS[(3 * n + 1) % len(WORDS)], f"place{n}x"
    title = f"{topic} near {c}: {a} {b} report number {n}"
    return Article(key=f"k{n}-{outlet}", url=f"https://{outlet.lower()}.example/{n}",
                   title=title, summary=f"Officials in {c} discussed the {a} and the {b}.",
                   published=at, outlet=outlet, language="en")


async def make_ingestor(tmp_path: Path, rules_yaml: str, sinks: list[str],
                        throttle: RuleThrottle | None = None) -> tuple[Ingestor, SQLiteStore]:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(rules_yaml)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    window = timedelta(hours=72)
    ing = Ingestor(store, load_rules([rules_file]), StoryIndex(StoryConfig(window=window)),
                   AlertPolicy("interval", timedelta(minutes=30)), sinks, window=window,
                   seen_ttl=timedelta(days=30), throttle=throttle)
    return ing, store
