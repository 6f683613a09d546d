"""Rule-matching speed: the engine (prefilter + Boolean evaluation) against naive regexes.

Corpus: real article texts from ``../shared/data`` — every entry feedparser finds in
the feed test corpora, the labelled relevance headlines, the UCI headlines and
the ECB+ full texts — repeated until there are at least 10,000 articles.

Rules: generated deterministically from the corpus's own vocabulary (words of
mid document frequency, real bigrams for phrases, real prefixes for wildcards),
in the shapes analysts write: ``a AND b``, ``"a b"``, ``(a OR b OR c) AND d``,
``a AND NOT b``, ``pref* AND c``, ``"a b"~5 AND c``, term lists of 4-8 words.

Baseline (same run, same rules): each rule compiled to ONE Python regex over the
normalized article text (lookaheads for AND/NOT, alternation for OR, ``\\W+``
between phrase words), and every rule tried on every article. Its speed is
measured on a sample of articles (it would take hours on all of them).

Speeds are articles per CPU second of this one process (``time.process_time``):
single-threaded work on a shared machine, so other load does not skew them.

Both should agree on which rules match; the agreement rate is printed. The one
known, intended difference: the engine never lets a phrase or proximity span two
fields (title and summary), while the regex sees one joined text.

    .venv/bin/python bench/match.py [--quick]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import random
import re
import resource
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.match.query import parse_query  # noqa: E402
from monitor.match.rules import CompiledRule, Rule, RuleSet, parse_rules_text  # noqa: E402
from monitor.match.text import normalize, tokens  # noqa: E402
from monitor.models import Article  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MIN_ARTICLES = 10_000


# ---------------------------------------------------------------------------- corpus


def load_corpus(max_feed_files: int | None) -> list[Article]:
    import feedparser

    arts: list[Article] = []
    files = [p for p in sorted((DATA / "feeds").rglob("*"))
             if p.is_file() and p.stat().st_size < 2_000_000
             and p.suffix not in (".md", ".txt", ".json", ".go", ".rs", ".py", ".js", ".ts")]
    if max_feed_files is not None:
        files = files[:max_feed_files]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in files:
            try:
                d = feedparser.parse(p.read_bytes(), sanitize_html=False,
                                     resolve_relative_uris=False)
            except Exception:  # hostile fixtures: skip what feedparser cannot read
                continue
            for e in d.entries:
                title = str(e.get("title") or "")
                summary = re.sub(r"<[^>]+>", " ", str(e.get("summary") or ""))
                if len(title) + len(summary) > 20:
                    arts.append(Article(key=f"f{len(arts)}", url=str(e.get("link") or ""),
                                        title=title, summary=summary))
    rel = DATA / "relevance-dev" / "items.jsonl"
    if rel.exists():
        for line in rel.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            arts.append(Article(key=f"r{len(arts)}", url="", title=item.get("title") or "",
                                summary=item.get("summary") or "",
                                outlet=item.get("outlet") or ""))
    for name in ("uci-head999.csv", "uci-head499.csv"):
        path = DATA / "headlines-uci" / name
        if path.exists():
            with path.open(encoding="utf-8", errors="replace") as f:
                for row in csv.DictReader(f):
                    arts.append(Article(key=f"u{len(arts)}", url=row.get("URL") or "",
                                        title=row.get("TITLE") or "",
                                        outlet=row.get("PUBLISHER") or ""))
    ecb = DATA / "ecbplus-dev" / "docs.jsonl"
    if ecb.exists():
        for line in ecb.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            text = str(item.get("text") or item.get("content") or "")
            arts.append(Article(key=f"e{len(arts)}", url="", title=str(item.get("title") or ""),
                                content=text))
    return arts


# ---------------------------------------------------------------------------- rules


@dataclass
class Generated:
    query: str
    regex: str


def _w(word: str) -> str:
    return r"\b" + re.escape(word) + r"\b"


def _pre(prefix: str) -> str:
    return r"\b" + re.escape(prefix) + r"\w*"


def _phrase(a: str, b: str) -> str:
    return _w(a) + r"[\W_]+" + _w(b)


def _prox(a: str, b: str, n: int) -> str:
    gap = r"[\W_]+(?:\w+[\W_]+){0,%d}".replace("%d", str(n))
    return f"(?:{_w(a)}{gap}{_w(b)}|{_w(b)}{gap}{_w(a)})"


def _has(rx: str) -> str:
    return f"(?=.*?{rx})"


def _not(rx: str) -> str:
    return f"(?!.*?{rx})"


class RuleMaker:
    """Random but realistic rules from the corpus vocabulary (seeded: same rules each run)."""

    def __init__(self, arts: list[Article], seed: int = 7) -> None:
        self.rng = random.Random(seed)
        df: Counter[str] = Counter()
        bigrams: Counter[tuple[str, str]] = Counter()
        for a in arts[:20_000]:
            toks = [t for t in tokens(a.text) if t.isalpha() and len(t) > 2]
            df.update(set(toks))
            bigrams.update(set(itertools.pairwise(toks)))
        n = max(len(arts), 1)
        # words in 0.02%..3% of documents: specific enough to be what rules are made of
        self.words = sorted(w for w, c in df.items() if c >= 2 and c / n < 0.03 and len(w) > 3)
        self.common = sorted(w for w, c in df.items() if c / n >= 0.03 and len(w) > 3)
        self.bigrams = sorted(b for b, c in bigrams.items() if c >= 2)
        self.prefixes = sorted({w[:5] for w in self.words if len(w) >= 7})

    def word(self) -> str:
        return self.rng.choice(self.words)

    def make(self) -> Generated:
        r = self.rng
        shape = r.randrange(8)
        a, b, c, d = self.word(), self.word(), self.word(), self.word()
        if shape == 0:
            return Generated(f"{a} AND {b}", _has(_w(a)) + _has(_w(b)))
        if shape == 1:
            x, y = r.choice(self.bigrams)
            return Generated(f'"{x} {y}"', _has(_phrase(x, y)))
        if shape == 2:
            return Generated(f"({a} OR {b} OR {c}) AND {d}",
                             _has(f"(?:{_w(a)}|{_w(b)}|{_w(c)})") + _has(_w(d)))
        if shape == 3:
            neg = r.choice(self.common) if self.common else b
            return Generated(f"{a} AND NOT {neg}", _has(_w(a)) + _not(_w(neg)))
        if shape == 4:
            p = r.choice(self.prefixes)
            return Generated(f"{p}* AND {b}", _has(_pre(p)) + _has(_w(b)))
        if shape == 5:
            x, y = r.choice(self.bigrams)
            return Generated(f'"{x} {y}"~5 AND {c}', _has(_prox(x, y, 5)) + _has(_w(c)))
        if shape == 6:
            group = [self.word() for _ in range(r.randint(4, 8))]
            x, y = r.choice(self.bigrams)
            alts = "|".join(_w(g) for g in group)
            return Generated(f'({" OR ".join(group)}) AND "{x} {y}"',
                             _has(f"(?:{alts})") + _has(_phrase(x, y)))
        x, y = r.choice(self.bigrams)
        neg = r.choice(self.common) if self.common else a
        return Generated(f'("{x} {y}" OR {a}) AND ({b} OR {c}*) AND NOT {neg}',
                         _has(f"(?:{_phrase(x, y)}|{_w(a)})") + _has(f"(?:{_w(b)}|{_pre(c)})")
                         + _not(_w(neg)))


def build_ruleset(gens: list[Generated]) -> RuleSet:
    compiled = []
    for i, g in enumerate(gens):
        rule = Rule(id=f"g{i}", query=g.query, title=f"generated {i}")
        compiled.append(CompiledRule(rule, parse_query(g.query, {})))
    return RuleSet(tuple(compiled))


def naive_text(a: Article) -> str:
    return normalize(a.text)


# ---------------------------------------------------------------------------- main


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(arts: list[Article], maker: RuleMaker, n_rules: int, naive_sample: int) -> dict[str, float]:
    gens = [maker.make() for _ in range(n_rules)]
    t0 = time.perf_counter()
    rs = build_ruleset(gens)
    compile_s = time.perf_counter() - t0

    t0 = time.process_time()
    engine_hits = [rs.match_ids(a) for a in arts]
    engine_s = time.process_time() - t0
    n_hits = sum(len(h) for h in engine_hits)

    # candidates per article: how much the prefilter saves
    sample = arts[:: max(1, len(arts) // 500)]
    from monitor.match.text import Document

    cand = sum(len(rs.prefilter.candidates(Document(a))) for a in sample) / len(sample)

    regexes = [re.compile(r"\A" + g.regex, re.S) for g in gens]
    step = max(1, len(arts) // naive_sample)
    naive_idx = list(range(0, len(arts), step))[:naive_sample]
    naive_arts = [arts[i] for i in naive_idx]
    t0 = time.process_time()
    naive_hits = []
    for a in naive_arts:
        text = naive_text(a)
        naive_hits.append([f"g{i}" for i, rx in enumerate(regexes) if rx.match(text)])
    naive_s = time.process_time() - t0
    agree = sum(1 for i, h in zip(naive_idx, naive_hits, strict=True)
                if h == engine_hits[i]) / len(naive_arts)
    return {
        "rules": n_rules,
        "compile_s": round(compile_s, 3),
        "articles": len(arts),
        "articles_per_s": round(len(arts) / engine_s, 1),
        "naive_articles": len(naive_arts),
        "naive_articles_per_s": round(len(naive_arts) / naive_s, 2),
        "speedup": round((len(arts) / engine_s) / (len(naive_arts) / naive_s), 1),
        "hits_per_article": round(n_hits / len(arts), 3),
        "candidates_per_article": round(cand, 1),
        "agreement_with_naive": round(agree, 3),
        "peak_rss_mb": round(rss_mb(), 1),
    }


def time_yaml_load(gens: list[Generated]) -> float:
    text = "rules:\n" + "".join(
        f"  - id: y{i}\n    query: {json.dumps(g.query)}\n" for i, g in enumerate(gens))
    t0 = time.perf_counter()
    parse_rules_text(text, "<generated>")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller naive samples (< 60 s)")
    args = ap.parse_args()
    if not (DATA / "feeds").exists():
        print(f"no corpus at {DATA}: nothing to measure", file=sys.stderr)
        print(json.dumps({"skipped": True, "reason": f"missing {DATA}"}))
        return 0
    t0 = time.perf_counter()
    unique = load_corpus(None)
    arts = list(unique)
    while len(arts) < MIN_ARTICLES:
        arts.extend(unique[: MIN_ARTICLES - len(arts)])
    chars = sum(len(a.text) for a in arts) / len(arts)
    print(f"corpus: {len(unique)} unique article texts, {len(arts)} articles after repeating, "
          f"{chars:.0f} chars on average (loaded in {time.perf_counter() - t0:.1f} s)")
    maker = RuleMaker(unique)
    print(f"vocabulary: {len(maker.words)} rule words, {len(maker.bigrams)} bigrams, "
          f"{len(maker.prefixes)} prefixes")
    base_rss = rss_mb()
    results = []
    plan = ((1_000, 100 if args.quick else 400), (10_000, 15 if args.quick else 60))
    for n_rules, sample in plan:
        r = run(arts, maker, n_rules, sample)
        results.append(r)
        print(f"{n_rules:>6} rules: engine {r['articles_per_s']:>8.0f} articles/s, naive "
              f"{r['naive_articles_per_s']:>7.1f} articles/s, speedup {r['speedup']:.0f}x, "
              f"{r['candidates_per_article']} candidate rules/article, "
              f"{r['hits_per_article']} hits/article, agreement {r['agreement_with_naive']:.3f}, "
              f"compile {r['compile_s']} s, peak RSS {r['peak_rss_mb']} MB")
    yaml_s = time_yaml_load([maker.make() for _ in range(1_000)])
    print(f"loading 1,000 rules from YAML (safe loader, line marks): {yaml_s:.2f} s")
    one, ten = results
    print(json.dumps({
        "articles": one["articles"], "unique_articles": len(unique),
        "rules": [one["rules"], ten["rules"]],
        "articles_per_s": one["articles_per_s"],
        "naive_articles_per_s": one["naive_articles_per_s"],
        "speedup": one["speedup"],
        "articles_per_s_10k": ten["articles_per_s"],
        "naive_articles_per_s_10k": ten["naive_articles_per_s"],
        "speedup_10k": ten["speedup"],
        "agreement_with_naive": min(one["agreement_with_naive"], ten["agreement_with_naive"]),
        "yaml_load_1k_s": round(yaml_s, 2),
        "corpus_rss_mb": round(base_rss, 1),
        "peak_rss_mb": ten["peak_rss_mb"],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
