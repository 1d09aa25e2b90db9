"""Report views of the predictor alone and of how close each pattern gets to it.

* :func:`call_size_table` / :func:`plot_call_size_curve`: per-row cost against rows per ``predict()``
  call, one line per backend (claim C4: why batch is cheap and per-request is not);
* :func:`limits_table`: each pattern configuration's measured throughput as a fraction of the raw
  predictor's on the same machine, and where the rest goes, from measured fields only.

Every figure is a median over runs, with the number of runs beside it. Runs are compared within one
model: a figure measured on another model (another profile) is never used as a reference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from bench.analysis.cost import serving
from bench.patterns import registry
from bench.patterns.base import Pattern
from bench.patterns.predictor import PATTERN
from bench.results import RunResult
from bench.views.report import _empty, fmt_rate, runs_of


def _median(values: Iterable[float | None]) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return float(np.median(xs)) if xs else None


def _model(r: RunResult) -> str:
    """The model a run scored with, short: ``200×63 (1a2b3c4d)``."""
    p, sha = r.params, (r.provenance.get("model_sha256") or "")[:8]
    if p.get("model_path"):  # a user's model file: trees and leaves are the synthetic model's, unused
        return f"{Path(p['model_path']).name} ({sha})"
    return f"{p.get('trees')}×{p.get('leaves')} ({sha})"


def _predictor(r: RunResult) -> str:
    """The predictor backend and its threads, as the predictor pattern names its backend."""
    threads = r.params.get("num_threads", 1)
    return r.params.get("predictor", "lightgbm") + (f"[{threads}t]" if threads != 1 else "")


def predictor_runs(runs: Sequence[RunResult]) -> list[RunResult]:
    return [r for r in runs_of(runs, PATTERN) if r.metrics.get("call_sizes")]


def table_or_note(df: pl.DataFrame, note: str):
    """The table, or a sentence saying why there is none (a notebook cell never shows an empty frame)."""
    if not df.is_empty():
        return df
    from IPython.display import Markdown

    return Markdown(f"*{note}*")


# --------------------------------------------------------------------------------------------
# Per-row cost against call size (claim C4)
# --------------------------------------------------------------------------------------------


def call_size_table(runs: Sequence[RunResult]) -> pl.DataFrame:
    """One row per (model, backend, call size): median over predictor runs of CPU and wall µs per row,
    rows/s, and a call's p50/p99 wall latency; ``calls_per_run`` is the median number of calls each
    run's percentiles rest on. Empty when there are no predictor runs."""
    rows = []
    for r in predictor_runs(runs):
        for s in r.metrics["call_sizes"]:
            lat = s.get("call_latency_s") or {}
            rows.append(
                {
                    "model": _model(r),
                    "backend": r.backend,
                    "call_size": s["size"],
                    "cpu_us_per_row": s["cpu_us_per_row"],
                    "wall_us_per_row": s["wall_us_per_row"],
                    "rows_per_s": s["rows_per_s"],
                    "call_p50_us": 1e6 * lat["p50"] if lat else None,
                    "call_p99_us": 1e6 * lat["p99"] if lat else None,
                    "calls": s["calls"],
                    "max_abs_diff": r.metrics.get("max_abs_diff_vs_lightgbm"),
                }
            )
    if not rows:
        return pl.DataFrame()
    return (
        pl.DataFrame(rows)
        .group_by("model", "backend", "call_size")
        .agg(
            pl.len().alias("runs"),
            pl.col("cpu_us_per_row").median().round(3),
            pl.col("wall_us_per_row").median().round(3),
            pl.col("rows_per_s").median().round(0),
            pl.col("call_p50_us").median().round(1),
            pl.col("call_p99_us").median().round(1),
            pl.col("calls").median().cast(pl.Int64).alias("calls_per_run"),
            pl.col("max_abs_diff").max(),
        )
        .sort("model", "backend", "call_size")
    )


