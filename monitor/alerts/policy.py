"""When a story is worth an alert: pure decisions over a story's state, with ``now`` passed in.

==============================  ============================================================
situation                        event
==============================  ============================================================
no rule matched the story yet    none (a story becomes alertable when its first rule matches)
rules matched, never alerted     ``story.new`` (exactly once per story)
new outlet or new rule since     ``story.updated``, unless ``updates: off``; with
the last alert                   ``updates: interval`` at most once per ``update_interval``
                                 (held changes go out with the next one, see ``due_updates``)
nothing new since the last       none
==============================  ============================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from monitor.models import AlertEvent, Story

UpdateMode = Literal["off", "every_outlet", "interval"]


@dataclass(frozen=True)
class AlertPolicy:
    updates: UpdateMode = "interval"
    update_interval: timedelta = timedelta(minutes=30)

    def has_news(self, story: Story) -> bool:
        """Outlets or rules the last alert did not report."""
        return bool(set(story.outlets) - set(story.alerted_outlets)
                    or set(story.rule_ids) - set(story.alerted_rules))

    def decide(self, story: Story, now: datetime) -> AlertEvent | None:
        if not story.rule_ids:
            return None
        if not story.alerted:
            return "story.new"
        if self.updates == "off" or not self.has_news(story):
            return None
        if (self.updates == "interval" and story.last_alert_at is not None
                and now - story.last_alert_at < self.update_interval):
            return None
        return "story.updated"

    def due_updates(self, stories: Iterable[Story], now: datetime) -> list[Story]:
        """Stories whose held-back update may go out now (for ``updates: interval``)."""
        if self.updates != "interval":
            return []
        return [s for s in stories if s.alerted and self.decide(s, now) == "story.updated"]


def mark_alerted(story: Story, now: datetime) -> Story:
    """The story as it stands once an alert about it has been queued."""
    return replace(story, alerted=True, last_alert_at=now,
                   alerted_outlets=story.outlets, alerted_rules=story.rule_ids)
