"""Why each rule matched a story: the hits of a few of its articles, per rule. Pure.

An alert explains each of its story's rules with a hit (matched terms, a snippet). The
hit shown is that of the story's first article that matched the rule, as long as that
article is in the story. Story repair moves articles from one story to a new one
(``monitor/stories/split.py``), and each part must then be explained by its own
articles, never by a report of the other event: so hits are kept per article, and a
split moves them with their articles. Per story and rule only the first article's hit
and the latest ones are kept (``KEEP`` in all): a running story matched by hundreds of
reports keeps a handful (a hit, with its matched terms and snippet, is a few KB), and the
articles a split moves are the younger ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import count

from monitor.models import RuleHit

KEEP = 4

Held = dict[str, tuple[int, RuleHit]]   # article key -> (learnt when, its hit), oldest first


class StoryHits:
    """story id -> rule id -> article key -> when it was learnt and that article's hit.

    Kept in the order learnt, whatever moves happen in between: a split taken back
    leaves the story explained as before.
    """

    def __init__(self) -> None:
        self._by_story: dict[str, dict[str, Held]] = {}
        self._clock = count()

    def __contains__(self, story_id: object) -> bool:
        return story_id in self._by_story

    def __len__(self) -> int:
        return len(self._by_story)

    def __eq__(self, other: object) -> bool:
        """The same hits for the same articles, in the same order (what ``explain`` reads)."""
        if not isinstance(other, StoryHits):
            return NotImplemented
        return _ordered(self._by_story) == _ordered(other._by_story)

    __hash__ = None  # type: ignore[assignment]   # mutable

    def learn(self, story_id: str, article_key: str, hits: Sequence[RuleHit]) -> None:
        """Record an article's hits in its story."""
        if not hits:
            return
        rules = self._by_story.setdefault(story_id, {})
        for hit in hits:
            held = rules.setdefault(hit.rule_id, {})
            held.pop(article_key, None)
            held[article_key] = (next(self._clock), hit)
            _trim(held)

    def explain(self, story_id: str, rule_id: str) -> RuleHit | None:
        """The hit of the story's first article (still in it) that matched the rule."""
        held = self._by_story.get(story_id, {}).get(rule_id)
        return next(iter(held.values()))[1] if held else None

    def forget(self, story_id: str, article_key: str) -> None:
        """An article taken back: its hits go."""
        self._take(story_id, {article_key})

    def move(self, keys: Iterable[str], from_id: str, to_id: str) -> None:
        """Articles moved to another story (a split, or one taken back): their hits follow."""
        taken = self._take(from_id, set(keys))
        if not taken:
            return
        rules = self._by_story.setdefault(to_id, {})
        for rule_id, moved in taken.items():
            merged = {**rules.get(rule_id, {}), **moved}
            held = rules[rule_id] = dict(sorted(merged.items(), key=lambda kv: kv[1][0]))
            _trim(held)

    def drop(self, story_id: str) -> None:
        self._by_story.pop(story_id, None)

    def keep_only(self, story_ids: Iterable[str]) -> None:
        """Forget every story but these (expired ones, ones no rule matches any more)."""
        keep = set(story_ids)
        for sid in [s for s in self._by_story if s not in keep]:
            del self._by_story[sid]

    def _take(self, story_id: str, keys: set[str]) -> dict[str, Held]:
        """Remove and return the hits of ``keys`` in a story, by rule, in their order."""
        rules = self._by_story.get(story_id)
        if not rules:
            return {}
        taken: dict[str, Held] = {}
        for rule_id in list(rules):
            held = rules[rule_id]
            out = {k: h for k, h in held.items() if k in keys}
            if not out:
                continue
            taken[rule_id] = out
            for k in out:
                del held[k]
            if not held:
                del rules[rule_id]
        if not rules:
            del self._by_story[story_id]
        return taken


def _trim(held: Held) -> None:
    """At most ``KEEP``: the first article's hit stays, the oldest of the rest go."""
    while len(held) > KEEP:
        keys = iter(held)
        next(keys)
        del held[next(keys)]


def _ordered(by_story: dict[str, dict[str, Held]]
             ) -> dict[str, dict[str, list[tuple[str, RuleHit]]]]:
    """What ``explain`` reads: each rule's articles and hits in order (not when learnt)."""
    return {sid: {rule: [(k, h) for k, (_, h) in held.items()] for rule, held in rules.items()}
            for sid, rules in by_story.items()}
