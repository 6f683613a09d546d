import common as C
from monitor.models import StoryMember
cfg=C.StoryConfig()
R=lambda st: min(st["n"])>=2 and st["gc"]>=1 and st["gscore"]<0.40
r=C.Runner(cfg,rule=R,checkpoints=[3,4,5,6,8,10,12,16,20,24,32,40,48,64]); p=r.feed(C.order_of(3))
print("splits",r.splits)
idx2=C.StoryIndex(__import__("dataclasses").replace(cfg, split_bar=0))
idx2.restore([StoryMember(story_id=r.idx.story_of(k), article_key=k, seen_at=f.seen_at, features=f.to_json()) for k,f in r.feats.items()])
a=r.idx; ok=True
for sid in a.story_ids():
    s1=a._stories[sid]; s2=idx2._stories[sid]
    ok &= set(s1.members)==set(s2.members) and s1.term_sums(a._vocab)==s2.term_sums(idx2._vocab) and s1.marks==s2.marks and s1.kinds==s2.kinds and s1.indexed_terms(a._vocab)==s2.indexed_terms(idx2._vocab)
print("same stories", a.story_ids()==idx2.story_ids(), "same sums/marks/index", ok)
# decisions after restore: place the same probe articles in both
import random
probe=C.order_of(7)[:60]
same=sum(a.place(C.Article(key="p"+d["id"],url="",title=d["title"],content=d["content"],outlet="",published=d["published"],language="en"),d["published"]).story_id==
         idx2.place(C.Article(key="p"+d["id"],url="",title=d["title"],content=d["content"],outlet="",published=d["published"],language="en"),d["published"]).story_id for d in probe)
print("probe placements equal", same, "of", len(probe))
