"""Event particulars (years, weekdays, months, counts) and the evidence they give a join."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.stories.cluster import StoryConfig, StoryIndex
from monitor.stories.features import Features
from monitor.stories.particulars import evidence, particulars
from tests.test_stories import T0, feed, load


def test_particulars_read_years_weekdays_months_and_counts() -> None:
    marks = particulars("On Friday, November 11, 2011 the navy arrested 26 pirates and seized "
                        "7,000 rounds and 2.5 tonnes; the team is 9-14. It may rain.")
    assert set(marks) == {"w4", "m11", "n11", "y2011", "n26", "n7000", "n2.5", "n9", "n14"}
    assert list(marks) == sorted(marks)


def test_month_words_count_only_when_capitalised_and_weekdays_in_other_languages() -> None:
    assert particulars("they may march on") == ()
    assert particulars("Am Samstag, 3. Mai") == ("m5", "n3", "w5")
    assert particulars("le mercredi 12 mars") == ("n12", "w2")   # French month in lower case
    assert particulars("the 1951 treaty, a 2050 target") == ("n2050", "y1951")


@pytest.mark.parametrize(("marks", "held", "kinds", "expected"), [
    # the story never mentions a year: no evidence either way
    (("y2011",), {"n23": 3}, {"n": 3}, (0, 0)),
    # every member that gives a year says 2008, the article says 2011: conflict
    (("y2011",), {"y2008": 2}, {"y": 2}, (0, 1)),
    # the article's 23 is held by 3 of the 4 members mentioning counts: agreement
    (("n23", "n5"), {"n23": 3, "n7": 1}, {"n": 4}, (1, 0)),
    # held by 1 of 4: neither agreement nor conflict
    (("n7",), {"n23": 3, "n7": 1}, {"n": 4}, (0, 0)),
    # each kind counts once, however many values disagree
    (("n1", "n2", "n3", "w4"), {"n9": 1, "w4": 1}, {"n": 1, "w": 1}, (1, 1)),
])
def test_evidence_counts_kinds(marks: tuple[str, ...], held: dict[str, int],
                               kinds: dict[str, int], expected: tuple[int, int]) -> None:
    assert evidence(marks, held, kinds, 2 / 3) == expected


def test_conflicting_dates_and_counts_keep_the_same_navys_two_actions_apart() -> None:
    # INS Mysore, a Saturday in December 2008, 23 pirates; INS Sukanya, Friday
    # 11 November 2011, 26 pirates. Same navy, same gulf, same kind of event.
    pair = [load("navy_2008_b.txt"), load("navy_2011_a.txt")]
    plain = feed(StoryIndex(StoryConfig(agree_bonus=0.0, conflict_penalty=0.0)), pair)
    assert plain[1].story_id == plain[0].story_id   # names and theme words alone merge them
    first, second = feed(StoryIndex(), pair)
    assert second.is_new
    assert second.story_id != first.story_id


def test_agreeing_particulars_raise_the_score_by_the_bonus() -> None:
    index = StoryIndex(StoryConfig(join_threshold=0.05))
    feed(index, [load("navy_2011_a.txt")])
    article = load("navy_2011_b.txt")
    with_bonus = index.place(article, T0 + timedelta(minutes=30))
    bare = StoryIndex(StoryConfig(join_threshold=0.05, agree_bonus=0.0, conflict_penalty=0.0))
    feed(bare, [load("navy_2011_a.txt")])
    without = bare.place(article, T0 + timedelta(minutes=30))
    assert with_bonus.story_id == without.story_id
    assert with_bonus.similarity is not None
    assert without.similarity is not None
    # November, 11, 2011 and the 26 pirates: month, count, year agree; no conflict
    assert with_bonus.similarity == pytest.approx(without.similarity + 3 * 0.05, abs=1e-3)


def test_particulars_survive_the_features_json() -> None:
    (p,) = feed(StoryIndex(), [load("navy_2011_a.txt")])
    back = Features.from_json(p.features)
    assert "y2011" in back.marks
    assert "n26" in back.marks
    assert back.marks == p.parsed.marks if p.parsed else False


def test_config_rejects_negative_evidence_weights() -> None:
    with pytest.raises(ValueError, match="conflict_penalty"):
        StoryConfig(conflict_penalty=-0.1)
