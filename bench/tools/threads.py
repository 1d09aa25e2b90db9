"""CPU time per thread of a running process over an interval: which threads of a server, a driver or a
Ray actor do the work.

What it measures: each thread's user + system CPU seconds (``psutil``) at the start and the end of
``--seconds``, and prints the threads that used CPU in between, busiest first, with their names
(``/proc/<pid>/task/<tid>/comm`` on Linux: e.g. a uvicorn server's one Python thread, LightGBM's
OpenMP workers, jemalloc/polars pools). A thread born in the interval counts from 0; one gone before
its end is not shown (its last CPU time cannot be read).

Run (beside a load, e.g. ``python -m bench.tools.http_windows``, which prints the server's pid)::

    python -m bench.tools.threads <pid> --seconds 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psutil


def thread_cpu(pid: int) -> dict[int, float]:
    """thread id -> user + system CPU seconds so far."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def thread_name(pid: int, tid: int) -> str:
    try:
        return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tools.threads", description=__doc__.split("\n\n")[0])
    ap.add_argument("pid", type=int)
    ap.add_argument("--seconds", type=float, default=5.0, help="interval to measure over")
    ap.add_argument("--top", type=int, default=15, help="threads to show")
    args = ap.parse_args(argv)

    try:
        before = thread_cpu(args.pid)
        names = {tid: thread_name(args.pid, tid) for tid in before}
        time.sleep(args.seconds)
        after = thread_cpu(args.pid)
    except psutil.Error as exc:
        print(f"process {args.pid}: {exc}", file=sys.stderr)
        return 1
    names |= {tid: thread_name(args.pid, tid) for tid in after if tid not in names}
    used = {tid: after.get(tid, before.get(tid, 0.0)) - before.get(tid, 0.0) for tid in before.keys() | after.keys()}
    busy = sorted(((s, tid) for tid, s in used.items() if s > 0), reverse=True)[: args.top]
    print(f"# pid {args.pid}: {len(after)} threads, {len(busy)} used CPU in {args.seconds:g} s")
    for s, tid in busy:
        print(f"{s:8.3f} CPU-s  {100 * s / args.seconds:5.1f}% of a core  {tid:>8}  {names.get(tid, '?')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
