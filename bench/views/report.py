"""The shared display helpers and the tables and plots that compare patterns; each pattern's own views
live in its view module (``bench.views.batch``, ``.microbatch``, ``.request``, ``.hybrid``, ``.limits``
for the predictor), the data and model views in ``bench.views.data``.

Runs are compared only within one machine (same CPU model, core count and memory) and one model: the
report picks one machine and one model (a profile's base model; ``bench.results.selection``) and says
how many runs from other machines and models it left out, never averaging across hardware or models;
the model-cost sweep's other models have their own section (``bench.views.modelcost``).

A report is read by a person: every table goes through :class:`Table` (whole, never truncated, numbers
with thousands separators, no quotes), the main-window tables and plots leave fault runs out
(:func:`main_runs`), plots facet by pattern with their legends outside the data, money is $/month.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import polars as pl

from bench.analysis import answers, cost, recommend, verdicts
from bench.analysis import sensitivity as sensitivity_analysis
from bench.analysis.answers import fmt_duration, fmt_money, fmt_volume
from bench.core import paths
from bench.core.errors import BenchError
from bench.patterns import registry
from bench.patterns.base import Pattern
from bench.results import RunResult, load_samples
from bench.results.selection import Selection, select  # noqa: F401 - re-exported: callers use report.select

#: Families whose answer is computed when asked, so a main window's latency is what a consumer waits for.
LIVE_FAMILIES = ("real-time", "streaming")
#: A bill is read per month: 30 days, as the article's $/month figures (and the verdicts) count them.
DAYS_PER_MONTH = 30.0
#: Distinct markers, so series stay apart in grey print and for colour-blind readers.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "8")


# --------------------------------------------------------------------------------------------
# Tables a person reads: whole, formatted, never truncated
# --------------------------------------------------------------------------------------------

_TABLE_CSS = """<style>
table.bench, .jp-RenderedHTMLCommon table.bench {border-collapse: collapse; table-layout: auto; margin: 0.3em 0 1em 0;
  font-size: 12px; max-width: 100%; width: auto}
