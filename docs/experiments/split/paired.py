import re,sys,statistics as S,math
def per(f):
    return {int(m[0]):(float(m[1]),float(m[2])) for m in re.findall(r"seed (\d+): P=\S+ R=\S+ F1=(\S+) merge=(\S+)",open(f).read())}
a=per(sys.argv[1])
for f in sys.argv[2:]:
    b=per(f); ks=sorted(set(a)&set(b))
    df=[b[k][0]-a[k][0] for k in ks]; dm=[b[k][1]-a[k][1] for k in ks]
    se=lambda v:S.stdev(v)/math.sqrt(len(v))
    print(f, "n",len(ks),"dF1 %+.4f ± %.4f"%(S.mean(df),se(df)),"dmerge %+.4f ± %.4f"%(S.mean(dm),se(dm)),
          "orders with merge down/up", sum(x<0 for x in dm), sum(x>0 for x in dm))