def plot_call_size_curve(runs: Sequence[RunResult], ax=None):
    """CPU µs per row against rows per call (both log), one line per backend, n runs per point."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    t = call_size_table(runs)
    if t.is_empty():
        return _empty(ax, "no predictor runs yet")
    several_models = t["model"].n_unique() > 1
    for (model, backend), part in t.group_by("model", "backend", maintain_order=True):
        ns = sorted(set(part["runs"].to_list()))
        n = f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}–{ns[-1]}"
        label = f"{backend}{f' · {model}' if several_models else ''} ({n})"
        ax.plot(part["call_size"], part["cpu_us_per_row"], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows per predict() call (log)")
    ax.set_ylabel("CPU µs per row (log, median over runs)")
    ax.set_title("The predictor alone: per-row CPU cost vs rows per call")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def predictor_card(result: RunResult) -> pl.DataFrame:
    """One predictor run's headline figures: validity, agreement with LightGBM, both ends of the curve."""
    m = result.metrics
    sizes = m["call_sizes"]
    first, last = sizes[0], sizes[-1]

    def at(s: dict) -> str:
        return (
            f"{s['cpu_us_per_row']:.3f} CPU-µs, {s['wall_us_per_row']:.3f} wall-µs per row; "
            f"{fmt_rate(s['rows_per_s'])} rows/s ({s['calls']:,} calls)"
        )

    items = {
        "run_id": result.run_id,
        "valid": "yes" if result.valid else f"NO: {'; '.join(result.invalid_reasons)}",
        "backend (threads)": f"{result.params['predictor']} ({result.params['num_threads']})",
        "dataset rows": f"{m['dataset_rows']:,}",
        "max |score − LightGBM|": f"{m['max_abs_diff_vs_lightgbm']:.3g}",
        f"{first['size']:,} row(s) per call": at(first),
        f"{last['size']:,} rows per call": at(last),
        "per-row CPU, smallest / largest call": f"{first['cpu_us_per_row'] / last['cpu_us_per_row']:,.1f}×"
        if last["cpu_us_per_row"] > 0
        else "n/a",
        "sizes capped by max_calls": str(m["measurement"]["capped_by_max_calls"] or "none"),
        "fixed costs (s)": str({k: round(v, 3) for k, v in m.get("fixed_costs_s", {}).items()}),
    }
    return pl.DataFrame({"metric": list(items), "value": list(items.values())})


# --------------------------------------------------------------------------------------------
# Limits: each pattern against the raw predictor
# --------------------------------------------------------------------------------------------


def _single_row_reference(runs: Sequence[RunResult]) -> dict[tuple[str, str], dict]:
    """(model sha, predictor label) -> the predictor pattern's one-row-per-call figures (medians)."""
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in predictor_runs(runs):
        # the fastest single-row path measured: predict_row where recorded, else predict() on one row
        one = r.metrics.get("single_row_fast") or next((s for s in r.metrics["call_sizes"] if s["size"] == 1), None)
        if one:
            by[(r.provenance.get("model_sha256"), r.backend)].append(one)
    return {
        key: {
            "runs": len(ss),
            "wall_us": _median(s["wall_us_per_row"] for s in ss),
            "cpu_us": _median(s["cpu_us_per_row"] for s in ss),
        }
        for key, ss in by.items()
    }


def _group(runs: Iterable[RunResult], key: Callable[[RunResult], tuple]) -> dict[tuple, list[RunResult]]:
    out: dict[tuple, list[RunResult]] = defaultdict(list)
    for r in runs:
        out[key(r)].append(r)
    return out


def _phase_rows(runs: Sequence[RunResult], spec: Pattern) -> list[dict]:
    """A job's end-to-end rate over raw ``predict()`` on the same rows in the same run, and its phases."""
    pool = [r for r in runs_of(runs, spec) if r.metrics.get("raw_predict_rows_per_s")]
    out = []
    groups = _group(pool, lambda r: (r.backend.split("/")[0], r.metrics["predictions"], _predictor(r), _model(r)))
    for (engine, rows, predictor, model), rs in sorted(groups.items()):
        names = dict.fromkeys(p for r in rs for p in r.metrics.get("phases_s") or {})
        phases = {p: _median((r.metrics.get("phases_s") or {}).get(p) for r in rs) for p in names}
        total = sum(v for v in phases.values() if v) or 1.0
        split = ", ".join(
            f"{p} {100 * v / total:.0f}%" for p, v in sorted(phases.items(), key=lambda kv: -(kv[1] or 0))
        )
        overlap = " (read/write overlapped with scoring)" if rs[0].metrics.get("phases_overlap") else ""
        threads = rs[0].params.get("num_threads")
        bound = _bound_note(rs)
        out.append(
            {
                "pattern": spec.name,
                "configuration": f"{engine} engine, {rows:,} rows",
                "predictor": predictor,
                "model": model,
                "runs": len(rs),
                "measured_rows_per_s": _median(r.metrics["throughput_per_s"] for r in rs),
                "raw_rows_per_s": _median(r.metrics["raw_predict_rows_per_s"] for r in rs),
                "raw_reference": f"predict() on the same rows, same run ({threads} threads)",
                "ratio": _median(r.metrics.get("e2e_to_raw_ratio") for r in rs),
                "where_the_rest_goes": f"{bound}phase time: {split}{overlap}",
            }
        )
    return out


