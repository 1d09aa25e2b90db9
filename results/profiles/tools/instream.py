"""Own/total of samples whose stack passes through a given frame (e.g. the micro-batch window loop)."""
import sys, re
from collections import Counter
path, needle = sys.argv[1], sys.argv[2]; top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
own, total, n = Counter(), Counter(), 0
for line in open(path):
    stack, _, cnt = line.rstrip().rpartition(" ")
    if needle not in stack: continue
    cnt = int(cnt); fr = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
    i = max(k for k, f in enumerate(fr) if needle in f)
    fr = fr[i:]
    leaf = fr[-1]
    # a native leaf under ray.wait/ray.get that is an unresolved libc address is a blocking wait
    if re.match(r"0x[0-9a-f]+ \(libc", leaf) or leaf.startswith(("syscall", "epoll_wait", "__futex", "pthread_cond")):
        py = [f for f in fr if ".py:" in f]
        leaf = "<blocked in " + (py[-1].split(" (")[0] if py else "?") + ">"
    n += cnt; own[leaf] += cnt
    for f in set(fr): total[f] += cnt
short = lambda f: re.sub(r"/work/main/\.venv/lib/python3\.11/site-packages/|/work/main/|/tmp/hb/base/", "", f)
print(f"# samples inside {needle}: {n}\n\n## top {top} by own samples\n")
for f, c in own.most_common(top): print(f"{c:6d} {100*c/n:5.1f}%  {short(f)}")
print(f"\n## top {top} by total samples\n")
for f, c in total.most_common(top): print(f"{c:6d} {100*c/n:5.1f}%  {short(f)}")
