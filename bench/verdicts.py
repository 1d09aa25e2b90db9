"""Verdicts on the article's claims, computed from measured results (never typed by hand).

Each claim gets the article's figure, the measured figure with the run ids it comes from, and a
verdict: "holds", "holds only when …", "does not hold", or "pending: …" when the measurement it needs
does not exist yet. Costs use ``bench.cost`` with the given prices and workload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import polars as pl

from bench import cost
from bench.claims import CLAIMS
from bench.results import RunResult

#: the article's example: 100,000 customers scored once a day
ARTICLE_VOLUME = 100_000.0


def _fmt_money(x: float) -> str:
    return f"${x:,.2f}" if x < 100 else f"${x:,.0f}"


def _ids(option: cost.Option) -> str:
    return ",".join(m.run_id for m in option.measures)


def _pick(runs: Sequence[RunResult], prices: cost.Prices, w: cost.Workload):
    """The reference batch option and the cheapest real-time and streaming options at the article's volume."""
    opts, _ = cost.options(runs)
    at = replace(w, predictions_per_day=ARTICLE_VOLUME)

    def cheapest(prefix: str):
        cands = [o for o in opts if o.label.startswith(prefix)]
        return min(cands, key=lambda o: o.cost(at, prices)["cost_per_day"]) if cands else None

    return cheapest("batch (local)"), cheapest("real-time"), cheapest("streaming")


def _in_band(lo: float, hi: float, values: np.ndarray, volumes: np.ndarray) -> str:
    inside = (values >= lo) & (values <= hi)
    if inside.all():
        return "holds"
    if not inside.any():
        return "does not hold"
    v = volumes[inside]
    return f"holds only when volume is {v.min():,.0f}–{v.max():,.0f} predictions/day"


def c1_c6(runs, prices, w) -> list[dict]:
    batch, rt, _ = _pick(runs, prices, w)
    if batch is None or rt is None:
        return [_pending(c, "needs a valid batch run and a real-time run with a capacity") for c in ("C1", "C6")]
    volumes = np.logspace(3, 9, 25)
    ratios = np.array(
        [
            rt.cost(replace(w, predictions_per_day=v), prices)["cost_per_day"]
            / batch.cost(replace(w, predictions_per_day=v), prices)["cost_per_day"]
            for v in volumes
        ]
    )
    at = replace(w, predictions_per_day=ARTICLE_VOLUME)
    ci = cost.ratio_interval(rt, batch, at, prices, draws=500)
    runs_used = f"{_ids(rt)} / {_ids(batch)}"
    return [
        {
            "claim": "C1",
            "measured": f"{rt.label} / {batch.label}: cost ratio {ratios.min():,.0f}× to {ratios.max():,.0f}× "
            f"over 10³–10⁹ predictions/day ({prices.name}, peak/mean {w.peak_to_mean:g}, ≥{w.min_replicas} replicas)",
            "verdict": _in_band(3, 10, ratios, volumes),
            "runs": runs_used,
        },
        {
            "claim": "C6",
            "measured": f"at {ARTICLE_VOLUME:,.0f}/day: {ci['ratio']:,.0f}× (95% interval {ci['ci95_low']:,.0f}–"
            f"{ci['ci95_high']:,.0f}×, runs {ci['runs'][0]} / {ci['runs'][1]})",
            "verdict": "holds" if 5 <= ci["ratio"] <= 10 else "does not hold",
            "runs": runs_used,
        },
    ]


def c2(runs, prices, w) -> dict:
    batch, rt, _ = _pick(runs, prices, w)
    if batch is None or rt is None:
        return _pending("C2", "needs a valid batch run and a real-time run with a capacity")
    at = replace(w, predictions_per_day=ARTICLE_VOLUME, batch_every_h=24)
    b, r = batch.cost(at, prices), rt.cost(at, prices)
    job_min = b["job_wall_s"] / 60
    parts = [
        ("job ~30 min", 10 <= job_min <= 60),
        ("batch $50–200/month", 50 <= 30 * b["cost_per_day"] <= 200),
        ("real time $500–3,000/month", 500 <= 30 * r["cost_per_day"] <= 3000),
    ]
    held = [name for name, ok in parts if ok]
    return {
        "claim": "C2",
        "measured": f"batch job {b['job_wall_s']:.1f} s, {_fmt_money(30 * b['cost_per_day'])}/month; "
        f"{rt.label}: {r['units']:.0f} replicas, {_fmt_money(30 * r['cost_per_day'])}/month",
        "verdict": "holds" if len(held) == 3 else "does not hold" if not held else f"holds only for: {', '.join(held)}",
        "runs": f"{_ids(batch)} / {_ids(rt)}",
    }


