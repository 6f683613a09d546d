import json,sys
L=sorted((json.loads(l) for l in open("line.jsonl")), key=lambda r:r["merge"])
pts=[(r["merge"],r["f1"],r["th"]) for r in L]
def line_at(m):
    for (m0,f0,_),(m1,f1,_) in zip(pts,pts[1:]):
        if m0<=m<=m1: return f0+(m-m0)/(m1-m0)*(f1-f0)
    return None
for a in sys.argv[1:]:
    f,m=map(float,a.split("/")); l=line_at(m); print(a, "line %.4f"%l, "delta %+.4f"%(f-l))
print(pts)
