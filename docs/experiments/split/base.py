import common as C, sys, json
th=float(sys.argv[1]); n=int(sys.argv[2]) if len(sys.argv)>2 else 40
cfg=C.StoryConfig(join_threshold=th)
rows=[]
for s in range(int(__import__("os").environ.get("SEED0","0")), int(__import__("os").environ.get("SEED0","0"))+n):
    r=C.Runner(cfg); p=r.feed(C.order_of(s)); rows.append(C.evaluate(p))
print(json.dumps({"th":th,"f1":round(sum(x[0] for x in rows)/n,4),"merge":round(sum(x[1] for x in rows)/n,4),"per":[[round(a,4),round(b,4)] for a,b,_,_ in rows]}))
