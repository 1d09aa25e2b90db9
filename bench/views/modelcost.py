"""How the answer moves with the model's cost (issue 18): the same analysis per model of the sweep.

Each model's runs (the profile's base model and the model-cost sweep's others, ``bench.results.
selection.by_model``) are analysed apart, never pooled: the predictor alone at one row and at 1,000 rows
per call, each costed option's capacity or throughput and CPU per prediction, the daily volumes where an
option's cost crosses the batch job's (``cost.crossovers``), and C4's and C5's verdicts computed from that
model's runs only. A figure a model has no run for is "not measured", never filled in from another model.

Runs scored with LightGBM's own ``predict()`` only: the sweep measures one backend, and a verdict never
mixes two (``verdicts.table``'s rule).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from bench.analysis import cost, verdicts
from bench.analysis.answers import fmt_volume
from bench.patterns import registry
from bench.results import RunResult
from bench.results.selection import ModelKey, Selection, by_model, model_label
from bench.views.report import MARKERS, Html, Table, _nothing, log_axis, main_runs

#: the crossovers are read against this option's cost (the report's cost plot marks the same ones), and
#: against the real-time option most models have (``_realtime_reference``), as ``bench.tools.publish`` does
REFERENCE = "batch (local)"
#: the family of the second reference (an article's family, not a pattern's name)
REALTIME_FAMILY = "real-time"
#: the per-row cost at this call size is shown beside the single-row one (issue 18: call sizes 1 and 1,000)
CALL_SIZE = 1_000


@dataclass(frozen=True)
class ModelCost:
    """One model's figures, each from that model's own runs (None: not measured)."""

    key: ModelKey
    label: str  #: short: ``50×15`` (the full label where two models would share it)
    trees: int | None
    leaves: int | None
    headline: bool  #: the model the report's headline compares
    runs: tuple[RunResult, ...]  #: its valid LightGBM runs
    single_row_us: float | None  #: CPU µs of ``predict()`` on a 1-row matrix, median over predictor runs
    single_row_n: int
    call_size_us: float | None  #: CPU µs per row at ``CALL_SIZE`` rows per call, median
    call_size_n: int
    options: tuple[dict, ...]  #: one per costed option (or a missing one, with its reason)
    crossings: tuple[dict, ...]  #: one per (option, reference, crossing): where it crosses, or why not
    verdicts: tuple[verdicts.Verdict, ...]  #: C4, C5 from this model's runs


def _lightgbm(runs: Sequence[RunResult]) -> list[RunResult]:
    return [r for r in runs if r.valid and cost.predictor_of(r) == "lightgbm"]


def _per_row(runs: Sequence[RunResult], size: int) -> tuple[float | None, int]:
    """Median CPU µs per row at ``size`` rows per call over the predictor-alone runs, and how many runs."""
    values = [
        s["cpu_us_per_row"]
        for r in runs
        if registry.get(r.pattern).family == "predictor"
        for s in r.metrics.get("call_sizes") or []
        if s["size"] == size
    ]
    return (float(np.median(values)) if values else None), len(values)


def _option_rows(main: Sequence[RunResult]) -> tuple[list[cost.Option], list[dict]]:
    """The costed options of one model's runs, each as its measured rate and CPU per prediction."""
    found, missing = cost.options(main)
    by_id = {r.run_id: r for r in main}
    rows = []
    for o in found:
        m = o.point()
        ids = [i for x in o.measures for i in str(x.run_id).split(",") if i]
        if o.kind == "job":
            size = max(by_id[i].metrics["predictions"] for i in ids if i in by_id)
            what, rate, bound = f"throughput of a {size:,}-row job", m.rows_per_s, False
        else:
            what, rate = f"capacity per replica at p99 ≤ {m.slo_ms:g} ms", m.capacity_per_s
            bound = any(x.capacity_lower_bound for x in o.measures)
        rows.append(
            {
                "option": o.label,
                "measured": what + (" (a sustained rate: a lower bound)" if bound else ""),
                "per_s": float(rate),
                "cpu_us_per_prediction": 1e6 * float(m.cpu_s_per_prediction),
                "runs": len(o.measures),
                "run ids": ", ".join(ids),
            }
        )
    for x in missing:
        rows.append({"option": x["option"], "measured": f"not measured: {x['reason']}", "runs": 0})
    return found, rows


