"""Rule files: settings, filters, hits with evidence, and every error reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import RuleError
from monitor.match.rules import Throttle, load_rules, parse_duration, parse_rules_text
from monitor.models import Article

GOOD = """\
terms:
  ukraine: [Ukraine, Ukrainian, Kyiv, Kiev, Ukraina, Україн*]
rules:
  - id: guarantees
    title: Security guarantees for Ukraine
    description: the core topic
    severity: high
    enabled: true
    languages: [en, sv]
    outlets: {include: [reuters, apnews.com], exclude: []}
    channels: [redis, stdout]
    throttle: {count: 5, period: 1h}
    tags: [ukraine]
    query: '@ukraine AND ("security guarantee*" OR säkerhetsgaranti*)'
  - id: off
    enabled: false
    query: Ukraine
  - id: no-gaza
    severity: low
    query: 'ceasefire AND NOT gaza'
"""


def art(title: str, summary: str = "", **kw: str) -> Article:
    return Article(key="k", url=kw.get("url", "https://www.reuters.com/x"), title=title,
                   summary=summary, outlet=kw.get("outlet", "Reuters"),
                   language=kw.get("language", "en"))


def problems(text: str) -> list[str]:
    with pytest.raises(RuleError) as e:
        parse_rules_text(text, "r.yaml")
    return [str(p) for p in e.value.problems]


def test_rule_settings_are_loaded() -> None:
    rs = parse_rules_text(GOOD, "r.yaml")
    assert len(rs) == 3
    r = rs.rules[0]
    assert (r.id, r.title, r.severity, r.enabled) == (
        "guarantees", "Security guarantees for Ukraine", "high", True)
    assert r.languages == ("en", "sv")
    assert r.outlets_include == ("reuters", "apnews.com")
    assert r.channels == ("redis", "stdout")
    assert r.throttle == Throttle(5, 3600.0)
    assert r.tags == ("ukraine",)
    assert (r.source, r.line) == ("r.yaml", 4)
    assert rs.rules[1].enabled is False
    assert rs.rules[2].title == "no-gaza"  # title defaults to the id


def test_match_returns_hits_with_evidence_and_snippet() -> None:
    rs = parse_rules_text(GOOD, "r.yaml")
    body = ("Leaders met in Paris on Tuesday. " * 6 + "They discussed security guarantees "
            "for Kyiv and the role of Europe. " + "More talks follow next week. " * 6)
    hits = rs.match(art("Ukraine talks", body))
    assert [h.rule_id for h in hits] == ["guarantees"]
    h = hits[0]
    assert h.severity == "high"
    assert h.channels == ("redis", "stdout")
    assert h.clauses == ("@ukraine", '("security guarantee*" OR säkerhetsgaranti*)')
    assert set(h.terms) == {"Ukraine", "Kyiv", '"security guarantee*"'}
    phrase = next(m for m in h.matches if m.term == '"security guarantee*"')
    assert phrase.field == "summary"
    assert body[phrase.start:phrase.end] == "security guarantees"
    assert "security guarantees" in h.snippet
    assert len(h.snippet) <= 210
    assert h.snippet.startswith("…")
    assert h.snippet.endswith("…")
    title_match = next(m for m in h.matches if m.field == "title")
    assert (title_match.position, title_match.start, title_match.end) == (0, 0, 7)


def test_disabled_rules_never_match() -> None:
    rs = parse_rules_text(GOOD, "r.yaml")
    assert "off" not in [h.rule_id for h in rs.match(art("Ukraine"))]


def test_language_filter_lets_unknown_language_through() -> None:
    rs = parse_rules_text(GOOD, "r.yaml")
    title = "Säkerhetsgarantier för Ukraina"
    assert rs.match_ids(art(title, language="sv-SE")) == ["guarantees"]
    assert rs.match_ids(art(title, language="de")) == []
    assert rs.match_ids(art(title, language="")) == ["guarantees"]


def test_outlet_filter_by_name_or_host() -> None:
    rs = parse_rules_text(GOOD, "r.yaml")
    title = "Ukraine security guarantees"
    assert rs.match_ids(art(title, outlet="Reuters")) == ["guarantees"]
    assert rs.match_ids(art(title, outlet="AP", url="https://apnews.com/a")) == ["guarantees"]
    assert rs.match_ids(art(title, outlet="AP", url="https://www.apnews.com/a")) == ["guarantees"]
    assert rs.match_ids(art(title, outlet="RT", url="https://rt.com/a")) == []
    text = """rules:
  - id: r
    outlets: {exclude: [rt.com]}
    query: ukraine
