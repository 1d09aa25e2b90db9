"""What each stage of a local batch job costs alone, per row, the way the job did it before and does it now.

What it measures: on one generated dataset (``--rows``, the ``--profile``'s model), each stage on its
own, one after another in this process (nothing overlapped), ``--repeats`` times; per variant it prints
the median CPU-µs per row (the process's user+system time, every thread: polars and the predictors
work on threads of their own) and wall-µs per row, with the range over repeats:

* **read**: ``scan_parquet().slice(offset, chunk_rows)`` per chunk, every column (before) against one
  read per row group of the columns the job needs, cut into chunks (now: ``local.read_chunks``);
* **validate**: ``workload.validate`` per chunk (before) against once per row group (now);
* **prepare**: ``workload.feature_matrix`` (column-major), numpy's row-major copy of it, and polars'
  row-major build (now, for a predictor that reads row-major: ``local.prepare(df, "C")``);
* **score**: each ``--predictors`` backend on column- and row-major input (the layout it is handed);
* **write**: pyarrow's defaults with zstd, a row group per chunk (before) against
  ``local.WRITE_OPTIONS`` in ``local.WRITE_GROUP_ROWS``-row groups (now: ``local.ChunkWriter``).

Run::

    python -m bench.tools.batch_stages                          # 1M rows, 50k-row chunks, 5 repeats
    python -m bench.tools.batch_stages --rows 100000 --chunk-rows 25000 --predictors lleaves

Timings taken beside other work are noise: the line ``busy cores`` says how much of the machine other
processes took while the stages ran (from ``/proc/stat``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from bench import model as model_mod
from bench.app import profiles, runner
from bench.data import workload
from bench.patterns.batch import BatchParams, local


def _busy_s() -> float:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def measure(fn: Callable[[], object], rows: int, repeats: int) -> dict:
    """Median and range of CPU-µs and wall-µs per row over ``repeats`` calls of ``fn``."""
    cpu, wall = [], []
    for _ in range(repeats):
        t0, r0 = time.perf_counter(), os.times()
        fn()
        r1 = os.times()
        wall.append(1e6 * (time.perf_counter() - t0) / rows)
        cpu.append(1e6 * (r1.user - r0.user + r1.system - r0.system) / rows)
    return {"cpu": cpu, "wall": wall}


def _fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} [{min(xs):.3f}–{max(xs):.3f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tools.batch_stages", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default", help="run size (bench.app.profiles) whose model is used")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated dataset")
    ap.add_argument("--chunk-rows", type=int, default=50_000, help="rows per chunk")
    ap.add_argument("--predictors", default="lightgbm,lleaves", help="backends to score with, comma-separated")
    ap.add_argument("--threads", type=int, default=2, help="the predictors' threads")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    params = BatchParams(**profiles.get(args.profile).pattern_params("batch") | {"rows": args.rows})
    data = runner.resolve_workload(params)
    model = model_mod.load(model_mod.ensure_model(runner.model_params(params)).path)
    path, n, ch = Path(data.path), args.rows, args.chunk_rows
    offsets = range(0, n, ch)
    units = [df for _, df, _, _ in local.read_chunks(path, 10**12, local.INPUT_COLUMNS)]  # whole row groups
    chunks = [df for _, df, _, _ in local.read_chunks(path, ch, local.INPUT_COLUMNS)]
    rows: list[tuple[str, str, dict]] = []

    def add(stage: str, variant: str, fn: Callable[[], object]) -> None:
        rows.append((stage, variant, measure(fn, n, args.repeats)))
        print(f"{stage:9s} {variant:58s} CPU-µs/row {_fmt(rows[-1][2]['cpu'])}", file=sys.stderr, flush=True)

    busy0, cpu0, t0 = _busy_s(), time.process_time(), time.perf_counter()
    add(
        "read",
        "before: scan().slice() per chunk, all columns",
        lambda: [pl.scan_parquet(path).slice(o, ch).collect() for o in offsets],
    )
    add(
        "read",
        "now: a read per row group, the job's columns",
        lambda: list(local.read_chunks(path, ch, local.INPUT_COLUMNS)),
    )
    add("validate", "before: per chunk", lambda: [workload.validate(df) for df in chunks])
    add("validate", "now: per row group", lambda: [workload.validate(df) for df in units])
    add("prepare", "column-major (workload.feature_matrix)", lambda: [local.prepare(df, "F") for df in chunks])
    add(
        "prepare",
        "row-major, numpy copy of the column-major",
        lambda: [np.ascontiguousarray(workload.feature_matrix(df)) for df in chunks],
    )
    add("prepare", "row-major, polars (now, for lleaves)", lambda: [local.prepare(df, "C") for df in chunks])
    scores = None
    for name in args.predictors.split(","):
        predictor = model_mod.make_predictor(model, name, args.threads)
        for order in ("F", "C"):
            X = [local.prepare(df, order) for df in chunks]
            now = " (now)" if local.input_order(predictor) == order else ""
            add(
                "score",
                f"{name}[{args.threads}t], {'column' if order == 'F' else 'row'}-major{now}",
                lambda p=predictor, xs=X: [p.predict(x) for x in xs],
            )
        scores = [predictor.predict(x) for x in X]

    def write_before(out: Path) -> None:
        writer = None
        sha = model.sha256
        for df, s in zip(chunks, scores, strict=True):
            table = (
                df.select("customer_id")
                .with_columns(
                    pl.Series("score", s),
                    pl.lit(sha, dtype=pl.Enum([sha])).alias("model_sha256"),
                    pl.lit(datetime.now(UTC)).alias("scored_at"),
                )
                .to_arrow()
            )
            writer = writer or pq.ParquetWriter(out, table.schema, compression="zstd")
            writer.write_table(table)
        writer.close()

    def write_now(out: Path) -> None:
        writer = local.ChunkWriter(out, model.sha256, group_rows=local.WRITE_GROUP_ROWS, total_rows=n)
        writer.open()
        for df, s in zip(chunks, scores, strict=True):
            writer.write(df, s, {})
        writer.close()

    with tempfile.TemporaryDirectory(prefix="batch-stages-") as tmp:
        out = Path(tmp) / "p.parquet"
        add("write", "before: pyarrow defaults + zstd, a row group per chunk", lambda: write_before(out))
        before_bytes = out.stat().st_size
        add("write", f"now: WRITE_OPTIONS, {local.WRITE_GROUP_ROWS:,}-row groups", lambda: write_now(out))
        now_bytes = out.stat().st_size
    wall = time.perf_counter() - t0
    foreign = (_busy_s() - busy0 - (time.process_time() - cpu0)) / wall

    print(
        f"\n{n:,} rows, {ch:,}-row chunks, {args.repeats} repeats; predictions file {before_bytes:,} → {now_bytes:,} bytes"
    )
    print(f"busy cores (other processes, mean over the {wall:.0f} s): {max(0.0, foreign):.2f}\n")
    print("| stage | variant | CPU-µs per row: median [min–max] | wall-µs per row |")
    print("|---|---|---|---|")
    for stage, variant, m in rows:
        print(f"| {stage} | {variant} | {_fmt(m['cpu'])} | {_fmt(m['wall'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