def _crossing_rows(table: pl.DataFrame, runs: dict[str, int], reference: str) -> list[dict]:
    """Each costed option against ``reference``: the volumes where their costs cross, or that they never
    do in the swept range (and which is cheaper throughout), or that the model has no run of the
    reference. ``runs``: option label -> runs behind it."""
    labels = sorted(set(runs) - {reference})
    if reference not in runs:
        note = f"not measured: no costed {reference} run on this model"
        return [{"option": x, "reference": reference, "crosses_at_per_day": None, "note": note} for x in labels]
    cross = cost.crossovers(table, reference)
    lo, hi = table["predictions_per_day"].min(), table["predictions_per_day"].max()
    rows = []
    for option in labels:
        hits = cross.filter(pl.col("option") == option) if not cross.is_empty() else cross
        base = {"option": option, "reference": reference, "n": f"{runs[option]} / {runs[reference]}"}
        if not hits.is_empty():
            for h in hits.iter_rows(named=True):
                rows.append(
                    {
                        **base,
                        "crosses_at_per_day": h["crosses_at_per_day"],
                        "note": f"{h['cheaper_above']} cheaper above",
                    }
                )
            continue
        first = table.filter(pl.col("option").is_in([option, reference]) & (pl.col("predictions_per_day") == lo))
        costs = dict(zip(first["option"], first["cost_per_day"], strict=True))
        cheaper = option if costs[option] < costs[reference] else reference
        note = f"never crosses in {fmt_volume(lo)}–{fmt_volume(hi)}/day: {cheaper} cheaper throughout"
        rows.append({**base, "crosses_at_per_day": None, "note": note})
    return rows


def _realtime_reference(found: Sequence[Sequence[cost.Option]]) -> str | None:
    """The real-time option the crossovers are also read against: the one costed on most models (ties:
    by label), so every model's crossings are against the same configuration."""
    counts: dict[str, int] = {}
    for options in found:
        for o in options:
            if o.pattern_family == REALTIME_FAMILY:
                counts[o.label] = counts.get(o.label, 0) + 1
    return min(counts, key=lambda k: (-counts[k], k)) if counts else None


def _short_labels(keys: Sequence[ModelKey]) -> dict[ModelKey, str]:
    """``trees×leaves`` per model, or the full label where two models would share the short one."""
    short = {k: f"{dict(k).get('trees')}×{dict(k).get('leaves')}" for k in keys}
    for k in keys:
        if "model_sha256" in dict(k) or list(short.values()).count(short[k]) > 1:
            short[k] = model_label(k)
    return short


def measure(sel: Selection, prices, workload) -> list[ModelCost]:
    """Every model of the selection's machine (the headline's and the others'), each analysed from its
    own runs; sorted by single-row cost (models without a predictor run last). Crossovers are read
    against batch and against the one real-time option most models have (``_realtime_reference``)."""
    groups = by_model([*sel.runs, *sel.other_model_runs])
    labels = _short_labels(list(groups))
    parts = []
    for key, group in groups.items():
        runs = _lightgbm(group)
        main = main_runs(runs)
        found, options = _option_rows(main)
        parts.append((key, runs, main, found, options))
    references = [REFERENCE, *filter(None, [_realtime_reference([p[3] for p in parts])])]
    out = []
    for key, runs, main, found, options in parts:
        table = cost.sweep(main, prices, workload) if found else pl.DataFrame()
        n = {o.label: len(o.measures) for o in found}
        # batch against real time is read once, against batch
        crossings = [
            c
            for ref in references
            if found
            for c in _crossing_rows(table, n, ref)
            if not (ref != REFERENCE and c["option"] == REFERENCE)
        ]
        one, n_one = _per_row(runs, 1)
        many, n_many = _per_row(runs, CALL_SIZE)
        d = dict(key)
        out.append(
            ModelCost(
                key=key,
                label=labels[key],
                trees=d.get("trees"),
                leaves=d.get("leaves"),
                headline=key == sel.model_key,
                runs=tuple(runs),
                single_row_us=one,
                single_row_n=n_one,
                call_size_us=many,
                call_size_n=n_many,
                options=tuple(options),
                crossings=tuple(crossings),
                verdicts=(verdicts.c4(runs, prices, workload), verdicts.c5(runs, prices, workload)),
            )
        )
    return sorted(out, key=lambda m: (m.single_row_us is None, m.single_row_us or 0.0, m.trees or 0, m.leaves or 0))