"""
    ex = parse_rules_text(text)
    assert ex.match_ids(art("Ukraine", outlet="RT", url="https://www.rt.com/news/1")) == []
    assert ex.match_ids(art("Ukraine", outlet="BBC", url="https://bbc.co.uk/1")) == ["r"]


def test_negative_only_rule_is_evaluated_on_every_article() -> None:
    rs = parse_rules_text("rules:\n  - id: r\n    query: '-gaza AND -iran'\n")
    assert rs.prefilter.always == [0]
    assert rs.match_ids(art("Weather in Oslo")) == ["r"]
    assert rs.match_ids(art("Gaza truce")) == []


def test_load_rules_reads_directories_and_shares_term_lists(tmp_path: Path) -> None:
    (tmp_path / "terms.yaml").write_text("terms:\n  kyiv: [Kyiv, Kiev, Київ]\n")
    sub = tmp_path / "desk"
    sub.mkdir()
    (sub / "a.yml").write_text("rules:\n  - id: a\n    query: '@kyiv AND troops'\n")
    (tmp_path / "notes.txt").write_text("not a rule file")
    rs = load_rules([tmp_path])
    assert [r.id for r in rs.rules] == ["a"]
    assert rs.match_ids(art("Troops near Київ")) == ["a"]
    assert load_rules([sub / "a.yml", tmp_path / "terms.yaml"]).rules[0].id == "a"


def test_every_problem_is_reported_at_once_with_file_line_and_column() -> None:
    text = """\
rules:
  - id: ok
    query: kyiv
  - id: bad-severity
    severity: urgent
    query: kyiv
  - id: bad-paren
    query: '(kyiv OR kiev'
  - id: unknown-list
    query: '@nowhere'
  - id: empty
    query: ''
  - id: ok
    query: kiev
  - id: extra
    qurey: kyiv
    query: kyiv
  - title: no id
    query: kyiv
  - id: bad-throttle
    throttle: {count: 0, period: soon}
    query: kyiv
  - id: bad-enabled
    enabled: maybe
    query: kyiv
"""
    got = problems(text)
    expected = [
        "r.yaml:5:15: rule bad-severity: severity 'urgent' is not one of",
        "r.yaml:8:13: rule bad-paren: unbalanced parenthesis: '(' is never closed",
        "r.yaml:10:13: rule unknown-list: unknown term list '@nowhere'",
        "r.yaml:12:12: rule empty: empty query",
        "r.yaml:13:9: rule ok: duplicate rule id 'ok' (first defined at r.yaml:2)",
        "r.yaml:16:5: rule extra: unknown key 'qurey'",
        "r.yaml:18:5: rule: rule has no 'id'",
        "r.yaml:21:23: rule bad-throttle: throttle.count",
        "r.yaml:24:14: rule bad-enabled: enabled: expected true or false",
    ]
    assert len(got) == len(expected), got
    for line, want in zip(got, expected, strict=True):
        assert line.startswith(want), (line, want)


def test_query_error_column_inside_a_block_scalar() -> None:
    text = "rules:\n  - id: r\n    query: |\n      kyiv AND\n      (troops OR\n"
    got = problems(text)
    assert len(got) == 1
    assert got[0].startswith("r.yaml:5:7: rule r: unbalanced parenthesis"), got


@pytest.mark.parametrize(("text", "fragment"), [
    ("base: &b {id: x}\nrules: [*b]\n", "anchors (&b) are not allowed"),
    ("rules:\n  - id: a\n    id: b\n    query: x\n", "3:5: duplicate key 'id' (first at line 2)"),
    ("rules:\n  - id: a\n    query: [unclosed\n", "YAML syntax"),
    ("rules: {}\n", "'rules' is a list of rules"),
    ("- id: a\n", "a rule file is a mapping"),
    ("rulez: []\n", "unknown top-level key 'rulez'"),
    ("terms:\n  x: []\nrules: []\n", "term list '@x' is empty"),
    ("terms:\n  x: ['***']\n", "has no letters"),
    ("default_operator: XOR\n", "default_operator is AND or OR"),
])
def test_unsafe_or_malformed_yaml_is_refused(text: str, fragment: str) -> None:
    got = problems(text)
    assert any(fragment in p for p in got), got


def test_alias_bomb_is_refused_before_expansion() -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    for i in range(1, 9):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]\n"
    got = problems(bomb)
    assert len(got) == 1
    assert "anchors" in got[0]


def test_term_lists_defined_twice_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("terms:\n  kyiv: [Kyiv]\n")
    (tmp_path / "b.yaml").write_text("terms:\n  Kyiv: [Kiev]\n")
    with pytest.raises(RuleError) as e:
        load_rules([tmp_path])
    assert "already defined" in str(e.value)
    assert "b.yaml:2:3" in str(e.value)


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("rules:\n  - id: x\n    query: kyiv\n")
    (tmp_path / "b.yaml").write_text("rules:\n  - id: x\n    query: kiev\n")
    with pytest.raises(RuleError) as e:
        load_rules([tmp_path])
    assert len(e.value.problems) == 1
    assert "duplicate rule id 'x'" in str(e.value)


def test_missing_path_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(RuleError) as e:
        load_rules([tmp_path / "nope.yaml"])
    assert "no such file" in str(e.value)


@pytest.mark.parametrize(("value", "seconds"), [
    (60, 60.0), (1.5, 1.5), ("90s", 90.0), ("15m", 900.0), ("1h30m", 5400.0), ("1d", 86400.0),
])
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "", "1x", 0, -5, True, None])
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)
