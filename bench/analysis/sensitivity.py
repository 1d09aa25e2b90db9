"""Sensitivity of the cost claims (C1, C2, C6) to the assumptions a bill rests on.

``table(runs, prices, workload, claim)`` prices real time and batch in every combination of:

* ``min_replicas`` 1 / 2 / 3 (the availability floor),
* ``billing_minimum`` "catalogue" / "none" (every platform's minimum billed seconds),
* ``platform_startup`` "catalogue" / "none" (a job platform's own start before the process),
* ``line_items`` "on" / "off" (load balancer, stores, scheduler, broker, monitoring: the ones priced,
  not measured; a store or broker a run measured is sized on its nodes and stays either way),
* ``preset`` every preset of the catalogue (a platform per pattern: job service or spot for batch,
  on-demand instances or serverless for real time),
* ``autoscale`` False / True (replicas follow the hourly profile, or sized for the peak all day),

at the workload's volume (the article's 100,000 predictions a day by default), and says for each row
whether the article's figure holds. Intervals are bootstrapped over repeated runs (n per side) only
where a side depends on a measured quantity; where neither does, ``interval`` says "no measured
quantity". ``region(table)`` states in words where the figure holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import polars as pl

from bench.analysis import cost
from bench.analysis.catalogue import DAYS_PER_MONTH, Prices, load_catalogue
from bench.core.errors import BenchError
from bench.results import RunResult

#: the article's example volume (C2, C6; C1 is read at it too)
ARTICLE_VOLUME = 100_000.0

#: what the article says (bench/../CLAIMS.md): a ratio range (C1, C6) or monthly ranges per side (C2)
CLAIMS = {
    "C1": {"text": "real-time serving is 3–10× more expensive than batch for the same volume", "ratio": (3.0, 10.0)},
    "C2": {
        "text": "100,000 customers: batch about $50–200/month, a real-time endpoint about $500–3,000/month",
        "batch": (50.0, 200.0),
        "real-time": (500.0, 3000.0),
    },
    "C6": {"text": "real time costs 5–10× more to operate", "ratio": (5.0, 10.0)},
}

FACTORS = ("min_replicas", "billing_minimum", "platform_startup", "line_items", "preset", "autoscale")


def _direction(value: float, lo: float, hi: float) -> str:
    return "within" if lo <= value <= hi else ("above" if value > hi else "below")


def _scenarios(prices: Prices, workload: cost.Workload, presets: dict[str, Prices]):
    base = {
        "min_replicas": workload.min_replicas,
        "billing_minimum": "catalogue" if prices.minimums else "none",
        "platform_startup": "catalogue" if prices.startups else "none",
        "line_items": "on" if prices.line_items_on else "off",
        "preset": prices.name,
        "autoscale": workload.autoscale,
    }
    grid = {
        "min_replicas": (1, 2, 3),
        "billing_minimum": ("catalogue", "none"),
        "platform_startup": ("catalogue", "none"),
        "line_items": ("on", "off"),
        "preset": tuple(presets),
        "autoscale": (False, True),
    }
    for values in itertools.product(*(grid[f] for f in FACTORS)):
        s = dict(zip(FACTORS, values, strict=True))
        p = replace(
            presets[s["preset"]],
            minimums=s["billing_minimum"] == "catalogue",
            startups=s["platform_startup"] == "catalogue",
            line_items_on=s["line_items"] == "on",
        )
        w = replace(workload, min_replicas=s["min_replicas"], autoscale=s["autoscale"])
        yield s, sum(s[f] != base[f] for f in FACTORS), p, w


def _pick(opts: Sequence[cost.Option], family: str, label: str | None, w, p) -> tuple[cost.Option | None, dict]:
    """The cheapest option of ``family`` (or the one labelled) in this scenario, with its cost; (None,
    {"reason"}) when none of them can be priced on the scenario's platforms."""
    pool = [o for o in opts if (o.label == label if label else o.pattern_family == family)]
    if not pool:
        wanted = f"option {label!r}" if label else f"a costed {family} option"
        raise BenchError(f"sensitivity needs {wanted}; the runs give: {', '.join(o.label for o in opts) or 'none'}")
    costed, reasons = [], []
    for o in pool:
        try:
            costed.append((o, o.cost(w, p)))
        except BenchError as exc:  # e.g. a run without a service time on a per-request platform
            reasons.append(str(exc))
    if not costed:
        return None, {"reason": "; ".join(reasons)}
    return min(costed, key=lambda oc: oc[1]["cost_per_day"])


