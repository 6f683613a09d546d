"""Which sinks an alert goes to: the rules' ``channels``, minus rules held back by a throttle.

Pure: sink names in, sink names out. A channel is a sink name (``stdout``,
``jsonl``, ``redis``, ``webhook:desk``, ``apprise:team``) or a family
(``webhook`` = every webhook, ``apprise`` = every Apprise entry).

* A rule without ``channels`` sends to every sink.
* An alert matched by several rules goes to the union of their channels.
* A rule whose channels name no configured sink would silently lose its alerts,
  so it sends to every sink instead (and :func:`unknown_channels` lets the
  service warn about the typo at start and on reload).
* Rules out of throttle room do not route; an alert all of whose rules are out
  of room is held back (``held``), see :mod:`monitor.alerts.throttle`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.alerts.throttle import Limit, RuleThrottle
from monitor.models import RuleHit


def resolve(channel: str, sinks: Sequence[str]) -> list[str]:
    """Sinks a channel names: itself, or every ``family:*`` sink for a bare family."""
    if channel in sinks:
        return [channel]
    if ":" not in channel:
        return [s for s in sinks if s.startswith(channel + ":")]
    return []


def unknown_channels(channels_by_rule: Mapping[str, Iterable[str]],
                     sinks: Sequence[str]) -> dict[str, list[str]]:
    """Rule id -> channels that name no configured sink (for a warning)."""
    out: dict[str, list[str]] = {}
    for rule_id, channels in channels_by_rule.items():
        bad = [c for c in channels if not resolve(c, sinks)]
        if bad:
            out[rule_id] = bad
    return out


@dataclass(frozen=True)
class Route:
    sinks: tuple[str, ...]
    held: bool = False  # every rule of the alert was out of throttle room
    counted: tuple[str, ...] = ()  # throttled rules this alert counts against once queued
    throttled: tuple[str, ...] = ()  # rules that were out of room


def targets(hits: Sequence[RuleHit], sinks: Sequence[str]) -> tuple[str, ...]:
    """Sinks for these rules' channels, in configured order."""
    if not hits or any(not h.channels for h in hits):
        return tuple(sinks)
    wanted = {s for h in hits for c in h.channels for s in resolve(c, sinks)}
    if not wanted:
        return tuple(sinks)
    return tuple(s for s in sinks if s in wanted)


def route(hits: Sequence[RuleHit], sinks: Sequence[str],
          limit_of: Callable[[str], Limit | None], throttle: RuleThrottle | None,
          now: datetime) -> Route:
    if throttle is None or not hits:
        return Route(targets(hits, sinks))
    room = [h for h in hits if throttle.has_room(h.rule_id, limit_of(h.rule_id), now)]
    out_of_room = tuple(h.rule_id for h in hits if h not in room)
    if not room:
        return Route((), held=True, throttled=out_of_room)
    counted = tuple(h.rule_id for h in room if limit_of(h.rule_id) is not None)
    return Route(targets(room, sinks), counted=counted, throttled=out_of_room)
