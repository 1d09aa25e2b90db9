"""Tables and plots the report notebook shows; everything is computed from results on disk.

Runs are compared only within one machine (same CPU model, core count and memory): the report picks
one machine and says how many runs from others it left out, never averaging across hardware.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bench import results as results_mod
from bench.results import RunResult, machine_key

BATCH_PHASES = ("read", "validate", "prepare", "score", "write")


@dataclass
class Selection:
    """The valid runs of one machine, and what was left out and why (shown in the report)."""

    machine: str | None
    runs: list[RunResult]
    other_machines: dict[str, int]  #: machine -> valid runs not mixed in
    invalid: list[RunResult]
    refused: dict[str, str]
    incomplete: list[str]


def select(results_dir: Path | None = None, machine: str = "") -> Selection:
    """Load every result; keep the valid ones of ``machine`` (default: the machine with most runs)."""
    loaded = results_mod.load_all(results_dir)
    valid = [r for r in loaded.results if r.valid]
    invalid = [r for r in loaded.results if not r.valid]
    counts = Counter(machine_key(r.provenance) for r in valid)
    chosen = machine or (counts.most_common(1)[0][0] if counts else None)
    runs = [r for r in valid if machine_key(r.provenance) == chosen]
    others = {k: v for k, v in counts.items() if k != chosen}
    return Selection(chosen, runs, others, invalid, loaded.refused, loaded.incomplete)


def runs_table(runs: Sequence[RunResult]) -> pl.DataFrame:
    """One row per run: what ran, how much, how fast, at what CPU cost."""
    rows = []
    for r in runs:
        m = r.metrics
        lat = m.get("latency_s") or {}
        rows.append(
            {
                "run_id": r.run_id,
                "pattern": r.pattern,
                "backend": r.backend,
                "profile": r.profile,
                "valid": r.valid,
                "predictions": m["predictions"],
                "wall_s": round(m["wall_seconds"], 3),
                "throughput_per_s": round(m["throughput_per_s"], 1),
                "cpu_s": round(m["cpu_seconds"], 3),
                "cpu_us_per_prediction": round(1e6 * m["cpu_seconds"] / max(m["predictions"], 1), 2),
                "provisioned_core_s": round(m["provisioned_core_seconds"], 3),
                "e2e_to_raw": round(m["e2e_to_raw_ratio"], 3) if "e2e_to_raw_ratio" in m else None,
                "latency_p99_ms": round(1e3 * lat["p99"], 3) if lat else None,
                "latency_samples": lat.get("count") if lat else None,
                "git_commit": (r.provenance["git"].get("commit") or "")[:8],
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def batch_summary(runs: Sequence[RunResult]) -> pl.DataFrame:
    """Batch runs grouped by engine and input size: median and spread of throughput, the e2e/raw ratio, phases."""
    rows = []
    for r in runs:
        if r.pattern != "batch":
            continue
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
        )
        .sort("backend", "rows")
    )


def _empty(ax, text: str):
    """A plot that says why it is empty instead of drawing nothing."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    return ax


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
            for r in runs
            if r.pattern == "batch" and r.backend == backend
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
    ax.legend(fontsize=8)
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
    ax.legend(fontsize=8)
    return ax


def fmt_rate(x: float | None) -> str:
    """Thousands separators, no false precision."""
    return "n/a" if x is None else f"{x:,.0f}"


# --------------------------------------------------------------------------------------------
# Notebook views: small tables the notebooks display
# --------------------------------------------------------------------------------------------


def datasets_table(datasets: Sequence) -> pl.DataFrame:
    """Each dataset's file, size, seed, content hash and generation time."""
    return pl.DataFrame(
        [
            {
                "file": Path(d.path).name,
                "rows": d.rows,
                "seed": d.seed,
                "sha256": d.sha256[:16],
                "mib": round(Path(d.path).stat().st_size / 2**20, 1),
                "generate_s": d.generate_seconds,
            }
            for d in datasets
        ]
    )


