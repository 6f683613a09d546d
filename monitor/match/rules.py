"""Rules: what analysts write (YAML), and the compiled set the daemon matches with.

A rule file is a YAML mapping::

    default_operator: OR        # optional: what "a b" means (OR as in Lucene, or AND)
    terms:                      # optional: named term lists, used as @name in any file
      ukraine: [Ukraine, Ukrainian, Kyiv, Україн*]
    rules:
      - id: ukraine-peacekeepers
        title: Peacekeepers for Ukraine
        severity: high          # info | low | medium | high | critical
        query: '@ukraine AND (peacekeep* OR "reassurance force")'

See docs/RULES.md for every key. :func:`load_rules` reads every file first, so a
term list may live in its own file, and it reports *every* problem of every
file in one :class:`~monitor.errors.RuleError` (with file, line and column),
because an analyst fixing rules wants the whole list, not one error per run.
Nothing is half-loaded: either the whole set compiles or the caller keeps its
last good one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from monitor.errors import Problem, RuleError
from monitor.match.nodes import Evidence
from monitor.match.prefilter import Prefilter
from monitor.match.query import Operator, Query, QueryError, compile_entry, parse_query
from monitor.match.text import Document
from monitor.match.yamlsafe import YamlProblem, compose, scalar, text_of, where
from monitor.models import Article, RuleHit, TermMatch

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
RULE_KEYS = frozenset({
    "id", "title", "description", "severity", "enabled", "languages", "outlets",
    "channels", "throttle", "tags", "query",
})
FILE_KEYS = frozenset({"rules", "terms", "default_operator"})
SNIPPET_CHARS = 200
# Said by `check`, at start and on every reload: valid, but most likely not meant.
NO_ACTIVE_RULES = "no enabled rules (rules.paths empty, or every rule disabled): nothing will alert"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_TERM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
          "d": 86400.0, "w": 604800.0}


@dataclass(frozen=True)
class Throttle:
    """At most ``count`` alerts per ``period`` seconds for one rule (enforced downstream)."""

    count: int
    period: float


@dataclass(frozen=True)
class Rule:
    """One rule as written, with where it was written (for messages and ``check``)."""

    id: str
    query: str
    title: str = ""
    description: str = ""
    severity: str = "medium"
    enabled: bool = True
    languages: tuple[str, ...] = ()
    outlets_include: tuple[str, ...] = ()
    outlets_exclude: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    throttle: Throttle | None = None
    tags: tuple[str, ...] = ()
    source: str = ""
    line: int = 0
    default_operator: Operator = "OR"

    @property
    def filtered(self) -> bool:
        """Whether anything besides the query can skip an article (the hot path asks)."""
        return (not self.enabled or bool(self.languages) or bool(self.outlets_include)
                or bool(self.outlets_exclude))

    def refusal(self, article: Article) -> str | None:
        """Why this rule's filters skip ``article`` before its query is tried, or None.

        An article with no language passes a language filter: feeds often omit
        it, and missing an alert is worse than an extra one the analyst can mute.
        """
        if not self.enabled:
            return "rule is disabled"
        if self.languages and article.language:
            lang = article.language.strip().casefold().replace("_", "-").split("-")[0]
            if lang not in self.languages:
                return f"language {article.language!r} not in {list(self.languages)}"
        if self.outlets_include and not _outlet_in(article, self.outlets_include):
            return f"outlet {article.outlet or article.url!r} not in outlets.include"
        if self.outlets_exclude and _outlet_in(article, self.outlets_exclude):
            return f"outlet {article.outlet or article.url!r} is in outlets.exclude"
        return None


def _outlet_in(article: Article, names: tuple[str, ...]) -> bool:
    """Outlet by name (case-insensitive) or by the article URL's host or parent domain."""
    outlet = article.outlet.casefold().strip()
    host = (urlsplit(article.url).hostname or "").casefold() if article.url else ""
    for name in names:
        if name == outlet or (host and (host == name or host.endswith("." + name))):
            return True
    return False


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    query: Query

    def admits(self, article: Article) -> bool:
        return not self.rule.filtered or self.rule.refusal(article) is None


