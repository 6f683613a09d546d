import common as C, sys, json
from collections import defaultdict
th=float(sys.argv[1]); n=int(sys.argv[2]); rule=sys.argv[3]
cfg=C.StoryConfig(join_threshold=th)
def R(st):
    st2=dict(st); st2["lo"]=min(st["n"]); st2["size"]=sum(st["n"]); return eval(rule,{},st2)
ids=[d["id"] for d in C.ECB]
tot=defaultdict(int); 
for d1 in C.ECB:
    for d2 in C.ECB:
        if d1["id"]<d2["id"] and d1["topic"]==d2["topic"] and d1["gold"]!=d2["gold"]: tot[d1["topic"]]+=1
allx=sum(tot.values())
res={}
for name,rr in (("base",None),("split",R)):
    m=defaultdict(int)
    for s in range(n):
        r=C.Runner(cfg,rule=rr,checkpoints=[3,4,5,6,8,10,12,16,20,24,32,40,48,64]); p=r.feed(C.order_of(s))
        for i,a in enumerate(ids):
            for b in ids[i+1:]:
                if C.TOPIC[a]==C.TOPIC[b] and C.GOLD[a]!=C.GOLD[b] and p[a]==p[b]: m[C.TOPIC[a]]+=1
    res[name]={t:round(1000*v/n/allx,1) for t,v in m.items()}
ts=sorted(set(res["base"])|set(res["split"]), key=lambda t:-res["base"].get(t,0))
print("per 1000 cross-event pairs (40 orders): topic base -> split")
print(", ".join(f"{t}: {res['base'].get(t,0)} -> {res['split'].get(t,0)}" for t in ts))