def column_profile(df: pl.DataFrame) -> pl.DataFrame:
    """Per column: dtype, null share, min, max, mean (categoricals: number of categories used)."""
    rows = []
    for name, dtype in df.schema.items():
        s = df.get_column(name)
        numeric = dtype.is_numeric()
        rows.append(
            {
                "column": name,
                "dtype": str(dtype),
                "null_pct": round(100 * s.null_count() / max(len(s), 1), 2),
                "min": float(s.min()) if numeric else None,
                "max": float(s.max()) if numeric else None,
                "mean": round(float(s.mean()), 4) if numeric else None,
                "distinct": s.n_unique() if not numeric else None,
            }
        )
    return pl.DataFrame(rows)


def plot_churn_by(df: pl.DataFrame, columns: Sequence[str]):
    """Churn rate against a few features (binned numerics, categories as they are)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.2), sharey=True)
    for ax, col in zip(axes, columns, strict=True):
        s = df.get_column(col)
        key = pl.col(col).cast(pl.String) if not s.dtype.is_numeric() else pl.col(col).qcut(8, allow_duplicates=True)
        g = df.group_by(key.alias("bin")).agg(pl.col("churned").mean().alias("rate"), pl.len()).sort("bin")
        ax.bar([str(b) for b in g["bin"]], g["rate"])
        ax.set_title(col, fontsize=9)
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    axes[0].set_ylabel("churn rate")
    fig.tight_layout()
    return fig


def model_card(model) -> pl.DataFrame:
    """The model's identity and quality as one two-column table."""
    meta = model.meta
    items = {
        "file": Path(model.path).name,
        "sha256": model.sha256,
        "trees": meta.get("params", {}).get("trees"),
        "leaves": meta.get("params", {}).get("leaves"),
        "features": len(model.feature_names),
        "train rows": meta.get("train_rows"),
        "holdout rows": meta.get("holdout_rows"),
        "holdout AUC": meta.get("holdout_auc"),
        "train seconds": meta.get("train_seconds"),
        "lightgbm": meta.get("lightgbm_version"),
    }
    return pl.DataFrame({"field": list(items), "value": [str(v) for v in items.values()]})


def plot_feature_importance(model, top: int = 15):
    """Total gain per feature, largest first."""
    import matplotlib.pyplot as plt

    gain = model.booster.feature_importance(importance_type="gain")
    pairs = sorted(zip(model.feature_names, gain, strict=True), key=lambda p: p[1])[-top:]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(pairs) + 1))
    ax.barh([p[0] for p in pairs], [p[1] for p in pairs])
    ax.set_xlabel("total gain")
    ax.set_title("Feature importance")
    fig.tight_layout()
    return fig


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
    }
    return pl.DataFrame({"metric": list(items), "value": [str(v) for v in items.values()]})


def phase_table(result: RunResult) -> pl.DataFrame:
    """Seconds and share of each batch phase in one run."""
    phases = result.metrics.get("phases_s", {})
    total = sum(phases.values()) or 1.0
    return pl.DataFrame(
        {
            "phase": list(phases),
            "seconds": [round(v, 4) for v in phases.values()],
            "share_pct": [round(100 * v / total, 1) for v in phases.values()],
        }
    )