table.bench th, table.bench td, .jp-RenderedHTMLCommon table.bench th, .jp-RenderedHTMLCommon table.bench td {
  white-space: normal; overflow-wrap: anywhere; text-align: left; vertical-align: top; padding: 3px 8px;
  border: none; border-bottom: 1px solid #e3e3e3; max-width: 36em; overflow: visible; text-overflow: clip}
table.bench th, .jp-RenderedHTMLCommon table.bench th {font-weight: 600; border-bottom: 1px solid #999;
  overflow-wrap: normal; min-width: 4em}
/* a long token (a configuration label, a run id) may break anywhere, so no table is wider than the page;
   a short word never does */
table.bench td, .jp-RenderedHTMLCommon table.bench td {min-width: 4em}
table.bench td.num, .jp-RenderedHTMLCommon table.bench td.num {text-align: right; white-space: nowrap;
  font-variant-numeric: tabular-nums}
table.bench td.ids, .jp-RenderedHTMLCommon table.bench td.ids {font-size: 11px; overflow-wrap: anywhere;
  max-width: 16em; color: #444}
.jp-RenderedHTMLCommon table.bench tbody tr:nth-child(odd) {background: #f7f7f7}
table.bench caption, .jp-RenderedHTMLCommon table.bench caption {caption-side: bottom; text-align: left;
  font-size: 11px; color: #555; padding: 3px 0 0 0}
p.bench-note {font-size: 13px; margin: 0.2em 0 0.8em 0}
</style>"""


def fmt_cell(value, column: str = "") -> str:
    """One cell as text: thousands separators, no false precision, money as money, never cut."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if "$" in column:
            return fmt_money(value)
        a = abs(value)
        if a >= 100 or value == int(value) and a >= 1:
            return f"{value:,.0f}"
        return f"{value:.3g}" if a < 1 else f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {fmt_cell(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(fmt_cell(v) for v in value)
    return str(value)


class Html(str):
    """A piece of HTML a notebook displays as such (its text form is the HTML itself)."""

    def _repr_html_(self) -> str:
        return str(self)


class Table:
    """A polars frame displayed whole: every row and every character of every cell (polars' own display
    cuts strings and rows), numbers right-aligned with thousands separators, strings without quotes.
    ``ids`` columns (run ids) are set small and may break anywhere; ``html_id`` names the table in the page."""

    def __init__(
        self,
        df: pl.DataFrame,
        *,
        html_id: str | None = None,
        caption: str | None = None,
        ids: Sequence[str] = ("runs", "run_id", "run ids"),
        empty: str = "nothing to show yet",
    ) -> None:
        self.df, self.html_id, self.caption, self.ids, self.empty = df, html_id, caption, tuple(ids), empty

    def _repr_html_(self) -> str:
        if self.df.is_empty():
            return f'{_TABLE_CSS}<p class="bench-note"><em>{html.escape(self.empty)}</em></p>'
        # a column no run measured says so once, in the caption, instead of a column of blanks
        blank = [c for c in self.df.columns if self.df[c].null_count() == self.df.height]
        df = self.df.drop(blank) if len(blank) < self.df.width else self.df
        numeric = {c for c, t in df.schema.items() if t.is_numeric()}
        strings = {c for c, t in df.schema.items() if t == pl.String}
        # an underscore may break a long column name over two lines (the name itself is kept)
        head = "".join(f"<th>{html.escape(c).replace('_', '_<wbr>')}</th>" for c in df.columns)
        body = []
        for row in df.iter_rows():
            cells = []
            for c, v in zip(df.columns, row, strict=True):
                cls = ' class="ids"' if c in self.ids and c in strings else ' class="num"' if c in numeric else ""
                cells.append(f"<td{cls}>{html.escape(fmt_cell(v, c))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        ident = f' id="{html.escape(self.html_id)}"' if self.html_id else ""
        notes = [self.caption] if self.caption else []
        if blank and df is not self.df:
            notes.append(f"not measured in these runs: {', '.join(blank)}")
        cap = f"<caption>{html.escape('; '.join(notes))}</caption>" if notes else ""
        return (
            f'{_TABLE_CSS}<table class="bench"{ident}>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )

    def __repr__(self) -> str:
        return f"Table({self.df.height} rows: {', '.join(self.df.columns)})"


def show(df, **kw) -> Table:
    """``df`` as a :class:`Table` (a frame that is already one passes through)."""
    return df if isinstance(df, Table) else Table(df, **kw)


# --------------------------------------------------------------------------------------------
# Which runs a main window shows
# --------------------------------------------------------------------------------------------


def is_fault_run(r: RunResult) -> bool:
    """A run that injected a fault (C8) or answered another question (C10's aggregates): never in a
    main-window table or plot. Asks the pattern's ``is_fault_run`` hook where the registry has one."""
    hook = getattr(registry.get(r.pattern), "is_fault_run", None)
    return bool(hook(r.params)) if callable(hook) else not cost.serving(r)


def main_runs(runs: Sequence[RunResult]) -> list[RunResult]:
    """The runs that measure a pattern serving normally: what main tables, plots and the decision use."""
    return [r for r in runs if r.valid and not is_fault_run(r) and cost.serving(r)]


def steady_runs(runs: Sequence[RunResult]) -> list[RunResult]:
    """Valid runs in a steady state (no fault), including those that size no service (a caller's own
    batch of rows, a C10 aggregate): what tables comparing configurations side by side use."""
    return [r for r in runs if r.valid and not is_fault_run(r)]


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
        "measured between (UTC)": f"{min(p['utc'] for p in provs)} to {max(p['utc'] for p in provs)}"
        if provs
        else "n/a",
        "git commits": ", ".join(commits) or "n/a",
        "packages": ", ".join(f"{k} {v}" for k, v in (provs[-1]["packages"].items() if provs else [])),
        "runs from other machines (not mixed in)": "; ".join(f"{k}: {v}" for k, v in sel.other_machines.items())
        or "none",
        "model compared": sel.model or "no valid runs yet",
        "runs of other models (the model-cost sweep; not mixed in)": "; ".join(
            f"{k}: {v}" for k, v in sel.other_models.items()
        )
        or "none",
        "invalid runs (excluded)": "; ".join(f"{r.run_id}: {', '.join(r.invalid_reasons)}" for r in sel.invalid)
        or "none",
        "unreadable result files (refused)": "; ".join(f"{k}: {v}" for k, v in sel.refused.items()) or "none",
        "runs without a result (failed or running)": len(sel.incomplete),
    }
    return pl.DataFrame({"": list(items), "value": [str(v) for v in items.values()]})


def setup_display() -> None:
    """Show whole tables in notebooks and the HTML report: every frame a cell returns is drawn by
    :class:`Table` (polars' own HTML cuts strings at 30 characters and rows at 8 with "…"); polars'
    text form, where it is still used, is set to cut nothing either."""
    pl.Config.set_tbl_cols(-1)
    pl.Config.set_tbl_rows(-1)
    pl.Config.set_fmt_str_lengths(10_000)
    pl.Config.set_tbl_width_chars(10_000)
    pl.Config.set_tbl_hide_dataframe_shape(True)
    pl.Config.set_tbl_hide_column_data_types(True)
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nothing to register
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pl.DataFrame, lambda df: Table(df)._repr_html_())


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


#: The families a latency plot facets by, in the order a reader meets them.
_SERVED_FAMILIES = ("real-time", "streaming", "hybrid")


def _facets(n: int, height: float = 3.0, width: float = 7.0):
    """``n`` axes stacked (one per pattern), room on the right for each legend."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(n, 1, figsize=(width, height * n + 0.4), squeeze=False)
    return fig, list(axes[:, 0])


def _legend_outside(ax, **kw) -> None:
    """The legend right of the data, never over it."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8, frameon=False, **kw)


def log_axis(ax, which: str = "xy") -> None:
    """Log scale with plain labels (0.2, 1, 50, 1,000; matplotlib's minor labels collide on short ranges)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    def plain(v, _pos) -> str:
        return f"{v:,.0f}" if v >= 1 else f"{v:g}"

    for name in which:
        axis = ax.xaxis if name == "x" else ax.yaxis
        (ax.set_xscale if name == "x" else ax.set_yscale)("log")
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(plain))
        axis.set_minor_formatter(NullFormatter())


def _by_family(runs: Sequence[RunResult], families: Sequence[str]) -> list[tuple[str, list[RunResult]]]:
    return [(f, [r for r in runs if family(r) == f]) for f in families if any(family(r) == f for r in runs)]


def _nothing(text: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2))
    _empty(ax, text)
    ax.set_axis_off()
    return fig


def plot_request_cdfs(runs: Sequence[RunResult], results_dir: Path | str | None = None):
    """Latency CDFs (from the intended send time) of each served pattern's main windows, one panel per
    pattern, log axis; fault runs are left out (their windows are not a pattern serving normally)."""
    import numpy as np

    drawn = []
    for r in main_runs(runs):
        if family(r) not in _SERVED_FAMILIES:
            continue
        samples = load_samples(_run_dir(r, results_dir))
        if samples is None:
            continue
        s = samples.filter(
            (pl.col("window") == "main") & (pl.col("intended_s") >= pl.col("warmup_s")) & (pl.col("status") == 200)
        )
        x = np.sort((s["done_s"] - s["intended_s"]).to_numpy() * 1e3)
        if x.size:
            drawn.append((r, x))
    if not drawn:
        return _nothing("no main-window latency samples of a per-request, streaming or hybrid run")
    groups = [(f, [d for d in drawn if family(d[0]) == f]) for f in _SERVED_FAMILIES]
    groups = [(f, g) for f, g in groups if g]
    fig, axes = _facets(len(groups))
    for ax, (fam, items) in zip(axes, groups, strict=True):
        for i, (r, x) in enumerate(sorted(items, key=lambda d: d[0].backend)):
            y = np.arange(1, x.size + 1) / x.size
            ax.plot(
                x, y, marker=MARKERS[i % len(MARKERS)], markevery=max(x.size // 6, 1), ms=5,
                label=f"{r.backend} @ {r.metrics['offered_rate_per_s']:,.0f}/s (n={x.size:,})",
            )  # fmt: skip
        log_axis(ax, "x")
        ax.set_xlabel("latency from intended send / arrival (ms, log)")
        ax.set_ylabel("fraction answered")
        ax.set_title(f"{fam}: latency CDF, main windows ({len(items)} runs)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        _legend_outside(ax)
    fig.tight_layout()
    return fig


def plot_request_load_curves(runs: Sequence[RunResult]):
    """p99 (solid) and p50 (dashed) against offered load from each capacity search, one panel per
    pattern, one colour and marker per configuration, the SLO dotted; fault runs left out."""
    searched = [r for r in main_runs(runs) if ((r.metrics.get("capacity") or {}).get("curve"))]
    groups = _by_family(searched, _SERVED_FAMILIES)
    if not groups:
        return _nothing("no capacity searches in these runs (a profile with a capacity search draws this)")
    fig, axes = _facets(len(groups))
    for ax, (fam, rs) in zip(axes, groups, strict=True):
        backends = sorted({r.backend for r in rs})
        slos = set()
        for i, backend in enumerate(backends):
            mine = [r for r in rs if r.backend == backend]
            color = f"C{i % 10}"
            for j, r in enumerate(mine):
                cap = r.metrics["capacity"]
                slos.add(cap["slo_ms"])
                pts = sorted((p for p in cap["curve"] if p["p99_s"] is not None), key=lambda p: p["offered_rate_per_s"])
                x = [p["offered_rate_per_s"] for p in pts]
                label = f"{backend} (n={len(mine)} run{'s' if len(mine) > 1 else ''})" if j == 0 else "_nolegend_"
                mk = MARKERS[i % len(MARKERS)]
                ax.plot(x, [1e3 * p["p99_s"] for p in pts], marker=mk, color=color, label=label)
                ax.plot(x, [1e3 * p["p50_s"] for p in pts], ls="--", marker=mk, mfc="none", color=color, alpha=0.7)
        for slo in sorted(slos):
            ax.axhline(slo, ls=":", color="black", lw=1, label=f"SLO: p99 ≤ {slo:g} ms")
        unit = "events" if fam == "streaming" else "requests"
        log_axis(ax, "xy")
        ax.set_xlabel(f"offered rate ({unit}/s, log)")
        ax.set_ylabel("latency (ms, log)")
        ax.set_title(f"{fam}: p99 (solid) and p50 (dashed) vs offered load", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        _legend_outside(ax)
    fig.tight_layout()
    return fig


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


def cost_assumptions(runs: Sequence[RunResult], prices, workload) -> Table:
    """What the cost figures assume, and which patterns could not be costed (and why)."""
    _, missing = cost.options(main_runs(runs))
    items = {
        "prices": f"{prices.name} as of {prices.as_of}: "
        + (
            f"${prices.vcpu_hour}/vCPU-h, ${prices.gib_hour}/GiB-h, billed per {prices.granularity_s:g} s, "
            f"minimum {prices.minimum_s:g} s"
            if getattr(prices, "vcpu_hour", None)
            else getattr(prices, "description", "") or "see bench/analysis/prices.yaml"
        )
        + " (illustrative list prices)",
        "workload": f"{workload.predictions_per_day:,.0f} predictions/day; batch every {workload.batch_every_h:g} h; "
        f"peak/mean {workload.peak_to_mean:g}; at least {workload.min_replicas} always-on replicas",
        "a month": f"{DAYS_PER_MONTH:g} days",
        **{f"not costed: {m['option']}": m["reason"] for m in missing},
    }
    return Table(pl.DataFrame({"assumption": list(items), "value": list(items.values())}))


def _bill(c: dict) -> str:
    """The items of one day's bill, where the cost model itemises it (``breakdown``), as $/month."""
    items = c.get("breakdown")
    if not isinstance(items, Mapping) or not items:
        return ""
    parts = []
    for k, v in items.items():
        if isinstance(v, int | float) and v:
            parts.append(f"{k.replace('_', ' ')} {fmt_money(DAYS_PER_MONTH * v)}")
    return "; ".join(parts)


def _line_items(c: dict) -> str:
    """Each line item of one day's bill, $/month, and what it rests on: "priced, not measured", or a
    measured component's sizing ("sized by the measured CPU per prediction (X µs) → N node(s) …")."""
    basis = c.get("line_item_basis")
    if not isinstance(basis, Mapping) or not basis:
        return ""
    sized = c.get("components") or {}
    flat = c.get("line_items") or {}
    parts = []
    for name, text in basis.items():
        per_day = sized[name]["cost_per_day"] if name in sized else flat.get(name, 0.0)
        parts.append(f"{name.replace('_', ' ')} {fmt_money(DAYS_PER_MONTH * per_day)}: {text}")
    return "; ".join(parts)


def _volume_label(v: float) -> str:
    return f"{fmt_volume(v)}/day"


def cost_table(runs: Sequence[RunResult], prices, workload, volumes: Sequence[float] = (1e3, 1e5, 1e7, 1e9)) -> Table:
    """$/month of every costed option at a few daily volumes (rows: options), the runs behind each,
    what is billed at the workload's volume, and the bill's items and utilisation where the cost model
    gives them (a column the cost model does not compute is left out, never filled in)."""
    opts, _ = cost.options(main_runs(runs))
    rows = []
    for o in opts:
        row: dict = {"option": o.label, "runs": len(o.measures)}
        for v in volumes:
            row[f"$/month at {_volume_label(v)}"] = (
                DAYS_PER_MONTH * o.cost(replace(workload, predictions_per_day=v), prices)["cost_per_day"]
            )
        c = o.cost(workload, prices)
        at = _volume_label(workload.predictions_per_day)
        row[f"billed at {at}"] = f"{c['units']:g} {c['unit']}"
        util = c.get("cpu_utilisation", c.get("utilisation"))
        if util is not None:
            row[f"CPU utilisation at {at}"] = f"{100 * util:.2g}%"
        bill = _bill(c)
        if bill:
            row[f"bill at {at} ($/month)"] = bill
        items = _line_items(c)
        if items:
            row[f"line items at {at} ($/month)"] = items
        rows.append(row)
    return Table(
        pl.DataFrame(rows) if rows else pl.DataFrame(),
        empty="nothing to cost yet: no valid run the cost model can price",
    )


#: The article's C2 figures for 100,000 predictions a day, $/month: (label, low, high, colour).
ARTICLE_BANDS = (
    ("the article: batch $50–200/month", 50.0, 200.0, "tab:green"),
    ("the article: real time $500–3,000/month", 500.0, 3000.0, "tab:red"),
)


def _floor_text(o: cost.Option, c: dict, prices, workload) -> str:
    """Why an option's cost is flat at low volume: the bill's largest item where itemised, else what the
    measured figures say (replicas kept for availability, the billing minimum per job)."""
    items = c.get("breakdown")
    if isinstance(items, Mapping) and items:
        name, _ = max(((k, v) for k, v in items.items() if isinstance(v, int | float)), key=lambda kv: kv[1])
        return name.replace("_", " ")
    if c.get("unit") == "replicas" and c.get("units") == workload.min_replicas:
        return f"availability floor: {workload.min_replicas} replicas × 24 h"
    wall = c.get("job_wall_s")
    if o.kind == "job" and wall is not None and prices.minimum_s and wall < prices.minimum_s:
        return f"billing minimum: {prices.minimum_s:g} s per job"
    return "lowest bill"


def plot_cost_curves(runs: Sequence[RunResult], prices, workload):
    """$/month against daily volume, one panel per pattern family (batch, hybrid, streaming, real time),
    the article's C2 bands shaded, every option marked at the workload's volume, the floors annotated,
    batch (local) drawn thin in every panel for reference. Fault runs are left out."""
    import numpy as np

    main = main_runs(runs)
    t = cost.sweep(main, prices, workload)
    if t.is_empty():
        return _nothing("nothing to cost yet: no valid run the cost model can price")
    t = t.with_columns((DAYS_PER_MONTH * pl.col("cost_per_day")).alias("per_month"))
    opts = {o.label: o for o in cost.options(main)[0]}
    fams = [f for f in recommend.FAMILIES if any(recommend.family(o) == f for o in t["option"].unique().to_list())]
    ref = t.filter(pl.col("option") == "batch (local)").sort("predictions_per_day")
    lo, hi = float(t["per_month"].min()), float(t["per_month"].max())
    fig, axes = _facets(len(fams), height=2.9)
    v0 = workload.predictions_per_day
    for ax, fam in zip(axes, fams, strict=True):
        for label, low, high, colour in ARTICLE_BANDS:
            ax.axhspan(low, high, color=colour, alpha=0.12, label=label)
        ax.axvline(v0, ls=":", color="grey", lw=1)
        if fam != "batch" and not ref.is_empty():
            ax.plot(
                ref["predictions_per_day"], ref["per_month"], color="grey", lw=1, label="batch (local), for reference"
            )
        names = sorted(o for o in t["option"].unique().to_list() if recommend.family(o) == fam)
        for i, name in enumerate(names):
            part = t.filter(pl.col("option") == name).sort("predictions_per_day")
            mk = MARKERS[i % len(MARKERS)]
            n = int(part["runs"][0])
            c = opts[name].cost(workload, prices)
            at = DAYS_PER_MONTH * c["cost_per_day"]
            low = opts[name].cost(replace(workload, predictions_per_day=float(part["predictions_per_day"][0])), prices)
            floor = f"{_floor_text(opts[name], low, prices, workload)} = {fmt_money(float(part['per_month'][0]))}"
            # the figures go in the legend, outside the data: notes on the lines collide
            label = (
                f"{name} (n={n} run{'s' if n > 1 else ''}): {fmt_money(at)} at {fmt_volume(v0)}/day\n  floor: {floor}"
            )
            line = ax.plot(
                part["predictions_per_day"], part["per_month"], marker=mk, markevery=4, ms=4, lw=1.6, label=label
            )[0]
            ax.plot([v0], [at], marker=mk, ms=9, color=line.get_color(), mec="black", ls="none")
        if fam != "batch" and not ref.is_empty():
            for row in cost.crossovers(t.filter(pl.col("option").is_in([*names, "batch (local)"]))).iter_rows(
                named=True
            ):
                x = row["crosses_at_per_day"]
                y = float(np.interp(np.log(x), np.log(ref["predictions_per_day"]), ref["per_month"]))
                ax.plot([x], [y], marker="x", color="black", ms=7)
        log_axis(ax, "x")
        ax.set_yscale("log")
        ax.set_ylim(min(lo, 50.0) / 2, max(hi, 3000.0) * 2)
        ax.set_ylabel("$ per month (log)")
        ax.set_title(f"{fam}: $/month vs daily volume ({prices.name}); dotted: {fmt_volume(v0)}/day", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        _legend_outside(ax)
    axes[-1].set_xlabel("predictions per day (log); × = crosses batch's cost")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# The answer first: the decision, the verdicts, and the appendix
# --------------------------------------------------------------------------------------------


def _samples(by_id: Mapping[str, RunResult], ids: Sequence[str], key: str) -> int:
    return sum(int((by_id[i].metrics.get(key) or {}).get("count") or 0) for i in ids if i in by_id)


def _seen(x: recommend.Assessment, by_id: Mapping[str, RunResult]) -> str:
    """What the pick's consumer sees, measured, with the n it rests on."""
    runs = f"{len(x.runs)} run{'s' if len(x.runs) > 1 else ''}"
    if x.family in LIVE_FAMILIES:
        n = _samples(by_id, x.runs, "latency_s")
        return f"p99 {fmt_duration(x.latency_s)} (n={n:,} answers, {runs})"
    job = f"job {fmt_duration(x.job_wall_s)}" if x.job_wall_s is not None else ""
    if x.family == "hybrid":
        n = _samples(by_id, x.runs, "lookup_latency_s")
        head = f"lookup p99 {fmt_duration(x.latency_s)} (n={n:,} lookups, {runs})"
        return f"{head}; scores up to {fmt_duration(x.staleness_s)} old ({job})"
    return f"scores up to {fmt_duration(x.staleness_s)} old: {job} every {fmt_duration((x.batch_every_h or 0) * 3600)} (n={runs})"


def decision_frame(runs: Sequence[RunResult], prices, workload, cases=answers.USE_CASES) -> pl.DataFrame:
    """One row per use case: what it needs, the pattern the measurements pick, what its consumer sees
    (latency or staleness, with n) and its $/month at the use case's own volume (with the runs)."""
    main = main_runs(runs)
    by_id = {r.run_id: r for r in main}
    rows = []
    for a in cases:
        rec = recommend.recommend(a, main, prices, workload, flip_volumes=None)
        c = rec.choice
        article = " or ".join(sorted(verdicts.ARTICLE_PICKS.get(a.name, ()))) or "n/a"
        rows.append(
            {
                "use case": a.name,
                "needs": f"{a.trigger}; within {fmt_duration(a.latency_s)}; ≤ {fmt_duration(a.freshness_s)} old; "
                f"{fmt_volume(a.predictions_per_day)}/day",
                "pattern (measured pick)": c.label if c else rec.headline(),
                "latency or staleness seen": _seen(c, by_id) if c else "no measured option meets this",
                "$/month": f"{fmt_money(DAYS_PER_MONTH * c.cost_per_day)} (n={len(c.runs)} run{'s' if len(c.runs) > 1 else ''})"
                if c
                else "not computed: nothing measured is feasible",
                "the article": article
                + ("" if not c or c.family in verdicts.ARTICLE_PICKS.get(a.name, ()) else " (differs)"),
            }
        )
    return pl.DataFrame(rows)


def slo_line(runs: Sequence[RunResult], prices, workload) -> str:
    """The SLOs the always-on options were sized at, per pattern (from the measures the cost model
    uses: a capacity search's, or a sustained rate within the SLO, a lower bound), in one line."""
    slos: dict[str, set[float]] = {}
    bounds: set[str] = set()
    for o in cost.options(main_runs(runs))[0]:
        fam = recommend.family(o.label) or o.label
        for m in o.measures:
            if getattr(m, "slo_ms", None):
                slos.setdefault(fam, set()).add(float(m.slo_ms))
                if getattr(m, "capacity_lower_bound", False):
                    bounds.add(fam)
    if slos:
        held = "; ".join(
            f"{f} p99 ≤ {', '.join(f'{s:g} ms' for s in sorted(v))}"
            + (" (capacity: a sustained rate, a lower bound)" if f in bounds else "")
            for f, v in sorted(slos.items())
        )
        held = f"SLOs the always-on options are sized at: {held}"
    else:
        held = "SLOs: no always-on option could be sized from these runs"
    return (
        f"{held}. Replicas sized for a peak of {workload.peak_to_mean:g}× the mean rate, at least "
        f"{workload.min_replicas}; prices {prices.name} ({prices.as_of}); a month is {DAYS_PER_MONTH:g} days."
    )


def decision(sel: Selection, prices, workload) -> Html:
    """The first screen: the decision table for the article's seven use cases and the SLOs in one line."""
    t = Table(decision_frame(sel.runs, prices, workload), html_id="decision")
    n = len(main_runs(sel.runs))
    lead = (
        f'<p class="bench-note">Measured on {html.escape(sel.machine or "no machine yet")} from {n} valid runs '
        f"of one model, {html.escape(sel.model or 'none yet')}; fault runs and other models' runs are left out. "
        "Each use case gets the cheapest measured pattern that meets its needs; "
        "the verdicts on the article's claims follow, then the evidence.</p>"
    )
    return Html(
        lead + t._repr_html_() + f'<p class="bench-note">{html.escape(slo_line(sel.runs, prices, workload))}</p>'
    )


#: The verdict table's columns a reader meets first; any others the verdicts give follow, run ids last.
_VERDICT_FIRST = ("claim", "the article says", "measured", "verdict")


def verdict_table(runs: Sequence[RunResult], prices, workload) -> Html:
    """The verdicts on C1–C10 in full, no cell cut: one row per claim (verdict, which way, assumptions,
    code versions, runs), then one row per leg of each claim with what was measured."""
    t = verdicts.table(runs, prices, workload)
    # the legs table below holds each leg's measured figure: the claim row keeps the verdict readable
    t = t.drop([c for c in ("measured", "legs") if c in t.columns])
    first = [c for c in _VERDICT_FIRST if c in t.columns]
    last = [c for c in ("runs",) if c in t.columns]
    claims = Table(t.select(first + [c for c in t.columns if c not in first + last] + last), html_id="verdicts")
    legs = Table(verdicts.legs_table(runs, prices, workload), caption="each leg of each claim, with what was measured")
    return Html(claims._repr_html_() + "<h3>Each leg, measured</h3>" + legs._repr_html_())


def sensitivity(runs: Sequence[RunResult], prices, workload) -> Html:
    """How C1, C2 and C6 move with the prices and the workload (``bench.analysis.sensitivity``), one
    assumption at a time; a claim it cannot compute says why (no figure is made up)."""
    parts = []
    for claim in ("C1", "C2", "C6"):
        try:
            t = sensitivity_analysis.table(main_runs(runs), prices, workload, claim)
        except BenchError as exc:
            parts.append(f'<p class="bench-note"><b>{claim}</b>: not computed: {html.escape(str(exc))}</p>')
            continue
        if "varied" in t.columns:
            t = t.filter(pl.col("varied") <= 1)  # one assumption at a time: the table a reader can follow
        where = sensitivity_analysis.region(t) if not t.is_empty() else ""
        compact, caption = _sensitivity_rows(t)
        table = Table(compact, caption=caption)
        parts.append(f'<p class="bench-note"><b>{claim}</b>: {html.escape(where)}</p>' + table._repr_html_())
    return Html("".join(parts))


#: the assumptions a sensitivity row varies, and how a reader names each
_ASSUMPTIONS = {
    "min_replicas": "min replicas",
    "billing_minimum": "billing minimum",
    "platform_startup": "platform start-up",
    "line_items": "line items",
    "preset": "platforms",
    "autoscale": "autoscaling",
}
#: what a sensitivity row shows beside the assumption it changed (those present for the claim)
_SENSITIVITY_FIGURES = {
    "ratio": "real time ÷ batch",
    "realtime_per_month": "real time $/month",
    "batch_per_month": "batch $/month",
    "interval": "interval (measured quantities only)",
    "n_realtime": "n real time",
    "n_batch": "n batch",
    "direction": "vs the article",
    "batch_direction": "batch vs the article",
    "realtime_direction": "real time vs the article",
    "holds": "holds",
}


def _sensitivity_rows(t: pl.DataFrame) -> tuple[pl.DataFrame, str | None]:
    """One row per scenario named by the one assumption it changes from the baseline (``varied`` 0), the
    claim's figures beside it; the baseline's assumptions, options and platforms go in the caption."""
    if t.is_empty() or "varied" not in t.columns:
        return t, None
    base = t.filter(pl.col("varied") == 0)
    if base.is_empty():
        return t, None
    b = base.row(0, named=True)

    def changed(row: dict) -> str:
        diffs = [f"{name}: {fmt_cell(row[c], c)}" for c, name in _ASSUMPTIONS.items() if c in row and row[c] != b[c]]
        return ", ".join(diffs) or "baseline"

    rows = [
        {"scenario": changed(r), **{v: r[k] for k, v in _SENSITIVITY_FIGURES.items() if k in r}}
        for r in t.iter_rows(named=True)
    ]
    baseline = "; ".join(f"{name} {fmt_cell(b[c], c)}" for c, name in _ASSUMPTIONS.items() if c in b)
    sides = ", ".join(
        f"{k.replace('_', ' ')} {b[k]}"
        for k in ("realtime_option", "batch_option", "realtime_platform", "batch_platform")
        if b.get(k)
    )
    caption = f"baseline: {baseline}; at {b.get('predictions_per_day', 0):,.0f} predictions/day; {sides}"
    return pl.DataFrame(rows), caption


def provenance(sel: Selection) -> Table:
    """What the report compares and what it left out, as a two-column table."""
    df = selection_summary(sel)
    return Table(df.rename({"": "what"}))


#: The all-runs appendix: what ran, how much, how fast, at what CPU cost (the full record is result.json).
_APPENDIX = {
    "run_id": "run_id",
    "pattern": "pattern",
    "backend": "backend",
    "predictions": "predictions",
    "wall_s": "wall s",
    "throughput_per_s": "predictions/s",
    "cpu_us_per_prediction": "CPU µs/prediction",
    "provisioned_core_s": "core-s held",
    "latency_p99_ms": "p99 ms",
    "latency_samples": "latency n",
}


def appendix_runs(runs: Sequence[RunResult]) -> Table:
    """Every run compared, one row each, with whether it is a fault (or C10) run left out of the main windows."""
    t = runs_table(runs)
    if t.is_empty():
        return Table(t, empty="no runs yet")
    faults = {r.run_id for r in runs if is_fault_run(r) or not cost.serving(r)}
    t = t.select(list(_APPENDIX)).rename(_APPENDIX)
    return Table(t.with_columns(pl.col("run_id").is_in(list(faults)).alias("fault / C10 run")))