def c3(runs, prices, w) -> dict:
    batch, rt, stream = _pick(runs, prices, w)
    if batch is None or rt is None or stream is None:
        return _pending("C3", "needs batch, real-time and streaming runs")
    by_id = {r.run_id: r for r in runs}

    def p99s(option) -> list[float]:
        return [by_id[m.run_id].metrics["latency_s"]["p99"] for m in option.measures]

    rt_p99, st_p99 = max(p99s(rt)), max(p99s(stream))
    job = batch.cost(replace(w, predictions_per_day=ARTICLE_VOLUME), prices)["job_wall_s"]
    ok_rt = 1e-3 <= rt_p99 <= 10
    ok_stream = 1 <= st_p99 <= 600
    verdict = "holds" if ok_rt and ok_stream else "holds only for real time" if ok_rt else "does not hold"
    return {
        "claim": "C3",
        "measured": f"real time p99 {1e3 * rt_p99:.1f} ms; streaming p99 {1e3 * st_p99:.0f} ms; batch: a consumer "
        f"reads scores between {job:.1f} s and {w.batch_every_h:g} h old (job time + schedule)",
        "verdict": verdict,
        "runs": f"{_ids(rt)} / {_ids(stream)} / {_ids(batch)}",
    }


def c4(runs, prices, w) -> dict:
    batch, _, _ = _pick(runs, prices, w)
    single = [r for r in runs if r.valid and r.pattern == "request" and r.backend.startswith("inprocess")]
    if batch is None or not single:
        return _pending("C4", "needs a valid batch run and an in-process per-request run")
    per_call = float(np.median([r.metrics["cpu_seconds"] / r.metrics["predictions"] for r in single]))
    per_row = float(np.median([m.cpu_s_per_prediction for m in batch.measures]))
    load = float(np.median([m.fixed_s for m in batch.measures]))
    rows = 1e6
    share = load / (load + rows * per_row)
    return {
        "claim": "C4",
        "measured": f"model load {1e3 * load:.0f} ms = {100 * share:.2f}% of a 1M-row job; one row per call costs "
        f"{1e6 * per_call:.0f} CPU-µs vs {1e6 * per_row:.1f} in batch ({per_call / per_row:,.0f}×)",
        "verdict": "holds" if per_call > 2 * per_row and share < 0.05 else "does not hold",
        "runs": f"{_ids(batch)} / {','.join(r.run_id for r in single)}",
    }


def c5(runs, prices, w) -> dict:
    _, rt, stream = _pick(runs, prices, w)
    if rt is None or stream is None:
        return _pending("C5", "needs streaming and real-time runs with capacities")
    s = float(np.median([m.capacity_per_s / m.cores for m in stream.measures]))
    r = float(np.median([m.capacity_per_s / m.cores for m in rt.measures]))
    return {
        "claim": "C5",
        "measured": f"capacity per provisioned core: {stream.label} {s:,.0f}/s vs {rt.label} {r:,.0f}/s "
        f"({s / r:,.1f}×); 'simpler' is not measured",
        "verdict": "holds" if s > r else "does not hold",
        "runs": f"{_ids(stream)} / {_ids(rt)}",
    }


def _pending(claim: str, why: str) -> dict:
    return {"claim": claim, "measured": "", "verdict": f"pending: {why}", "runs": ""}


def table(runs: Sequence[RunResult], prices: cost.Prices, w: cost.Workload) -> pl.DataFrame:
    """C1–C10: the article's statement, the measured figure, the verdict and the runs behind it."""
    runs = [r for r in runs if r.valid]
    rows = {r["claim"]: r for r in [*c1_c6(runs, prices, w), c2(runs, prices, w), c3(runs, prices, w)]}
    rows |= {r["claim"]: r for r in (c4(runs, prices, w), c5(runs, prices, w))}
    for claim, why in (
        ("C7", "the hybrid pattern is not measured yet"),
        ("C8", "hybrid fault runs are not measured yet"),
        ("C9", "the recommender is not built yet"),
        ("C10", "on-the-fly features are not measured yet"),
    ):
        rows[claim] = _pending(claim, why)
    return pl.DataFrame(
        [
            {"claim": c.id, "the article says": c.statement, **{k: v for k, v in rows[c.id].items() if k != "claim"}}
            for c in CLAIMS
        ]
    )