@dataclass
class RuleSet:
    """A compiled, immutable-in-use set of rules. Build with :func:`load_rules`."""

    compiled: tuple[CompiledRule, ...]
    terms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rules: tuple[Rule, ...] = tuple(c.rule for c in self.compiled)
        self.active: tuple[CompiledRule, ...] = tuple(c for c in self.compiled if c.rule.enabled)
        self.prefilter = Prefilter([c.query.root for c in self.active])

    def __len__(self) -> int:
        return len(self.rules)

    def candidates(self, doc: Document) -> list[CompiledRule]:
        return [self.active[i] for i in self.prefilter.candidates(doc)]

    def match(self, article: Article) -> list[RuleHit]:
        """Every enabled rule that matches ``article``, in rule order, with the evidence."""
        doc = Document(article)
        hits: list[RuleHit] = []
        for c in self.candidates(doc):
            if c.admits(article) and c.query.root.matches(doc):
                hits.append(build_hit(c, doc))
        return hits

    def match_ids(self, article: Article) -> list[str]:
        """Only the ids of matching rules: the cheap path for bulk replays and benchmarks."""
        doc = Document(article)
        return [c.rule.id for c in self.candidates(doc)
                if c.admits(article) and c.query.root.matches(doc)]


def build_hit(c: CompiledRule, doc: Document) -> RuleHit:
    """The explanation carried by an alert: evidence gathered clause by clause.

    Gathering per top-level clause (rather than once over the whole query) lets the
    snippet aim at the passage where the most *different* clauses are satisfied.
    """
    clauses: list[str] = []
    groups: list[tuple[TermMatch, ...]] = []
    for cl in c.query.clauses:
        if cl.negated:
            continue
        evidence: list[Evidence] = []
        if cl.node.collect(doc, evidence):
            clauses.append(cl.source)
            groups.append(to_term_matches(doc, evidence))
    if not clauses:
        clauses = [cl.source for cl in c.query.clauses]
    clause_of: dict[TermMatch, int] = {}
    for i, group in enumerate(groups):
        for m in group:
            clause_of.setdefault(m, i)
    matches = _ordered(clause_of)
    terms = tuple(dict.fromkeys(m.term for m in matches))
    r = c.rule
    return RuleHit(
        rule_id=r.id, title=r.title or r.id, severity=r.severity, terms=terms,
        clauses=tuple(clauses), matches=matches, snippet=snippet(doc, matches, clause_of),
        channels=r.channels,
    )


_FIELD_ORDER = {"title": 0, "summary": 1, "content": 2}


def _ordered(matches: Iterable[TermMatch]) -> tuple[TermMatch, ...]:
    return tuple(sorted(matches, key=lambda m: (_FIELD_ORDER.get(m.field, 3), m.start)))


def to_term_matches(doc: Document, evidence: list[Evidence]) -> tuple[TermMatch, ...]:
    """Evidence as TermMatch values with character spans into the original field text.

    A consecutive run of positions (an exact phrase) becomes one match spanning the
    phrase; scattered positions (proximity, NEAR) become one match per token.
    """
    out: dict[tuple[str, int, int], TermMatch] = {}
    for fname, term, positions in evidence:
        field = doc.field(fname)
        spans = field.spans
        runs: list[tuple[int, int]] = []
        for p in positions:
            if runs and runs[-1][1] == p - 1:
                runs[-1] = (runs[-1][0], p)
            else:
                runs.append((p, p))
        for a, b in runs:
            if b >= len(spans):
                continue
            key = (fname, spans[a][0], spans[b][1])
            if key not in out:
                out[key] = TermMatch(field=fname, term=term, position=a,
                                     start=spans[a][0], end=spans[b][1],
                                     text=field.text[spans[a][0]:spans[b][1]])
    return _ordered(out.values())


