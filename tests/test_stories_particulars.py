"""Event particulars (years, weekdays, months, counts) and the evidence they give a join."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.models import Article
from monitor.stories import dates as dates_module
from monitor.stories import particulars as particulars_module
from monitor.stories.cluster import StoryConfig, StoryIndex
from monitor.stories.dates import clock_spans, find_dates
from monitor.stories.features import Features
from monitor.stories.particulars import MONTH_NUMBERS, evidence, kind_of, particulars
from tests.test_stories import T0, feed, load


def test_particulars_read_years_weekdays_months_dates_and_counts() -> None:
    marks = particulars("On Friday, November 11, 2011 the navy arrested 26 pirates and seized "
                        "7,000 rounds and 2.5 tonnes; the team is 9-14. It may rain.")
    # the date's day number is part of the date (d1111), not a count of 11 things
    assert set(marks) == {"w4", "m11", "d1111", "y2011", "n26", "n7000", "n2.5", "n9", "n14",
                          # counted nouns; "14. It may" crosses a sentence end: no noun
                          "cpirate=26", "cround=7000", "ctonne=2.5"}
    assert list(marks) == sorted(marks)


def test_counted_nouns_skip_names_and_stop_at_stop_words_and_clause_ends() -> None:
    marks = particulars("Navy held 23 Somali pirates; $200 million offered; 12 of them left; "
                        "5 (five) boats. 8 Marines")
    assert {m for m in marks if m[0] == "c"} == {"cpirate=23", "cmillion=200"}


def counted(text: str, language: str | None = "en") -> set[str]:
    return {m for m in particulars(text, language=language) if m[0] == "c"}


def test_counted_nouns_end_at_commas_and_dashes_and_follow_the_language() -> None:
    assert counted("police arrested 3, charged 2 others") == {"cother=2"}
    assert counted("killed 26 \u2014 officials said") == set()
    assert counted("12 men were rescued") == {"cmen=12"}
    # without a language every list's stop words count: "men" is Dutch and Swedish
    assert counted("12 men were rescued", None) == set()
    # German nouns are capitalised: the lower-case word after a count is not one
    assert counted("26 Piraten festgenommen", "de") == set()
    assert counted("26 名海盗被捕", None) == set()   # a script without case


def test_a_word_cut_off_by_the_span_is_no_noun() -> None:
    # the third word starts 40 characters after the count and runs past the 48 looked at
    text = "7 " + "A" * 30 + " Bbbbbbb submarines"
    assert counted(text) == set()
    assert counted(text.replace("A" * 30, "A" * 20)) == {"csubmarine=7"}
    assert counted("7 Very Long Capitalised Names Before boats") == set()   # past 3 words


def test_month_words_count_only_when_capitalised_and_weekdays_in_other_languages() -> None:
    assert particulars("they may march on") == ()
    assert particulars("Am Samstag, 3. Mai") == ("d0503", "m5", "w5")
    # French month in lower case: a month word, so not a counted noun either
    assert particulars("le mercredi 12 mars") == ("n12", "w2")
    assert particulars("the 1951 treaty, a 2050 target") == ("ctarget=2050", "n2050", "y1951")


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
    # a counted noun the story counts otherwise: conflict (the bare counts say nothing)
    (("cpirate=26", "n26", "n3"), {"cpirate=23": 2, "n23": 2, "n3": 1},
     {"cpirate": 2, "n": 2}, (0, 1)),
    # a noun the story does not count: nothing
    (("cboat=3",), {"cpirate=23": 2}, {"cpirate": 2}, (0, 0)),
    # all nouns are one kind: one agreeing noun outweighs another's conflict
    (("cpirate=23", "cboat=3", "cmillion=5"), {"cpirate=23": 2, "cboat=2": 2, "cmillion=9": 1},
     {"cpirate": 2, "cboat": 2, "cmillion": 1}, (1, 0)),
    (("cboat=3", "cmillion=5"), {"cboat=2": 2, "cmillion=9": 1}, {"cboat": 2, "cmillion": 1},
     (0, 1)),
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


def test_the_two_navy_actions_count_their_pirates_differently() -> None:
    """Real reports: 23 pirates held in 2008, 26 in 2011; the second report of 2011 agrees
    with the first on its 26 pirates. The noun says which count differs, not just that some
    number does."""
    def marks(name: str) -> tuple[str, ...]:
        a = load(name)
        return particulars(f"{a.title}\n{a.summary}\n{a.content}")

    story, article = marks("navy_2008_a.txt"), marks("navy_2011_b.txt")
    assert "cpirate=23" in story and "cpirate=26" in article
    held = dict.fromkeys(story, 1)
    nouns = [m for m in article if m[0] == "c"]
    kinds = {kind_of(m): 1 for m in story}
    assert evidence(tuple(nouns), held, kinds, 2 / 3) == (0, 1)
    same_event = marks("navy_2011_a.txt")
    held_same = dict.fromkeys(same_event, 1)
    kinds_same = {kind_of(m): 1 for m in same_event}
    assert evidence(tuple(nouns), held_same, kinds_same, 2 / 3) == (1, 0)


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
    # November 11, 2011 and the 26 pirates: date, month, count, counted noun ("26 pirates")
    # and year agree; no conflict
    assert with_bonus.similarity == pytest.approx(without.similarity + 5 * 0.05, abs=1e-3)


def test_particulars_survive_the_features_json() -> None:
    (p,) = feed(StoryIndex(), [load("navy_2011_a.txt")])
    back = Features.from_json(p.features)
    assert "y2011" in back.marks
    assert "n26" in back.marks
    assert back.marks == p.parsed.marks if p.parsed else False


def test_config_rejects_negative_evidence_weights() -> None:
    with pytest.raises(ValueError, match="conflict_penalty"):
        StoryConfig(conflict_penalty=-0.1)


@pytest.mark.parametrize(("text", "dates"), [
    # date and dateline formats as outlets write them (spacing as in ECB+ texts)
    ("Updated: November 11, 2011 20:09 IST", {(2011, 11, 11)}),
    ("Sat Nov 12 2011, 01: 19 hrs", {(2011, 11, 12)}),
    ("Posted on December 15th, 2008, 7: 35 am", {(2008, 12, 15)}),
    ("an attack on 10 Nov 11.", {(0, 11, 10)}),
    ("27 NOVEMBER, 2005 | Quake felt in Dubai", {(2005, 11, 27)}),
    ("WEDNESDAY, MARCH 4, 2009, 10: 53 AM", {(2009, 3, 4)}),
    ("Published on Friday, 27 September 2013", {(2013, 9, 27)}),
    ("the Dec. 2 vote", {(0, 12, 2)}),
    ("am 3. Mai in Berlin", {(0, 5, 3)}),
    ("el 12 de marzo de 2025", {(2025, 3, 12)}),
    ("2025-03-11T09:00Z and 11.03.2025", {(2025, 3, 11)}),
    ("27 / 09 / 2013 - Election news", {(2013, 9, 27)}),
    ("04 / 28 / 09 07: 35 PM ET", {(2009, 4, 28)}),
    ("03/04/2011", {(2011, 3, 4), (2011, 4, 3)}),   # ambiguous: both readings
    ("filed 2011-11-11T19:04:00Z", {(2011, 11, 11)}),   # an ISO timestamp's date ends at T
    ("printed 12/31/98", {(1998, 12, 31)}),   # two-digit years: 69-99 are 19xx
    ("on 29.02.2012", {(2012, 2, 29)}),
    # not dates: lower-case "may" and "march" are words, 31 February is no day
    ("they may 2 times march 3 miles", set()),
    ("February 31, 2011 and Apollo 11", set()),
    ("2011-02-29 and 29.02.2011", set()),   # 2011 was no leap year
])
def test_find_dates_resolves_written_dates(text: str, dates: set[tuple[int, int, int]]) -> None:
    assert {(y, m, d) for _, y, m, d in find_dates(text, MONTH_NUMBERS)} == dates


def test_clock_times_are_found_and_are_not_counts() -> None:
    text = "At 9. 25 a. m. on Thursday, 1100 hrs IST, 19:04 and 10 pm, 26 pirates, 2.5 tonnes"
    found = [text[a:b] for a, b in clock_spans(text)]
    assert found == ["9. 25 a. m.", "1100 hrs", "19:04", "10 pm"]
    assert particulars(text) == ("cpirate=26", "ctonne=2.5", "n2.5", "n26", "w3")
    # an ISO timestamp's time, right after its date's "T", is a time too
    assert particulars("On 2011-11-11T19:04:00Z the ship") == ("d1111", "y2011")


def test_dates_agree_within_two_days_and_conflict_beyond() -> None:
    story = {"d1112": 2}, {"d": 2}   # both members dated 12 November
    assert evidence(("d1111",), *story, 2 / 3) == (1, 0)   # the day before: agreement
    assert evidence(("d1114",), *story, 2 / 3) == (1, 0)
    assert evidence(("d1115",), *story, 2 / 3) == (0, 1)   # three days on: another event
    assert evidence(("d1212",), *story, 2 / 3) == (0, 1)   # same day, another month
    assert evidence(("d0101",), {"d1231": 1}, {"d": 1}, 2 / 3) == (1, 0)   # across new year
    assert evidence(("d0301",), {"d0229": 1}, {"d": 1}, 2 / 3) == (1, 0)


def test_a_report_dated_weeks_apart_is_penalised_like_any_conflict() -> None:
    # The same navy report, once as written (11 November 2011) and once re-dated to
    # 25 November. Scored with and without the evidence terms, the difference is the
    # evidence alone: the wrong date trades the date's agree_bonus for conflict_penalty.
    same_day = load("navy_2011_b.txt")
    later = load("navy_2011_b.txt", key="redated")
    later = replace(later, content=later.content.replace("November 11", "November 25"))

    def score(article: Article, config: StoryConfig) -> float:
        index = StoryIndex(config)
        feed(index, [load("navy_2011_a.txt")])
        sim = index.place(article, T0 + timedelta(minutes=30)).similarity
        assert sim is not None
        return sim

    plain = StoryConfig(join_threshold=0.05, agree_bonus=0.0, conflict_penalty=0.0)
    scored = StoryConfig(join_threshold=0.05)
    right = score(same_day, scored) - score(same_day, plain)
    wrong = score(later, scored) - score(later, plain)
    assert right > 0   # it agrees on the date, and on more (year, month)
    # the date's agreement (+0.05) lost, a conflict (-0.10) gained; nothing else moved
    assert wrong == pytest.approx(right - 0.05 - 0.10, abs=1e-3)


_DIGITISH = "0123456789 ,.:-/aApPmMhrsGTUC_xé٣\n"


@pytest.mark.parametrize(("fast", "plain"), [
    (particulars_module._NUMBER_RE, re.compile(particulars_module.NUMBER_PLAIN)),
    (dates_module._CLOCK, re.compile(dates_module.CLOCK_PLAIN)),
    (dates_module._NUMERIC, re.compile(dates_module.NUMERIC_PLAIN)),
])
@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet=_DIGITISH, max_size=40))
def test_digit_led_patterns_match_as_their_plain_forms(
        fast: re.Pattern[str], plain: re.Pattern[str], text: str) -> None:
    def found(p: re.Pattern[str]) -> list[tuple[tuple[int, int], tuple[str | None, ...]]]:
        return [(m.span(), m.groups()) for m in p.finditer(text)]

    assert found(fast) == found(plain)


@pytest.mark.parametrize(("fast", "unicode"), [
    (particulars_module._NUMBER_RE_ASCII, particulars_module._NUMBER_RE),
    (dates_module._CLOCK_ASCII, dates_module._CLOCK),
    (dates_module._NUMERIC_ASCII, dates_module._NUMERIC),
])
@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet="0123456789 ,.:-/aApPmMhrsGTUC_x\n\x1c", max_size=40))
def test_ascii_digit_patterns_match_as_the_unicode_ones_on_ascii_text(
        fast: re.Pattern[str], unicode: re.Pattern[str], text: str) -> None:
    # ASCII text is read with [0-9] for \d (a faster scan); on it nothing may differ.
    def found(p: re.Pattern[str]) -> list[tuple[tuple[int, int], tuple[str | None, ...]]]:
        return [(m.span(), m.groups()) for m in p.finditer(text)]

    assert found(fast) == found(unicode)


def test_interned_marks_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(particulars_module, "MAX_INTERNED", 10)
    particulars_module._MARKS.clear()
    for n in range(100, 150):
        assert particulars(f"They counted {n} boats.") == (f"cboat={n}", f"n{n}")
        assert len(particulars_module._MARKS) <= 10
    assert particulars("They counted 149 boats.")[1] is particulars("149 boats")[1]
    # counted nouns are nearly all distinct: they are kept out of the table
    assert not any(m.startswith("c") for m in particulars_module._MARKS)