def _interval(option: cost.Option, w, p, draws: int, rng) -> tuple[float | None, float | None]:
    """95% bootstrap of one side's monthly cost over its runs."""
    n = len(option.measures)
    if n < 2:
        return None, None
    values = []
    for _ in range(draws):
        sample = [option.measures[i] for i in rng.integers(0, n, n)]
        m = cost.bill.median(sample, type(sample[0]))
        values.append(option.cost(w, p, m)["cost_per_day"] * DAYS_PER_MONTH)
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def table(
    runs: Sequence[RunResult],
    prices: Prices,
    workload: cost.Workload | None = None,
    claim: str = "C1",
    *,
    catalogue: str | None = None,
    realtime: str | None = None,
    batch: str | None = None,
    draws: int = 200,
    seed: int = 0,
) -> pl.DataFrame:
    """One row per scenario: the claim's figure, its interval (or "no measured quantity"), whether the
    article's figure holds, and how many assumptions differ from the given preset and workload
    (``varied``: 0 is the baseline; filter ``varied <= 1`` for a one-at-a-time table).

    ``prices``: the baseline preset; the ``preset`` factor runs over every preset of its catalogue (or
    of ``catalogue``, a file); a flat preset has only itself. ``realtime``/``batch``: option labels to
    compare (default: each scenario's cheapest real-time and cheapest batch option)."""
    if claim not in CLAIMS:
        raise BenchError(f"sensitivity claim {claim!r} is not one of {sorted(CLAIMS)}")
    workload = workload or cost.Workload(ARTICLE_VOLUME)
    spec = CLAIMS[claim]
    if prices.flat and not catalogue:
        presets = {prices.name: prices}
    else:
        presets = dict(load_catalogue(catalogue or prices.source or None).presets)
        presets[prices.name] = presets.get(prices.name, prices)
    opts, _ = cost.options(runs)
    rng = np.random.default_rng(seed)
    rows = []
    for s, varied, p, w in _scenarios(prices, workload, presets):
        rt, rc = _pick(opts, "real-time", realtime, w, p)
        bt, bc = _pick(opts, "batch", batch, w, p)
        if rt is None or bt is None:
            rows.append({"claim": claim, **s, "varied": varied, "interval": (rc if rt is None else bc)["reason"]})
            continue
        measured = rc["measured"] or bc["measured"]
        row = {
            "claim": claim,
            **s,
            "varied": varied,
            "predictions_per_day": w.predictions_per_day,
            "realtime_option": rt.label,
            "batch_option": bt.label,
            "realtime_per_month": rc["cost_per_month"],
            "batch_per_month": bc["cost_per_month"],
            "realtime_units": f"{rc['units']:g} {rc['unit']}",
            "realtime_platform": rc["platforms"].get("service", ""),
            "batch_platform": bc["platforms"].get("job", ""),
            "realtime_measured": rc["measured"],
            "batch_measured": bc["measured"],
            "n_realtime": len(rt.measures),
            "n_batch": len(bt.measures),
        }
        if "ratio" in spec:
            ci = cost.ratio_interval(rt, bt, w, p, draws=draws, seed=seed) if measured else None
            ratio = rc["cost_per_day"] / bc["cost_per_day"]
            lo, hi = spec["ratio"]
            row |= {
                "ratio": ratio,
                "ci95_low": ci["ci95_low"] if ci else None,
                "ci95_high": ci["ci95_high"] if ci else None,
                "interval": ci["interval"] if ci else "no measured quantity",
                "article": f"{lo:g}–{hi:g}×",
                "direction": _direction(ratio, lo, hi),
                "holds": lo <= ratio <= hi,
            }
        else:
            (blo, bhi), (rlo, rhi) = spec["batch"], spec["real-time"]
            b_ci = _interval(bt, w, p, draws, rng) if bc["measured"] else (None, None)
            r_ci = _interval(rt, w, p, draws, rng) if rc["measured"] else (None, None)
            row |= {
                "batch_ci95_low": b_ci[0],
                "batch_ci95_high": b_ci[1],
                "realtime_ci95_low": r_ci[0],
                "realtime_ci95_high": r_ci[1],
                "interval": _c2_interval(bc["measured"], rc["measured"], len(bt.measures), len(rt.measures)),
                "article": f"batch ${blo:g}–{bhi:g}, real time ${rlo:g}–{rhi:g} per month",
                "batch_direction": _direction(bc["cost_per_month"], blo, bhi),
                "realtime_direction": _direction(rc["cost_per_month"], rlo, rhi),
                "holds": blo <= bc["cost_per_month"] <= bhi and rlo <= rc["cost_per_month"] <= rhi,
            }
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None).sort("varied", maintain_order=True)


def _c2_interval(b_measured: bool, r_measured: bool, nb: int, nr: int) -> str:
    def side(name: str, measured: bool, n: int) -> str:
        if not measured:
            return f"{name}: no measured quantity"
        return f"{name}: bootstrap over {n} runs" if n > 1 else f"{name}: one run, no spread to bootstrap"

    return "; ".join((side("batch", b_measured, nb), side("real time", r_measured, nr)))


def region(t: pl.DataFrame) -> str:
    """Where the article's figure holds, in words: how many scenarios, and the assumptions it needs."""
    if t.is_empty():
        return "no scenario"
    claim = t["claim"][0]
    unpriced = t.filter(pl.col("holds").is_null()).height
    t = t.filter(pl.col("holds").is_not_null())
    if t.is_empty():
        return f"{claim}: no scenario could be priced"
    n, holds = t.height, t.filter(pl.col("holds"))
    figure = (
        f"ratio {t['ratio'].min():,.3g}× to {t['ratio'].max():,.3g}×"
        if "ratio" in t.columns
        else f"batch ${t['batch_per_month'].min():,.3g}–{t['batch_per_month'].max():,.3g}/month, "
        f"real time ${t['realtime_per_month'].min():,.3g}–{t['realtime_per_month'].max():,.3g}/month"
    )
    unmeasured = t.filter(~pl.col("realtime_measured") & ~pl.col("batch_measured")).height
    tail = f" ({unmeasured} of {n} rest on no measured quantity on either side"
    tail += f"; {unpriced} scenario(s) could not be priced)" if unpriced else ")"
    if holds.is_empty():
        return f"{claim} holds in none of {n} scenarios: {figure}{tail}"
    if holds.height == n:
        return f"{claim} holds in all {n} scenarios: {figure}{tail}"
    needs = []
    for f in FACTORS:
        every, where = list(dict.fromkeys(t[f].to_list())), list(dict.fromkeys(holds[f].to_list()))
        if len(where) < len(every):
            needs.append(f"{f} ∈ {{{', '.join(str(v) for v in where)}}}")
    return f"{claim} holds in {holds.height} of {n} scenarios, only with {' and '.join(needs)}: {figure}{tail}"