def snippet(doc: Document, matches: Sequence[TermMatch],
            clause_of: Mapping[TermMatch, int] | None = None) -> str:
    """About 200 characters where the rule's evidence is densest.

    The window satisfying the most distinct clauses (or terms, when no clause map
    is given) wins: ``@ukraine AND "security guarantees"`` shows the sentence
    with both rather than the first "Ukraine". Ties go to more distinct terms,
    then to the body over the title (which travels with the alert anyway), then
    to the earliest window.
    """
    pool = [m for m in matches if m.field in ("title", "summary", "content")]
    if not pool:
        text = doc.article.summary or doc.article.title
        return _squash(text[:SNIPPET_CHARS])
    fname, start, end = _densest(pool[:200], clause_of or {})
    text = doc.field(fname).text
    spare = max(SNIPPET_CHARS - (end - start), 0)
    lo = max(0, start - spare // 2)
    hi = min(len(text), end + spare - (start - lo))
    if lo > 0:
        space = text.find(" ", lo, start)
        lo = space + 1 if space != -1 else lo
    if hi < len(text):
        space = text.rfind(" ", end, hi)
        hi = space if space != -1 else hi
    out = _squash(text[lo:hi])
    return ("…" if lo > 0 else "") + out + ("…" if hi < len(text) else "")


def _densest(pool: Sequence[TermMatch], clause_of: Mapping[TermMatch, int]) -> tuple[str, int, int]:
    """Field and character span of the run of matches covering the most clauses
    within one snippet's width (earliest run on a tie)."""
    best: tuple[str, int, int] = (pool[0].field, pool[0].start, pool[0].end)
    best_score = (-1, -1, False)
    for m in pool:
        inside = [o for o in pool
                  if o.field == m.field and m.start <= o.start and o.end - m.start <= SNIPPET_CHARS]
        score = (len({clause_of.get(o, o.term) for o in inside}), len({o.term for o in inside}),
                 m.field != "title")
        if score > best_score:
            best_score = score
            best = (m.field, m.start, max(o.end for o in inside))
    return best


def _squash(s: str) -> str:
    return " ".join(s.split())


# ---------------------------------------------------------------------------- loading


def load_rules(paths: Sequence[Path]) -> RuleSet:
    """Load every rule file under ``paths`` (files, or directories of *.yaml / *.yml).

    Raises :class:`RuleError` listing every problem in every file.
    """
    loader = _Loader()
    files = list(loader.files(paths))
    docs: list[tuple[str, yaml.MappingNode]] = []
    for f in files:
        node = loader.read(f)
        if node is not None:
            docs.append((str(f), node))
    for src, node in docs:
        loader.collect_terms(src, node)
    compiled: list[CompiledRule] = []
    for src, node in docs:
        compiled.extend(loader.collect_rules(src, node))
    if loader.problems:
        raise RuleError(loader.problems)
    return RuleSet(tuple(compiled), dict(loader.terms))


def parse_rules_text(text: str, source: str = "<string>") -> RuleSet:
    """Like :func:`load_rules` for one file's content (tests, ``check`` on stdin)."""
    loader = _Loader()
    node = loader.parse(text, source)
    compiled: list[CompiledRule] = []
    if node is not None:
        loader.collect_terms(source, node)
        compiled = loader.collect_rules(source, node)
    if loader.problems:
        raise RuleError(loader.problems)
    return RuleSet(tuple(compiled), dict(loader.terms))


def parse_duration(value: Any) -> float:
    """Seconds from ``3600``, ``"90s"``, ``"15m"``, ``"1h30m"``, ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '1h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        pos, seconds = 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(text) or not text:
            raise ValueError(f"{value!r} is not a duration like '90s', '15m', '1h', '1d'")
    else:
        raise ValueError("a duration is a number of seconds or a string like '1h'")
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


class _Loader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.terms: dict[str, tuple[str, ...]] = {}
        self.term_where: dict[str, str] = {}
        self.rule_where: dict[str, str] = {}

    def add(self, source: str, reason: str, node: yaml.Node | None = None,
            where_: str = "", line: int | None = None, column: int | None = None) -> None:
        if node is not None:
            line, column = where(node)
        self.problems.append(Problem(source=source, where=where_, reason=reason,
                                     line=line, column=column))

    def files(self, paths: Sequence[Path]) -> Iterator[Path]:
        found = False
        for p in paths:
            if p.is_dir():
                inside = sorted(q for q in p.rglob("*")
                                if q.suffix in (".yaml", ".yml") and q.is_file())
                if not inside:
                    self.add(str(p), "directory holds no *.yaml or *.yml rule files")
                found = found or bool(inside)
                yield from inside
            elif p.is_file():
                found = True
                yield p
            else:
                self.add(str(p), "no such file or directory")
        if not found and not self.problems:
            self.add("<rules>", "no rule files given")

    def read(self, path: Path) -> yaml.MappingNode | None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            self.add(str(path), f"cannot read: {e}")
            return None
        return self.parse(text, str(path))

    def parse(self, text: str, source: str) -> yaml.MappingNode | None:
        try:
            node, dups = compose(text)
        except YamlProblem as e:
            self.add(source, e.reason, line=e.line, column=e.column)
            return None
        for d in dups:
            self.add(source, d.reason, line=d.line, column=d.column)
        if node is None:
            return None  # an empty file is allowed (a placeholder)
        if not isinstance(node, yaml.MappingNode):
            self.add(source, "a rule file is a mapping with 'rules' and/or 'terms'", node)
            return None
        for k, _v in node.value:
            if k.value not in FILE_KEYS:
                self.add(source, f"unknown top-level key {k.value!r} "
                         f"(known: {', '.join(sorted(FILE_KEYS))})", k)
        return node

    def collect_terms(self, source: str, root: yaml.MappingNode) -> None:
        node = _get(root, "terms")
        if node is None:
            return
        if not isinstance(node, yaml.MappingNode):
            self.add(source, "'terms' maps list names to lists of words or phrases", node)
            return
        for k, v in node.value:
            name = str(k.value)
            if not _TERM_NAME.fullmatch(name):
                self.add(source, f"term list name {name!r}: use letters, digits, '-' or '_'", k)
                continue
            key = name.casefold()
            if key in self.term_where:
                self.add(source, f"term list '@{name}' is already defined at "
                         f"{self.term_where[key]}", k, where_=f"terms.{name}")
                continue
            self.term_where[key] = f"{source}:{k.start_mark.line + 1}"
            entries = self.string_list(source, v, f"terms.{name}")
            if entries is None:
                continue
            if not entries:
                self.add(source, f"term list '@{name}' is empty", v, where_=f"terms.{name}")
            good: list[str] = []
            for i, (entry, enode) in enumerate(zip(entries, _items(v), strict=False)):
                try:
                    compile_entry(entry)
                except QueryError as e:
                    self.add(source, e.reason, enode, where_=f"terms.{name}[{i}]")
                    continue
                good.append(entry)
            self.terms[key] = tuple(dict.fromkeys(good))

    def string_list(self, source: str, node: yaml.Node, where_: str) -> list[str] | None:
        """A YAML list of strings (a lone string counts as a one-item list)."""
        if isinstance(node, yaml.ScalarNode):
            value = text_of(node)
            return [] if value is None else [value]
        if isinstance(node, yaml.SequenceNode):
            out: list[str] = []
            ok = True
            for item in node.value:
                v = text_of(item)
                if v is not None:
                    out.append(v)
                else:
                    self.add(source, "expected a word or phrase here", item, where_=where_)
                    ok = False
            return out if ok else None
        self.add(source, "expected a list of strings", node, where_=where_)
        return None

    def collect_rules(self, source: str, root: yaml.MappingNode) -> list[CompiledRule]:
        op: Operator = "OR"
        op_node = _get(root, "default_operator")
        if op_node is not None:
            value = text_of(op_node)
            if value is not None and value.upper() in ("AND", "OR"):
                op = "AND" if value.upper() == "AND" else "OR"
            else:
                self.add(source, "default_operator is AND or OR", op_node)
        node = _get(root, "rules")
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.add(source, "'rules' is a list of rules", node)
            return []
        out: list[CompiledRule] = []
        for item in node.value:
            compiled = self.rule(source, item, op)
            if compiled is not None:
                out.append(compiled)
        return out

    def rule(self, source: str, node: yaml.Node, op: Operator) -> CompiledRule | None:
        if not isinstance(node, yaml.MappingNode):
            self.add(source, "a rule is a mapping with at least 'id' and 'query'", node)
            return None
        before = len(self.problems)
        values: dict[str, yaml.Node] = {}
        keys: dict[str, yaml.Node] = {}
        for k, v in node.value:
            key = str(k.value)
            if key in values:
                continue  # duplicate: already reported by the YAML layer
            values[key] = v
            keys[key] = k
        id_node = values.get("id")
        rid = text_of(id_node) if id_node is not None else None
        label = f"rule {rid}" if isinstance(rid, str) else "rule"
        for key, k in keys.items():
            if key not in RULE_KEYS:
                close = get_close_matches(key, sorted(RULE_KEYS), n=1)
                hint = (f"did you mean {close[0]!r}?" if close
                        else f"known: {', '.join(sorted(RULE_KEYS))}")
                self.add(source, f"unknown key {key!r} ({hint})", k, where_=label)
        if id_node is None:
            self.add(source, "rule has no 'id'", node, where_=label)
        elif not isinstance(rid, str) or not _ID.fullmatch(rid):
            self.add(source, "id: use letters, digits and '-', '_', '.', ':' (no spaces)",
                     id_node, where_=label)
            rid = None
        elif rid in self.rule_where:
            self.add(source, f"duplicate rule id {rid!r} (first defined at "
                     f"{self.rule_where[rid]})", id_node, where_=label)
        else:
            self.rule_where[rid] = f"{source}:{id_node.start_mark.line + 1}"

        def text(key: str, default: str = "") -> str:
            n = values.get(key)
            if n is None:
                return default
            if not isinstance(n, yaml.ScalarNode):
                self.add(source, f"{key}: expected text", n, where_=label)
                return default
            v = text_of(n)
            return default if v is None else v

        title = text("title")
        description = text("description")
        severity = text("severity", "medium").strip().lower()
        if severity not in SEVERITIES:
            self.add(source, f"severity {severity!r} is not one of {', '.join(SEVERITIES)}",
                     values["severity"], where_=label)
        enabled = True
        if "enabled" in values:
            n = values["enabled"]
            v = scalar(n) if isinstance(n, yaml.ScalarNode) else None
            if not isinstance(v, bool):
                self.add(source, "enabled: expected true or false", n, where_=label)
            else:
                enabled = v

        def strings(key: str, lower: bool = False) -> tuple[str, ...]:
            n = values.get(key)
            if n is None:
                return ()
            got = self.string_list(source, n, f"{label}.{key}")
            if got is None:
                return ()
            got = [s.strip() for s in got if s.strip()]
            return tuple(s.casefold() for s in got) if lower else tuple(got)

        languages = tuple(lang.replace("_", "-").split("-")[0]
                          for lang in strings("languages", lower=True))
        channels = strings("channels")
        tags = strings("tags")
        include: tuple[str, ...] = ()
        exclude: tuple[str, ...] = ()
        if "outlets" in values:
            n = values["outlets"]
            if not isinstance(n, yaml.MappingNode):
                self.add(source, "outlets: a mapping with 'include' and/or 'exclude' lists",
                         n, where_=label)
            else:
                for k, v in n.value:
                    got = self.string_list(source, v, f"{label}.outlets.{k.value}")
                    names = tuple(s.strip().casefold() for s in got or () if s.strip())
                    if k.value == "include":
                        include = names
                    elif k.value == "exclude":
                        exclude = names
                    else:
                        self.add(source, f"outlets: unknown key {k.value!r} "
                                 "(known: include, exclude)", k, where_=label)
        throttle = self.throttle(source, values.get("throttle"), label)

        query_node = values.get("query")
        query_text = ""
        compiled: Query | None = None
        if query_node is None:
            self.add(source, "rule has no 'query'", node, where_=label)
        else:
            v = text_of(query_node)
            if not isinstance(query_node, yaml.ScalarNode):
                self.add(source, "query: expected text (quote it in YAML)", query_node,
                         where_=label)
            elif v is None or not v.strip():
                self.add(source, "empty query", query_node, where_=label)
            else:
                query_text = v
                try:
                    compiled = parse_query(v, self.terms, op)
                except QueryError as e:
                    line, column = _query_location(query_node, v, e.position)
                    reason = e.reason
                    if e.position is not None:
                        reason += f" (query position {e.position}: {_excerpt(v, e.position)})"
                    self.add(source, reason, where_=label, line=line, column=column)
        if len(self.problems) > before or compiled is None or not isinstance(rid, str):
            return None
        rule = Rule(
            id=rid, query=query_text, title=title or rid, description=description,
            severity=severity, enabled=enabled, languages=languages,
            outlets_include=include, outlets_exclude=exclude, channels=channels,
            throttle=throttle, tags=tags, source=source, line=node.start_mark.line + 1,
            default_operator=op,
        )
        return CompiledRule(rule, compiled)

    def throttle(self, source: str, node: yaml.Node | None, label: str) -> Throttle | None:
        if node is None:
            return None
        if not isinstance(node, yaml.MappingNode):
            self.add(source, "throttle: a mapping {count: N, period: '1h'}", node, where_=label)
            return None
        vals = {str(k.value): v for k, v in node.value}
        for k, _v in node.value:
            if k.value not in ("count", "period"):
                self.add(source, f"throttle: unknown key {k.value!r} (known: count, period)",
                         k, where_=label)
        count_node, period_node = vals.get("count"), vals.get("period")
        if count_node is None or period_node is None:
            self.add(source, "throttle needs both 'count' and 'period'", node, where_=label)
            return None
        count = scalar(count_node) if isinstance(count_node, yaml.ScalarNode) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            self.add(source, "throttle.count: a whole number >= 1", count_node, where_=label)
            return None
        period_value = scalar(period_node) if isinstance(period_node, yaml.ScalarNode) else None
        try:
            period = parse_duration(period_value)
        except ValueError as e:
            self.add(source, f"throttle.period: {e}", period_node, where_=label)
            return None
        return Throttle(count, period)


def _get(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in node.value:
        if k.value == key:
            return v  # type: ignore[no-any-return]
    return None


def _items(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return [node]


def _excerpt(text: str, pos: int) -> str:
    lo = max(0, pos - 15)
    piece = text[lo:pos + 15].replace("\n", " ")
    return ("…" if lo else "") + piece + ("…" if pos + 15 < len(text) else "")


def _query_location(node: yaml.Node, text: str, pos: int | None) -> tuple[int, int]:
    """File line and column of ``pos`` inside a query scalar (exact for plain, quoted
    and ``|`` literal styles; the scalar's start for folded ``>`` style)."""
    line, column = where(node)
    if pos is None:
        return line, column
    style = getattr(node, "style", None)
    if style == "|":
        before = text[:pos]
        nl = before.count("\n")
        col0 = len(before) - (before.rfind("\n") + 1)
        # block content starts on the line after the indicator, indented
        indent = _block_indent(node)
        return line + 1 + nl, indent + col0 + 1
    if style in (None, "'", '"') and "\n" not in text[:pos]:
        return line, column + pos + (1 if style else 0)
    return line, column


def _block_indent(node: yaml.Node) -> int:
    """Indentation of a ``|`` block's first content line, read from the source buffer."""
    buf = getattr(node.start_mark, "buffer", None)
    if not isinstance(buf, str):
        return 0
    lines = buf.split("\n")
    i = node.start_mark.line + 1
    if i >= len(lines):
        return 0
    first = lines[i]
    return len(first) - len(first.lstrip(" "))
