"""Top functions of a py-spy raw (collapsed-stack) profile, by own and by total samples.

What it reads: the file ``py-spy record -f raw -o FILE`` writes, one ``frame;frame;... count`` line per
distinct stack. ``own`` counts the samples whose innermost frame is the function, ``total`` the samples
with the function anywhere on the stack. The process/thread header frames py-spy adds are dropped,
and start-up frames every sample passes through (runpy, uvicorn's and asyncio's main loops) are left
out of the total table.

``--inside FRAME`` keeps only the samples whose stack passes through a frame containing FRAME (e.g. the
micro-batch window loop; paths are matched as printed: relative to the checkout or site-packages) and counts from its innermost occurrence down; a native leaf that is an
unresolved libc address or a futex/epoll/condition wait is reported as ``<blocked in the Python
function above it>`` (an idle thread, not work).

Run::

    py-spy record -p <pid> -d 20 -r 250 --nonblocking -F -f raw -o server.raw
    python -m bench.tools.pyspy_summary server.raw --top 30
    python -m bench.tools.pyspy_summary driver.raw --inside "measure (bench/patterns/microbatch"
"""

from __future__ import annotations

import argparse
import re
import sys
import sysconfig
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.core import paths

#: frames every sample of a server or driver passes through: not where the time goes
SCAFFOLD = (
    "<frozen runpy>",
    "click/core.py",
    "uvicorn/main.py",
    "uvicorn/server.py",
    "uvicorn/_compat.py",
    "asyncio/runners.py",
    "threading.py",
    "uvicorn/__main__.py",
    "<module>",
)
#: native leaves that mean the thread was waiting, not working
_BLOCKED = re.compile(r"^(0x[0-9a-f]+ \(libc|syscall|epoll_wait|__futex|pthread_cond)")


def _prefixes() -> list[str]:
    """Path prefixes cut from frame names: site-packages, the standard library, this checkout."""
    dirs = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")} | {str(paths.project_root())}
    return sorted((d.rstrip("/") + "/" for d in dirs), key=len, reverse=True)


def shorten(frame: str, prefixes: Sequence[str]) -> str:
    for p in prefixes:
        frame = frame.replace(p, "")
    return frame


def read_stacks(path: Path, prefixes: Sequence[str] = ()) -> list[tuple[list[str], int]]:
    """(frames outermost first, sample count) per line of a py-spy raw file, ``prefixes`` cut from paths."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [shorten(f, prefixes) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if frames:
            out.append((frames, int(count)))
    return out


def tally(stacks: list[tuple[list[str], int]], inside: str | None = None) -> tuple[int, Counter, Counter]:
    """(samples, own, total) over ``stacks``; with ``inside``, only below that frame's innermost occurrence."""
    own: Counter = Counter()
    total: Counter = Counter()
    n = 0
    for frames, count in stacks:
        if inside is not None:
            hits = [i for i, f in enumerate(frames) if inside in f]
            if not hits:
                continue
            frames = frames[hits[-1] :]
        leaf = frames[-1]
        if inside is not None and _BLOCKED.match(leaf):
            python = [f for f in frames if ".py:" in f]
            leaf = "<blocked in " + (python[-1].split(" (")[0] if python else "?") + ">"
        n += count
        own[leaf] += count
        for f in set(frames):
            total[f] += count
    return n, own, total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tools.pyspy_summary", description=__doc__.split("\n\n")[0])
    ap.add_argument("raw", type=Path, help="a py-spy raw (collapsed) profile")
    ap.add_argument("--top", type=int, default=25, help="rows per table")
    ap.add_argument("--inside", metavar="FRAME", help="only samples whose stack passes through FRAME")
    args = ap.parse_args(argv)

    n, own, total = tally(read_stacks(args.raw, _prefixes()), args.inside)
    if not n:
        print(f"# {args.raw}: no samples" + (f" inside {args.inside!r}" if args.inside else ""))
        return 1
    where = f" inside {args.inside!r}" if args.inside else ""
    print(f"# {args.raw}: {n} samples{where}")
    print(f"\n## top {args.top} by own samples\n")
    print(f"{'own':>6} {'own%':>6}  function (file:line)")
    for f, c in own.most_common(args.top):
        print(f"{c:6d} {100 * c / n:5.1f}%  {f}")
    print(f"\n## top {args.top} by total (inclusive) samples (start-up frames every sample passes through left out)\n")
    print(f"{'total':>6} {'tot%':>6}  function (file:line)")
    shown = 0
    for f, c in total.most_common():
        if args.inside is None and (c >= 0.95 * n or any(m in f for m in SCAFFOLD)):
            continue
        print(f"{c:6d} {100 * c / n:5.1f}%  {f}")
        shown += 1
        if shown == args.top:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