def selection_summary(sel: Selection) -> pl.DataFrame:
    """What the report compares and what it left out, stated up front."""
    provs = [r.provenance for r in sel.runs]
    commits = sorted(
        {(p["git"].get("commit") or "unknown")[:8] + ("+dirty" if p["git"].get("dirty") else "") for p in provs}
    )
    items = {
        "machine": sel.machine or "no valid runs yet",
        "valid runs compared": len(sel.runs),
        "patterns": ", ".join(sorted({r.pattern for r in sel.runs})) or "none",
        "profiles": ", ".join(sorted({r.profile for r in sel.runs})) or "none",
        "measured between (UTC)": f"{min(p['utc'] for p in provs)} … {max(p['utc'] for p in provs)}"
        if provs
        else "n/a",
        "git commits": ", ".join(commits) or "n/a",
        "packages": ", ".join(f"{k} {v}" for k, v in (provs[-1]["packages"].items() if provs else [])),
        "runs from other machines (not mixed in)": "; ".join(f"{k}: {v}" for k, v in sel.other_machines.items())
        or "none",
        "invalid runs (excluded)": "; ".join(f"{r.run_id}: {', '.join(r.invalid_reasons)}" for r in sel.invalid)
        or "none",
        "unreadable result files (refused)": "; ".join(f"{k}: {v}" for k, v in sel.refused.items()) or "none",
        "runs without a result (failed or running)": len(sel.incomplete),
    }
    return pl.DataFrame({"": list(items), "value": [str(v) for v in items.values()]})


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


def setup_display() -> None:
    """Show whole tables in notebooks and the HTML report (polars truncates wide frames by default)."""
    pl.Config.set_tbl_cols(-1)
    pl.Config.set_tbl_rows(60)
    pl.Config.set_fmt_str_lengths(120)
    pl.Config.set_tbl_hide_dataframe_shape(True)
    pl.Config.set_tbl_hide_column_data_types(True)


# --------------------------------------------------------------------------------------------
# Per-request views
# --------------------------------------------------------------------------------------------


def request_card(result: RunResult) -> pl.DataFrame:
    """A per-request run's headline figures: offered vs answered, latency with its sample count, floor, capacity."""
    m = result.metrics
    lat, svc, lag = m.get("latency_s") or {}, m.get("service_s") or {}, m.get("generator_lag_s") or {}
    floor = m.get("floor_latency_s") or {}
    cap = m.get("capacity") or {}

    def ms(d: dict, key: str) -> str:
        return f"{1e3 * d[key]:.3f}" if d.get(key) is not None else "n/a"

    items = {
        "run_id": result.run_id,
        "valid": "yes" if result.valid else f"NO: {'; '.join(result.invalid_reasons)}",
        "sustainable at the offered rate": "yes"
        if m.get("sustainable")
        else f"NO: {m.get('not_sustainable_because', '')}",
        "offered / answered (req/s)": f"{m['offered_rate_per_s']:.1f} / {m['throughput_per_s']:.1f}",
        "latency from intended send p50 / p99 / p99.9 (ms)": f"{ms(lat, 'p50')} / {ms(lat, 'p99')} / {ms(lat, 'p99_9')}",
        "latency samples": str(lat.get("count", 0)),
        "service time p50 / p99 (ms)": f"{ms(svc, 'p50')} / {ms(svc, 'p99')}",
        "generator send lag p99 (ms)": ms(lag, "p99"),
        "no-op floor p50 / p99 (ms)": f"{ms(floor, 'p50')} / {ms(floor, 'p99')}" if floor else "n/a",
        "errors": str(m.get("errors")),
        "server CPU µs per prediction": f"{1e6 * m['cpu_seconds_per_prediction']:.1f}"
        if m.get("cpu_seconds_per_prediction")
        else "n/a",
        "generator CPU seconds": f"{m['generator_cpu_seconds']:.2f}"
        if m.get("generator_cpu_seconds") is not None
        else "n/a",
        "capacity at SLO (req/s)": f"{cap['rate_per_s']:.0f} ({cap['limited_by']}; {cap['per_core_per_s']:.0f} per core)"
        if cap
        else "not searched",
        "fixed costs (s)": str({k: round(v, 3) for k, v in m.get("fixed_costs_s", {}).items()}),
    }
    return pl.DataFrame({"metric": list(items), "value": list(items.values())})


