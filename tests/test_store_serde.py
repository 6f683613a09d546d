"""Round trips of the JSON both store back ends write."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.models import FeedState, Story, StoryArticle, StoryMember
from monitor.store.serde import (
    dt_from_text,
    dt_to_text,
    feed_state_from_json,
    feed_state_to_json,
    from_micros,
    member_from_json,
    member_to_json,
    story_from_json,
    story_to_json,
    to_micros,
)

# Aware datetimes in any fixed offset: the store must bring them back as the same instant.
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
aware = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
)
text = st.text(max_size=30)
opt_text = st.none() | text
finite = st.floats(allow_nan=False, allow_infinity=False)

feed_states = st.builds(
    FeedState,
    url=text,
    etag=opt_text,
    last_modified=opt_text,
    body_hash=opt_text,
    next_check=st.none() | aware,
    interval=st.none() | finite,
    failures=st.integers(min_value=0, max_value=10**6),
    last_success=st.none() | aware,
    last_error=opt_text,
    last_error_kind=opt_text,
    last_error_at=st.none() | aware,
    redirect_url=opt_text,
    redirect_count=st.integers(min_value=0, max_value=100),
    gone=st.booleans(),
    items_seen=st.integers(min_value=0, max_value=10**9),
)
story_articles = st.builds(
    StoryArticle,
    key=text,
    outlet=text,
    url=text,
    title=text,
    published=st.none() | aware,
    language=opt_text,
    seen_at=aware,
    similarity=st.none() | finite,
    shared_terms=st.lists(text, max_size=4).map(tuple),
)
stories = st.builds(
    Story,
    id=text,
    title=text,
    first_seen=aware,
    last_seen=aware,
    articles=st.lists(story_articles, max_size=4).map(tuple),
    rule_ids=st.lists(text, max_size=3).map(tuple),
    alerted=st.booleans(),
    last_alert_at=st.none() | aware,
    alerted_outlets=st.lists(text, max_size=3).map(tuple),
    alerted_rules=st.lists(text, max_size=3).map(tuple),
    earlier_count=st.integers(min_value=0, max_value=10**6),
    earlier_outlets=st.lists(text, max_size=3).map(tuple),
)
members = st.builds(StoryMember, story_id=text, article_key=text, seen_at=aware, features=text)


@given(feed_states)
def test_feed_state_round_trip(state: FeedState) -> None:
    assert feed_state_from_json(feed_state_to_json(state)) == state


@given(stories)
def test_story_round_trip(story: Story) -> None:
    back = story_from_json(story_to_json(story))
    assert back == story
    assert isinstance(back.articles, tuple)
    assert all(isinstance(a.shared_terms, tuple) for a in back.articles)


@given(members)
def test_member_round_trip(member: StoryMember) -> None:
    assert member_from_json(member_to_json(member)) == member


@given(aware)
def test_micros_round_trip_exact_and_ordered(value: datetime) -> None:
    micros = to_micros(value)
    assert from_micros(micros) == value
    assert float(micros) == micros  # exact as a Redis sorted-set score (a double)
    assert to_micros(value + timedelta(microseconds=1)) == micros + 1


def test_datetimes_are_written_in_utc() -> None:
    kyiv_summer = timezone(timedelta(hours=3))
    written = dt_to_text(datetime(2024, 6, 1, 15, 0, tzinfo=kyiv_summer))
    assert written == "2024-06-01T12:00:00+00:00"
    back = dt_from_text(written)
    assert back is not None
    assert back.tzinfo == UTC


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        feed_state_to_json(FeedState(url="u", next_check=datetime(2024, 1, 1)))


def test_unknown_and_missing_keys_are_tolerated() -> None:
    # A record from a newer version (extra key) or an older one (missing optional keys).
    state = feed_state_from_json(json.dumps({"url": "https://x/feed", "future": 1}))
    assert state == FeedState(url="https://x/feed")
    story = story_from_json(
        json.dumps({"id": "s1", "title": "T", "first_seen": "2024-01-01T00:00:00+00:00",
                    "last_seen": "2024-01-02T00:00:00+00:00"})
    )
    assert story.articles == ()
    assert story.alerted is False


def test_non_ascii_stays_readable() -> None:
    story = Story(id="s", title="Гарантії безпеки", first_seen=datetime(2024, 1, 1, tzinfo=UTC),
                  last_seen=datetime(2024, 1, 1, tzinfo=UTC))
    assert "Гарантії" in story_to_json(story)


def test_non_object_json_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        story_from_json("[1, 2]")