def summary_frame(models: Sequence[ModelCost]) -> pl.DataFrame:
    """One row per model: its shape, its valid runs, its per-row cost at 1 and 1,000 rows per call
    (each with the predictor runs behind it), and C4's and C5's verdicts from its runs."""
    rows = []
    for m in models:
        row = {
            "model": m.label + (" (headline)" if m.headline else ""),
            "trees": m.trees,
            "leaves": m.leaves,
            "valid runs": len(m.runs),
            "single-row CPU µs": m.single_row_us,
            "n (1 row)": m.single_row_n,
            f"CPU µs/row at {CALL_SIZE:,} rows per call": m.call_size_us,
            f"n ({CALL_SIZE:,} rows)": m.call_size_n,
        }
        for v in m.verdicts:
            row[f"{v.claim} verdict"] = v.verdict
        rows.append(row)
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def options_frame(models: Sequence[ModelCost]) -> pl.DataFrame:
    """One row per (model, costed option): what was measured (throughput or capacity), its rate, CPU µs
    per prediction and the runs behind it; an option a model cannot cost says why."""
    rows = [
        {
            "model": m.label,
            "option": o["option"],
            "measured": o["measured"],
            "per s": o.get("per_s"),
            "CPU µs/prediction": o.get("cpu_us_per_prediction"),
            "runs": o.get("run ids", ""),
            "n": o["runs"],
        }
        for m in models
        for o in m.options
    ]
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def _costed_on(models: Sequence[ModelCost]) -> dict[tuple[str, str], int]:
    """(option, reference) -> how many of ``models`` cost both sides (a crossing, or a reading of none)."""
    out: dict[tuple[str, str], int] = {}
    for m in models:
        for pair in {(c["option"], c["reference"]) for c in m.crossings if not c["note"].startswith("not measured")}:
            out[pair] = out.get(pair, 0) + 1
    return out