def _bound_note(rs: Sequence[RunResult]) -> str:
    """Which stage set the pace of a batch job and where the scoring thread's wall time went, from the
    runs that recorded their pipeline ("" when none did, e.g. Ray Data runs): the bound, how much slower
    ``predict()`` ran inside the job than alone (the reader and writer share its cores, their CPU as a
    share of ``predict()``'s), and the waits (for the first chunk, for later ones, for the writer and its
    tail) as shares of the wall time; medians over runs."""
    piped = [r for r in rs if r.metrics.get("bound_by") and r.metrics.get("pipeline")]
    if not piped:
        return ""
    counts: dict[str, int] = defaultdict(int)
    for r in piped:
        counts[r.metrics["bound_by"]] += 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    bound = ", ".join(f"{b} ({n}/{len(piped)})" if len(ranked) > 1 else b for b, n in ranked)
    parts = [f"bound by {bound}"]

    def share(key: str) -> float | None:
        return _median(r.metrics["pipeline"].get(key, 0.0) / r.metrics["wall_seconds"] for r in piped)

    slow = _median(
        r.metrics["pipeline"]["score_s"] / r.metrics["raw_predict_seconds"]
        for r in piped
        if r.metrics.get("raw_predict_seconds")
    )
    extra = _median(
        (r.metrics["cpu_seconds"] - r.metrics["raw_predict_cpu_seconds"]) / r.metrics["raw_predict_cpu_seconds"]
        for r in piped
        if r.metrics.get("raw_predict_cpu_seconds")
    )
    if slow is not None:
        cpu = f"; the job's other CPU {100 * extra:.0f}% of predict()'s" if extra is not None else ""
        parts.append(f"predict() {slow:.2f}× its time alone{cpu}")
    fill, wait_in = share("fill_s"), share("wait_input_s")
    tail = _median(
        (r.metrics["pipeline"].get("wait_output_s", 0.0) + r.metrics["pipeline"].get("drain_s", 0.0))
        / r.metrics["wall_seconds"]
        for r in piped
    )
    parts.append(
        f"waiting for the first chunk {100 * (fill or 0):.0f}%, for later ones {100 * (wait_in or 0):.0f}%, "
        f"for the writer and its tail {100 * (tail or 0):.0f}% of wall"
    )
    return "; ".join(parts) + ". "


def _saturation_rows(runs: Sequence[RunResult], spec: Pattern) -> list[dict]:
    """Peak throughput with every event offered at once over bulk ``predict()`` in the same run."""
    pool = [r for r in runs_of(runs, spec) if serving(r) and r.metrics.get("saturation")]
    out = []
    for (config, predictor, model), rs in sorted(_group(pool, lambda r: (r.backend, _predictor(r), _model(r))).items()):
        sats = [r.metrics["saturation"] for r in rs]
        roles = [
            k for k in ("driver", "actors", "ray", "producer", "broker") if any(k in s.get("cpu", {}) for s in sats)
        ]
        cpu = {k: _median(s.get("cpu", {}).get(k) for s in sats) for k in roles}
        total = sum(v for v in cpu.values() if v) or 1.0
        bulk = sats[0]["bulk"]
        out.append(
            {
                "pattern": spec.name,
                "configuration": config,
                "predictor": predictor,
                "model": model,
                "runs": len(rs),
                "measured_rows_per_s": _median(s["throughput_per_s"] for s in sats),
                "raw_rows_per_s": _median(s["bulk"]["rows_per_s"] for s in sats),
                "raw_reference": f"predict() of {bulk['rows']:,} rows, {bulk['num_threads']} threads, same run",
                "ratio": _median(s["ratio_to_bulk"] for s in sats),
                "where_the_rest_goes": "CPU at peak: "
                + ", ".join(f"{k} {100 * (v or 0) / total:.0f}%" for k, v in cpu.items())
                + " (actors = scoring)",
            }
        )
    return out


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{1e3 * x:.2f} ms"


