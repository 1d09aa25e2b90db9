"""The recommendation laid out for a person: one table row per use case, or a paragraph per answer.

A reader wants the pick and the few options that came close, not every configuration measured: each
recommendation names its :data:`RUNNERS_UP` nearest runners-up (the dearer feasible ones by cost, then
the ones that miss by the least) with why each loses, and counts the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from bench.analysis import cost, recommend
from bench.analysis.answers import Answers, fmt_duration, fmt_money, fmt_volume
from bench.analysis.recommend import FLIP_VOLUMES, Recommendation
from bench.results import RunResult
from bench.views.report import DAYS_PER_MONTH, Table

#: How many runners-up a recommendation shows, nearest first.
RUNNERS_UP = 3


def nearest(rec: Recommendation, k: int = RUNNERS_UP) -> tuple[list, int]:
    """The ``k`` nearest runners-up (the closest option, when shown as the answer, is not repeated) and
    how many others lost by more."""
    others = [x for x in rec.runners_up if x is not rec.closest]
    return others[:k], max(len(others) - k, 0)


def _monthly(x) -> str:
    return f"{fmt_money(DAYS_PER_MONTH * x.cost_per_day)}/month"


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
            f"Recommended: {c.label} — {c.summary()}, {_monthly(c)} at {rec.prices} prices; "
            f"measured in run(s) {', '.join(c.runs)}."
        )
    elif rec.closest:
        c = rec.closest
        lines.append(
            f"Nothing measured meets these answers. Closest: {c.label} ({c.summary()}), "
            f"which misses by: {'; '.join(c.misses)}."
        )
    else:
        lines.append("Nothing measured can serve this trigger: no costed option of an eligible pattern.")
    shown, more = nearest(rec)
    others = [f"  - {x.label} ({_monthly(x)}): {x.reason}" for x in shown]
    if more:
        others.append(f"  - and {more} more option{'s' if more > 1 else ''} that lose by more")
    others += [f"  - {n['option']}: not costed ({n['reason']})" for n in rec.not_costed]
    if others:
        lines += [f"The {len(shown)} nearest runners-up:" if rec.choice else "The nearest other options:", *others]
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
                "runners-up": "; ".join(f"{x.label}: {x.reason}" for x in nearest(r)[0]),
                "flips": "; ".join(f.text() for f in r.flips) or "none",
                "assumption": a.assumption,
            }
        )
    return pl.DataFrame(rows, schema_overrides={"cost/day ($)": pl.Float64})


def use_case_table(
    use_cases: Sequence[Answers],
    runs: Sequence[RunResult],
    prices: cost.Prices,
    base: cost.Workload,
    *,
    flip_volumes: Sequence[float] | None = FLIP_VOLUMES,
) -> Table:
    """:func:`table` for a reader: $/month, the three nearest runners-up each with why it loses, the flips."""
    t = table(use_cases, runs, prices, base, flip_volumes=flip_volumes)
    if t.is_empty():
        return Table(t)
    t = t.with_columns((DAYS_PER_MONTH * pl.col("cost/day ($)")).alias("$/month")).drop(
        "cost/day ($)", "predictions/day"
    )
    volume = pl.Series("predictions/day", [fmt_volume(a.predictions_per_day) for a in use_cases])
    t = t.with_columns(volume)
    order = ["use case", "trigger", "acceptable latency", "freshness", "predictions/day", "recommended", "latency seen",
             "staleness", "$/month", "runners-up", "flips", "runs", "assumption"]  # fmt: skip
    return Table(t.select([c for c in order if c in t.columns]), html_id="use-cases")
