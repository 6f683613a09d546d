"""The shipped rule set: it loads, both seed articles match, and it stays on topic.

The headlines below are written for this test in the seven languages the rules
cover; they are not taken from the tuning data (which may not be copied here).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.match.rules import RuleSet, load_rules
from monitor.models import Article

ROOT = Path(__file__).resolve().parent.parent
SEEDS = Path(__file__).resolve().parent / "data" / "rules" / "seeds"


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules([ROOT / "rules"])


def article(title: str, body: str = "", language: str | None = None) -> Article:
    return Article(key=title, url="https://example.org/n", title=title, content=body,
                   language=language)


def test_shipped_rules_load_and_are_documented(shipped: RuleSet) -> None:
    assert len(shipped) >= 8
    ids = [r.id for r in shipped.rules]
    assert "ukraine-security-guarantees" in ids
    assert "russia-rejects-foreign-troops" in ids
    for r in shipped.rules:
        assert r.enabled
        assert r.description, r.id
        assert r.severity in ("medium", "high"), r.id
        assert r.source.endswith("ukraine-security-guarantees.yaml")
    assert shipped.prefilter.always == []  # every shipped rule is anchored


@pytest.mark.parametrize("name", ["000_26e5f40edd951f97.txt", "002_0b58c65b8b8e8657.txt"])
def test_both_seed_articles_match(shipped: RuleSet, name: str) -> None:
    text = (SEEDS / name).read_text(encoding="utf-8")
    first, _, rest = text.partition(". ")
    hits = shipped.match(article(first, rest))
    ids = {h.rule_id for h in hits}
    assert "ukraine-security-guarantees" in ids
    assert "ukraine-peacekeeping-force" in ids
    assert "russia-rejects-foreign-troops" in ids
    top = next(h for h in hits if h.rule_id == "ukraine-security-guarantees")
    assert "security guarantees" in top.snippet.lower()


@pytest.mark.parametrize(("title", "rule"), [
    ("Europe weighs security guarantees for Kyiv after a truce", "ukraine-security-guarantees"),
    ("Scholz: Sicherheitsgarantien für die Ukraine nur mit den USA",
     "ukraine-security-guarantees"),
    ("Paris veut des garanties de sécurité solides pour l'Ukraine",
     "ukraine-security-guarantees"),
    ("Polska: gwarancje bezpieczeństwa dla Ukrainy muszą być realne",
     "ukraine-security-guarantees"),
    ("Zelenskyj: säkerhetsgarantierna måste vara bindande", "ukraine-security-guarantees"),
    ("Зеленський: гарантії безпеки для України мають бути юридичними",
     "ukraine-security-guarantees"),
    ("Песков: гарантии безопасности Украине обсуждаются", "ukraine-security-guarantees"),
    ("Britain and France draw up plans for a reassurance force in Ukraine",
     "ukraine-peacekeeping-force"),
    ("Nordic states ready to send troops to Ukraine once a ceasefire holds",
     "ukraine-peacekeeping-force"),
    ("Bundeswehr-Soldaten zur Friedenssicherung in der Ukraine? Debatte um Friedenstruppe",
     "ukraine-peacekeeping-force"),
    ("Satellites and drones would verify a ceasefire in Ukraine, officials say",
     "ukraine-ceasefire-monitoring"),
    ("Coalition of the willing meets in London on Ukraine", "coalition-of-the-willing"),
    ("Koalicja chętnych: kolejne spotkanie w sprawie Ukrainy", "coalition-of-the-willing"),
    ("Kyiv seeks Article 5-style guarantee from NATO allies", "ukraine-nato-guarantee"),
    ("US air cover would backstop a European force in Ukraine after a peace deal",
     "ukraine-backstop"),
    ("Ukraine's army must be a 'steel porcupine' after the ceasefire, EU says",
     "ukraine-deterrent-army"),
    ("Kremlin says European peacekeepers in Ukraine would be legitimate targets",
     "russia-rejects-foreign-troops"),
    ("Лавров: размещение иностранных войск на Украине неприемлемо",
     "russia-rejects-foreign-troops"),
    ("Moscow demands Ukraine's neutrality and demilitarization in any peace deal",
     "russia-demands-neutrality-demilitarization"),
    # the topic without the word "Ukraine"
    ("Europe plans security guarantees with a US backstop", "ukraine-security-guarantees"),
    ("Moscow rejects security guarantees for Ukraine that involve NATO troops",
     "ukraine-security-guarantees"),
    ("European peacekeepers would need American air cover", "ukraine-peacekeeping-force"),
])
def test_multilingual_topic_headlines(shipped: RuleSet, title: str, rule: str) -> None:
    assert rule in shipped.match_ids(article(title))


@pytest.mark.parametrize("title", [
    "Russian troops shell Kharkiv overnight, two injured",
    "Gaza ceasefire talks resume in Cairo",
    "Trump gives Qatar a security guarantee after strike",
    "Ukraine secures EU loan guarantees for reconstruction",
    "National team: Ukraine beats Sweden 2-1",
    "NATOnal news: Ukraine's grain exports rise",
    "Thailand and Cambodia agree a ceasefire monitored by Malaysia",
    "Putin visits China for WWII commemorations",
    "Russian peacekeepers leave Karabakh after the ceasefire",
    "Iraq war: the coalition of the willing, twenty years on",
    "Ukraine crisis: Russia publishes its demands for security guarantees from NATO",
])
def test_off_topic_headlines_do_not_match(shipped: RuleSet, title: str) -> None:
    assert shipped.match_ids(article(title)) == []
