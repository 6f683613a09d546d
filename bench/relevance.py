"""Relevance of the shipped rule set on labelled headlines.

Reads ``../shared/data/relevance-dev/items.jsonl`` (or ``--items``): one object per
line with ``title``, ``summary``, ``language``, ``outlet`` and ``label`` (2 = on
topic, 1 = related, 0 = not relevant). An item is *flagged* when any rule of the
set matches it. We report:

* recall on label 2: flagged 2s / all 2s;
* precision: flagged 2s / (flagged 2s + flagged 0s) — label 1 hits are neither
  right nor wrong (peace talks in general are fine to see, not required);
* the baseline, in the same run: a single keyword query (``Ukraine AND (security
  OR guarantee* OR troops OR ceasefire)``), the query a hurried analyst writes.

``--quick`` is accepted for symmetry with the other benchmarks (this one is fast).
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.match.rules import RuleSet, load_rules, parse_rules_text  # noqa: E402
from monitor.models import Article  # noqa: E402

DEFAULT_ITEMS = ROOT.parent / "shared" / "data" / "relevance-dev" / "items.jsonl"
BASELINE = """
rules:
  - id: baseline
    query: 'Ukrain* AND (security OR guarantee* OR troops OR ceasefire)'
"""


def read_items(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def to_article(item: dict[str, object]) -> Article:
    return Article(
        key=str(item.get("id", "")), url=str(item.get("url", "") or ""),
        title=str(item.get("title", "") or ""), summary=str(item.get("summary", "") or ""),
        content=str(item.get("content", "") or ""), outlet=str(item.get("outlet", "") or ""),
        language=str(item.get("language", "") or "") or None,
    )


def score(rules: RuleSet, items: list[dict[str, object]]) -> dict[str, object]:
    tp = fn = fp = related = 0
    misses: list[str] = []
    false_hits: list[str] = []
    per_rule: dict[str, int] = {}
    for item in items:
        hits = rules.match(to_article(item))
        label = item.get("label")
        for h in hits:
            per_rule[h.rule_id] = per_rule.get(h.rule_id, 0) + 1
        if label == 2:
            if hits:
                tp += 1
            else:
                fn += 1
                misses.append(str(item.get("title")))
        elif label == 0 and hits:
            fp += 1
            false_hits.append(f"{item.get('title')}  <- {', '.join(h.rule_id for h in hits)}")
        elif label == 1 and hits:
            related += 1
    recall = tp / (tp + fn) if tp + fn else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    return {"recall": round(recall, 3), "precision": round(precision, 3), "tp": tp, "fn": fn,
            "fp": fp, "related_hits": related, "misses": misses, "false_hits": false_hits,
            "per_rule": per_rule}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=Path, default=DEFAULT_ITEMS)
    ap.add_argument("--rules", type=Path, default=ROOT / "rules")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true", help="list misses and false hits")
    args = ap.parse_args()
    if not args.items.exists():
        print(f"no labelled items at {args.items}: nothing to measure", file=sys.stderr)
        print(json.dumps({"skipped": True, "reason": f"missing {args.items}"}))
        return 0
    items = read_items(args.items)
    rules = load_rules([args.rules])
    ours = score(rules, items)
    base = score(parse_rules_text(BASELINE, "<baseline>"), items)
    counts = {k: sum(1 for i in items if i.get("label") == k) for k in (0, 1, 2)}
    print(f"items: {len(items)} (label 2: {counts[2]}, 1: {counts[1]}, 0: {counts[0]})")
    print(f"rule set ({len(rules)} rules): recall {ours['recall']:.3f}  "
          f"precision {ours['precision']:.3f}  (tp {ours['tp']}, fn {ours['fn']}, "
          f"fp {ours['fp']}, label-1 hits {ours['related_hits']})")
    print(f"baseline (one keyword query): recall {base['recall']:.3f}  "
          f"precision {base['precision']:.3f}  (fp {base['fp']})")
    print("hits per rule: " + ", ".join(f"{k} {v}" for k, v in sorted(ours["per_rule"].items())))  # type: ignore[attr-defined]
    if args.verbose:
        for t in ours["misses"]:  # type: ignore[attr-defined]
            print("  MISS ", t)
        for t in ours["false_hits"]:  # type: ignore[attr-defined]
            print("  FALSE", t)
    print(json.dumps({
        "items": len(items), "rules": len(rules),
        "recall": ours["recall"], "precision": ours["precision"],
        "tp": ours["tp"], "fn": ours["fn"], "fp": ours["fp"],
        "label1_hits": ours["related_hits"],
        "baseline_recall": base["recall"], "baseline_precision": base["precision"],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
