"""Why each rule did or did not match an article — for ``news-monitor match``.

``RuleSet.match`` answers only for rules that matched. An analyst tuning a rule
asks the other question too: *why not?* :func:`explain` answers for every rule,
in rule order: was it disabled, filtered out by language or outlet, skipped by
the prefilter (none of its anchor terms occur), or tried — and then, clause by
clause at the top level of its query, which clauses held and on which words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from monitor.match.nodes import Evidence
from monitor.match.rules import RuleSet, build_hit, to_term_matches
from monitor.match.text import Document
from monitor.models import Article, RuleHit, TermMatch

Outcome = Literal["matched", "no-match", "filtered", "disabled"]


@dataclass(frozen=True)
class ClauseResult:
    """One top-level clause: its text, whether it held, the words that made it hold."""

    source: str
    negated: bool
    held: bool
    matches: tuple[TermMatch, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "clause": self.source,
            "negated": self.negated,
            "held": self.held,
            "matches": [_match_dict(m) for m in self.matches],
        }


@dataclass(frozen=True)
class Explanation:
    """The verdict of one rule on one article, with the reason in words."""

    rule_id: str
    title: str
    severity: str
    outcome: Outcome
    reason: str
    candidate: bool
    combine: str
    clauses: tuple[ClauseResult, ...] = ()
    hit: RuleHit | None = None

    @property
    def matched(self) -> bool:
        return self.outcome == "matched"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "title": self.title,
            "severity": self.severity,
            "matched": self.matched,
            "outcome": self.outcome,
            "reason": self.reason,
            "prefilter_candidate": self.candidate,
            "combine": self.combine,
            "clauses": [c.to_dict() for c in self.clauses],
            "snippet": self.hit.snippet if self.hit else None,
            "matched_terms": list(self.hit.terms) if self.hit else [],
        }


def _match_dict(m: TermMatch) -> dict[str, Any]:
    return {"field": m.field, "term": m.term, "position": m.position,
            "start": m.start, "end": m.end}


_COMBINE_WORDS = {"all": "every clause must hold", "any": "one clause is enough",
                  "one": "single clause"}


def explain(ruleset: RuleSet, article: Article) -> list[Explanation]:
    """Every rule of ``ruleset`` (enabled or not) judged on ``article``, in rule order."""
    doc = Document(article)
    candidates = {id(c) for c in ruleset.candidates(doc)}
    active_index = {id(c): i for i, c in enumerate(ruleset.active)}
    out: list[Explanation] = []
    for c in ruleset.compiled:
        r = c.rule
        title = r.title or r.id
        combine = c.query.combine
        if not r.enabled:
            out.append(Explanation(r.id, title, r.severity, "disabled", "rule is disabled",
                                   False, combine))
            continue
        refusal = r.refusal(article)
        is_candidate = id(c) in candidates
        clauses = tuple(_clause(doc, cl.source, cl.negated, cl.node) for cl in c.query.clauses)
        if refusal is not None:
            out.append(Explanation(r.id, title, r.severity, "filtered", refusal,
                                   is_candidate, combine, clauses))
            continue
        if c.query.root.matches(doc):
            hit = build_hit(c, doc)
            terms = ", ".join(hit.terms) or "no positive terms (negative clauses held)"
            out.append(Explanation(r.id, title, r.severity, "matched",
                                   f"matched on {terms}", is_candidate, combine, clauses, hit))
            continue
        failed = [cl.source for cl in clauses if not cl.held]
        if not is_candidate:
            missing = ruleset.prefilter.missing(active_index[id(c)], doc)
            words = sorted(t + ("*" if p else "") for t, p in missing or ())
            shown = ", ".join(words[:6]) + (f" (+{len(words) - 6} more)" if len(words) > 6 else "")
            reason = f"the article has none of the required words: {shown}"
        elif combine == "all" and failed:
            reason = "clause(s) did not hold: " + "; ".join(failed)
        else:
            reason = "no clause held" if combine == "any" else "the query did not match"
        out.append(Explanation(r.id, title, r.severity, "no-match", reason, is_candidate,
                               combine, clauses))
    return out


def _clause(doc: Document, source: str, negated: bool, node: Any) -> ClauseResult:
    evidence: list[Evidence] = []
    present = node.collect(doc, evidence)
    matches = to_term_matches(doc, evidence) if present else ()
    return ClauseResult(source, negated, (not present) if negated else present, matches)


def to_json(article: Article, explanations: list[Explanation], *,
            include_misses: bool = True) -> dict[str, Any]:
    """A JSON-able object: the article's identity and the rules' verdicts.

    With ``include_misses=False`` only matched rules are listed (the usual question
    is "what fired"); ``True`` adds every other rule with its reason.
    """
    shown = [e for e in explanations if include_misses or e.matched]
    return {
        "article": {"key": article.key, "url": article.url, "title": article.title,
                    "outlet": article.outlet, "language": article.language},
        "matched": [e.rule_id for e in explanations if e.matched],
        "rules": [e.to_dict() for e in shown],
    }


def render_text(article: Article, explanations: list[Explanation], *,
                include_misses: bool = True) -> str:
    """A readable report: one block per rule, ✓/✗ per clause, words with their field."""
    lines = [f"article: {article.title or article.key}"]
    if article.url:
        lines.append(f"  url: {article.url}")
    n = sum(e.matched for e in explanations)
    lines.append(f"  {n} of {len(explanations)} rule(s) matched")
    for e in explanations:
        if not include_misses and not e.matched:
            continue
        mark = {"matched": "MATCH", "no-match": "no", "filtered": "skip",
                "disabled": "off"}[e.outcome]
        lines.append(f"[{mark}] {e.rule_id} ({e.severity}): {e.title}")
        lines.append(f"    {e.reason}")
        if e.outcome in ("matched", "no-match") and e.candidate and len(e.clauses) > 0:
            lines.append(f"    clauses ({_COMBINE_WORDS.get(e.combine, e.combine)}):")
            for c in e.clauses:
                tick = "+" if c.held else "-"
                text = c.source
                words = ", ".join(_evidence(article, m) for m in c.matches[:8])
                more = f" (+{len(c.matches) - 8} more)" if len(c.matches) > 8 else ""
                lines.append(f"      {tick} {_short(text)}" + (f"  <- {words}{more}"
                                                                if words else ""))
        if e.hit is not None and e.hit.snippet:
            lines.append(f"    snippet: {e.hit.snippet}")
    return "\n".join(lines) + "\n"


def _evidence(article: Article, m: TermMatch) -> str:
    """``«text as written»@field:position`` — the words themselves, not the pattern."""
    text = getattr(article, m.field, None) if m.field in ("title", "summary", "content") else None
    shown = text[m.start:m.end] if isinstance(text, str) else m.term
    return f"«{_short(shown, 40)}»@{m.field}:{m.position}"


def _short(s: str, width: int = 100) -> str:
    s = " ".join(s.split())
    return s if len(s) <= width else s[: width - 1] + "…"
