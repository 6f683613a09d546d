"""Story-clustering quality: B-cubed precision/recall/F1 and cross-event merge share.

Data (read from ../shared/data when present; never copied into the repo):

* ECB+ topics 1-22 (``ecbplus-dev/docs.jsonl``): 462 articles, 40 stories; each topic
  pairs two similar but different events. Articles carry no dates, so each run
  shuffles them with a seed and spaces them one minute apart (all inside the 72 h
  window): online clustering depends on arrival order, and topic-sorted input
  would flatter it. Figures are averaged over ``--seeds`` orders.
* UCI News Aggregator heads (``headlines-uci/uci-head{499,999}.csv``): headlines only.
* Theme-dense feed items, with no story labels (``relevance-dev/items.jsonl``): the two seed
  reports, then all 330 items (title + summary, 2022-2026, most about Ukraine) in one
  window. Two items published more than 3 days apart cannot be one story, so such pairs
  put in one story are wrong merges; also counted: items put into the seeds' story. UCI's
  stories are broad and of one day, so it cannot show a change that folds a theme's new
  developments into its running story; this check does (docs/STORIES-LOG.md, ninth round).

Two engines: ``--engine replay`` (default) writes the replay JSONL and runs
``news-monitor replay``, the daemon's own path (dedup, canonical URLs, whitespace
normalisation included), with ``--threshold`` as ``stories.join_threshold`` in its config;
``--engine index`` drives ``monitor.stories.cluster.StoryIndex`` directly (faster, and open
to any ``StoryConfig`` field a tuning experiment changes). The baseline in the same
run is "one story per article" for ECB+ (what a reader without clustering shows) and
the per-topic oracle is not used anywhere.

Ends with one JSON line of figures. ``--quick`` runs one seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.models import Article  # noqa: E402
from monitor.stories.cluster import StoryConfig, StoryIndex  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
BASE = datetime(2025, 3, 11, 6, 0, tzinfo=UTC)

Doc = dict[str, Any]


def bcubed(pred: Sequence[str], gold: Sequence[str]) -> tuple[float, float, float]:
    """B-cubed precision, recall, F1 of predicted cluster labels against gold labels."""
    by_pred: dict[str, set[int]] = defaultdict(set)
    by_gold: dict[str, set[int]] = defaultdict(set)
    for i, (p, g) in enumerate(zip(pred, gold, strict=True)):
        by_pred[p].add(i)
        by_gold[g].add(i)
    prec = rec = 0.0
    for p, g in zip(pred, gold, strict=True):
        both = len(by_pred[p] & by_gold[g])
        prec += both / len(by_pred[p])
        rec += both / len(by_gold[g])
    n = len(pred)
    prec, rec = prec / n, rec / n
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return prec, rec, f1


def merge_share(pred: Sequence[str], gold: Sequence[str], topic: Sequence[str]) -> float:
    """Share of same-topic, different-event article pairs that were put into one story."""
    total = merged = 0
    n = len(pred)
    for i in range(n):
        for j in range(i + 1, n):
            if topic[i] == topic[j] and gold[i] != gold[j]:
                total += 1
                merged += pred[i] == pred[j]
    return merged / total if total else 0.0


def load_ecb() -> list[Doc]:
    path = SHARED / "ecbplus-dev" / "docs.jsonl"
    docs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        text: str = row["text"]
        title, _, body = text.partition("\n")
        docs.append({"id": row["doc_id"], "title": title, "content": body,
                     "gold": row["story_id"], "topic": str(row["topic"]),
                     "outlet": "", "url": row.get("source_url") or ""})
    return docs


def load_uci(name: str) -> list[Doc]:
    path = SHARED / "headlines-uci" / name
    docs = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            docs.append({"id": "uci" + row["ID"], "title": row["TITLE"], "content": "",
                         "gold": row["STORY"], "topic": row["CATEGORY"],
                         "outlet": row["PUBLISHER"], "url": row["URL"]})
    return docs


def _published(value: object) -> datetime | None:
    """The items' dates come in three forms: ISO 8601, RFC 2822 and US ``MM/DD/YYYY``."""
    if not isinstance(value, str) or not value.strip():
        return None
    parsers = (datetime.fromisoformat, parsedate_to_datetime,
               lambda v: datetime.strptime(v, "%m/%d/%Y"))
    for parse in parsers:
        try:
            when = parse(value.strip())
        except (TypeError, ValueError):
            continue
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


