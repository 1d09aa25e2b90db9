"""Views of the batch pattern: a run's card and phases (10_batch), and the report's batch section."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from bench.patterns.batch import PATTERN
from bench.results import RunResult
from bench.views.report import _empty, _legend_outside, fmt_rate, runs_of

BATCH_PHASES = ("read", "validate", "prepare", "score", "write")
#: The scoring thread's split of a local job's wall time (``metrics["pipeline"]``), as people read it.
PIPELINE_SPLIT = {
    "fill_s": "waiting for the first chunk (read, validate, prepare)",
    "wait_input_s": "waiting for later chunks (the reader was behind)",
    "score_s": "scoring (predict)",
    "wait_output_s": "waiting for the writer (it was behind)",
    "drain_s": "the writer's tail after the last chunk: last row group, footer, rename",
    "other_s": "the rest: threads, queue hand-offs",
}


def batch_summary(runs: Sequence[RunResult]) -> pl.DataFrame:
    """Batch runs grouped by engine and input size: median and spread of throughput, the e2e/raw ratio, phases."""
    rows = []
    for r in runs_of(runs, PATTERN):
        m = r.metrics
        phases = m["phases_s"]
        rows.append(
            {
                "backend": r.backend,
                "rows": m["predictions"],
                "throughput_per_s": m["throughput_per_s"],
                "raw_predict_per_s": m.get("raw_predict_rows_per_s"),
                "e2e_to_raw": m.get("e2e_to_raw_ratio"),
                "cpu_us_per_prediction": 1e6 * m["cpu_seconds"] / m["predictions"],
                "wall_s": m["wall_seconds"],
                **{f"{p}_us_per_row": 1e6 * phases.get(p, 0.0) / m["predictions"] for p in BATCH_PHASES},
                "bound_by": m.get("bound_by"),  # absent in Ray Data runs and older results
                # predict() inside the job against predict() alone on the same rows (> 1: slowed by
                # the stages sharing its cores)
                "predict_in_job_vs_alone": (m["pipeline"]["score_s"] / m["raw_predict_seconds"])
                if m.get("pipeline") and m.get("raw_predict_seconds")
                else None,
            }
        )
    if not rows:
        return pl.DataFrame()
    df = pl.DataFrame(rows)
    return (
        df.group_by("backend", "rows")
        .agg(
            pl.len().alias("runs"),
            pl.col("throughput_per_s").median().alias("throughput_median"),
            pl.col("throughput_per_s").min().alias("throughput_min"),
            pl.col("throughput_per_s").max().alias("throughput_max"),
            pl.col("raw_predict_per_s").median().alias("raw_predict_median"),
            pl.col("e2e_to_raw").median().alias("e2e_to_raw_median"),
            pl.col("e2e_to_raw").min().alias("e2e_to_raw_min"),
            pl.col("cpu_us_per_prediction").median().alias("cpu_us_per_prediction"),
            pl.col("wall_s").median().alias("wall_s_median"),
            *[pl.col(f"{p}_us_per_row").median() for p in BATCH_PHASES],
            pl.col("bound_by").drop_nulls().unique(maintain_order=True).sort().str.join(", ").alias("bound_by"),
            pl.col("predict_in_job_vs_alone").median(),
        )
        .with_columns(pl.when(pl.col("bound_by") != "").then(pl.col("bound_by")).alias("bound_by"))
        .sort("backend", "rows")
    )


def plot_batch_throughput(runs: Sequence[RunResult], ax=None):
    """Rows/s against input size: every run as a point, the median as a line, raw predict beside it."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    summary = batch_summary(runs)
    if summary.is_empty():
        return _empty(ax, "no batch runs")
    for (backend,), part in summary.group_by("backend", maintain_order=True):
        points = [
            (r.metrics["predictions"], r.metrics["throughput_per_s"])
            for r in runs_of(runs, PATTERN)
            if r.backend == backend
        ]
        dots = ax.scatter(*zip(*points, strict=True), s=18, alpha=0.6, label=f"{backend}: each run")
        color = dots.get_facecolor()[0]
        ax.plot(part["rows"], part["throughput_median"], marker="o", color=color, label=f"{backend}: median")
        if part["raw_predict_median"].null_count() < part.height:
            ax.plot(
                part["rows"],
                part["raw_predict_median"],
                ls="--",
                marker="x",
                color=color,
                label=f"{backend}: raw predict()",
            )
        for rows, n, tp in part.select("rows", "runs", "throughput_median").iter_rows():
            ax.annotate(f"n={n}", (rows, tp), textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("rows scored in one job")
    ax.set_ylabel("predictions per second")
    ax.set_title("Bulk batch throughput")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    return ax


def plot_batch_phases(runs: Sequence[RunResult], ax=None):
    """Where a batch job's time goes: µs per row in each phase, stacked, per input size."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    summary = batch_summary(runs)
    if summary.is_empty():
        return _empty(ax, "no batch runs")
    labels = [f"{b.split('/')[0]}\n{r:,}\n(n={n})" for b, r, n in summary.select("backend", "rows", "runs").iter_rows()]
    bottom = [0.0] * summary.height
    for phase in BATCH_PHASES:
        values = summary[f"{phase}_us_per_row"].to_list()
        ax.bar(labels, values, bottom=bottom, label=phase)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xlabel("rows scored in one job (runs)")
    ax.set_ylabel("µs per row (median over runs)")
    ax.set_title("Batch job time by phase (read-ahead and write-behind may overlap scoring)")
    _legend_outside(ax)
    return ax


def batch_findings(runs: Sequence[RunResult]):
    """The batch section's conclusions as Markdown, every figure read from the summary."""
    from IPython.display import Markdown

    every = batch_summary(runs)
    if every.is_empty():
        return Markdown("_No valid batch runs yet: run `bench run batch` or `make report`._")
    s = every.filter(pl.col("backend").str.starts_with("local"))
    if s.is_empty():
        s = every
    big = s.row(s.height - 1, named=True)
    small = s.row(0, named=True)
    lines = [
        f"- The largest job, **{big['rows']:,} rows**, scored **{fmt_rate(big['throughput_median'])} predictions/s** end to end "
        f"(median of n={big['runs']}; range {fmt_rate(big['throughput_min'])}–{fmt_rate(big['throughput_max'])}), "
        f"at **{big['cpu_us_per_prediction']:.1f} CPU-µs per prediction**.",
    ]
    ratio = big["e2e_to_raw_median"]
    if ratio is not None and ratio < 1:
        lines.append(
            f"- End-to-end throughput was **{ratio:.2f}×** raw `predict()` on the same rows in the same runs "
            f"(lowest {big['e2e_to_raw_min']:.2f}): reading, validating, converting and writing cost "
            f"about {100 * (1 - ratio):.0f}% of the job."
        )
    elif ratio is not None:
        lines.append(
            f"- End-to-end throughput matched raw `predict()` on the same rows (median ratio {ratio:.2f}, lowest "
            f"{big['e2e_to_raw_min']:.2f}): the I/O around the model, overlapped with scoring, cost less than the "
            f"run-to-run noise of `predict()` itself."
        )
    if big.get("bound_by"):
        slow = big.get("predict_in_job_vs_alone")
        lines.append(
            f"- Its pace was set by **{big['bound_by']}** (the stage the scoring thread spent the most time in or "
            f"waiting for)"
            + (
                f"; `predict()` inside the job took {slow:.2f}× its time alone on the same rows, the reading, "
                "validating, preparing and writing sharing its cores."
                if slow is not None
                else "."
            )
        )
    if s.height > 1:
        lines.append(
            f"- The smallest job ({small['rows']:,} rows, n={small['runs']}) reached {fmt_rate(small['throughput_median'])} predictions/s "
            f"in {small['wall_s_median']:.3f} s: fixed per-job work weighs more on small jobs."
        )
    ray = every.filter(pl.col("backend").str.starts_with("ray"))
    if not ray.is_empty() and s is not every:
        r = ray.row(ray.height - 1, named=True)
        lines.append(
            f"- On Ray Data (`engine=ray`), {r['rows']:,} rows scored at {fmt_rate(r['throughput_median'])} predictions/s "
            f"(n={r['runs']}, {r['cpu_us_per_prediction']:.1f} CPU-µs per prediction, Ray's own processes included)."
        )
    return Markdown("\n".join(lines))


def result_card(result: RunResult) -> pl.DataFrame:
    """A run's headline figures, with validity first."""
    m = result.metrics
    items = {
        "run_id": result.run_id,
        "valid": result.valid if result.valid else f"NO: {'; '.join(result.invalid_reasons)}",
        "predictions": f"{m['predictions']:,}",
        "wall seconds": f"{m['wall_seconds']:.3f}",
        "throughput (predictions/s)": fmt_rate(m["throughput_per_s"]),
        "raw predict() (rows/s)": fmt_rate(m.get("raw_predict_rows_per_s")),
        "end-to-end / raw": f"{m['e2e_to_raw_ratio']:.3f}" if "e2e_to_raw_ratio" in m else "n/a",
        "CPU seconds": f"{m['cpu_seconds']:.2f}",
        "CPU µs per prediction": f"{1e6 * m['cpu_seconds'] / max(m['predictions'], 1):.2f}",
        "provisioned core-seconds": f"{m['provisioned_core_seconds']:.2f}",
        "peak RSS (MiB)": f"{m['peak_rss_bytes'] / 2**20:.0f}" if "peak_rss_bytes" in m else "n/a",
        "model load (s, fixed cost)": f"{m.get('fixed_costs_s', {}).get('model_load', float('nan')):.3f}",
        "bound by (the stage that set the pace)": m.get("bound_by") or "n/a",
    }
    return pl.DataFrame({"metric": list(items), "value": [str(v) for v in items.values()]})


def phase_table(result: RunResult) -> pl.DataFrame:
    """Seconds and share of each batch phase in one run, and the phase that bounded the run (the
    stage that set the pace: ``bounds_the_run``; blank in runs that did not record it)."""
    phases = result.metrics.get("phases_s", {})
    total = sum(phases.values()) or 1.0
    bound = result.metrics.get("bound_by")
    return pl.DataFrame(
        {
            "phase": list(phases),
            "seconds": [round(v, 4) for v in phases.values()],
            "share_pct": [round(100 * v / total, 1) for v in phases.values()],
            "bounds_the_run": ["yes" if p == bound else "" for p in phases],
        }
    )


def pipeline_table(result: RunResult) -> pl.DataFrame:
    """Where a local job's wall time went, seen from the scoring thread (seconds, share of the wall
    time), with predict() alone on the same rows beside it; empty for runs that did not record it."""
    m = result.metrics
    split = m.get("pipeline")
    if not split:
        return pl.DataFrame()
    wall = m["wall_seconds"]
    rows = [(label, split.get(key, 0.0)) for key, label in PIPELINE_SPLIT.items()]
    table = pl.DataFrame(
        {
            "part": [label for label, _ in rows],
            "seconds": [round(v, 4) for _, v in rows],
            "share_of_wall_pct": [round(100 * v / wall, 1) for _, v in rows],
        }
    )
    if m.get("raw_predict_seconds"):
        alone = pl.DataFrame(
            {
                "part": ["for comparison: predict() alone on the same rows (untimed pass)"],
                "seconds": [round(m["raw_predict_seconds"], 4)],
                "share_of_wall_pct": [round(100 * m["raw_predict_seconds"] / wall, 1)],
            }
        )
        table = pl.concat([table, alone])
    return table
