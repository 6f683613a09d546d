"""Story-index speed and memory: sustained articles/s and peak RSS with a full window.

Workload: synthetic English-like articles (title + ~90-word lead) drawn from a Zipf
vocabulary of 30,000 words, grouped into stories of 1-12 reports that share a few
capitalised names and numbers, arriving evenly over the 72 h window. Phase 1 fills the
window (``--window`` articles); phase 2 (``--sustained`` more) is the steady state the
daemon lives in: every article is placed and added, and the oldest leave the window.

Baseline in the same run: "compare with every article in the window" (cosine of the
same profiles against all members, no inverted index, no LSH) on a window of
``--baseline-window`` articles, which is what a naive implementation does.

Throughput is given per wall-clock second and per CPU second of this process
(``time.process_time``): on a shared machine the second is what one core does.

Ends with one JSON line. ``--quick`` (under 60 s on 2 cores): a 20,000-article window.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.models import Article  # noqa: E402
from monitor.stories.cluster import StoryConfig, StoryIndex  # noqa: E402
from monitor.stories.features import SCALE, Features  # noqa: E402

BASE = datetime(2025, 3, 11, tzinfo=UTC)
_SYL = ["ka", "ro", "mi", "tan", "el", "su", "por", "vek", "li", "dra", "on", "is", "bu",
        "ter", "ga", "ne", "shi", "lo", "mar", "qu", "zen", "ab", "ur", "fi"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYL) for _ in range(rng.randint(2, 4)))


def make_articles(n: int, seed: int = 1) -> list[Article]:
    rng = random.Random(seed)
    # dict, not set: its order is the draw order, not the process's string-hash seed, so
    # two runs (an A/B in two processes) place the very same articles
    vocab = list(dict.fromkeys(_word(rng) for _ in range(40_000)))[:30_000]
    cum = []
    total = 0.0
    for i in range(len(vocab)):
        total += 1.0 / (i + 1)
        cum.append(total)
    out: list[Article] = []
    story = 0
    while len(out) < n:
        story += 1
        names = [_word(rng).capitalize() for _ in range(rng.randint(3, 6))]
        numbers = [str(rng.randint(2, 5000)) for _ in range(2)]
        theme = rng.choices(vocab, cum_weights=cum, k=12)
        for r in range(min(rng.randint(1, 12), n - len(out))):
            words = rng.choices(vocab, cum_weights=cum, k=80) + rng.sample(theme, 6)
            for extra in rng.sample(names, 3) + rng.sample(numbers, 1):
                words.insert(rng.randrange(1, len(words)), extra)
            title = " ".join([names[0], *rng.sample(theme, 4), numbers[0]])
            out.append(Article(key=f"a{story}-{r}", url=f"https://x{r}.example/{story}",
                               title=title, content=" ".join(words) + ".", language="en"))
    rng.shuffle(out)  # stories interleave in a real stream
    return out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_index(arts: list[Article], window_n: int, config: StoryConfig) -> dict[str, float]:
    step = config.window / window_n * 0.999
    index = StoryIndex(config)
    t0, c0 = time.perf_counter(), time.process_time()
    for i, art in enumerate(arts[:window_n]):
        index.add(index.place(art, BASE + i * step))
    fill, fill_cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_full = rss_mb()
    t1, c1 = time.perf_counter(), time.process_time()
    joined = 0
    for i, art in enumerate(arts[window_n:], start=window_n):
        p = index.place(art, BASE + i * step)
        joined += not p.is_new
        index.add(p)
    sustained_n = len(arts) - window_n
    sustained, sustained_cpu = time.perf_counter() - t1, time.process_time() - c1
    return {"fill_per_s": window_n / fill, "fill_per_cpu_s": window_n / fill_cpu,
            "sustained_per_s": sustained_n / sustained if sustained_n else 0.0,
            "sustained_per_cpu_s": sustained_n / sustained_cpu if sustained_n else 0.0,
            "members": float(index.members), "stories": float(len(index)),
            "joined_share": joined / max(1, sustained_n), "rss_full_mb": rss_full}


def run_baseline(arts: list[Article], window_n: int, measure_n: int,
                 config: StoryConfig) -> float:
    """Every article against every member of the window: cosine over the same profiles."""
    index = StoryIndex(config)  # used only for its feature extraction and IDF
    members: list[Features] = []
    for i, art in enumerate(arts[:window_n]):
        p = index.place(art, BASE + timedelta(seconds=i))
        index.add(p)
        assert p.parsed is not None
        members.append(p.parsed)
    profiles = [f.profile() for f in members]
    t0 = time.perf_counter()
    for i, art in enumerate(arts[window_n:window_n + measure_n]):
        f = index.features_of(art, BASE + timedelta(seconds=window_n + i))
        q = f.profile()
        best = 0.0
        for prof in profiles:
            dot = 0
            for term, w in q.items():
                c = prof.get(term)
                if c is not None:
                    dot += w * c
            best = max(best, dot / (SCALE * SCALE))
    return measure_n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--window", type=int, default=None, help="articles in the window")
    ap.add_argument("--sustained", type=int, default=None, help="articles after the fill")
    ap.add_argument("--baseline-window", type=int, default=None)
    ap.add_argument("--split-bar", type=float, default=None,
                    help="story repair's split_bar (0: off; default: the shipped one)")
    args = ap.parse_args(argv)
    window_n = args.window or (20_000 if args.quick else 100_000)
    sustained_n = args.sustained or (5_000 if args.quick else 20_000)
    base_n = args.baseline_window or (5_000 if args.quick else 10_000)
    config = StoryConfig() if args.split_bar is None else StoryConfig(split_bar=args.split_bar)
    t_gen = time.perf_counter()
    arts = make_articles(window_n + sustained_n)
    gen_s = time.perf_counter() - t_gen
    rss_before = rss_mb()
    res = run_index(arts, window_n, config)
    rss_peak = rss_mb()
    print(f"story index, window {window_n:,} articles (72 h), then {sustained_n:,} more:")
    print(f"  fill {res['fill_per_s']:,.0f} articles/s; sustained {res['sustained_per_s']:,.0f}"
          f" articles/s; {res['stories']:,.0f} stories, {res['members']:,.0f} members held")
    print(f"  per CPU second of this process (what one core does, whatever else runs): fill "
          f"{res['fill_per_cpu_s']:,.0f}, sustained {res['sustained_per_cpu_s']:,.0f} articles/s")
    per_member_kb = (res["rss_full_mb"] - rss_before) * 1024 / max(1.0, res["members"])
    print(f"  peak RSS {rss_peak:,.0f} MB (articles generated in memory: {rss_before:,.0f} MB); "
          f"the index: {per_member_kb:.1f} KB per member held (4 MB df table included)")
    base = run_baseline(arts[:base_n + 200], base_n, 200, config)
    print(f"baseline compare-with-every-article, window {base_n:,}: {base:,.0f} articles/s "
          f"(~{base * base_n / window_n:,.1f}/s at {window_n:,})")
    print(json.dumps({
        "bench": "stories", "quick": args.quick, "window_articles": window_n,
        "sustained_articles": sustained_n,
        "fill_articles_per_s": round(res["fill_per_s"]),
        "sustained_articles_per_s": round(res["sustained_per_s"]),
        "fill_articles_per_cpu_s": round(res["fill_per_cpu_s"]),
        "sustained_articles_per_cpu_s": round(res["sustained_per_cpu_s"]),
        "stories": int(res["stories"]), "members": int(res["members"]),
        "peak_rss_mb": round(rss_peak), "rss_before_index_mb": round(rss_before),
        "index_kb_per_member": round(per_member_kb, 2),
        "baseline": "compare-with-every-article", "baseline_window": base_n,
        "baseline_articles_per_s": round(base, 1),
        "speedup_vs_baseline_at_same_window": round(
            res["sustained_per_s"] / (base * base_n / window_n), 1),
        "generate_s": round(gen_s, 1),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
