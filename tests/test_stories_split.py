"""Story repair: a story that took in a second event is cut back in two; one event is not.

Real texts (tests/data/stories/README.md): the Indian Navy's two anti-piracy actions in
the Gulf of Aden (2008 and 2011, same protagonists and places) and four reports of the
Myanmar earthquake over five days whose death toll keeps rising (an update, not a second
event). A low join threshold lets the navy story snowball over both actions, the case
the repair exists for.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from monitor.models import StoryMember
from monitor.stories.cluster import Placement, Split, StoryConfig, StoryIndex, story_id_for
from monitor.stories.split import SplitMember, decide, may_conflict, two_means
from tests.test_stories import T0, load

SNOWBALL = ["navy_2011_b.txt", "navy_2008_a.txt", "navy_2008_b.txt", "navy_2011_a.txt"]
LOOSE = 0.15   # a join threshold low enough for one story to take in both navy actions


def run(names: list[str], config: StoryConfig, step: timedelta = timedelta(minutes=20)
        ) -> tuple[StoryIndex, list[Placement], list[Split | None]]:
    index = StoryIndex(config)
    placements, splits = [], []
    for n, name in enumerate(names):
        p = index.place(load(name), T0 + n * step)
        placements.append(p)
        splits.append(index.add(p))
    return index, placements, splits


def test_a_story_that_took_in_a_second_event_is_cut_back_in_two() -> None:
    index, placements, splits = run(SNOWBALL, StoryConfig(join_threshold=LOOSE))
    # the first three reports snowballed into one story: 2011, then both 2008 reports
    assert len({p.story_id for p in placements}) == 1
    assert splits[:3] == [None, None, None]
    split = splits[3]
    assert split is not None
    assert split.story_id == placements[0].story_id
    assert split.moved == ("navy_2008_a.txt", "navy_2008_b.txt")
    assert split.new_story_id == story_id_for("navy_2008_a.txt")
    assert split.conflicts >= 1 and split.score < StoryConfig().split_bar
    assert index.story_members(split.story_id) == ("navy_2011_b.txt", "navy_2011_a.txt")
    assert sorted(index.story_members(split.new_story_id)) == ["navy_2008_a.txt",
                                                               "navy_2008_b.txt"]
    assert len(index) == 2


def test_without_the_repair_the_snowball_stays_one_story() -> None:
    index, _, splits = run(SNOWBALL, StoryConfig(join_threshold=LOOSE, split_bar=0))
    assert splits == [None] * 4
    assert len({index.story_of(name) for name in SNOWBALL}) == 1


def test_a_running_story_with_a_rising_toll_is_not_cut() -> None:
    """Later reports give other counts and weekdays (an update): still one story."""
    names = [f"quake_myanmar_{c}.txt" for c in "abcd"]
    index, placements, splits = run(names, StoryConfig(), step=timedelta(hours=20))
    assert splits == [None] * 4
    assert len({index.story_of(name) for name in names}) == 1
    assert [p.method for p in placements[1:]] == ["similar"] * 3


def test_other_events_on_one_theme_are_not_cut_either() -> None:
    """Stories that never mixed two events: the seeds and the Jeddah talks, two quakes."""
    for names in (["seed_paris_a.txt", "seed_paris_b.txt", "jeddah_a.txt", "jeddah_b.txt"],
                  ["quake_myanmar_a.txt", "quake_tonga_a.txt", "quake_myanmar_b.txt",
                   "quake_tonga_b.txt"]):
        _, _, splits = run(names, StoryConfig(join_threshold=LOOSE))
        assert splits == [None] * 4, names


def test_a_restart_rebuilds_the_split_stories() -> None:
    index, placements, splits = run(SNOWBALL, StoryConfig(join_threshold=LOOSE))
    split = splits[3]
    assert split is not None
    final = {p.article_key: index.story_of(p.article_key) or "" for p in placements}
    assert final["navy_2008_a.txt"] == split.new_story_id
    rebuilt = StoryIndex(StoryConfig(join_threshold=LOOSE))
    rebuilt.restore(StoryMember(final[p.article_key], p.article_key, p.seen_at, p.features)
                    for p in placements)
    assert {k: rebuilt.story_of(k) for k in final} == final
    probe = load("navy_2008_b.txt", key="probe")   # a third outlet's copy of the 2008 report
    at = T0 + timedelta(hours=2)
    assert rebuilt.place(probe, at) == index.place(probe, at)
    assert index.place(probe, at).story_id == split.new_story_id


def test_moving_the_members_back_undoes_the_split() -> None:
    """What the ingest does when the commit carrying a split fails."""
    index, _, splits = run(SNOWBALL, StoryConfig(join_threshold=LOOSE))
    unsplit, _, _ = run(SNOWBALL, StoryConfig(join_threshold=LOOSE, split_bar=0))
    split = splits[3]
    assert split is not None
    index.move(split.moved, split.story_id)
    assert len(index) == 1
    sid = split.story_id
    assert sorted(index.story_members(sid)) == sorted(unsplit.story_members(sid))
    assert (index._stories[sid].term_sums(index._vocab)
            == unsplit._stories[sid].term_sums(unsplit._vocab))
    assert index._stories[sid].marks == unsplit._stories[sid].marks
    probe = load("navy_2011_a.txt", key="probe")
    at = T0 + timedelta(hours=2)
    assert index.place(probe, at) == unsplit.place(probe, at)


TERMS = {"harbour": 1, "glacier": 2, "navy": 3}


def _member(key: str, n: int, vector: dict[str, float], marks: tuple[str, ...]) -> SplitMember:
    return SplitMember(key, T0 + timedelta(minutes=n),
                       np.array([TERMS[t] for t in vector], dtype=np.uint32),
                       np.array(list(vector.values())), marks)


def test_decide_needs_two_groups_a_conflict_and_a_low_score() -> None:
    a = {"harbour": 0.8, "navy": 0.6}
    b = {"glacier": 0.8, "navy": 0.6}
    members = [_member("a1", 0, a, ("y2008",)), _member("b1", 1, b, ("y2011",)),
               _member("a2", 2, a, ("y2008",)), _member("b2", 3, b, ("y2011",))]
    kw = {"split_bar": 0.40, "story_terms": 80, "agree_bonus": 0.05,
          "conflict_penalty": 0.10, "agree_share": 2 / 3}
    found = decide(members, **kw)
    assert found is not None and found.leaving == ("b1", "b2") and found.conflicts == 1
    assert found.cosine == 0.36
    # the same two groups without a conflict of particulars: not two events
    agreeing = [_member(m.key, i, v, ("y2008",)) for i, (m, v) in
                enumerate(zip(members, (a, b, a, b), strict=True))]
    assert decide(agreeing, **kw) is None
    assert not may_conflict(("y2008", "n1", "n2", "w5"))
    assert may_conflict(("y2008", "y2011"))
    # bare numbers are left out: they differ within one event as often as across two
    numbers = [_member(m.key, i, v, (f"n{i}",)) for i, (m, v) in
               enumerate(zip(members, (a, b, a, b), strict=True))]
    assert decide(numbers, **kw) is None
    # one odd report is not an event
    assert decide([*members[:3], _member("a3", 4, a, ("y2008",))], **kw) is None
    # the groups' score (their cosine 0.36 less the conflict) above the bar: kept together
    assert decide(members, **{**kw, "split_bar": 0.25}) is None
    # two members alike: no two groups
    assert two_means(np.array([[0.8, 0.6], [0.8, 0.6]])) is None
