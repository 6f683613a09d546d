"""The prefilter must never drop a rule that matches; explanations must say why."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.match.explain import explain, render_text, to_json
from monitor.match.prefilter import anchors
from monitor.match.query import parse_query
from monitor.match.rules import parse_rules_text
from monitor.match.text import Document
from monitor.models import Article

VOCAB = ["kyiv", "troops", "ceasefire", "nato", "guarantee", "guarantees", "peacekeepers",
         "gaza", "monitor", "Україна", "säkerhet", "the"]
ATOMS = ["kyiv", "troops", "ceasefire", "nato", "guarantee*", "peacekeep*", "gaza",
         '"security guarantees"', '"troops kyiv"~3', "Україн*", "sakerhet", "title:nato",
         "summary:kyiv", "g?za", "(nato NEAR/2 troops)"]


def queries() -> st.SearchStrategy[str]:
    atom = st.sampled_from(ATOMS)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from([" AND ", " OR ", " "]), inner).map(
                lambda t: f"({t[0]}{t[1]}{t[2]})"),
            inner.map(lambda q: f"NOT {q}"),
            inner.map(lambda q: f"-{q}"),
            inner.map(lambda q: f"+{q}"),
        )

    return st.recursive(atom, extend, max_leaves=6)


words = st.lists(st.sampled_from([*VOCAB, "security"]), max_size=12).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(qs=st.lists(queries(), min_size=1, max_size=8), title=words, summary=words)
def test_prefilter_never_drops_a_matching_rule(qs: list[str], title: str, summary: str) -> None:
    text = "rules:\n" + "".join(
        f"  - id: r{i}\n    query: {json.dumps(q)}\n" for i, q in enumerate(qs))
    rs = parse_rules_text(text)
    article = Article(key="k", url="", title=title, summary=summary)
    doc = Document(article)
    brute = [c.rule.id for c in rs.active if c.query.root.matches(doc)]
    assert rs.match_ids(article) == brute
    assert [h.rule_id for h in rs.match(article)] == brute


def test_anchors_choose_a_required_rare_term() -> None:
    q = parse_query('the AND "security guarantees" AND NOT gaza', {})
    assert anchors(q.root) == frozenset({("guarantees", False)})
    q = parse_query("peacekeep* OR kyiv", {})
    assert anchors(q.root) == frozenset({("peacekeep", True), ("kyiv", False)})
    assert anchors(parse_query("NOT gaza", {}).root) is None
    assert anchors(parse_query("kyiv OR NOT gaza", {}).root) is None
    assert anchors(parse_query("*keeping", {}).root) is None


def test_prefix_anchor_does_not_fire_inside_a_word() -> None:
    rs = parse_rules_text("rules:\n  - id: r\n    query: 'keep*'\n")
    assert rs.candidates(Document(Article(key="k", url="", title="peacekeeping"))) == []
    assert rs.match_ids(Article(key="k", url="", title="keeping")) == ["r"]


RULES = """\
terms:
  ukraine: [Ukraine, Kyiv]
rules:
  - id: guarantees
    severity: high
    query: '@ukraine AND "security guarantees" AND NOT gaza'
  - id: peacekeepers
    query: '@ukraine AND peacekeep*'
  - id: swedish
    languages: [sv]
    query: Ukraina
  - id: off
    enabled: false
    query: Ukraine
"""


def test_explain_covers_every_rule_with_a_reason() -> None:
    rs = parse_rules_text(RULES)
    a = Article(key="k", url="https://x.org/1", title="Ukraine wants security guarantees",
                summary="Talks in Kyiv.", language="en")
    exps = explain(rs, a)
    by_id = {e.rule_id: e for e in exps}
    assert [e.rule_id for e in exps] == ["guarantees", "peacekeepers", "swedish", "off"]
    g = by_id["guarantees"]
    assert g.matched
    assert [(c.source, c.held) for c in g.clauses] == [
        ("@ukraine", True), ('"security guarantees"', True), ("NOT gaza", True)]
    assert g.hit is not None
    assert {m.term for m in g.clauses[0].matches} == {"Ukraine", "Kyiv"}
    p = by_id["peacekeepers"]
    assert p.outcome == "no-match"
    assert p.reason == "the article has none of the required words: peacekeep*"
    assert by_id["swedish"].outcome == "filtered"
    assert "language 'en'" in by_id["swedish"].reason
    assert by_id["off"].outcome == "disabled"

    text = render_text(a, exps)
    assert "[MATCH] guarantees (high)" in text
    assert "+ @ukraine  <- «Ukraine»@title:0, «Kyiv»@summary:2" in text
    assert "[off] off" in text
    short = render_text(a, exps, include_misses=False)
    assert "peacekeepers" not in short

    data = to_json(a, exps)
    assert data["matched"] == ["guarantees"]
    assert json.loads(json.dumps(data)) == data
    assert len(data["rules"]) == 4
    assert len(to_json(a, exps, include_misses=False)["rules"]) == 1


def test_explain_names_the_failing_clause() -> None:
    rs = parse_rules_text(RULES)
    a = Article(key="k", url="", title="Ukraine and Gaza: security guarantees")
    e = explain(rs, a)[0]
    assert e.outcome == "no-match"
    assert e.reason == "clause(s) did not hold: NOT gaza"


def test_and_rules_are_candidates_only_when_every_side_is_present() -> None:
    rs = parse_rules_text("rules:\n  - id: r\n    query: 'kyiv AND \"security guarantees\"'\n")
    only_one = Document(Article(key="k", url="", title="Kyiv security"))
    both = Document(Article(key="k", url="", title="Kyiv wants guarantees for security"))
    assert rs.candidates(only_one) == []
    assert [c.rule.id for c in rs.candidates(both)] == ["r"]
    assert rs.match_ids(both.article) == []  # a candidate, but the phrase is not there
