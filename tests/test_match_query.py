"""The query language: each operator, tokenization, normalization, and refusals."""

from __future__ import annotations

import pytest

from monitor.match.query import QueryError, parse_query
from monitor.match.text import Document, normalize, tokens
from monitor.models import Article

TERMS = {
    "ukraine": ("Ukrain*", "Kyiv", "Kiev", "Україн*", "Ukraine's"),
    "guarantee": ("security guarantee*", "säkerhetsgaranti*", "гаранті* безпеки"),
}


def art(title: str = "", summary: str = "", content: str = "", **kw: str) -> Article:
    return Article(key="k", url=kw.get("url", "https://example.org/a"), title=title,
                   summary=summary, content=content, outlet=kw.get("outlet", ""),
                   language=kw.get("language"))


def hit(query: str, article: Article, op: str = "OR") -> bool:
    q = parse_query(query, TERMS, "AND" if op == "AND" else "OR")
    return q.root.matches(Document(article))


def test_normalize_folds_case_accents_and_special_letters() -> None:
    assert normalize("SÄKERHETSGARANTIER") == "sakerhetsgarantier"
    assert normalize("Kijów") == "kijow"
    assert normalize("Zełenski") == "zelenski"
    assert normalize("Straße") == "strasse"
    assert normalize("УКРАЇНА") == normalize("україна")


def test_tokens_split_on_punctuation_and_keep_unicode_words() -> None:
    assert tokens("Ukraine's NATO-membership, «Україна»!") == [
        "ukraine", "s", "nato", "membership", normalize("Україна")]


@pytest.mark.parametrize(("query", "text", "expected"), [
    ("NATO", "NATO allies met", True),
    ("NATO", "the NATOnal team", False),              # whole tokens only
    ("nato", "Nato summit", True),                    # case-insensitive
    ("securite", "garanties de sécurité", True),      # accent-insensitive
    ("Sécurité", "garanties de securite", True),
    ("guarantee*", "guarantees were given", True),
    ("guarantee*", "guarantor nations", False),
    ("peacekeep*", "Friedenstruppen and peacekeepers", True),
    ("Sicherheitsgarantie*", "die Sicherheitsgarantien für die Ukraine", True),
    ("Україн*", "гарантії безпеки для України", True),
    ("Украин*", "гарантии безопасности Украине", True),
    ("gu?rantee", "a guarantee", True),
    ("gu?rantee", "a guarrantee", False),
    ("*keeping", "peacekeeping", True),
    ('"security guarantees"', "Security Guarantees for Ukraine", True),
    ('"security guarantees"', "guarantees of security", False),
    ('"security guarantee*"', "security guarantee's scope", True),
    ('"troops deploy"~3', "troops would then deploy", True),
    ('"troops deploy"~3', "deploy the troops", True),       # any order
    ('"troops deploy"~1', "troops would not then deploy", False),
    ("Article-5", "an Article 5 guarantee", True),          # a split word is a phrase
    ("Article-5", "article about 5 things", False),
    ("Ukraine's", "Ukraine’s army", True),                  # curly apostrophe too
])
def test_terms_and_phrases(query: str, text: str, expected: bool) -> None:
    assert hit(query, art(title=text)) is expected


@pytest.mark.parametrize(("query", "title", "expected"), [
    ("kyiv AND guarantee*", "Kyiv wants guarantees", True),
    ("kyiv AND guarantee*", "Kyiv wants peace", False),
    ("kyiv OR moscow", "Moscow says no", True),
    ("kyiv AND NOT gaza", "Kyiv and Gaza", False),
    ("kyiv AND -gaza", "Kyiv alone", True),
    ("+kyiv guarantee", "Kyiv talks", True),           # optional clause beside a required one
    ("+kyiv guarantee", "guarantee talks", False),
    ("kyiv guarantee", "guarantee talks", True),       # default OR, as Lucene
    ("kyiv guarantee -gaza", "guarantee for Gaza", False),
    ("-gaza", "news from Kyiv", True),                 # only negative clauses: still works
    ("-gaza", "news from Gaza", False),
    ("NOT gaza", "news from Kyiv", True),
    ("(kyiv OR kiev) AND (troops OR soldiers)", "Kiev soldiers", True),
    ("kyiv AND (troops OR soldiers)", "Kyiv peace", False),
    ("@ukraine AND @guarantee", "Україна: гарантії безпеки", True),
    ("@ukraine AND @guarantee", "Säkerhetsgarantier för Ukraina", True),
    ("@ukraine AND @guarantee", "Security guarantee for Qatar", False),
    ("(troops NEAR/3 deploy)", "troops ready to deploy", True),
    ("(troops NEAR/2 deploy)", "troops would be ready to deploy", False),
    ("guarantee* NEAR/3 @ukraine", "guarantees for Kyiv", True),
    ("(kyiv OR kiev)^2", "Kiev", True),                # boost accepted, ignored
])
def test_boolean_operators(query: str, title: str, expected: bool) -> None:
    assert hit(query, art(title=title)) is expected


