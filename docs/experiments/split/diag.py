import common as C, json, sys
from collections import Counter, defaultdict
th=float(sys.argv[1]); n=int(sys.argv[2]); rule=sys.argv[3]
cfg=C.StoryConfig(join_threshold=th)
def R(st):
    st2=dict(st); st2["lo"]=min(st["n"]); st2["size"]=sum(st["n"])
    return eval(rule,{},st2)
LOG=[]
orig=C.Runner.move
def move(self, keys, new_sid):
    sid=self.idx.story_of(keys[0])
    allk=self.idx.story_members(sid)
    keep=[k for k in allk if k not in keys]
    gk=Counter(C.GOLD[k] for k in keep); gy=Counter(C.GOLD[k] for k in keys)
    LOG.append((C.TOPIC[keys[0]], len(keep), len(keys), gk.most_common(1)[0][0]!=gy.most_common(1)[0][0],
                len(gk)>1 or gy.most_common(1)[0][0] in gk))
    return orig(self, keys, new_sid)
C.Runner.move=move
cps=[3,4,5,6,8,10,12,16,20,24,32,40,48,64]
for s in range(n):
    r=C.Runner(cfg,rule=R,checkpoints=cps); r.feed(C.order_of(s))
bytopic=defaultdict(lambda:[0,0,0])
for t,a,b,good,mixed in LOG:
    x=bytopic[t]; x[0]+=1; x[1]+=good; x[2]+=mixed
print("splits",len(LOG),"majority-different (good)",sum(l[3] for l in LOG),"story was mixed",sum(l[4] for l in LOG))
print("sizes",Counter((l[1],l[2]) for l in LOG).most_common(12))
print("topic: splits, good, story mixed", sorted(bytopic.items(), key=lambda x:-x[1][0]))
