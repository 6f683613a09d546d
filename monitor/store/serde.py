"""JSON text for the records both back ends keep: feed state, stories, story members.

Both back ends store the same JSON so a state dump reads the same whichever one
wrote it, and so a field added to a model needs one change here, not two.

Rules:

* datetimes are written as ISO 8601 in UTC (``2024-05-01T12:00:00.123456+00:00``);
  a naive datetime is refused (``ValueError``) because every stage promises UTC-aware
  values and guessing a zone silently shifts timestamps;
* tuples are written as JSON arrays and read back as tuples (the models are frozen);
* unknown keys are ignored on reading and missing optional keys take the model's
  default, so records written by an older or newer version still load;
* ``to_micros``/``from_micros`` give the exact integer microseconds used for
  ordering (SQLite columns, Redis sorted-set scores): integers below 2**53 survive a
  double, so ordering and round trips are exact, which float seconds are not.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.models import FeedState, Story, StoryArticle, StoryMember

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


# -- datetimes ---------------------------------------------------------------


def _require_aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the store keeps UTC-aware values")
    return value.astimezone(UTC)


def dt_to_text(value: datetime | None) -> str | None:
    """ISO 8601 in UTC, or None."""
    if value is None:
        return None
    return _require_aware(value).isoformat()


def dt_from_text(value: str | None) -> datetime | None:
    """Parse what ``dt_to_text`` wrote; a value without a zone is taken as UTC."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _required_dt(data: dict[str, Any], key: str) -> datetime:
    value = dt_from_text(data.get(key))
    if value is None:
        raise ValueError(f"missing {key!r}")
    return value


