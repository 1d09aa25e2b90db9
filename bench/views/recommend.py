"""The recommendation laid out for a person: one table row per use case, or a paragraph per answer."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from bench.analysis import cost, recommend
from bench.analysis.answers import Answers, fmt_duration, fmt_volume
from bench.analysis.recommend import FLIP_VOLUMES, Recommendation
from bench.results import RunResult


def text(rec: Recommendation) -> str:
    """A short paragraph, the runners-up and the flips, for a terminal or a report."""
    a = rec.answers
    title = f"{a.name}: " if a.name else ""
    lines = [f"{title}{a.describe()}."]
    if a.assumption:
        lines.append(f"Assumed: {a.assumption}.")
    if rec.choice:
        c = rec.choice
        lines.append(
            f"Recommended: {c.label} — {c.summary()} at {rec.prices} prices; measured in run(s) {', '.join(c.runs)}."
        )
    elif rec.closest:
        c = rec.closest
        lines.append(
            f"Nothing measured meets these answers. Closest: {c.label} ({c.summary()}), "
            f"which misses by: {'; '.join(c.misses)}."
        )
    else:
        lines.append("Nothing measured can serve this trigger: no costed option of an eligible pattern.")
    closest = rec.closest
    others = [f"  - {x.label}: {x.reason}" for x in rec.runners_up if x is not closest]
    others += [f"  - {n['option']}: not costed ({n['reason']})" for n in rec.not_costed]
    if others:
        lines += ["Runners-up:" if rec.choice else "The other options:", *others]
    if rec.swept:
        lo, hi = (fmt_volume(v) for v in rec.swept)
        if rec.flips:
            lines.append(f"When the answer would flip (same answers, {lo}–{hi} predictions/day):")
            lines += [f"  - {f.text()}" for f in rec.flips]
        else:
            lines.append(f"The pick does not change between {lo} and {hi} predictions/day.")
    return "\n".join(lines)


def table(
    use_cases: Sequence[Answers],
    runs: Sequence[RunResult],
    prices: cost.Prices,
    base: cost.Workload,
    *,
    flip_volumes: Sequence[float] | None = FLIP_VOLUMES,
) -> pl.DataFrame:
    """One row per use case: its answers, the pick with its measured latency and cost, runners-up, flips."""
    rows = []
    for a in use_cases:
        r = recommend.recommend(a, runs, prices, base, flip_volumes=flip_volumes)
        shown = r.choice or r.closest
        rows.append(
            {
                "use case": a.name,
                "trigger": a.trigger,
                "acceptable latency": fmt_duration(a.latency_s),
                "freshness": fmt_duration(a.freshness_s),
                "predictions/day": a.predictions_per_day,
                "recommended": r.headline(),
                "latency seen": f"{shown.latency_basis} {fmt_duration(shown.latency_s)}" if shown else "n/a",
                "staleness": fmt_duration(shown.staleness_s) if shown else "n/a",
                "cost/day ($)": r.choice.cost_per_day if r.choice else None,
                "runs": ",".join(r.choice.runs) if r.choice else "",
                "runners-up": "; ".join(f"{x.label}: {x.reason}" for x in r.runners_up),
                "flips": "; ".join(f.text() for f in r.flips) or "none",
                "assumption": a.assumption,
            }
        )
    return pl.DataFrame(rows, schema_overrides={"cost/day ($)": pl.Float64})
