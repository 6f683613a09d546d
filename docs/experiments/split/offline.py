import common as C, json, sys
th=float(sys.argv[1]); n=int(sys.argv[2])
RULES=json.load(open(sys.argv[3]))
cfg=C.StoryConfig(join_threshold=th)
acc={r:[0,0,0] for r in RULES}
for s in range(n):
    r=C.Runner(cfg); p=r.feed(C.order_of(s))
    stats=[]
    for sid in r.idx.story_ids():
        mem=r.story_feats(sid); mem.sort(key=lambda f:(f.seen_at,f.key))
        if len(mem)<3: continue
        st=C.split_stats(mem,cfg)
        if st: stats.append((mem,st))
    for rule in RULES:
        q=dict(p); k=0
        for mem,st in stats:
            st2=dict(st); st2["size"]=len(mem); st2["lo"]=min(st["n"])
            if eval(rule,{},st2):
                k+=1
                for i in st["groups"][1]: q[mem[i].key]="split_"+mem[st["groups"][1][0]].key
        f,m,_,_=C.evaluate(q); a=acc[rule]; a[0]+=f; a[1]+=m; a[2]+=k
for rule,a in acc.items(): print(json.dumps({"th":th,"rule":rule,"f1":round(a[0]/n,4),"merge":round(a[1]/n,4),"splits":round(a[2]/n,2)}))
