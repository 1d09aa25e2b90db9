"""Cold vs hot cost of scoring one row, per predictor backend, and the single-row path checked bit for bit.

What it measures: the thread CPU of one ``predict()`` on a one-row matrix and of one ``predict_row()``,
median over ``--calls`` calls, with nothing, a sleep or a busy-wait of each ``--gap-ms`` between calls.
At 200 req/s requests are ~5 ms apart and whatever ran in between (the load generator, other processes)
has evicted caches, TLB and branch state: a server pays the *cold* price per request (measured on the
project's 2-core VM: LightGBM ~90–140 µs of CPU hot, ~510–730 µs with 5 ms between calls;
results/perf/README.md). Before timing, ``predict_row`` is compared with ``predict`` over ``--check-rows``
rows, bit for bit.

Run (the ``default`` size's model and data, generated on first use under ``BENCH_DATA_DIR``)::

    python -m bench.tools.cold                        # lightgbm, and lleaves if installed
    python -m bench.tools.cold --predictor lightgbm --gap-ms 0 5 --calls 400
    python -m bench.tools.cold --profile smoke          # a small model, seconds to build

Prints one line per (backend, call, gap, wait). It measures the predictor alone: no server, no client.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import polars as pl

from bench import model as model_mod
from bench.app import profiles, runner
from bench.core.params import parse
from bench.data import workload
from bench.patterns import registry


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def thread_cpu_us(call, calls: int, gap_s: float, wait: str) -> float:
    """Median thread CPU (µs) of ``call(i)`` over ``calls`` calls, waiting ``gap_s`` before each
    (``wait``: "sleep" gives the core away, "spin" keeps it busy in Python); the gap is not timed."""
    cpu = np.empty(calls)
    for i in range(calls):
        if gap_s and wait == "sleep":
            time.sleep(gap_s)
        elif gap_s:
            _spin(gap_s)
        c0 = time.thread_time_ns()
        call(i)
        cpu[i] = time.thread_time_ns() - c0
    return float(np.median(cpu)) / 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tools.cold", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default", help="run size (bench.app.profiles) whose model and data to use")
    ap.add_argument("--predictor", action="append", help="backend(s) to measure (default: every available one)")
    ap.add_argument("--calls", type=int, default=300, help="calls per (call, gap, wait)")
    ap.add_argument("--gap-ms", type=float, nargs="+", default=[0.0, 0.5, 5.0], help="time between calls")
    ap.add_argument("--wait", choices=["sleep", "spin", "both"], default="both", help="how the gap is spent")
    ap.add_argument("--check-rows", type=int, default=10_000, help="rows predict_row is checked on (0: skip)")
    args = ap.parse_args(argv)

    spec = registry.get("request")
    params = parse(spec.params, profiles.get(args.profile).pattern_params("request"), owner="request")
    data = runner.resolve_workload(params)
    model = model_mod.load(model_mod.ensure_model(runner.model_params(params)).path)
    rows = max(args.check_rows, args.calls)
    frame = pl.scan_parquet(data.path).head(rows).collect()
    X = np.ascontiguousarray(workload.feature_matrix(frame))
    n = len(X)
    names = args.predictor or [p for p in model_mod.PREDICTORS if model_mod.predictor_unavailable(p) is None]
    waits = ["sleep", "spin"] if args.wait == "both" else [args.wait]
    print(f"model {model.path.name}; {n:,} rows of {data.path.name}; thread CPU p50 over {args.calls} calls")
    for name in names:
        unavailable = model_mod.predictor_unavailable(name)
        if unavailable:
            print(f"{name}: skipped: {unavailable}")
            continue
        pred = model_mod.make_predictor(model, name, 1)
        if args.check_rows:
            k = min(args.check_rows, n)
            same = np.array_equal(pred.predict(X[:k]), np.array([pred.predict_row(X[i]) for i in range(k)]))
            print(f"{name}: predict_row == predict bit for bit over {k:,} rows: {same}")
        calls = {
            "predict(1 row)": lambda i, p=pred: p.predict(X[i % n : i % n + 1]),
            "predict_row": lambda i, p=pred: p.predict_row(X[i % n]),
        }
        for gap_ms in args.gap_ms:
            for wait in waits if gap_ms else ["-"]:
                for label, call in calls.items():
                    us = thread_cpu_us(call, args.calls, gap_ms / 1e3, wait)
                    print(f"{name:9s} {label:15s} gap {gap_ms:4.1f} ms ({wait:5s}): {us:8.1f} µs CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
