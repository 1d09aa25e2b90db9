"""The shared display helpers and the tables and plots that compare patterns; each pattern's own views
live in its view module (``bench.views.batch``, ``.microbatch``, ``.request``, ``.hybrid``, ``.limits``
for the predictor), the data and model views in ``bench.views.data``.

Runs are compared only within one machine (same CPU model, core count and memory): the report picks
one machine and says how many runs from others it left out, never averaging across hardware.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from bench.analysis import cost
from bench.core import paths
from bench.patterns import registry
from bench.patterns.base import Pattern
from bench.results import RunResult, load_samples
from bench.results.selection import Selection, select  # noqa: F401 - re-exported: callers use report.select

#: Families whose answer is computed when asked, so a main window's latency is what a consumer waits for.
LIVE_FAMILIES = ("real-time", "streaming")


def family(r: RunResult) -> str:
    """Which of the article's patterns a run measures (its registry entry's ``family``)."""
    return registry.get(r.pattern).family


def runs_of(runs: Sequence[RunResult], pattern: Pattern) -> list[RunResult]:
    """The runs of one registered pattern: what a pattern's own view shows."""
    return [r for r in runs if r.pattern == pattern.name]


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


def _empty(ax, text: str):
    """A plot that says why it is empty instead of drawing nothing."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    return ax


def fmt_rate(x: float | None) -> str:
    """Thousands separators, no false precision."""
    return "n/a" if x is None else f"{x:,.0f}"


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


def setup_display() -> None:
    """Show whole tables in notebooks and the HTML report (polars truncates wide frames by default)."""
    pl.Config.set_tbl_cols(-1)
    pl.Config.set_tbl_rows(60)
    pl.Config.set_fmt_str_lengths(120)
    pl.Config.set_tbl_hide_dataframe_shape(True)
    pl.Config.set_tbl_hide_column_data_types(True)


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


def plot_request_cdfs(runs: Sequence[RunResult], results_dir: Path | str | None = None, ax=None):
    """Latency CDFs (from the intended send time) of every per-request run's main window, one log axis."""
    import matplotlib.pyplot as plt
    import numpy as np

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    drawn = 0
    for r in runs:
        if family(r) not in LIVE_FAMILIES:
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
        cap = r.metrics.get("capacity") if family(r) in LIVE_FAMILIES else None
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
    rows = []
    for r in runs:
        m = r.metrics
        kind = cost.cost_kind(r)
        if kind == "none" or not m.get("predictions") or not cost.serving(r):  # fault, C10, predictor alone
            continue
        label = f"{r.pattern} {r.backend}" + (f" ({m['predictions']:,} rows)" if kind == "job" else "")
        if kind == "job+always-on":  # its refresh job's CPU is per refresh, not per answer: see the hybrid table
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


def cost_assumptions(runs: Sequence[RunResult], prices, workload) -> pl.DataFrame:
    """What the cost figures assume, and which patterns could not be costed (and why)."""
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
