"""bench/clustering.py with the split hook: python bench_split.py RULE MODE -- bench args"""
import common as C, sys, json
rule, mode = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
cps={"geo":[3,4,5,6,8,10,12,16,20,24,32,40,48,64],"geo5":[5,6,8,10,12,16,20,24,32,40,48,64],"every":[3],"none":[]}[mode]
def R(st):
    st2=dict(st); st2["lo"]=min(st["n"]); st2["size"]=sum(st["n"])
    return eval(rule,{},st2)
TOTAL=[0]
def run_index(docs, config):
    r=C.Runner(config, rule=R if mode!="none" else None, checkpoints=cps, every=mode.startswith("every"))
    p=r.feed(docs); TOTAL[0]+=r.splits
    return p
C.B.run_index = run_index
C.B.main(args)
print(json.dumps({"rule":rule,"mode":mode,"splits_total":TOTAL[0]}))
