import common as C, json, sys
th=float(sys.argv[1]); n=int(sys.argv[2]); rule=sys.argv[3]; mode=sys.argv[4]
cfg=C.StoryConfig(join_threshold=th)
def R(st):
    st2=dict(st); st2["lo"]=min(st["n"]); st2["size"]=sum(st["n"])
    return eval(rule,{},st2)
cps={"geo":[3,4,5,6,8,10,12,16,20,24,32,40,48,64],"geo5":[5,6,8,10,12,16,20,24,32,40,48,64],
     "every":[3],"every5":[5]}[mode]
rows=[];sp=0
for s in range(int(__import__("os").environ.get("SEED0","0")), int(__import__("os").environ.get("SEED0","0"))+n):
    r=C.Runner(cfg,rule=R,checkpoints=cps,every=mode.startswith("every")); p=r.feed(C.order_of(s))
    rows.append(C.evaluate(p)); sp+=r.splits
print(json.dumps({"th":th,"rule":rule,"mode":mode,"f1":round(sum(x[0] for x in rows)/n,4),"merge":round(sum(x[1] for x in rows)/n,4),
  "P":round(sum(x[2] for x in rows)/n,4),"R":round(sum(x[3] for x in rows)/n,4),"splits":sp/n,"per":[[round(a,4),round(b,4)] for a,b,_,_ in rows]}))
