"""Top functions of a py-spy raw (collapsed) profile by own and total samples."""
import sys, re
from collections import Counter
path = sys.argv[1]; top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
own, total = Counter(), Counter()
n = 0
for line in open(path):
    line = line.rstrip("\n")
    if not line: continue
    stack, _, cnt = line.rpartition(" ")
    cnt = int(cnt); n += cnt
    frames = stack.split(";")
    # drop the thread/process header frame(s) py-spy adds, e.g. "process 123:..." or "thread (0x..)"
    frames = [f for f in frames if not f.startswith(("process ", "thread "))]
    if not frames: continue
    own[frames[-1]] += cnt
    for f in set(frames):
        total[f] += cnt
SCAFFOLD = ("<frozen runpy>", "click/core.py", "uvicorn/main.py", "uvicorn/server.py", "uvicorn/_compat.py",
            "asyncio/runners.py", "threading.py", "uvicorn/__main__.py", "<module>")


def short(f):
    f = re.sub(r"/work/main/\.venv/lib/python3\.11/site-packages/", "", f)
    f = re.sub(r"/work/main/|/tmp/hb/base/", "", f)
    f = re.sub(r"/usr/lib/python3\.11/|/usr/local/lib/python3\.11/", "", f)
    return f
print(f"# {path}: {n} samples")
print(f"\n## top {top} by own samples\n")
print(f"{'own':>6} {'own%':>6}  function (file:line)")
for f, c in own.most_common(top):
    print(f"{c:6d} {100*c/n:5.1f}%  {short(f)}")
print(f"\n## top {top} by total (inclusive) samples (start-up frames every sample passes through left out)\n")
print(f"{'total':>6} {'tot%':>6}  function (file:line)")
shown = 0
for f, c in total.most_common():
    if c >= 0.95 * n or any(m in f for m in SCAFFOLD):  # start-up frames every sample passes through
        continue
    print(f"{c:6d} {100*c/n:5.1f}%  {short(f)}")
    shown += 1
    if shown == top:
        break