def load_theme() -> list[Doc] | None:
    """The seeds then the relevance items, each with its real publication time (or None)."""
    path = SHARED / "relevance-dev" / "items.jsonl"
    if not path.exists():
        return None
    docs: list[Doc] = []
    for name in ("seed_paris_a.txt", "seed_paris_b.txt"):
        text = (ROOT / "tests" / "data" / "stories" / name).read_text(encoding="utf-8")
        docs.append({"id": name, "title": "", "content": text, "outlet": name, "url": "",
                     "real": datetime(2025, 3, 11, 12, 0, tzinfo=UTC)})
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        real = _published(row.get("published"))
        docs.append({"id": row["id"], "title": row["title"], "content": row.get("summary") or "",
                     "outlet": row.get("outlet") or "", "url": "", "real": real,
                     "language": row.get("language") or None})
    return docs


def theme_check(docs: list[Doc], engine: str, config: StoryConfig) -> dict[str, int]:
    for i, d in enumerate(docs):
        d["published"] = BASE + timedelta(seconds=i)
    pred = run_index(docs, config) if engine == "index" else run_replay(docs, config)
    groups: dict[str, list[Doc]] = defaultdict(list)
    for d in docs:
        groups[pred[d["id"]]].append(d)
    far = near = 0
    for members in groups.values():
        dated = [d["real"] for d in members if d["real"] is not None]
        for i, a in enumerate(dated):
            for b in dated[i + 1:]:
                if abs(a - b) > timedelta(days=3):
                    far += 1
                else:
                    near += 1
    seed_story = pred[docs[0]["id"]]
    return {"far_pairs": far, "near_pairs": near,
            "seed_story_joins": sum(pred[d["id"]] == seed_story for d in docs[2:]),
            "undated": sum(d["real"] is None for d in docs)}


def run_index(docs: list[Doc], config: StoryConfig) -> dict[str, str]:
    index = StoryIndex(config)
    for d in docs:
        art = Article(key=d["id"], url=d["url"], title=d["title"], content=d["content"],
                      outlet=d["outlet"], published=d["published"],
                      language=d.get("language", "en"))
        index.add(index.place(art, d["published"]))
    # the final assignment: a later split may have moved an article to another story
    out = {d["id"]: index.story_of(d["id"]) or "" for d in docs}
    return out


def run_replay(docs: list[Doc], config: StoryConfig) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        # The daemon's own settings file, so the replay runs with the same knobs.
        (Path(tmp) / "feeds.yaml").write_text("[]\n", encoding="utf-8")
        cfg = Path(tmp) / "monitor.yaml"
        cfg.write_text(json.dumps({
            "feeds": {"files": ["feeds.yaml"]}, "rules": {"paths": [str(ROOT / "rules")]},
            "stories": {"window": f"{int(config.window.total_seconds())}s",
                        "join_threshold": config.join_threshold,
                        "split_bar": config.split_bar}}), encoding="utf-8")
        with inp.open("w", encoding="utf-8") as fh:
            for d in docs:
                fh.write(json.dumps({
                    "id": d["id"], "title": d["title"], "content": d["content"],
                    "url": d["url"], "outlet": d["outlet"], "language": d.get("language", "en"),
                    "published": d["published"].isoformat()}) + "\n")
        exe = Path(sys.executable).parent / "news-monitor"
        subprocess.run([str(exe), "replay", str(inp), "--config", str(cfg), "--out", str(outp)],
                       check=True)
        return {r["id"]: r["story_id"]
                for r in map(json.loads, outp.read_text(encoding="utf-8").splitlines())}


def evaluate(docs: list[Doc], seed: int | None, engine: str,
             config: StoryConfig) -> dict[str, float]:
    order = list(docs)
    if seed is not None:
        random.Random(seed).shuffle(order)
    for i, d in enumerate(order):
        d["published"] = BASE + timedelta(minutes=i)
    pred_by_id = run_index(order, config) if engine == "index" else run_replay(order, config)
    pred = [pred_by_id[d["id"]] for d in docs]
    gold = [d["gold"] for d in docs]
    p, r, f = bcubed(pred, gold)
    return {"precision": p, "recall": r, "f1": f,
            "merge_share": merge_share(pred, gold, [d["topic"] for d in docs]),
            "stories": float(len(set(pred)))}


def mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in rows[0]}