def crossings_frame(models: Sequence[ModelCost]) -> pl.DataFrame:
    """One row per (model, option, reference, crossing): the daily volume where the option's cost crosses
    the reference's, which side is cheaper above it, or why there is none; ``n`` = runs behind the option
    / behind the reference. Only the pairs costed on two or more models (the sweep's; a configuration
    only the headline model runs is in the report's cost section); a model without a run of one: not
    measured."""
    costed = _costed_on(models)
    every = sorted((p for p, n in costed.items() if n >= 2 or len(models) == 1), key=lambda p: (p[1], p[0]))
    rows = []
    for m in models:
        crossings = list(m.crossings)
        have = {(c["option"], c["reference"]) for c in crossings}
        crossings += [
            {
                "option": o,
                "reference": ref,
                "crosses_at_per_day": None,
                "note": "not measured: no costed run of it on this model",
            }
            for o, ref in every
            if (o, ref) not in have
        ]
        for c in sorted(crossings, key=lambda c: (c["reference"], c["option"])):
            if (c["option"], c["reference"]) not in every:
                continue
            rows.append(
                {
                    "model": m.label,
                    "single-row CPU µs": m.single_row_us,
                    "option": c["option"],
                    "against": c["reference"],
                    "crosses at (predictions/day)": c["crosses_at_per_day"],
                    "reading": c["note"],
                    "n (option / reference)": c.get("n", ""),
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def verdicts_frame(models: Sequence[ModelCost]) -> pl.DataFrame:
    """One row per (model, claim): C4's and C5's verdict and measured figures, and their runs."""
    rows = [
        {
            "model": m.label,
            "claim": v.claim,
            "verdict": v.verdict,
            "measured": v.measured,
            "runs": " / ".join(f"{role}: {','.join(ids)}" for role, ids in v.runs),
        }
        for m in models
        for v in m.verdicts
    ]
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def section(models: Sequence[ModelCost]) -> Html:
    """The report's model-cost section: the per-model summary, then C4/C5 per model, the crossovers and
    each option's measured figures."""
    if len(models) < 2:
        only = f" (only {models[0].label} was measured)" if models else ""
        lead = (
            f'<p class="bench-note"><em>No model-cost sweep in these runs{html.escape(only)}: a profile\'s '
            "<code>model_sweep</code> measures other models beside the base one.</em></p>"
        )
    else:
        lead = (
            f'<p class="bench-note">{len(models)} models measured on this machine, each analysed from its own '
            "runs only; the headline above uses the model marked <em>(headline)</em>. A blank cell was not "
            "measured for that model.</p>"
        )
    parts = [
        lead,
        Table(summary_frame(models), html_id="model-cost")._repr_html_(),
        "<h3>C4 and C5 per model</h3>",
        Table(verdicts_frame(models), empty="no model has runs yet")._repr_html_(),
        "<h3>Where each option's cost crosses batch's and real time's, per model</h3>",
        Table(crossings_frame(models), empty="no model has two costed options to compare yet")._repr_html_(),
        "<h3>What each option measured, per model</h3>",
        Table(options_frame(models), empty="no model has costed options yet")._repr_html_(),
    ]
    return Html("".join(parts))


def plot_crossovers(models: Sequence[ModelCost]):
    """Crossover volume (where an option's cost crosses a reference's) against the model's single-row CPU
    µs, both log, one line and marker per (option, reference) pair costed on two or more models; a model
    without a predictor run, or whose pair does not cross, is left out of that line, and the legend
    says how many models each line rests on."""
    import matplotlib.pyplot as plt

    placed = [m for m in models if m.single_row_us]
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    costed = _costed_on(placed)
    for m in placed:
        for c in m.crossings:
            if c["crosses_at_per_day"] is not None:
                series.setdefault((c["option"], c["reference"]), []).append((m.single_row_us, c["crosses_at_per_day"]))
    shown = {k: v for k, v in series.items() if costed.get(k, 0) >= 2}
    if not shown:
        return _nothing("no pair of options crosses on two or more models with a single-row measurement")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, ((option, reference), points) in enumerate(sorted(shown.items())):
        xs, ys = zip(*sorted(points), strict=True)
        label = f"{option} vs {reference} (crosses on {len(points)} of {costed[(option, reference)]} models)"
        ax.plot(xs, ys, marker=MARKERS[i % len(MARKERS)], lw=1.4, label=label)
    for m in placed:
        ax.axvline(m.single_row_us, color="grey", lw=0.6, ls=":")
        ax.annotate(
            m.label,
            (m.single_row_us, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            rotation=90,
            va="top",
            ha="right",
            color="grey",
        )
    log_axis(ax, "xy")
    xs = [m.single_row_us for m in placed]
    ys = [y for points in shown.values() for _, y in points]
    ax.set_xlim(min(xs) / 2, max(xs) * 2)  # room for the models' labels at either end
    ax.set_ylim(min(ys) / 3, max(ys) * 3)  # and for at least two labelled volumes
    ax.set_xlabel("model's single-row CPU µs (predict() on 1 row, log)")
    ax.set_ylabel("crossover volume (predictions/day, log)")
    ax.set_title("Where one option's cost crosses another's, by the model's cost", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    # below the axes, not beside them: the pairs' labels are long and would squeeze the data
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