def to_micros(value: datetime) -> int:
    """Whole microseconds since the Unix epoch: an exact, orderable number."""
    return (_require_aware(value) - _EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def lease_end(claimed: datetime, lease_seconds: float) -> int:
    """The due time (µs) a claim made at ``claimed`` gives its feeds.

    One formula for both back ends' ``claim_due``, and for ``release_claim``, which
    knows its own claim by it.
    """
    return to_micros(claimed) + max(0, round(lease_seconds * 1_000_000))


# -- feed state --------------------------------------------------------------


def feed_state_to_dict(state: FeedState) -> dict[str, Any]:
    return {
        "url": state.url,
        "etag": state.etag,
        "last_modified": state.last_modified,
        "body_hash": state.body_hash,
        "next_check": dt_to_text(state.next_check),
        "interval": state.interval,
        "failures": state.failures,
        "last_success": dt_to_text(state.last_success),
        "last_error": state.last_error,
        "last_error_kind": state.last_error_kind,
        "last_error_at": dt_to_text(state.last_error_at),
        "redirect_url": state.redirect_url,
        "redirect_count": state.redirect_count,
        "gone": state.gone,
        "items_seen": state.items_seen,
        "items_per_day": state.items_per_day,
        "push_hub": state.push_hub,
        "push_topic": state.push_topic,
        "push_state": state.push_state,
        "push_detail": state.push_detail,
        "push_requested_at": dt_to_text(state.push_requested_at),
        "push_lease_until": dt_to_text(state.push_lease_until),
    }


def feed_state_from_dict(data: dict[str, Any]) -> FeedState:
    interval, per_day = data.get("interval"), data.get("items_per_day")
    return FeedState(
        url=str(data["url"]),
        etag=data.get("etag"),
        last_modified=data.get("last_modified"),
        body_hash=data.get("body_hash"),
        next_check=dt_from_text(data.get("next_check")),
        interval=None if interval is None else float(interval),
        failures=int(data.get("failures", 0)),
        last_success=dt_from_text(data.get("last_success")),
        last_error=data.get("last_error"),
        last_error_kind=data.get("last_error_kind"),
        last_error_at=dt_from_text(data.get("last_error_at")),
        redirect_url=data.get("redirect_url"),
        redirect_count=int(data.get("redirect_count", 0)),
        gone=bool(data.get("gone", False)),
        items_seen=int(data.get("items_seen", 0)),
        items_per_day=None if per_day is None else float(per_day),
        push_hub=data.get("push_hub"),
        push_topic=data.get("push_topic"),
        push_state=data.get("push_state"),
        push_detail=data.get("push_detail"),
        push_requested_at=dt_from_text(data.get("push_requested_at")),
        push_lease_until=dt_from_text(data.get("push_lease_until")),
    )


def feed_state_to_json(state: FeedState) -> str:
    return _dumps(feed_state_to_dict(state))


def feed_state_from_json(text: str | bytes) -> FeedState:
    return feed_state_from_dict(_loads(text))


# -- stories -----------------------------------------------------------------


def story_article_to_dict(article: StoryArticle) -> dict[str, Any]:
    return {
        "key": article.key,
        "outlet": article.outlet,
        "url": article.url,
        "title": article.title,
        "published": dt_to_text(article.published),
        "language": article.language,
        "seen_at": dt_to_text(article.seen_at),
        "similarity": article.similarity,
        "shared_terms": list(article.shared_terms),
        **({"rule_ids": list(article.rule_ids)} if article.rule_ids else {}),
    }


def story_article_from_dict(data: dict[str, Any]) -> StoryArticle:
    similarity = data.get("similarity")
    return StoryArticle(
        key=str(data["key"]),
        outlet=str(data["outlet"]),
        url=str(data["url"]),
        title=str(data["title"]),
        published=dt_from_text(data.get("published")),
        language=data.get("language"),
        seen_at=_required_dt(data, "seen_at"),
        similarity=None if similarity is None else float(similarity),
        shared_terms=tuple(data.get("shared_terms", ())),
        rule_ids=tuple(str(r) for r in data.get("rule_ids", ())),
    )


def story_to_dict(story: Story) -> dict[str, Any]:
    return {
        "id": story.id,
        "title": story.title,
        "first_seen": dt_to_text(story.first_seen),
        "last_seen": dt_to_text(story.last_seen),
        "articles": [story_article_to_dict(a) for a in story.articles],
        "rule_ids": list(story.rule_ids),
        "alerted": story.alerted,
        "last_alert_at": dt_to_text(story.last_alert_at),
        "alerted_outlets": list(story.alerted_outlets),
        "alerted_rules": list(story.alerted_rules),
        **({"earlier_count": story.earlier_count,
            "earlier_outlets": list(story.earlier_outlets)}
           if story.earlier_count or story.earlier_outlets else {}),
        **({"split_from": story.split_from} if story.split_from else {}),
    }


def story_from_dict(data: dict[str, Any]) -> Story:
    return Story(
        id=str(data["id"]),
        title=str(data["title"]),
        first_seen=_required_dt(data, "first_seen"),
        last_seen=_required_dt(data, "last_seen"),
        articles=tuple(story_article_from_dict(a) for a in data.get("articles", ())),
        rule_ids=tuple(data.get("rule_ids", ())),
        alerted=bool(data.get("alerted", False)),
        last_alert_at=dt_from_text(data.get("last_alert_at")),
        alerted_outlets=tuple(data.get("alerted_outlets", ())),
        alerted_rules=tuple(data.get("alerted_rules", ())),
        earlier_count=int(data.get("earlier_count", 0)),
        earlier_outlets=tuple(data.get("earlier_outlets", ())),
        split_from=None if data.get("split_from") is None else str(data["split_from"]),
    )


def story_to_json(story: Story) -> str:
    return _dumps(story_to_dict(story))


def story_from_json(text: str | bytes) -> Story:
    return story_from_dict(_loads(text))


# -- story members -------------------------------------------------------------


def member_to_json(member: StoryMember) -> str:
    return _dumps(
        {
            "story_id": member.story_id,
            "article_key": member.article_key,
            "seen_at": dt_to_text(member.seen_at),
            "features": member.features,
        }
    )


def member_from_json(text: str | bytes) -> StoryMember:
    data = _loads(text)
    return StoryMember(
        story_id=str(data["story_id"]),
        article_key=str(data["article_key"]),
        seen_at=_required_dt(data, "seen_at"),
        features=str(data["features"]),
    )


# -- helpers -------------------------------------------------------------------


def _dumps(data: dict[str, Any]) -> str:
    # Compact and non-ASCII kept as is: headlines in Cyrillic stay readable in a dump.
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _loads(text: str | bytes) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data
