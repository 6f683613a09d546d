import common as C, json, sys
from collections import Counter
th=float(sys.argv[1]); n=int(sys.argv[2])
cfg=C.StoryConfig(join_threshold=th)
out=open(sys.argv[3],"w")
for s in range(n):
    r=C.Runner(cfg); p=r.feed(C.order_of(s))
    for sid in r.idx.story_ids():
        mem=r.story_feats(sid); mem.sort(key=lambda f:(f.seen_at,f.key))
        if len(mem)<3: continue
        st=C.split_stats(mem,cfg)
        if st is None: continue
        golds=[C.GOLD[f.key] for f in mem]
        cnt=Counter(golds)
        maj=cnt.most_common(1)[0][0]
        g=st["groups"]
        gg=[Counter(golds[i] for i in grp) for grp in g]
        # is split aligned: each group's majority differs and purity
        pur=sum(c.most_common(1)[0][1] for c in gg)/len(mem)
        aligned = gg[0].most_common(1)[0][0]!=gg[1].most_common(1)[0][0]
        rec={"seed":s,"size":len(mem),"mixed":len(cnt)>1,"minor":len(mem)-cnt[maj],"aligned":aligned,"pur":round(pur,3),
             "topic":C.TOPIC[mem[0].key]}
        rec.update({k:(round(v,4) if isinstance(v,float) else v) for k,v in st.items() if k!="groups"})
        out.write(json.dumps(rec)+"\n")
