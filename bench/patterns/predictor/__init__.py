"""The predictor alone: what one row costs as a function of how many rows one call scores, per backend.

No I/O, no server, no queue: ``predictor.predict(X[i:i+size])`` on contiguous slices of the scoring
dataset's feature matrix, the start offset cycling through the dataset, for each call size in
``call_sizes``. Each size gets one warm-up call, then calls until at least ``min_seconds`` have
passed and at least ``min_calls`` were made (at most ``max_calls``). Every call's wall time
(``perf_counter``) and process CPU time (``process_time``: every thread of this process) is kept as
a sample; ``bench.measure.metrics.call_size_summary`` turns them into per-row figures.

The feature matrix is made C-contiguous once (untimed), so a slice is a view every backend reads in
place: the figures are the backend's own cost, not a layout conversion. Python's cyclic GC is paused
while a size is measured (as the load generator does), so a collection of the harness's objects does
not land in a call's time.

Top-level metrics follow every result's conventions for the **largest** call size (predictions, wall
and CPU seconds of its calls, rows/s, CPU per prediction); every size is under ``call_sizes``.
``max_abs_diff_vs_lightgbm`` is the largest |score − LightGBM score| over the whole dataset (and over
each size's last measured call): above 1e-9 the run is invalid.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.core.errors import BenchError
from bench.core.params import require_positive
from bench.data import workload
from bench.measure import metrics
from bench.model import Model, make_predictor
from bench.patterns.base import Pattern, PatternParams, RunContext, Sweep, cap_rows, new_result
from bench.results import RunResult, ensure_writable

DEFAULT_CALL_SIZES = "1,10,100,1000,10000,100000,1000000"
#: a score farther than this from LightGBM's on the same row makes the run invalid
MAX_ABS_DIFF = 1e-9
#: the warm-up call scores at most this many rows (a full 1M-row call would only repeat a measured one)
WARMUP_MAX_ROWS = 100_000


def parse_call_sizes(text: str, owner: str = "PredictorParams") -> list[int]:
    """``"1,10,100"`` -> ``[1, 10, 100]``, ascending; anything else is an error naming ``call_sizes``."""
    parts = [p.strip() for p in str(text).split(",")]
    if not text or not all(parts):
        raise BenchError(
            f"{owner} parameter 'call_sizes' must be comma-separated row counts like '1,10,100', got {text!r}"
        )
    sizes = []
    for part in parts:
        try:
            size = int(part)
        except ValueError:
            raise BenchError(
                f"{owner} parameter 'call_sizes' must be comma-separated whole numbers, got {part!r} in {text!r}"
            ) from None
        if size <= 0:
            raise BenchError(f"{owner} parameter 'call_sizes' must hold sizes > 0, got {size} in {text!r}")
        sizes.append(size)
    if len(set(sizes)) != len(sizes):
        raise BenchError(f"{owner} parameter 'call_sizes' repeats a size: {text!r}")
    return sorted(sizes)


@dataclass(frozen=True)
class PredictorParams(PatternParams):
    """The raw predictor's per-row cost at each call size; one thread by default (one core's cost)."""

    rows: int = 1_000_000  #: the scoring dataset's rows: at least the largest call size
    call_sizes: str = DEFAULT_CALL_SIZES  #: rows per predict() call, comma-separated
    min_seconds: float = 1.0  #: measure each size at least this long
    min_calls: int = 3  #: and at least this many calls
    max_calls: int = 200_000  #: but never more calls than this per size

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(
            "PredictorParams", min_seconds=self.min_seconds, min_calls=self.min_calls, max_calls=self.max_calls
        )
        if self.min_calls > self.max_calls:
            raise BenchError(
                f"PredictorParams parameter 'min_calls' ({self.min_calls}) must be <= 'max_calls' ({self.max_calls})"
            )
        sizes = parse_call_sizes(self.call_sizes)
        if not self.data_path:  # a generated dataset has exactly `rows` rows: refuse before generating it
            check_sizes_fit(sizes, self.rows)


def check_sizes_fit(sizes: list[int], rows: int) -> None:
    """Every call must fit in the dataset (a call never wraps around its end)."""
    too_big = [s for s in sizes if s > rows]
    if too_big:
        raise BenchError(
            f"PredictorParams parameter 'call_sizes' holds {', '.join(f'{s:,}' for s in too_big)} rows per call, "
            f"more than the dataset's {rows:,} rows: raise 'rows' or drop those sizes"
        )


def backend_label(params: PredictorParams | dict) -> str:
    """``lightgbm``, ``lleaves``; ``lightgbm[2t]`` when not on one thread."""
    get = params.get if isinstance(params, dict) else lambda k, d=None: getattr(params, k, d)
    threads = get("num_threads", 1)
    return get("predictor", "lightgbm") + (f"[{threads}t]" if threads != 1 else "")


def _measure_size(predictor, X: np.ndarray, size: int, params: PredictorParams, call=None) -> tuple[np.ndarray, ...]:
    """One size: a warm-up call, then timed calls on contiguous slices, the start cycling through X.

    Returns the start offset, wall seconds and CPU seconds of every measured call, and the scores and
    offset of the last one (checked against LightGBM afterwards, outside any timing)."""
    n = X.shape[0]
    starts = np.empty(params.max_calls, dtype=np.int64)
    wall = np.empty(params.max_calls, dtype=np.float64)
    cpu = np.empty(params.max_calls, dtype=np.float64)
    call = call or predictor.predict
    call(X[: min(size, WARMUP_MAX_ROWS)])
    perf, proc = time.perf_counter, time.process_time
    calls, start = 0, 0
    scores = None
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t_end = perf() + params.min_seconds
        while calls < params.max_calls and (calls < params.min_calls or perf() < t_end):
            if start + size > n:
                start = 0
            rows = X[start : start + size]
            c0 = proc()
            w0 = perf()
            scores = call(rows)
            w1 = perf()
            c1 = proc()
            starts[calls], wall[calls], cpu[calls] = start, w1 - w0, c1 - c0
            calls += 1
            start += size
    finally:
        if gc_was_enabled:
            gc.enable()
    return starts[:calls], wall[:calls], cpu[:calls], scores, starts[calls - 1]


def run(data: workload.Dataset, model: Model, params: PredictorParams, context: RunContext) -> RunResult:
    """Measure ``predict()`` at every call size on the scoring dataset's rows."""
    ensure_writable(Path(context.run_dir))
    sizes = parse_call_sizes(params.call_sizes)
    total = pl.scan_parquet(data.path).select(pl.len()).collect().item()
    check_sizes_fit(sizes, total)  # an explicit data_path may hold fewer rows than `rows`: before any work
    df = data.scan().collect()
    data.schema.validate(df, source=str(data.path))
    X = np.ascontiguousarray(data.schema.matrix(df))
    del df
    cores = os.cpu_count() or 1
    # The reference scores (untimed): LightGBM on every core; per row they do not depend on threads.
    reference = make_predictor(model, "lightgbm", cores).predict(X)
    if params.predictor == "lightgbm":
        whole = reference
    else:
        whole = make_predictor(model, params.predictor, cores).predict(X)
    max_diff = float(np.max(np.abs(whole - reference))) if len(X) else 0.0
    del whole

    predictor = make_predictor(model, params.predictor, params.num_threads)
    per_size, samples = [], []
    with metrics.CpuMeter(interval_s=None) as meter, metrics.stopwatch() as measured:
        for size in sizes:
            starts, wall, cpu, last, last_start = _measure_size(predictor, X, size, params)
            per_size.append(metrics.call_size_summary(size, wall, cpu))
            samples.append(
                pl.DataFrame(
                    {
                        "size": np.full(len(wall), size, dtype=np.int64),
                        "call": np.arange(len(wall), dtype=np.int64),
                        "start_row": starts,
                        "wall_s": wall,
                        "cpu_s": cpu,
                    }
                )
            )
            # outside the timed calls: the last call's scores against LightGBM's on the same rows
            expected = reference[last_start : last_start + size]
            max_diff = max(max_diff, float(np.max(np.abs(np.asarray(last) - expected))))
        # The single-row entry point a server calls (predict_row: no per-call set-up), beside predict()
        # on a 1-row matrix: the per-request path's true floor.
        starts, wall, cpu, last, last_start = _measure_size(
            predictor, X, 1, params, call=lambda rows: np.array([predictor.predict_row(rows[0])])
        )
        single_row = metrics.call_size_summary(1, wall, cpu)
        max_diff = max(max_diff, abs(float(last[0]) - float(reference[last_start])))
    usage = meter.result

    result = new_result("predictor", backend_label(params), params, context, model, data)
    largest = per_size[-1]
    m: dict = {
        # every result's conventions, for the largest call size
        "predictions": largest["rows"],
        "wall_seconds": largest["wall_seconds"],
        "throughput_per_s": largest["rows_per_s"] or 0.0,
        "cpu_seconds": largest["cpu_seconds"],
        "cpu_seconds_per_prediction": largest["cpu_seconds"] / largest["rows"],
        "provisioned_core_seconds": min(params.num_threads, cores) * largest["wall_seconds"],
        "latency_s": None,  # a call's latency depends on its size: see call_sizes[*].call_latency_s
        "largest_call_size": largest["size"],
        "call_sizes": per_size,
        "single_row_fast": single_row,
        "max_abs_diff_vs_lightgbm": max_diff,
        "dataset_rows": total,
        "measurement": {
            "min_seconds": params.min_seconds,
            "min_calls": params.min_calls,
            "max_calls": params.max_calls,
            "warmup_max_rows": WARMUP_MAX_ROWS,
            "calls": sum(s["calls"] for s in per_size),
            "rows": sum(s["rows"] for s in per_size),
            "wall_seconds": measured[0],
            "capped_by_max_calls": [s["size"] for s in per_size if s["calls"] >= params.max_calls],
        },
        "peak_rss_bytes": usage.peak_rss_bytes,
        "cpu": usage.to_dict(),
    }
    if max_diff > MAX_ABS_DIFF:
        result.invalidate(
            f"{params.predictor} scores differ from LightGBM's on the same rows by up to {max_diff:.3g} (> {MAX_ABS_DIFF:g})"
        )
    busy = usage.contention()
    if busy:
        result.invalidate(busy)
    result.metrics = m
    result.samples = pl.concat(samples)
    return result


def predictor_point_label(values: dict) -> str:
    """A sweep point in a progress line: the call sizes measured."""
    return f"rows per call {values.get('call_sizes')}"


def _on_table(values: dict[str, Any], rows: int) -> dict[str, Any]:
    """The predictor on a user's table: call sizes up to the table's rows (each call takes distinct rows)."""
    sizes = [s for s in str(values.get("call_sizes", "")).split(",") if s.strip() and int(s) <= rows]
    return cap_rows(values, rows) | ({"call_sizes": ",".join(sizes)} if sizes else {})


PATTERN = Pattern(
    name="predictor",
    params=PredictorParams,
    run=run,
    notebook="05_predictor.ipynb",
    family="predictor",
    cost_kind="none",
    label=predictor_point_label,
    sweep=Sweep(base="predictor", variants="predictor_variants", compiled="predictor_compiled"),
    view="bench.views.limits",
    on_table=_on_table,
)