def test_default_operator_and() -> None:
    assert hit("kyiv guarantee", art(title="guarantee talks"), op="AND") is False
    assert hit("kyiv guarantee", art(title="Kyiv guarantee talks"), op="AND") is True


def test_field_scoping() -> None:
    a = art(title="Peace talks", summary="Kyiv wants guarantees", outlet="Reuters",
            url="https://www.reuters.com/world/europe/x", language="en-GB")
    assert hit("summary:kyiv", a)
    assert not hit("title:kyiv", a)
    assert hit("title:peace AND summary:guarantee*", a)
    assert hit("outlet:reuters", a)
    assert not hit("reuters", a)  # outlet is not searched by default
    assert hit("url:europe", a)
    assert hit('url:"reuters.com"', a)
    assert hit("language:en", a)
    assert not hit("language:sv", a)
    assert hit("text:kyiv", a)
    assert hit("title:(peace OR war) AND NOT title:gaza", a)
    assert hit("language:en AND *", a)


def test_phrase_does_not_cross_fields() -> None:
    a = art(title="Ukraine wants security", summary="guarantees from the US")
    assert not hit('"security guarantees"', a)


@pytest.mark.parametrize(("query", "fragment"), [
    ("", "empty query"),
    ("   ", "empty query"),
    ("(kyiv OR kiev", "unbalanced parenthesis"),
    ("kyiv OR kiev)", "unbalanced parenthesis"),
    ('"kyiv', "unbalanced quote"),
    ("@nowhere AND kyiv", "unknown term list '@nowhere'"),
    ("foo:kyiv", "unknown field 'foo'"),
    ("kyiv~2", "fuzzy"),
    ("[a TO b]", "ranges"),
    ("a*", "too broad"),
    ("kyiv and kiev", "lowercase 'and'"),
    ("kyiv && kiev", "'&&' is not supported"),
    ("kyiv AND", "syntax error"),
    ("kyiv AND troops NEAR/3 deploy", "NEAR joins"),
])
def test_refusals_have_a_reason(query: str, fragment: str) -> None:
    with pytest.raises(QueryError) as e:
        parse_query(query, TERMS)
    assert fragment in e.value.reason


def test_refusal_positions_point_at_the_fault() -> None:
    with pytest.raises(QueryError) as e:
        parse_query("kyiv AND (troops OR soldiers", TERMS)
    assert e.value.position == 9
    with pytest.raises(QueryError) as e:
        parse_query("kyiv AND @nope", TERMS)
    assert e.value.position == 9


def test_top_level_clauses_are_reported() -> None:
    q = parse_query("@ukraine AND (troops OR soldiers) AND NOT gaza", TERMS)
    assert q.combine == "all"
    assert [(c.source, c.negated) for c in q.clauses] == [
        ("@ukraine", False), ("(troops OR soldiers)", False), ("NOT gaza", True)]


def test_regex_terms_run_under_re2_on_whole_words() -> None:
    pytest.importorskip("re2")
    a = art(title="Peacekeepers for UKRAINE", summary="peace plans")
    assert hit("/peace.?keep(ing|ers?)/", a)
    assert hit("/ukr[a-z]+/ AND title:/peace.*/", a)
    assert not hit("/keep.*/", a)  # whole words only: no match inside "peacekeepers"
    assert hit("/keep.*/", art(title="peace-keeping"))  # "keeping" is a word of its own
    assert hit("/sakerhet.*/", art(title="Säkerhetsgarantier"))  # sees normalized words
    with pytest.raises(QueryError, match="cannot run under RE2"):
        parse_query("/(a)\\1/", TERMS)
    with pytest.raises(QueryError, match="cannot run under RE2"):
        parse_query("/(?<=a)b/", TERMS)


def test_regex_terms_are_refused_without_re2(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "re2", None)  # makes "import re2" fail
    with pytest.raises(QueryError, match="need the google-re2 package"):
        parse_query("/ky.v/", TERMS)
