"""The types an item passes through, one per stage of its life.

``FeedSpec`` -> ``FetchResult`` -> ``Article`` -> ``RuleHit`` -> ``Story`` -> ``Alert``.
All are frozen dataclasses holding UTC-aware datetimes and no I/O handles, so the
pure stages can be tested with plain values and every stage can be replayed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

ALERT_SCHEMA = "news-monitor.alert/1"
AlertEvent = Literal["story.new", "story.updated"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def body_digest(body: bytes) -> str:
    """A short, stable fingerprint of a response body (blake2b, 128 bits)."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


@dataclass(frozen=True)
class FeedSpec:
    """A feed as the operator listed it."""

    url: str
    title: str | None = None
    outlet: str | None = None
    language: str | None = None
    interval: float | None = None  # seconds; None: the global default
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeedState:
    """What we remember about a feed between polls (and across restarts)."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    next_check: datetime | None = None
    interval: float | None = None
    failures: int = 0
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    last_error_at: datetime | None = None
    redirect_url: str | None = None
    redirect_count: int = 0
    gone: bool = False
    items_seen: int = 0
    # entries per day over the last week, from the dates in the last parsed body (health)
    items_per_day: float | None = None
    # WebSub subscription (all None: none); here, not in a file, so every instance on a
    # shared store sees what any of them asked a hub for and what the hub confirmed
    push_hub: str | None = None
    push_topic: str | None = None
    push_state: str | None = None  # "requested" | "active" | "denied"
    push_detail: str | None = None
    push_requested_at: datetime | None = None
    push_lease_until: datetime | None = None


@dataclass(frozen=True)
class FetchResult:
    """Outcome of one successful HTTP exchange. ``body`` is None for 304 Not Modified."""

    url: str
    status: int
    body: bytes | None
    etag: str | None = None
    last_modified: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    final_url: str | None = None
    permanent_redirect: str | None = None
    elapsed: float = 0.0

    @cached_property
    def body_hash(self) -> str | None:
        """``body_digest`` of the body, None for a 304; computed once per response.

        A poll asks twice (is it unchanged? then the state to save): hashing a changed
        body twice was ~3 % of the daemon's CPU on a farm of large feeds.
        """
        return None if self.body is None else body_digest(self.body)


@dataclass(frozen=True)
class StoryMember:
    """One article's clustering features, kept so the story index survives a restart.

    ``features`` is an opaque JSON text owned by ``monitor.stories``. Here, not in the
    store, because the story index (pure) makes and reads them and the store only
    keeps them.
    """

    story_id: str
    article_key: str
    seen_at: datetime
    features: str


@dataclass(frozen=True)
class Article:
    """One normalized feed entry.

    ``key`` is the primary identity (the feed GUID scoped by feed, or the canonical
    URL); ``seen_keys`` lists every identity under which it counts as already seen.
    """

    key: str
    url: str  # canonical: the identity of the page
    title: str
    summary: str = ""
    content: str = ""
    published: datetime | None = None
    outlet: str = ""
    language: str | None = None
    feed_url: str = ""
    guid: str | None = None
    seen_keys: tuple[str, ...] = ()
    link: str = ""  # the publisher's own link, as the feed gave it (what people click)

    @property
    def href(self) -> str:
        return self.link or self.url

    @property
    def text(self) -> str:
        return "\n".join(p for p in (self.title, self.summary, self.content) if p)


@dataclass(frozen=True)
class TermMatch:
    """A matched term in one field, with its token position and character span."""

    field: str
    term: str  # the query term that matched, as the rule wrote it
    position: int
    start: int
    end: int
    text: str = ""  # the words the article used


@dataclass(frozen=True)
class RuleHit:
    """Why a rule matched an article: the clauses, the terms, and a snippet around them."""

    rule_id: str
    title: str
    severity: str
    terms: tuple[str, ...] = ()
    clauses: tuple[str, ...] = ()
    matches: tuple[TermMatch, ...] = ()
    snippet: str = ""
    channels: tuple[str, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        """``matched_terms``: the article's own words; ``query_terms``: the rule's terms."""
        words: dict[str, None] = {}
        for m in self.matches:
            if m.text:
                words.setdefault(" ".join(m.text.split()), None)
        return {
            "id": self.rule_id,
            "title": self.title,
            "severity": self.severity,
            "matched_terms": list(words) or list(self.terms),
            "query_terms": list(self.terms),
            "clauses": [" ".join(c.split()) for c in self.clauses],
            "snippet": self.snippet,
        }


@dataclass(frozen=True)
class StoryArticle:
    """An article as a member of a story: enough to list it in an alert."""

    key: str
    outlet: str
    url: str
    title: str
    published: datetime | None
    language: str | None
    seen_at: datetime
    similarity: float | None = None
    shared_terms: tuple[str, ...] = ()
    # the rules this article matched: when a story is split (``stories/split.py``), the
    # part that leaves knows which rules it matched, so its own ``story.new`` names them
    rule_ids: tuple[str, ...] = ()


# Articles a story record lists: the newest ones. A story stays open as long as reports
# keep coming within the window, so a running story (a war, a negotiation) would
# otherwise grow its record, every commit that rewrites it and every alert that lists
# it without bound; past this, the oldest leave the list and are only counted.
STORY_ARTICLES_KEPT = 100


@dataclass(frozen=True)
class Story:
    """A group of articles reporting one event.

    ``articles`` are the newest ``STORY_ARTICLES_KEPT``; ``earlier_count`` counts those
    no longer listed and ``earlier_outlets`` keeps their outlets, so ``outlets`` and
    ``article_count`` still cover the whole story.
    """

    id: str
    title: str
    first_seen: datetime
    last_seen: datetime
    articles: tuple[StoryArticle, ...] = ()
    rule_ids: tuple[str, ...] = ()
    alerted: bool = False
    last_alert_at: datetime | None = None
    alerted_outlets: tuple[str, ...] = ()
    alerted_rules: tuple[str, ...] = ()
    earlier_count: int = 0
    earlier_outlets: tuple[str, ...] = ()
    # the story this one was cut off by story repair (``stories/split.py``): its articles
    # were reported there before, which the analyst reading its story.new should know
    split_from: str | None = None

    @property
    def outlets(self) -> tuple[str, ...]:
        seen: dict[str, None] = dict.fromkeys(self.earlier_outlets)
        for a in self.articles:
            seen.setdefault(a.outlet, None)
        return tuple(seen)

    @property
    def article_count(self) -> int:
        return self.earlier_count + len(self.articles)

    def with_article(self, article: StoryArticle, keep: int = STORY_ARTICLES_KEPT) -> Story:
        """The story with ``article`` listed last (in place of an earlier listing of the
        same key), the oldest beyond ``keep`` moved to the counts."""
        listed = (*(a for a in self.articles if a.key != article.key), article)
        if len(listed) <= keep:
            return replace(self, articles=listed)
        gone, listed = listed[:-keep], listed[-keep:]
        outlets = dict.fromkeys(self.earlier_outlets)
        outlets.update(dict.fromkeys(a.outlet for a in gone))
        return replace(self, articles=listed, earlier_count=self.earlier_count + len(gone),
                       earlier_outlets=tuple(outlets))


@dataclass(frozen=True)
class Alert:
    """One alert as it sits in the outbox. ``id`` is stable for (story, event, revision)."""

    id: str
    event: AlertEvent
    story: Story
    rules: tuple[RuleHit, ...]
    detected_at: datetime
    channels: tuple[str, ...] = ()
