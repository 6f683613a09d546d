"""Story repair by splitting: shared driver (experiment, not shipped)."""
from __future__ import annotations
import math, random, sys
from collections import defaultdict
from datetime import timedelta
ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]   # the project
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import numpy as np
import clustering as B
from monitor.models import Article
from monitor.stories.cluster import StoryConfig, StoryIndex, story_id_for, AGREE_SHARE
from monitor.stories.particulars import evidence, kind_of

ECB = B.load_ecb()
GOLD = {d["id"]: d["gold"] for d in ECB}
TOPIC = {d["id"]: d["topic"] for d in ECB}


def order_of(seed):
    order = list(ECB)
    random.Random(seed).shuffle(order)
    for i, d in enumerate(order):
        d["published"] = B.BASE + timedelta(minutes=i)
    return order


import os
NODIGIT = os.environ.get("SPLIT_NODIGIT") == "1"
NOEVID = os.environ.get("SPLIT_NOEVID") == "1"
NO_N = os.environ.get("SPLIT_NO_N") == "1"


def vec(f):
    if NODIGIT:
        return {t: w / 10000.0 for t, w in zip(f.terms, f.weights) if not any(c.isdigit() for c in t)}
    return dict(zip(f.terms, (w / 10000.0 for w in f.weights)))


def add_to(acc, v, s=1.0):
    for t, w in v.items():
        acc[t] = acc.get(t, 0.0) + s * w


def norm(v):
    return math.sqrt(sum(w * w for w in v.values())) or 1.0


def cos(a, b):
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(t, 0.0) for t, w in a.items()) / (norm(a) * norm(b))


def cut(v, n=80):
    if len(v) <= n:
        return v
    return dict(sorted(v.items(), key=lambda x: -x[1])[:n])


def marks_of(feats_list):
    held, kinds = {}, {}
    for f in feats_list:
        for m in f.marks:
            held[m] = held.get(m, 0) + 1
        for k in {kind_of(m) for m in f.marks}:
            kinds[k] = kinds.get(k, 0) + 1
    return held, kinds


def two_means(vs, iters=12):
    """Spherical 2-means over unit member vectors; returns labels (0/1) or None."""
    n = len(vs)
    tot = {}
    for v in vs:
        add_to(tot, v)
    # seed a: member farthest from the whole; seed b: member farthest from a
    a = min(range(n), key=lambda i: (cos(vs[i], tot), i))
    b = min((i for i in range(n) if i != a), key=lambda i: (cos(vs[i], vs[a]), i))
    c = [dict(vs[a]), dict(vs[b])]
    lab = None
    for _ in range(iters):
        new = [0 if cos(v, c[0]) >= cos(v, c[1]) else 1 for v in vs]
        if new == lab:
            break
        lab = new
        if len(set(lab)) < 2:
            return None
        c = [{}, {}]
        for v, l in zip(vs, lab):
            add_to(c[l], v)
    return lab


def split_stats(feats_list, cfg):
    """Best 2-way split of one story's members and what it looks like."""
    vs = [vec(f) for f in feats_list]
    lab = two_means(vs)
    if lab is None:
        return None
    g = [[i for i, l in enumerate(lab) if l == k] for k in (0, 1)]
    # the group holding the oldest member keeps the story
    if 0 not in g[0]:
        g = [g[1], g[0]]
    sums = [{}, {}]
    for k in (0, 1):
        for i in g[k]:
            add_to(sums[k], vs[i])
    c12 = cos(cut(sums[0]), cut(sums[1]))
    # leave-one-out cohesion: each member against the rest of its group (groups >= 2)
    coh = []
    for k in (0, 1):
        if len(g[k]) < 2:
            continue
        for i in g[k]:
            rest = dict(sums[k]); add_to(rest, vs[i], -1.0)
            coh.append(cos(vs[i], cut(rest)))
    # every member against the whole story less itself (what a join would have seen)
    allsum = {}
    add_to(allsum, sums[0]); add_to(allsum, sums[1])
    # particulars: each member of one group against the other group's marks
    conf = [0, 0]; agr = [0, 0]
    for k in (0, 1):
        held, kinds = marks_of([feats_list[i] for i in g[1 - k]])
        for i in g[k]:
            a_, c_ = evidence(feats_list[i].marks, held, kinds, AGREE_SHARE)
            conf[k] += c_; agr[k] += a_
    # group-level score: the younger group's sum as an article against the keeper's story
    held0, kinds0 = marks_of([feats_list[i] for i in g[0]])
    if NO_N:
        held0 = {m: c for m, c in held0.items() if kind_of(m) != "n"}
        kinds0 = {k: c for k, c in kinds0.items() if k != "n"}
    held1, kinds1 = marks_of([feats_list[i] for i in g[1]])
    # group marks: held by >= half of the group's members mentioning the kind
    gm1 = tuple(m for m, c in held1.items() if c * 2 >= kinds1.get(kind_of(m), 0)
                and not (NO_N and kind_of(m) == "n"))
    ga, gc = evidence(gm1, held0, kinds0, AGREE_SHARE)
    if NOEVID:
        ga = gc = 0
    gscore = c12 + cfg.agree_bonus * ga - cfg.conflict_penalty * gc
    return {"groups": g, "n": (len(g[0]), len(g[1])), "c12": c12,
            "coh": sum(coh) / len(coh) if coh else 0.0,
            "conf": conf, "agr": agr, "gscore": gscore, "ga": ga, "gc": gc}


def evaluate(pred):
    ids = [d["id"] for d in ECB]
    p = [pred[i] for i in ids]
    g = [GOLD[i] for i in ids]
    pr, rc, f = B.bcubed(p, g)
    return f, B.merge_share(p, g, [TOPIC[i] for i in ids]), pr, rc


class Runner:
    """StoryIndex plus a split hook: after a join, a story reaching a checkpoint size is tested."""

    def __init__(self, cfg, rule=None, checkpoints=None, every=False):
        # the index's own repair off: this driver splits from outside, as before it shipped
        self.idx = StoryIndex(__import__("dataclasses").replace(cfg, split_bar=0))
        self.cfg = cfg
        self.rule = rule
        self.cp = set(checkpoints or ())
        self.every = every
        self.feats = {}
        self.splits = 0
        self.checked = {}   # story id -> size at last check

    def story_feats(self, sid):
        return [self.feats[k] for k in self.idx.story_members(sid)]

    def move(self, keys, new_sid):
        for k in keys:
            self.idx._remove_member(k)
        for k in sorted(keys, key=lambda k: (self.feats[k].seen_at, k)):
            f = self.feats[k] = self.feats[k].with_story(new_sid)
            self.idx._insert(f)

    def try_split(self, sid):
        members = self.story_feats(sid)
        members.sort(key=lambda f: (f.seen_at, f.key))
        st = split_stats(members, self.cfg)
        if st is None or not self.rule(st):
            return False
        young = [members[i].key for i in st["groups"][1]]
        new_sid = story_id_for(young[0])
        self.move(young, new_sid)
        self.splits += 1
        return True

    def feed(self, order):
        out = {}
        for d in order:
            art = Article(key=d["id"], url=d["url"], title=d["title"], content=d["content"],
                          outlet=d["outlet"], published=d["published"], language=d.get("language", "en"))
            pl = self.idx.place(art, d["published"])
            self.idx.add(pl)
            self.feats[pl.article_key] = pl.parsed
            if self.rule is not None and pl.method != "new":
                n = len(self.idx.story_members(pl.story_id))
                if (self.every and n >= min(self.cp)) or n in self.cp:
                    self.try_split(pl.story_id)
        return {k: self.idx.story_of(k) for k in self.feats}