def std_error(values: Sequence[float]) -> float:
    """Standard error of the mean over arrival orders.

    Each order is one independent draw of how the stream could arrive, so this is how
    far the mean may sit from the expectation over all orders: what a claim such as
    "merge share <= 0.05" has to be read against (0 with a single order).
    """
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one arrival order only")
    ap.add_argument("--seeds", type=int, default=20,
                    help="arrival orders to average (per-order merge shares range 0.02-0.22)")
    ap.add_argument("--engine", choices=("index", "replay"), default="replay",
                    help="replay: the daemon's own path (default); index: StoryIndex directly")
    ap.add_argument("--threshold", type=float, default=None,
                    help="join_threshold (default: the shipped one; replay passes it in a "
                         "config file as stories.join_threshold)")
    ap.add_argument("--split-bar", type=float, default=None,
                    help="split_bar (story repair; 0: off; default: the shipped one)")
    args = ap.parse_args(argv)
    if not (SHARED / "ecbplus-dev" / "docs.jsonl").exists():
        print(json.dumps({"bench": "clustering", "skipped": "no ../shared/data"}))
        return 0
    config = StoryConfig()
    if args.threshold is not None:
        config = replace(config, join_threshold=args.threshold)
    if args.split_bar is not None:
        config = replace(config, split_bar=args.split_bar)
    seeds = [0] if args.quick else list(range(args.seeds))
    t0 = time.perf_counter()
    ecb = load_ecb()
    ecb_rows = [evaluate(ecb, s, args.engine, config) for s in seeds]
    ecb_mean = mean(ecb_rows)
    gold = [d["gold"] for d in ecb]
    bp, br, bf = bcubed([d["id"] for d in ecb], gold)
    print(f"ECB+ dev ({len(ecb)} docs, {len(set(gold))} stories, {len(seeds)} orders, "
          f"engine={args.engine}, join_threshold={config.join_threshold}):")
    for s, row in zip(seeds, ecb_rows, strict=True):
        print(f"  seed {s}: P={row['precision']:.3f} R={row['recall']:.3f} "
              f"F1={row['f1']:.3f} merge={row['merge_share']:.3f} stories={row['stories']:.0f}")
    f1_se = std_error([row["f1"] for row in ecb_rows])
    merge_se = std_error([row["merge_share"] for row in ecb_rows])
    print(f"  mean:   P={ecb_mean['precision']:.3f} R={ecb_mean['recall']:.3f} "
          f"F1={ecb_mean['f1']:.3f} (± {f1_se:.3f}) merge={ecb_mean['merge_share']:.3f} "
          f"(± {merge_se:.3f}; ± one standard error over the orders)")
    print(f"  baseline one-story-per-article: P={bp:.3f} R={br:.3f} F1={bf:.3f}")
    figures: dict[str, Any] = {
        "bench": "clustering", "engine": args.engine, "orders": len(seeds),
        "join_threshold": config.join_threshold, "split_bar": config.split_bar,
        "ecb_precision": ecb_mean["precision"], "ecb_recall": ecb_mean["recall"],
        "ecb_f1": ecb_mean["f1"], "ecb_merge_share": ecb_mean["merge_share"],
        "ecb_f1_se": round(f1_se, 4), "ecb_merge_share_se": round(merge_se, 4),
        "ecb_baseline_singletons_f1": round(bf, 4),
    }
    for name in ("uci-head499.csv", "uci-head999.csv"):
        if not (SHARED / "headlines-uci" / name).exists():
            continue
        uci = load_uci(name)
        row = evaluate(uci, None, args.engine, config)  # file order is arrival order
        g = [d["gold"] for d in uci]
        tag = name.removesuffix(".csv").replace("-", "_")
        print(f"UCI {name} ({len(uci)} headlines, {len(set(g))} stories): "
              f"P={row['precision']:.3f} R={row['recall']:.3f} F1={row['f1']:.3f} "
              f"stories={row['stories']:.0f}")
        figures.update({f"{tag}_precision": round(row["precision"], 4),
                        f"{tag}_recall": round(row["recall"], 4),
                        f"{tag}_f1": round(row["f1"], 4)})
    theme = load_theme()
    if theme is not None:
        row_t = theme_check(theme, args.engine, config)
        print(f"Theme-dense items (seeds + {len(theme) - 2} relevance items, one window, "
              f"{row_t['undated']} undated): {row_t['far_pairs']} pairs published > 3 days "
              f"apart in one story (wrong), {row_t['near_pairs']} within 3 days, "
              f"{row_t['seed_story_joins']} items in the seeds' story")
        figures.update({f"theme_{k}": v for k, v in row_t.items()})
    figures["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
