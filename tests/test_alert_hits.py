"""Rule explanations per story follow their articles (``monitor.alerts.hits``)."""

from __future__ import annotations

from monitor.alerts.hits import KEEP, StoryHits
from monitor.models import RuleHit


def hit(rule: str, snippet: str) -> RuleHit:
    return RuleHit(rule_id=rule, title=rule, severity="high", snippet=snippet)


def test_the_first_matching_article_explains_a_rule_while_it_is_in_the_story() -> None:
    hits = StoryHits()
    hits.learn("s1", "a", [hit("r", "from a")])
    hits.learn("s1", "b", [hit("r", "from b"), hit("q", "q from b")])
    assert hits.explain("s1", "r") == hit("r", "from a")
    assert hits.explain("s1", "q") == hit("q", "q from b")
    hits.move(["a"], "s1", "s2")                       # a split takes a away
    assert hits.explain("s1", "r") == hit("r", "from b")
    assert hits.explain("s2", "r") == hit("r", "from a")
    assert hits.explain("s2", "q") is None
    hits.move(["a"], "s2", "s1")                       # ... and a failed commit brings it back
    assert "s2" not in hits and hits.explain("s1", "r") == hit("r", "from a")  # first again
    hits.forget("s1", "b")
    assert hits.explain("s1", "q") is None and hits.explain("s1", "r") == hit("r", "from a")


def test_a_rule_keeps_its_first_hit_and_the_latest_ones() -> None:
    hits = StoryHits()
    for n in range(20):
        hits.learn("s1", f"a{n}", [hit("r", f"from a{n}")])
    hits.move([f"a{n}" for n in range(1, 20)], "s1", "s2")
    assert hits.explain("s1", "r") == hit("r", "from a0")
    assert hits.explain("s2", "r") == hit("r", f"from a{20 - KEEP + 1}")   # the latest kept


def test_stories_no_longer_wanted_are_forgotten() -> None:
    hits = StoryHits()
    hits.learn("s1", "a", [hit("r", "x")])
    hits.learn("s2", "b", [hit("r", "y")])
    hits.learn("s3", "c", [])
    hits.keep_only(["s2"])
    assert len(hits) == 1 and "s2" in hits
    hits.drop("s2")
    assert len(hits) == 0


def test_a_move_taken_back_leaves_the_story_as_it_was() -> None:
    hits, before = StoryHits(), StoryHits()
    for h in (hits, before):
        h.learn("s1", "a", [])
        for key in ("b", "c", "d"):
            h.learn("s1", key, [hit("r", f"from {key}")])
    hits.move(["b", "d"], "s1", "s2")
    hits.learn("s1", "x", [hit("r", "from x")])
    hits.forget("s1", "x")
    hits.move(["b", "d"], "s2", "s1")
    assert hits == before
    assert hits.explain("s1", "r") == hit("r", "from b")