def _capacity_rows(runs: Sequence[RunResult], spec: Pattern, reference: dict) -> list[dict]:
    """Per-request and hybrid: measured capacity over the single-row raw rate of the same backend."""
    pool = [r for r in runs_of(runs, spec) if serving(r) and (r.metrics.get("capacity") or {}).get("rate_per_s")]
    out = []
    groups = _group(
        pool, lambda r: (r.backend.rsplit("/", 1)[0], _predictor(r), _model(r), r.provenance.get("model_sha256"))
    )
    for (config, predictor, model, sha), rs in sorted(groups.items(), key=lambda kv: kv[0][:3]):
        m = [r.metrics for r in rs]
        capacity = _median(x["capacity"]["rate_per_s"] for x in m)
        ref = reference.get((sha, predictor))
        raw = 1e6 / ref["wall_us"] if ref and ref["wall_us"] else None
        lat = spec.latency_key
        p50 = _median((x.get(lat) or {}).get("p50") for x in m)
        floor = _median((x.get("floor_latency_s") or {}).get("p50") for x in m)
        cpu_us = _median(1e6 * x["cpu_seconds_per_prediction"] for x in m if x.get("cpu_seconds_per_prediction"))
        parts = [f"p50 {_ms(p50)}"]
        if spec.family == "hybrid":
            hit = _median(x.get("hit_ratio") for x in m)
            parts.append(f"{100 * hit:.0f}% answered by lookup, not predict()" if hit is not None else "")
        elif floor is not None:
            parts.append(f"no-op floor {_ms(floor)}" + (f" ({100 * floor / p50:.0f}%)" if p50 else ""))
        else:
            parts.append("no floor recorded")
        if cpu_us is not None:
            vs = f" vs {ref['cpu_us']:.0f} for the predictor alone on 1 row" if ref else ""
            parts.append(f"server CPU {cpu_us:.0f} µs/answer{vs}")
        limits = sorted({x["capacity"].get("limited_by") for x in m} - {None})
        if "max_rate" in limits:
            parts.append("capacity is a lower bound (search stopped at its max rate)")
        out.append(
            {
                "pattern": spec.name,
                "configuration": config,
                "predictor": predictor,
                "model": model,
                "runs": len(rs),
                "measured_rows_per_s": capacity,
                "raw_rows_per_s": raw,
                "raw_reference": f"predictor pattern, single-row call (n={ref['runs']})"
                if ref
                else f"no predictor run of {predictor} on this model yet",
                "ratio": capacity / raw if raw and capacity is not None else None,
                "where_the_rest_goes": "; ".join(p for p in parts if p),
            }
        )
    return out


def limits_table(runs: Sequence[RunResult]) -> pl.DataFrame:
    """One row per (pattern, configuration, predictor, model): measured rows/s (batch: end to end;
    streaming: peak with every event offered at once; per-request and hybrid: capacity at the SLO),
    the raw predictor's rows/s it is set against and where that reference comes from, their ratio
    (median over runs), and where the rest goes, from measured fields. Fault and C10 runs are left
    out (they answer other questions). Empty when there is no batch, streaming, per-request or hybrid
    run."""
    reference = _single_row_reference(runs)
    rows = []
    for spec in registry.PATTERNS.values():  # in the registry's order; the predictor is the reference
        if spec.limits == "phases":
            rows += _phase_rows(runs, spec)
        elif spec.limits == "saturation":
            rows += _saturation_rows(runs, spec)
        elif spec.limits == "capacity":
            rows += _capacity_rows(runs, spec, reference)
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col("measured_rows_per_s").round(0),
        pl.col("raw_rows_per_s").round(0),
        pl.col("ratio").round_sig_figs(3),
    )