def plot_latency_cdf(samples: pl.DataFrame, window: str = "main", ax=None):
    """CDF of latency from the intended send time and of service time, log x axis, warm-up excluded."""
    import matplotlib.pyplot as plt
    import numpy as np

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    s = samples.filter(
        (pl.col("window") == window) & (pl.col("intended_s") >= pl.col("warmup_s")) & (pl.col("status") == 200)
    )
    if s.is_empty():
        return _empty(ax, "no answered requests")
    for label, col in (
        ("from intended send", pl.col("done_s") - pl.col("intended_s")),
        ("service time", pl.col("done_s") - pl.col("sent_s")),
    ):
        x = np.sort(s.select(col).to_series().to_numpy() * 1e3)
        ax.plot(x, np.arange(1, x.size + 1) / x.size, label=f"{label} (n={x.size})")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(f"Latency CDF, {window} window")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def plot_capacity_curve(result: RunResult, ax=None):
    """p50 and p99 latency against offered rate for each capacity window, the SLO and the capacity marked."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    cap = result.metrics.get("capacity")
    if not cap or not cap["curve"]:
        return _empty(ax, "capacity not searched")
    pts = sorted((p for p in cap["curve"] if p["p99_s"] is not None), key=lambda p: p["offered_rate_per_s"])
    rates = [p["offered_rate_per_s"] for p in pts]
    ax.plot(rates, [1e3 * p["p50_s"] for p in pts], marker="o", label="p50")
    ax.plot(rates, [1e3 * p["p99_s"] for p in pts], marker="o", label="p99")
    for p in pts:
        if not p["sustainable"]:
            ax.annotate("✗", (p["offered_rate_per_s"], 1e3 * p["p99_s"]), color="red")
    ax.axhline(cap["slo_ms"], ls="--", color="grey", label=f"SLO {cap['slo_ms']:.0f} ms")
    ax.axvline(cap["rate_per_s"], ls=":", color="green", label=f"capacity {cap['rate_per_s']:.0f} req/s")
    if cap.get("knee"):
        k = cap["knee"]
        ax.axvline(k["rate_per_s"], ls="-.", color="orange", label=f"knee {k['rate_per_s']:.0f} req/s")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (requests/s)")
    ax.set_ylabel("latency (ms, log)")
    ax.set_title(f"Latency vs offered load ({result.backend}); ✗ = not sustainable")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def _run_dir(result: RunResult, results_dir: Path | str | None) -> Path:
    from bench.core import paths

    return Path(results_dir or paths.results_dir()) / "runs" / result.run_id


def _window_columns(m: dict, answered: str, digits: int) -> dict:
    """The columns every open-loop summary starts with: offered vs answered, verdict, latency with its n."""
    lat = m.get("latency_s") or {}
    return {
        "offered_per_s": round(m["offered_rate_per_s"], 1),
        answered: round(m["throughput_per_s"], 1),
        "sustainable": m.get("sustainable"),
        "p50_ms": round(1e3 * lat["p50"], digits) if lat else None,
        "p99_ms": round(1e3 * lat["p99"], digits) if lat else None,
        "samples": lat.get("count", 0),
    }


def request_summary(runs: Sequence[RunResult]) -> pl.DataFrame:
    """One row per per-request run: offered vs answered, latency with sample count, floor, capacity, CPU."""
    rows = []
    for r in runs:
        if r.pattern != "request":
            continue
        m = r.metrics
        floor, cap = m.get("floor_latency_s") or {}, m.get("capacity") or {}
        rows.append(
            {
                "backend": r.backend,
                **_window_columns(m, "answered_per_s", digits=3),
                "floor_p50_ms": round(1e3 * floor["p50"], 3) if floor else None,
                "gen_lag_p99_ms": round(1e3 * m["generator_lag_s"]["p99"], 3) if m.get("generator_lag_s") else None,
                "server_cpu_us_per_pred": round(1e6 * m["cpu_seconds_per_prediction"], 1)
                if m.get("cpu_seconds_per_prediction")
                else None,
                "capacity_per_s": round(cap["rate_per_s"], 1) if cap else None,
                "capacity_limited_by": cap.get("limited_by") if cap else None,
                "capacity_per_core": round(cap["per_core_per_s"], 1) if cap else None,
                "knee_per_s": round(cap["knee"]["rate_per_s"], 1) if cap and cap.get("knee") else None,
                "start_s": round(sum(m.get("fixed_costs_s", {}).values()), 2),
                "run_id": r.run_id,
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def plot_request_cdfs(runs: Sequence[RunResult], results_dir: Path | str | None = None, ax=None):
    """Latency CDFs (from the intended send time) of every per-request run's main window, one log axis."""
    import matplotlib.pyplot as plt
    import numpy as np

    from bench.results import load_samples

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    drawn = 0
    for r in runs:
        if r.pattern not in ("request", "microbatch"):
            continue
        samples = load_samples(_run_dir(r, results_dir))
        if samples is None:
            continue
        s = samples.filter(
            (pl.col("window") == "main") & (pl.col("intended_s") >= pl.col("warmup_s")) & (pl.col("status") == 200)
        )
        x = np.sort((s["done_s"] - s["intended_s"]).to_numpy() * 1e3)
        if x.size:
            ax.plot(
                x,
                np.arange(1, x.size + 1) / x.size,
                label=f"{r.pattern} {r.backend} @ {r.metrics['offered_rate_per_s']:.0f}/s (n={x.size})",
            )
            drawn += 1
    if not drawn:
        return _empty(ax, "no per-request or streaming runs")
    ax.set_xscale("log")
    ax.set_xlabel("latency from intended send / arrival (ms, log)")
    ax.set_ylabel("fraction of requests or events")
    ax.set_title("Latency CDF, per-request and streaming (main windows)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def plot_request_load_curves(runs: Sequence[RunResult], ax=None):
    """p50 and p99 against offered load for each backend's capacity search."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    drawn = 0
    for r in runs:
        cap = r.metrics.get("capacity") if r.pattern in ("request", "microbatch") else None
        if not cap or not cap["curve"]:
            continue
        pts = sorted((p for p in cap["curve"] if p["p99_s"] is not None), key=lambda p: p["offered_rate_per_s"])
        line = ax.plot(
            [p["offered_rate_per_s"] for p in pts],
            [1e3 * p["p99_s"] for p in pts],
            marker="o",
            label=f"{r.pattern} {r.backend} p99",
        )[0]
        ax.plot(
            [p["offered_rate_per_s"] for p in pts],
            [1e3 * p["p50_s"] for p in pts],
            ls="--",
            color=line.get_color(),
            label=f"{r.pattern} {r.backend} p50",
        )
        drawn += 1
        slo = cap["slo_ms"]
        ax.axhline(slo, color=line.get_color(), ls=":", lw=0.8)
    if not drawn:
        return _empty(ax, "no capacity searches")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (requests or events /s, log); dotted: each run's SLO")
    ax.set_ylabel("latency (ms, log)")
    ax.set_title("Latency vs offered load")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax


def cpu_per_prediction(runs: Sequence[RunResult]) -> pl.DataFrame:
    """The cost of one prediction in CPU-seconds for each pattern and backend (median over runs, with n).

    Batch: the job's CPU over its rows. Per-request: the server's CPU (Ray's own processes included for
    Ray Serve; the load generator excluded) over the answered requests at the offered rate. Streaming:
    driver, actors and the rest of the local Ray over the events scored in the main window.
    """
    from bench.analysis.cost import serving

    rows = []
    for r in runs:
        m = r.metrics
        if (
            r.pattern == "predictor" or not m.get("predictions") or not serving(r)
        ):  # other questions: fault, C10, predictor alone
            continue
        label = f"{r.pattern} {r.backend}" + (f" ({m['predictions']:,} rows)" if r.pattern == "batch" else "")
        if r.pattern == "hybrid":  # its refresh job's CPU is per refresh, not per answer: see the hybrid table
            label += " (lookup server only)"
        rows.append(
            {
                "pattern": label,
                "cpu_us_per_prediction": 1e6 * m["cpu_seconds"] / m["predictions"],
                "provisioned_core_us_per_prediction": 1e6 * m["provisioned_core_seconds"] / m["predictions"],
            }
        )
    if not rows:
        return pl.DataFrame()
    return (
        pl.DataFrame(rows)
        .group_by("pattern")
        .agg(
            pl.len().alias("runs"),
            pl.col("cpu_us_per_prediction").median().round(2),
            pl.col("provisioned_core_us_per_prediction").median().round(2),
        )
        .sort("cpu_us_per_prediction")
    )


def plot_cpu_per_prediction(runs: Sequence[RunResult], ax=None):
    """CPU and provisioned core time per prediction for every pattern and backend, log axis."""
    import matplotlib.pyplot as plt

    t = cpu_per_prediction(runs)
    ax = ax or plt.subplots(figsize=(8, 0.5 + 0.35 * max(t.height, 1)))[1]
    if t.is_empty():
        return _empty(ax, "no runs yet")
    y = range(t.height)
    ax.barh([i + 0.2 for i in y], t["provisioned_core_us_per_prediction"], height=0.4, label="provisioned core time")
    ax.barh([i - 0.2 for i in y], t["cpu_us_per_prediction"], height=0.4, label="CPU used")
    ax.set_yticks(list(y), [f"{p} (n={n})" for p, n in zip(t["pattern"], t["runs"], strict=True)], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("µs per prediction (log)")
    ax.set_title("What one prediction costs in compute")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x", which="both")
    return ax


# --------------------------------------------------------------------------------------------
# Streaming (micro-batch) views
# --------------------------------------------------------------------------------------------


def _ms(d: dict | None, key: str) -> str:
    return f"{1e3 * d[key]:.1f}" if d and d.get(key) is not None else "n/a"


def microbatch_card(result: RunResult) -> pl.DataFrame:
    """A streaming run's headline figures: latency with its sample count, delivery, capacity, peak vs bulk."""
    m = result.metrics
    lat, d, cap, sat = m.get("latency_s") or {}, m["delivery"], m.get("capacity") or {}, m.get("saturation") or {}
    cpu = m.get("cpu_seconds_by_role") or {}
    items = {
        "run_id": result.run_id,
        "valid": "yes" if result.valid else f"NO: {'; '.join(result.invalid_reasons)}",
        "sustainable at the offered rate": "yes"
        if m.get("sustainable")
        else f"NO: {m.get('not_sustainable_because', '')}",
        "offered / scored (events/s)": f"{m['offered_rate_per_s']:.0f} / {m['throughput_per_s']:.0f}",
        "event latency p50 / p99 / max (ms)": f"{_ms(lat, 'p50')} / {_ms(lat, 'p99')} / {_ms(lat, 'max')}",
        "latency samples": str(lat.get("count", 0)),
        "batch size p50 / max; closed by": f"{m['batch_size']['p50']:.0f} / {m['batch_size']['max']:.0f}; "
        f"{m['batches_closed_by']}"
        if m.get("batch_size")
        else "n/a",
        "delivered / offered; lost; duplicates removed; retries": f"{d['delivered_events']} / {d['offered_events']}; "
        f"{d['lost_events']}; {d['duplicates_removed']}; {d['retries']}",
        "max queued events": str(m["backlog"]["max_queued_events"]),
        "CPU-s driver / actors / Ray": f"{cpu.get('driver', 0):.2f} / {cpu.get('actors', 0):.2f} / {cpu.get('ray', 0):.2f}",
        "CPU µs per event": f"{1e6 * m['cpu_seconds_per_prediction']:.1f}"
        if m.get("cpu_seconds_per_prediction")
        else "n/a",
        "capacity at SLO (events/s)": f"{cap['rate_per_s']:.0f} ({cap['limited_by']}; {cap['per_core_per_s']:.0f} per core)"
        if cap
        else "not searched",
        "peak throughput / bulk predict (rows/s)": f"{sat['throughput_per_s']:.0f} / {sat['bulk']['rows_per_s']:.0f} "
        f"= {sat['ratio_to_bulk']:.2f}"
        if sat
        else "not measured",
        "Ray start (s), Ray RSS (MiB)": f"{m['ray']['start_s']:.1f}, {m['ray']['rss_bytes_after_start'] / 2**20:.0f}",
        "fault": str(m.get("recovery")) if m.get("recovery") else "none",
    }
    return pl.DataFrame({"metric": list(items), "value": list(items.values())})


def microbatch_summary(runs: Sequence[RunResult]) -> pl.DataFrame:
    """One row per streaming run: its batch configuration, latency band, capacity, peak vs bulk, delivery."""
    rows = []
    for r in runs:
        if r.pattern != "microbatch":
            continue
        m = r.metrics
        cap, sat = m.get("capacity") or {}, m.get("saturation") or {}
        rows.append(
            {
                "config": r.backend,
                **_window_columns(m, "scored_per_s", digits=1),
                "capacity_per_s": round(cap["rate_per_s"]) if cap else None,
                "knee_per_s": round(cap["knee"]["rate_per_s"]) if cap and cap.get("knee") else None,
                "peak_per_s": round(sat["throughput_per_s"]) if sat else None,
                "peak_over_bulk": round(sat["ratio_to_bulk"], 3) if sat else None,
                "cpu_us_per_event": round(1e6 * m["cpu_seconds_per_prediction"], 1)
                if m.get("cpu_seconds_per_prediction")
                else None,
                "lost": m["delivery"]["lost_events"],
                "ray_start_s": round(m["ray"]["start_s"], 1),
                "run_id": r.run_id,
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def plot_backlog(result: RunResult, ax=None):
    """Events queued (arrived, not yet sent to an actor) over time: the main window and the most
    overloaded window of the capacity search, where the backlog grows without bound."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    m = result.metrics
    series = [(f"main @ {m['offered_rate_per_s']:.0f}/s", m["backlog"])]
    curve = (m.get("capacity") or {}).get("curve") or []
    over = [p for p in curve if not p["sustainable"] and p.get("backlog")]
    if over:
        worst = max(over, key=lambda p: p["offered_rate_per_s"])
        series.append((f"overloaded @ {worst['offered_rate_per_s']:.0f}/s", worst["backlog"]))
    for label, b in series:
        ax.plot(b["t_s"], b["queued_events"], label=label)
    ax.set_xlabel("time in window (s)")
    ax.set_ylabel("queued events")
    ax.set_title(f"Backlog over time ({result.backend})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_microbatch_frontier(runs: Sequence[RunResult], ax=None):
    """p99 event latency against scored throughput, one line per batch configuration: the frontier
    each (max_batch, max_wait) choice reaches before its queue takes over."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    drawn = 0
    for r in runs:
        cap = r.metrics.get("capacity") if r.pattern == "microbatch" else None
        if not cap or not cap["curve"]:
            continue
        pts = sorted((p for p in cap["curve"] if p["p99_s"] is not None), key=lambda p: p["offered_rate_per_s"])
        ax.plot([p["throughput_per_s"] for p in pts], [1e3 * p["p99_s"] for p in pts], marker="o", label=r.backend)
        drawn += 1
    if not drawn:
        return _empty(ax, "no streaming capacity searches")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("scored events/s (log)")
    ax.set_ylabel("p99 event latency (ms, log)")
    ax.set_title("Streaming: latency vs throughput per batch configuration")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


# --------------------------------------------------------------------------------------------
# Cost and verdicts
# --------------------------------------------------------------------------------------------


def cost_inputs(P) -> tuple:
    """The price preset and workload the report's parameters name (clear errors for bad ones)."""
    from bench.analysis import cost

    prices = cost.load_prices(P.prices_file or None, P.price_preset or None)
    workload = cost.Workload(P.predictions_per_day, P.batch_every_h, P.peak_to_mean, P.min_replicas)
    return prices, workload


def cost_assumptions(runs: Sequence[RunResult], prices, workload) -> pl.DataFrame:
    """What the cost figures assume, and which patterns could not be costed (and why)."""
    from bench.analysis import cost

    _, missing = cost.options(runs)
    items = {
        "prices": f"{prices.name} as of {prices.as_of}: ${prices.vcpu_hour}/vCPU-h, ${prices.gib_hour}/GiB-h, "
        f"billed per {prices.granularity_s:g} s, minimum {prices.minimum_s:g} s (illustrative list prices)",
        "workload": f"{workload.predictions_per_day:,.0f} predictions/day; batch every {workload.batch_every_h:g} h; "
        f"peak/mean {workload.peak_to_mean:g}; at least {workload.min_replicas} always-on replicas",
        **{f"not costed: {m['option']}": m["reason"] for m in missing},
    }
    return pl.DataFrame({"assumption": list(items), "value": list(items.values())})


def cost_table(runs: Sequence[RunResult], prices, workload, volumes=(1e3, 1e5, 1e7, 1e9)) -> pl.DataFrame:
    """Cost per day of every costed option at a few daily volumes (rows: options), with runs behind each."""
    from bench.analysis import cost

    t = cost.sweep(runs, prices, workload, volumes)
    if t.is_empty():
        return t
    wide = t.select(
        "option",
        "runs",
        pl.format(
            "{}/day", pl.col("predictions_per_day").map_elements(lambda v: f"{v:.0e}", return_dtype=pl.String)
        ).alias("volume"),
        pl.col("cost_per_day").round(4),
    ).pivot(on="volume", index=["option", "runs"], values="cost_per_day")
    return wide.rename({c: f"$ at {c}" for c in wide.columns if c.endswith("/day")})


def plot_cost_curves(runs: Sequence[RunResult], prices, workload, ax=None):
    """Cost per day against daily volume, one line per option, crossovers with batch marked."""
    import matplotlib.pyplot as plt

    from bench.analysis import cost

    ax = ax or plt.subplots(figsize=(8, 4.5))[1]
    t = cost.sweep(runs, prices, workload)
    if t.is_empty():
        return _empty(ax, "nothing to cost yet")
    for (option,), part in t.group_by("option", maintain_order=True):
        ax.plot(
            part["predictions_per_day"], part["cost_per_day"], label=option, lw=2 if option.startswith("batch") else 1
        )
    for row in cost.crossovers(t).iter_rows(named=True):
        ax.axvline(row["crosses_at_per_day"], ls=":", color="grey")
        ax.annotate(
            f"{row['option']} = batch\n@ {row['crosses_at_per_day']:.2g}/day",
            (row["crosses_at_per_day"], t["cost_per_day"].min()),
            fontsize=7,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predictions per day (log)")
    ax.set_ylabel(f"$ per day ({prices.name}, log)")
    ax.set_title("Cost per day vs daily volume, from measured capacity and CPU")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax


def verdict_table(runs: Sequence[RunResult], prices, workload, predictor: str = "lightgbm") -> pl.DataFrame:
    """C1–C10 with the article's statement, the measured figure, the verdict and the runs it comes from."""
    from bench.analysis import verdicts

    return verdicts.table(runs, prices, workload, predictor)


def verdicts_by_predictor(runs: Sequence[RunResult], prices, workload) -> pl.DataFrame:
    """Each claim's verdict with the native and the compiled predictor, and whether it changed."""
    from bench.analysis import verdicts

    return verdicts.by_predictor(runs, prices, workload)
