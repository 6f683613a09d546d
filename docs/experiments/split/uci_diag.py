import common as C, sys
from collections import Counter
rule=sys.argv[1]; th=float(sys.argv[2])
docs=C.B.load_uci(""+sys.argv[3]+"")
for i,d in enumerate(docs): d["published"]=C.B.BASE+C.timedelta(minutes=i)
T={d["id"]:d for d in docs}
def R(st):
    st2=dict(st); st2["lo"]=min(st["n"]); st2["size"]=sum(st["n"]); return eval(rule,{},st2)
orig=C.Runner.move
def move(self, keys, new_sid):
    sid=self.idx.story_of(keys[0]); keep=[k for k in self.idx.story_members(sid) if k not in keys]
    print("KEEP:", [(T[k]["gold"][-6:], T[k]["title"][:70]) for k in keep])
    print("  OFF:", [(T[k]["gold"][-6:], T[k]["title"][:70]) for k in keys])
    return orig(self, keys, new_sid)
C.Runner.move=move
r=C.Runner(C.StoryConfig(join_threshold=th),rule=R,checkpoints=[3,4,5,6,8,10,12,16,20,24,32,40,48,64]); p=r.feed(docs)
print(r.splits)
