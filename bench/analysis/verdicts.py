"""Verdicts on the article's claims, computed from measured results (never typed by hand).

Each claim is split into its legs (C2: job time, batch cost, real-time cost; C3: batch, streaming, real
time; C7: response time, cost, staleness; ...). Every leg is evaluated and shown with the article's
figure, the measured one and which way it misses; the claim's verdict is then one of

* ``holds`` — every leg measured agrees with the article;
* ``holds only when …`` / ``holds only for …`` — the condition or the legs it holds for, and what the
  others do;
* ``does not hold: <which way>`` — the direction relative to the claim, e.g. "real time costs more
  relative to batch than claimed" (C1, C6) or "both are far cheaper than claimed" (C2);
* ``pending: …`` — the measurement it needs does not exist (or, C5, cannot be read at an equal SLO).

Rules every verdict keeps: a figure that no measurement moves (a ratio of the billing minimum to the
replica floor) says so; each verdict names its runs and says when they come from different code
versions (provenance git commit, +dirty); one figure per quantity (one job time per workload, one
"one row per call" cost named by its path); a capacity capped by the search ("max_rate") or by the
load generator is a lower bound, shown "≥ X (search cap)" and never pooled with a measured one.
Costs use ``bench.analysis.cost`` with the given prices and workload.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace

import numpy as np
import polars as pl

from bench.analysis import answers, cost, recommend
from bench.analysis.answers import fmt_duration, fmt_volume
from bench.analysis.claims import CLAIMS
from bench.patterns import registry
from bench.results import RunResult

#: the article's example: 100,000 customers scored once a day
ARTICLE_VOLUME = 100_000.0
#: volumes C1 is swept over (predictions/day)
C1_VOLUMES = tuple(float(v) for v in np.logspace(3, 9, 25))
#: two costs within this fraction of each other are "the same" (hybrid $57.62 vs real time $57.60)
SAME_COST = 0.05
#: a capped capacity is a lower bound: what capped it, as shown beside the figure
_CAPPED = {"max_rate": "search cap", "generator": "load generator limit"}


# --------------------------------------------------------------------------------------------
# What a verdict is made of
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leg:
    """One part of a claim: the article's figure, the measured one, its verdict and which way it misses."""

    name: str
    says: str
    measured: str
    verdict: str  #: "holds", "holds only when …", "does not hold: …", "not measured: …"
    direction: str = ""  #: relative to the article, e.g. "shorter than claimed"; "" where it agrees

    @property
    def holds(self) -> bool:
        return self.verdict == "holds" or self.verdict.startswith("holds ")

    @property
    def measured_leg(self) -> bool:
        return not self.verdict.startswith(("not measured", "pending"))

    def text(self) -> str:
        return f"{self.name}: {self.verdict} ({self.measured}; the article: {self.says})"


@dataclass(frozen=True)
class Verdict:
    """One claim's row: its legs, the overall verdict and direction, the runs by role, the assumptions."""

    claim: str
    measured: str
    verdict: str
    direction: str = ""
    legs: tuple[Leg, ...] = ()
    runs: tuple[tuple[str, tuple[str, ...]], ...] = ()  #: (role, run ids) pairs
    assumptions: tuple[str, ...] = ()

    def run_ids(self) -> list[str]:
        return list(dict.fromkeys(i for _, ids in self.runs for i in ids))


def _pending(claim: str, why: str) -> Verdict:
    return Verdict(claim, "", f"pending: {why}")


def _runs(*pairs: tuple[str, Iterable[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((role, tuple(dict.fromkeys(ids))) for role, ids in pairs if ids)


def _combine(legs: Sequence[Leg], *, all_hold: str = "holds") -> tuple[str, str]:
    """The overall verdict and direction from the measured legs: all hold, some hold, or none."""
    measured = [x for x in legs if x.measured_leg]
    if not measured:
        return "pending: no leg measured", ""
    held = [x for x in measured if x.holds]
    missed = [x for x in measured if not x.holds]
    direction = "; ".join(f"{x.name}: {x.direction}" for x in missed if x.direction)
    if not missed:
        return all_hold, ""
    if not held:
        return "does not hold: " + "; ".join(f"{x.name} {x.direction or x.verdict}" for x in missed), direction
    return (
        f"holds only for {', '.join(x.name for x in held)}; "
        + "; ".join(f"{x.name}: {x.direction or x.verdict}" for x in missed),
        direction,
    )


# --------------------------------------------------------------------------------------------
# Helpers on runs and cost options
# --------------------------------------------------------------------------------------------


def _family(r: RunResult) -> str:
    """Which of the article's patterns a run measures (its registry entry's ``family``)."""
    return registry.get(r.pattern).family


def _fmt_money(x: float) -> str:
    return f"${x:,.2f}" if x < 100 else f"${x:,.0f}"


def _fmt_x(x: float) -> str:
    return f"{x:,.0f}×" if x >= 10 else f"{x:.2g}×"


def _ids(option: cost.Option) -> list[str]:
    return [i for m in option.measures for i in str(m.run_id).split(",") if i]


def _option_family(option: cost.Option, by_id: dict[str, RunResult]) -> str | None:
    """An option's pattern family, from the runs it is measured by (never from its label)."""
    fams = {_family(by_id[i]) for i in _ids(option) if i in by_id}
    return fams.pop() if len(fams) == 1 else None


def _at(w: cost.Workload, **changes) -> cost.Workload:
    return replace(w, predictions_per_day=ARTICLE_VOLUME, **changes)


def _pick(runs: Sequence[RunResult], prices: cost.Prices, w: cost.Workload):
    """The cheapest batch, real-time and streaming options at the article's volume (None where not costed)."""
    opts, _ = cost.options(runs)
    by_id = {r.run_id: r for r in runs}
    at = _at(w)

    def cheapest(fam: str):
        cands = [o for o in opts if _option_family(o, by_id) == fam]
        return min(cands, key=lambda o: (o.cost(at, prices)["cost_per_day"], o.label)) if cands else None

    return cheapest("batch"), cheapest("real-time"), cheapest("streaming")


def _scaled(option: cost.Option, k: float) -> cost.Option:
    """The option with every measured rate ×k and every measured fixed time ÷k (what a faster or
    slower run would have measured); the rest (cores, memory) as measured."""
    out = []
    for m in option.measures:
        change = {}
        for f in fields(m):
            v = getattr(m, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            if f.name.endswith("_per_s"):
                change[f.name] = v * k
            elif f.name.endswith("fixed_s"):
                change[f.name] = v / k
        out.append(replace(m, **change))
    return replace(option, measures=tuple(out))


def _moves(option: cost.Option, w: cost.Workload, p: cost.Prices) -> bool | None:
    """Whether a measurement moves the option's cost at ``w``: would a run twice as fast, or half as
    fast, change it? False when the cost is fixed by assumptions alone (the billing minimum of a job,
    the replica floor of a service); None when the option's measures cannot be varied."""
    day = option.cost(w, p)
    if "measured" in day:  # the cost model says so itself
        return bool(day["measured"])
    if not option.measures or not all(is_dataclass(m) for m in option.measures):
        return None
    base = day["cost_per_day"]
    for k in (0.5, 2.0):
        other = _scaled(option, k).cost(w, p)["cost_per_day"]
        if abs(other - base) > 1e-9 * max(abs(base), 1e-12):
            return True
    return False


def _floor_of(option: cost.Option, w: cost.Workload) -> str:
    """What fixes an option's cost when no measurement moves it, by how it is billed."""
    if option.kind == "job":
        return "the billing minimum per job"
    if not all(getattr(m, "has_service", True) for m in option.measures):
        # no service of its own: what stays on is its store, held at the same availability floor
        return f"the billing minimum of its jobs and the {w.min_replicas}-node floor of its store"
    if option.kind == "always-on":
        return f"the {w.min_replicas}-replica floor"
    return f"the billing minimum of its jobs and the {w.min_replicas}-replica floor"


def _unmeasured_note(options: Sequence[cost.Option], w: cost.Workload, p: cost.Prices) -> str:
    """'' when a measurement moves at least one side; else what the figure is instead."""
    moved = [_moves(o, w, p) for o in options]
    if any(m is None for m in moved) or any(moved):
        return ""
    sides = " over ".join(f"{_floor_of(o, w)} ({o.label})" for o in options)
    return f"no measurement moves this figure: it is {sides}, on the runs' core counts and the price table"


def _bound_note(*options: cost.Option) -> str:
    """'' unless a service's capacity is a lower bound (no capacity search): then its cost is an upper bound."""
    low = [o.label for o in options if any(getattr(m, "capacity_lower_bound", False) for m in o.measures)]
    return (
        f"; capacity of {', '.join(low)} is a lower bound (no capacity search: the sustained offered rate), "
        "so its cost is an upper bound"
        if low
        else ""
    )


def _p99(run: RunResult, key: str = "latency_s") -> float:
    return run.metrics[key]["p99"]


def _median_of(runs: Sequence[RunResult], get: Callable[[RunResult], float]) -> float:
    return float(np.median([get(r) for r in runs]))


def _cores(r: RunResult) -> float:
    m = r.metrics
    return m["provisioned_core_seconds"] / m["wall_seconds"]


def _serving(r: RunResult, fam: str) -> bool:
    return r.valid and _family(r) == fam and cost.serving(r)


def _inprocess(r: RunResult) -> bool:
    return r.backend.startswith("inprocess")


def _by_backend(runs: Iterable[RunResult]) -> dict[str, list[RunResult]]:
    out: dict[str, list[RunResult]] = {}
    for r in runs:
        out.setdefault(r.backend, []).append(r)
    return dict(sorted(out.items()))


def _workers(r: RunResult) -> int:
    """Server processes or replicas one fault run had (one of one: a kill takes the whole endpoint)."""
    return max(int(r.params.get("server_workers") or 1), int(r.params.get("replicas") or 1))


def _job_s(batch: cost.Option, prices: cost.Prices, w: cost.Workload) -> float:
    """The one job time of this workload: its rows at the measured rate plus the measured start-up."""
    c = batch.cost(w, prices)
    if c.get("job_wall_s") is not None:
        return float(c["job_wall_s"])
    rows = w.predictions_per_day / (24.0 / w.batch_every_h)
    rate = float(np.median([m.rows_per_s for m in batch.measures]))
    return rows / rate + float(np.median([m.fixed_s for m in batch.measures]))


def _workload_text(w: cost.Workload, prices: cost.Prices, volume: float | None = ARTICLE_VOLUME) -> list[str]:
    out = [f"prices {prices.name}" + (f" ({prices.as_of})" if prices.as_of else "")]
    if volume:
        out.append(f"{volume:,.0f} predictions/day")
    out += [f"peak/mean {w.peak_to_mean:g}", f"≥{w.min_replicas} replicas per always-on service"]
    return out


# --------------------------------------------------------------------------------------------
# C1, C6: the cost ratio
# --------------------------------------------------------------------------------------------


def _ratio_leg(name: str, says: str, lo: float, hi: float, ratio: float, text: str) -> Leg:
    if lo <= ratio <= hi:
        return Leg(name, says, text, "holds")
    way = "more" if ratio > hi else "less"
    d = f"real time costs {way} relative to batch than claimed"
    return Leg(name, says, text, f"does not hold: {d}", d)


def c1_c6(runs, prices, w) -> list[Verdict]:
    batch, rt, _ = _pick(runs, prices, w)
    if batch is None or rt is None:
        return [_pending(c, "needs a valid batch run and a real-time run with a capacity") for c in ("C1", "C6")]
    ws = [replace(w, predictions_per_day=v) for v in C1_VOLUMES]
    ratios = np.array([rt.cost(x, prices)["cost_per_day"] / batch.cost(x, prices)["cost_per_day"] for x in ws])
    fixed = [v for v, x in zip(C1_VOLUMES, ws, strict=True) if _unmeasured_note((rt, batch), x, prices)]
    inside = (ratios >= 3) & (ratios <= 10)
    v = np.array(C1_VOLUMES)
    span = f"{ratios.min():,.0f}× to {ratios.max():,.0f}× over 10³–10⁹ predictions/day"
    if inside.all():
        verdict, direction = "holds", ""
    elif inside.any():
        lo, hi = v[inside].min(), v[inside].max()
        below = "more" if ratios[0] > 10 else "less"
        above = "more" if ratios[-1] > 10 else "less"
        direction = f"below {lo:,.0f}/day real time costs {below}, above {hi:,.0f}/day {above} than claimed"
        verdict = f"holds only when volume is {lo:,.0f}–{hi:,.0f} predictions/day; {direction}"
    else:
        over, under = ratios > 10, ratios < 3
        if over.all() or under.all():
            direction = f"real time costs {'more' if over.all() else 'less'} relative to batch than claimed"
        else:
            cross = v[over].max() if over[0] else v[under].max()
            direction = (
                f"real time costs {'more' if over[0] else 'less'} relative to batch than claimed up to "
                f"{cross:,.0f}/day, {'less' if over[0] else 'more'} above"
            )
        verdict = f"does not hold: {direction}"
    fixed_text = (
        f"; at {fmt_volume(min(fixed))}–{fmt_volume(max(fixed))}/day no measurement moves the ratio (replica floor over "
        "billing minimum)"
        if fixed
        else ""
    )
    at = _at(w)
    ci = cost.ratio_interval(rt, batch, at, prices, draws=500)
    note = _unmeasured_note((rt, batch), at, prices)
    used = _runs(("real time", _ids(rt)), ("batch", _ids(batch)))
    assumptions = (*_workload_text(w, prices, None), f"batch every {w.batch_every_h:g} h", "compute only")
    c1 = Verdict(
        "C1",
        f"{rt.label} / {batch.label}: cost ratio {span}{fixed_text}{_bound_note(rt)}",
        verdict,
        direction,
        (Leg("cost ratio", "3–10×", span, verdict, direction),),
        used,
        assumptions,
    )
    compute = _ratio_leg(
        "compute",
        "5–10×",
        5,
        10,
        ci["ratio"],
        f"{ci['ratio']:,.0f}× ("
        + (
            f"95% interval {ci['ci95_low']:,.0f}–{ci['ci95_high']:,.0f}×, "
            if ci.get("ci95_low") is not None
            else "no interval: no measured quantity on either side, "
        )
        + f"{ci['runs'][0]} / {ci['runs'][1]} runs)"
        + (f"; {note}" if note else ""),
    )
    operate = Leg(
        "to operate", "people, on-call, monitoring", "not measured", "not measured: people, on-call and monitoring"
    )
    verdict6 = compute.verdict + " — compute only; people and on-call are not measured"
    c6 = Verdict(
        "C6",
        f"at {ARTICLE_VOLUME:,.0f}/day: {rt.label} / {batch.label} {compute.measured}{_bound_note(rt)}",
        verdict6,
        compute.direction,
        (compute, operate),
        used,
        (*_workload_text(w, prices), f"batch every {w.batch_every_h:g} h"),
    )
    return [c1, c6]


# --------------------------------------------------------------------------------------------
# C2: the article's 100k-customer example
# --------------------------------------------------------------------------------------------


def _band_leg(name: str, says: str, lo: float, hi: float, value: float, text: str, more: str, less: str) -> Leg:
    if lo <= value <= hi:
        return Leg(name, says, text, "holds")
    d = more if value > hi else less
    return Leg(name, says, text, f"does not hold: {d}", d)


def c2(runs, prices, w) -> Verdict:
    batch, rt, _ = _pick(runs, prices, w)
    if batch is None or rt is None:
        return _pending("C2", "needs a valid batch run and a real-time run with a capacity")
    at = _at(w, batch_every_h=24)
    b, r = batch.cost(at, prices), rt.cost(at, prices)
    job = _job_s(batch, prices, at)
    mb, mr = 30 * b["cost_per_day"], 30 * r["cost_per_day"]
    rt_note = _unmeasured_note((rt,), at, prices)
    b_note = _unmeasured_note((batch,), at, prices)
    units = f"{r['units']:g} {r.get('unit', 'replicas')}, " if "units" in r else ""
    legs = (
        _band_leg(
            "job time", "~30 min", 600, 3600, job, f"{fmt_duration(job)} for {ARTICLE_VOLUME:,.0f} rows",
            "longer than claimed", "far shorter than claimed",
        ),
        _band_leg(
            "batch cost", "$50–200/month", 50, 200, mb,
            f"{_fmt_money(mb)}/month ({batch.label})" + (f"; {b_note}" if b_note else ""),
            "dearer than claimed", "far cheaper than claimed",
        ),
        _band_leg(
            "real-time cost", "$500–3,000/month", 500, 3000, mr,
            f"{_fmt_money(mr)}/month ({rt.label}, {units}always on)" + (f"; {rt_note}" if rt_note else ""),
            "dearer than claimed", "far cheaper than claimed",
        ),
    )  # fmt: skip
    verdict, direction = _combine(legs)
    costs = [x for x in legs[1:] if not x.holds]
    if len(costs) == 2 and costs[0].direction == costs[1].direction:
        word = "cheaper" if "cheaper" in costs[0].direction else "dearer"
        direction = f"both are far {word} than claimed"
        verdict = (
            f"does not hold: {direction} (batch {_fmt_money(mb)} vs $50–200, real time {_fmt_money(mr)} vs "
            "$500–3,000/month)" + ("" if legs[0].holds else f"; the job {legs[0].direction} ({fmt_duration(job)})")
        )
    return Verdict(
        "C2",
        f"batch job {fmt_duration(job)}, {_fmt_money(mb)}/month; {rt.label}: {units}{_fmt_money(mr)}/month"
        + "".join(f"; {n}" for n in (b_note, rt_note) if n)
        + _bound_note(rt),
        verdict,
        direction,
        legs,
        _runs(("batch", _ids(batch)), ("real time", _ids(rt))),
        (*_workload_text(w, prices), "batch once a day (the article's)", "'~30 min' read as 10–60 min"),
    )


# --------------------------------------------------------------------------------------------
# C3: latency each consumer sees
# --------------------------------------------------------------------------------------------


def _p99_by_config(runs: Sequence[RunResult], fam: str, key: str = "latency_s") -> dict[str, tuple[float, list]]:
    pool = [r for r in runs if _serving(r, fam) and r.metrics.get(key)]
    if fam == "real-time" and any(not _inprocess(r) for r in pool):
        pool = [r for r in pool if not _inprocess(r)]  # a served endpoint, not a library call in the caller
    return {b: (_median_of(rs, lambda r: _p99(r, key)), [r.run_id for r in rs]) for b, rs in _by_backend(pool).items()}


def _latency_leg(name: str, says: str, lo: float, hi: float, by_config: dict) -> Leg:
    text = ", ".join(f"{b} p99 {fmt_duration(p)}" for b, (p, _) in by_config.items())
    values = [p for p, _ in by_config.values()]
    if all(lo <= p <= hi for p in values):
        return Leg(name, says, text, "holds")
    if all(p < lo for p in values):
        return Leg(name, says, text, "does not hold: faster than claimed", "faster than claimed")
    if all(p > hi for p in values):
        return Leg(name, says, text, "does not hold: slower than claimed", "slower than claimed")
    ok = [b for b, (p, _) in by_config.items() if lo <= p <= hi]
    return Leg(name, says, text, f"holds only for {', '.join(ok)}", "some configurations outside the range")


def _source(r: RunResult) -> str:
    """Where a streaming run's events came from: "broker" (a real broker between producer and actors)
    or "table" (replayed inside the driver; runs from before the parameter say nothing: a table)."""
    return r.metrics.get("source") or "table"


def _streaming_legs(runs: Sequence[RunResult]) -> tuple[dict, dict, str]:
    """The streaming configurations C3 tests, the ones it shows beside them, and what source it tested:
    the broker-source runs when any exist (the article's pattern has events flow through a message
    queue), else the table-source ones (no broker: a lower bound on that path)."""
    broker = _p99_by_config([r for r in runs if _source(r) == "broker"], "streaming")
    table = _p99_by_config([r for r in runs if _source(r) != "broker"], "streaming")
    by_id = {r.run_id: r for r in runs}

    def through(ids: list[str]) -> str:
        kinds = [(by_id[i].metrics.get("broker") or {}).get("kind") for i in ids if i in by_id]
        kind = next((k for k in kinds if k), "")
        return f"through a {kind.capitalize()} broker" if kind else "through a broker"

    if broker:
        tested = {f"{b} ({through(v[1])})": v for b, v in broker.items()}
        shown = {f"{b} (from a table in the driver, no broker)": v for b, v in table.items()}
        said = (
            "streaming leg tested the broker source (events published to a stream, read by a consumer group, "
            "acknowledged after the prediction is written)"
            + ("; the table-source runs (no broker, a lower bound) are shown beside it" if table else "")
        )
        return tested, shown, said
    said = (
        "streaming leg tested the table source (events replayed inside the Ray driver, no broker between "
        "producer and actors): a lower bound on the article's message-queue path"
    )
    return table, {}, said


def c3(runs, prices, w) -> Verdict:
    batch, _, _ = _pick(runs, prices, w)
    rt = _p99_by_config(runs, "real-time")
    stream, stream_shown, source_said = _streaming_legs(runs)
    if batch is None or not rt or not stream:
        return _pending("C3", "needs a valid batch run and real-time and streaming runs with a latency")
    at = _at(w)
    job = _job_s(batch, prices, at)
    oldest = w.batch_every_h * 3600 + job
    billed = batch.cost(at, prices).get("job_billed_s")
    every = recommend.MIN_INTERVAL_OVER_BILLED * billed if billed else recommend.min_interval_s(prices, job)
    hybrid = {b: v for b, v in _p99_by_config(runs, "hybrid", "staleness_s").items()}
    h_runs = {r.run_id: r for r in runs}
    h_text = "".join(
        f"; measured in {b}: staleness p99 {fmt_duration(p)} at a "
        f"{fmt_duration(float(np.median([h_runs[i].params.get('refresh_interval_s', 0) for i in ids])))} refresh"
        for b, (p, ids) in hybrid.items()
    )
    b_text = (
        f"scores read between {fmt_duration(job)} and {fmt_duration(oldest)} old: the schedule (every "
        f"{w.batch_every_h:g} h, an assumption) plus the measured job {fmt_duration(job)}; at most every "
        f"{fmt_duration(every)} (10× its billed time), so never fresher than that{h_text}"
    )
    batch_leg = _band_leg(
        "batch", "minutes–hours", 60, 2 * 86_400, oldest, b_text, "staler than claimed", "fresher than claimed"
    )
    stream_leg = _latency_leg("streaming", "seconds–minutes", 1.0, 3600.0, stream)
    if stream_shown:
        beside = ", ".join(f"{b} p99 {fmt_duration(p)}" for b, (p, _) in stream_shown.items())
        stream_leg = replace(stream_leg, measured=f"{stream_leg.measured}; shown beside it, not tested: {beside}")
    legs = (batch_leg, stream_leg, _latency_leg("real time", "milliseconds–seconds", 1e-3, 60.0, rt))
    verdict, direction = _combine(legs)
    return Verdict(
        "C3",
        "; ".join(f"{x.name}: {x.measured}" for x in legs),
        verdict,
        direction,
        legs,
        _runs(
            ("real time", [i for _, ids in rt.values() for i in ids]),
            ("streaming", [i for _, ids in stream.values() for i in ids]),
            ("streaming, table source (shown)", [i for _, ids in stream_shown.values() for i in ids]),
            ("batch", _ids(batch)),
            ("hybrid", [i for _, ids in hybrid.values() for i in ids]),
        ),
        (f"batch every {w.batch_every_h:g} h", "p99 of each run's main window at its offered rate", source_said),
    )


# --------------------------------------------------------------------------------------------
# C4: model loading amortised; per-request cost
# --------------------------------------------------------------------------------------------


def _per_call(runs: Sequence[RunResult]) -> tuple[str, float, list[str]] | None:
    """The one "one row per call" CPU cost, named by its path: an HTTP server (what real time pays),
    else the model in the caller's process, else the predictor alone at call size 1."""
    served = [r for r in runs if _serving(r, "real-time")]
    for path, pool in (
        ("through an HTTP server", [r for r in served if not _inprocess(r)]),
        ("in-process", [r for r in served if _inprocess(r)]),
    ):
        if pool:
            # one configuration, the one with most runs (ties: the first by name), never a pool of two
            backend, rs = max(_by_backend(pool).items(), key=lambda kv: (len(kv[1]), [-ord(c) for c in kv[0]]))
            per = _median_of(rs, lambda r: r.metrics["cpu_seconds"] / r.metrics["predictions"])
            return f"{path} ({backend})", per, [r.run_id for r in rs]
    alone = [
        (r, s) for r in runs if r.valid and _family(r) == "predictor" for s in r.metrics["call_sizes"] if s["size"] == 1
    ]
    if alone:
        per = float(np.median([s["cpu_us_per_row"] for _, s in alone])) / 1e6
        return "the predictor alone", per, [r.run_id for r, _ in alone]
    return None


def c4(runs, prices, w) -> Verdict:
    batch, _, _ = _pick(runs, prices, w)
    call = _per_call(runs)
    if batch is None or call is None:
        return _pending("C4", "needs a valid batch run and a per-request run")
    path, per_call, call_ids = call
    per_row = float(np.median([m.cpu_s_per_prediction for m in batch.measures]))
    load = float(np.median([m.fixed_s for m in batch.measures]))
    job = _job_s(batch, prices, _at(w))
    share = load / job if job else math.nan
    legs = (
        _band_leg(
            "loading amortised", "a small share of a job", 0, 0.05, share,
            f"start-up {fmt_duration(load)} = {100 * share:.2g}% of a {ARTICLE_VOLUME:,.0f}-row job",
            "start-up is a large share of a job", "",
        ),
        _band_leg(
            "pays per request", "dearer per row than batch", 2, math.inf, per_call / per_row,
            f"one row per call {path}: {1e6 * per_call:,.0f} CPU-µs vs {1e6 * per_row:.1f} per row in batch "
            f"({_fmt_x(per_call / per_row)})",
            "", "one row per call costs about what a batch row costs",
        ),
    )  # fmt: skip
    verdict, direction = _combine(legs)
    return Verdict(
        "C4",
        "; ".join(x.measured for x in legs),
        verdict,
        direction,
        legs,
        _runs(("batch", _ids(batch)), (f"one row per call ({path})", call_ids)),
        ("CPU-seconds, not billed time", "'dearer' read as > 2× a batch row; 'small' as < 5% of the job"),
    )


# --------------------------------------------------------------------------------------------
# C5: streaming vs per-request capacity at the same SLO
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Read:
    """One run's capacity read at an SLO: the rate, and whether it is a lower bound (and why)."""

    rate_per_s: float
    bound: str = ""  #: "" measured (a failing point lies above); else why it is only "≥"

    def text(self, per_core: float) -> str:
        return f"{per_core:,.0f}/s per core" if not self.bound else f"≥ {per_core:,.0f}/s per core ({self.bound})"


def _passes_at(p: dict, slo_s: float, own_s: float) -> bool:
    """A curve window meets ``slo_s``: valid, no errors, p99 within it, and keeping up — judged by the
    window's own verdict where that was made at a tighter or equal SLO, else by its throughput."""
    if not p["valid"] or p["errors"] or p["p99_s"] is None or p["p99_s"] > slo_s:
        return False
    if slo_s >= own_s and p["sustainable"]:
        return True
    return p["throughput_per_s"] >= 0.9 * p["offered_rate_per_s"]


def read_at(r: RunResult, slo_s: float) -> _Read | None:
    """The highest offered rate whose window met p99 ≤ ``slo_s``, from the run's capacity curve (or its
    capacity when the SLO is the run's own); None when the run cannot say."""
    cap = r.metrics.get("capacity") or {}
    if not cap:
        return None
    own = cap["slo_ms"] / 1e3
    curve = cap.get("curve") or []
    if not curve:
        if not math.isclose(own, slo_s):
            return None
        return _Read(cap["rate_per_s"], _CAPPED.get(cap.get("limited_by") or "", ""))
    ok = [p["offered_rate_per_s"] for p in curve if _passes_at(p, slo_s, own)]
    best = max(ok, default=0.0)
    above = any(p["valid"] and p["offered_rate_per_s"] > best and not _passes_at(p, slo_s, own) for p in curve)
    if above:
        return _Read(best)
    why = _CAPPED.get(cap.get("limited_by") or "", "") if math.isclose(own, slo_s) else ""
    return _Read(best, why or f"curve ends below a failing window at p99 ≤ {fmt_duration(slo_s)}")


def _side_at(runs: Sequence[RunResult], slo_s: float) -> tuple[str, _Read, float, list[str]] | None:
    """The best configuration of one family at an SLO: its name, read, per-core rate, runs. Measured
    reads of a configuration are pooled (median); lower bounds never pooled with them."""
    best = None
    for backend, rs in _by_backend(runs).items():
        reads = [(r, read_at(r, slo_s)) for r in rs]
        reads = [(r, x) for r, x in reads if x is not None]
        exact = [(r, x) for r, x in reads if not x.bound]
        chosen = exact or reads
        if not chosen:
            continue
        per_core = float(np.median([x.rate_per_s / _cores(r) for r, x in chosen]))
        read = _Read(float(np.median([x.rate_per_s for _, x in chosen])), "" if exact else chosen[0][1].bound)
        if best is None or per_core > best[2]:
            best = (backend, read, per_core, [r.run_id for r, _ in chosen])
    return best


def c5(runs, prices, w) -> Verdict:
    fams = {
        f: [r for r in runs if _serving(r, f) and not _inprocess(r) and r.metrics.get("capacity")]
        for f in ("streaming", "real-time")
    }
    if not all(fams.values()):
        return _pending("C5", "needs streaming and real-time runs with a capacity search")
    slos = sorted({r.metrics.get("capacity")["slo_ms"] / 1e3 for rs in fams.values() for r in rs})
    legs, used = [], {"streaming": [], "real time": []}
    for slo in slos:
        s, r = _side_at(fams["streaming"], slo), _side_at(fams["real-time"], slo)
        name = f"at p99 ≤ {fmt_duration(slo)}"
        if s is None or r is None:
            missing = "streaming" if s is None else "real time"
            legs.append(
                Leg(name, "streaming sustains more", f"no {missing} curve reaches it",
                    f"not measured: no {missing} run has a capacity curve to read at this SLO")
            )  # fmt: skip
            continue
        used["streaming"] += s[3]
        used["real time"] += r[3]
        text = f"{s[0]} {s[1].text(s[2])} vs {r[0]} {r[1].text(r[2])}"
        more, less = s[2] > r[2], s[2] < r[2]
        # a lower bound decides only when it is the larger side: the other side cannot overtake it
        conclusive = (not s[1].bound and not r[1].bound) or (more and not r[1].bound) or (less and not s[1].bound)
        if not conclusive:
            legs.append(Leg(name, "streaming sustains more", text, "not measured: a lower bound on each side"))
        elif more:
            legs.append(Leg(name, "streaming sustains more", text + f" ({_fmt_x(s[2] / r[2])})", "holds"))
        else:
            d = "streaming sustains less per core than real time"
            legs.append(Leg(name, "streaming sustains more", text, f"does not hold: {d}", d))
    cpu = {f: _median_of(rs, lambda r: r.metrics["cpu_seconds"] / r.metrics["predictions"]) for f, rs in fams.items()}
    simpler = Leg("simpler", "simpler than synchronous real time", "not measured", "not measured: simplicity")
    measured = [x for x in legs if x.measured_leg]
    cpu_text = f"; CPU per prediction {1e6 * cpu['streaming']:,.0f} vs {1e6 * cpu['real-time']:,.0f} µs"
    if not measured or all(x.verdict.startswith("not measured") for x in legs):
        own = "; ".join(f"{f} at p99 ≤ {', '.join(sorted({fmt_duration(r.metrics['capacity']['slo_ms'] / 1e3) for r in rs}))}"
                        for f, rs in fams.items())  # fmt: skip
        return Verdict(
            "C5",
            f"capacities measured {own}{cpu_text}",
            f"pending: cannot compare at an equal SLO ({own}; "
            + (
                "a lower bound decides nothing where it is the smaller side)"
                if any("lower bound" in x.verdict for x in legs)
                else "no capacity curve reaches the other's SLO)"
            ),
            "",
            (*legs, simpler),
            _runs(*((f, [r.run_id for r in rs]) for f, rs in fams.items())),
        )
    held = [x for x in measured if x.holds]
    if len(held) == len(measured):
        verdict, direction = "holds", ""
    elif held:
        verdict = f"holds only {', '.join(x.name for x in held)}; " + "; ".join(
            f"{x.name}: {x.direction}" for x in measured if not x.holds
        )
        direction = "; ".join(f"{x.name}: {x.direction}" for x in measured if not x.holds)
    else:
        direction = "streaming sustains less per core than real time at an equal SLO"
        verdict = f"does not hold: {direction}"
    return Verdict(
        "C5",
        "capacity per provisioned core, "
        + "; ".join(f"{x.name}: {x.measured}" for x in legs)
        + cpu_text
        + "; 'simpler' is not measured",
        verdict,
        direction,
        (*legs, simpler),
        _runs(("streaming", used["streaming"]), ("real time", used["real time"])),
        ("capacity read from each run's latency-vs-load curve at a common p99 SLO",),
    )


# --------------------------------------------------------------------------------------------
# C7: hybrid
# --------------------------------------------------------------------------------------------


def _lookup_p99(r: RunResult) -> float:
    """A hybrid run's lookup p99: through its lookup server, or its clients' own reads of the store."""
    return (r.metrics.get("lookup_latency_s") or r.metrics["latency_s"])["p99"]


def _best_hybrid(runs, prices, w, service: bool) -> cost.Option | None:
    """The cheapest hybrid option at the article's volume with (``service``) or without a lookup server
    of its own, and among equally cheap ones the fastest lookup (a dict store's reload stalls show in
    its tail: a verdict should not hang on the worse of two stores that cost the same)."""
    by_id = {r.run_id: r for r in runs}
    at = _at(w)
    hybrid = [
        o
        for o in cost.options(runs)[0]
        if _option_family(o, by_id) == "hybrid" and all(m.has_service == service for m in o.measures)
    ]

    def key(o: cost.Option) -> tuple[float, float]:
        p99 = float(np.median([_lookup_p99(by_id[i]) for i in _ids(o)]))
        return round(o.cost(at, prices)["cost_per_day"], 6), p99

    return min(hybrid, key=key) if hybrid else None


def _store_text(day: dict) -> str:
    """How a hybrid bill priced its online store: the measured nodes, or the flat line item and why."""
    name = cost.COMPONENTS["store"][0]
    what = name.replace("_", " ")
    c = (day.get("components") or {}).get(name)
    if c:
        floor = (
            f": {c['needed']} for the load, {c['nodes'] - c['needed']} more for availability"
            if c["nodes"] > c["needed"]
            else ""
        )
        return (
            f"its {what} on {c['nodes']} node(s) of {c['node']}, sized by the measured CPU per prediction "
            f"({c['cpu_us_per_prediction']:.3g} µs){floor}"
        )
    basis = (day.get("line_item_basis") or {}).get(name)
    return f"its {what} {basis}" if basis else ""


def c7(runs, prices, w) -> Verdict:
    """Hybrid: lookup latency vs live scoring (through the same server stack, or the store read directly
    with no model server), its cost, and the staleness it trades."""
    at = _at(w)
    by_id = {r.run_id: r for r in runs}
    direct, server = _best_hybrid(runs, prices, w, False), _best_hybrid(runs, prices, w, True)
    # the article's hybrid serves scores "from a database": a direct lookup (no model server) when one
    # was measured; the lookup server beside it is shown, not used
    h, other = (direct, server) if direct is not None else (server, None)
    if h is None:
        return _pending(
            "C7", "needs a valid hybrid run with its refresh job: a lookup server with a lookup capacity, "
            "or a direct lookup (clients read the store, no model server)"
        )  # fmt: skip
    is_direct = h is direct
    h_runs = [by_id[i] for i in _ids(h)]
    app = h_runs[0].params.get("server_app", "fastapi")
    http = [r for r in runs if _serving(r, "real-time") and r.params.get("backend") == "http"]
    live = [
        r
        for r in http
        if r.params.get("server_app", "fastapi") == app
        and r.params.get("server_workers", 1) == h_runs[0].params.get("server_workers", 1)
    ]
    if is_direct and not live:
        live = http  # no model server on the hybrid side: any live http endpoint is the comparison
    batch, rt, _ = _pick(runs, prices, w)
    if not live or batch is None or rt is None:
        need = "live http runs" if is_direct else "live http runs on the same server app"
        return _pending("C7", f"needs {need}, and batch and real-time options")
    look = _median_of(h_runs, _lookup_p99)
    fall = [r.metrics.get("fallback_latency_s")["p99"] for r in h_runs if r.metrics.get("fallback_latency_s")]
    live_p99 = _median_of(live, _p99)
    job = float(np.median([m.job_rows_per_s for m in h.measures]))
    fixed = float(np.median([m.job_fixed_s for m in h.measures]))
    job_s = ARTICLE_VOLUME / job + fixed
    oldest_h = w.batch_every_h + job_s / 3600
    h_day = h.cost(at, prices)
    c_h, c_rt, c_b = (30 * o.cost(at, prices)["cost_per_day"] for o in (h, rt, batch))
    hit = _median_of(h_runs, lambda r: r.metrics["hit_ratio"])
    fall_text = f"{1e3 * float(np.median(fall)):.2f} ms" if fall else "not measured"
    if is_direct:
        lookup = f"direct lookup p99 {1e3 * look:.2f} ms (clients read the store, no model server)"
        versus = f"live scoring p99 {1e3 * live_p99:.2f} ms ({', '.join(sorted({r.backend for r in live}))})"
        gone = [r.metrics["not_found_latency_s"]["p99"] for r in h_runs if r.metrics.get("not_found_latency_s")]
        misses = f"new customers ({100 * (1 - hit):.0f}%) are not in the store: " + (
            f"their fallback p99 {fall_text}" if fall else "with no model server there is no live fallback"
        )
        if gone:
            misses += f" (they are answered 'not found', p99 {1e3 * float(np.median(gone)):.2f} ms)"
        slower = "direct lookups are slower than live scoring"
    else:
        lookup = f"lookup p99 {1e3 * look:.2f} ms"
        versus = f"live scoring p99 {1e3 * live_p99:.2f} ms (same server)"
        misses = f"new customers ({100 * (1 - hit):.0f}%) fall back to live scoring: p99 {fall_text}"
        slower = "lookups are slower than live scoring"
    response = (
        Leg("response time", "real-time responsiveness", f"{lookup} vs {versus}; {misses}", "holds", "")
        if look <= 2 * live_p99
        else Leg(
            "response time", "real-time responsiveness", f"{lookup} vs {versus}",
            f"does not hold: {slower}", "slower than claimed",
        )
    )  # fmt: skip
    vs_rt = c_h / c_rt
    rel = (
        f"the same as real time ({_fmt_money(c_h)} vs {_fmt_money(c_rt)}/month, {100 * (vs_rt - 1):+.2g}%)"
        if abs(vs_rt - 1) <= SAME_COST
        else f"{_fmt_x(vs_rt)} real time's ({_fmt_money(c_h)} vs {_fmt_money(c_rt)}/month)"
    )
    note = _unmeasured_note((h, rt), at, prices)
    store = _store_text(h_day)
    if is_direct:
        priced = f"; priced with no model-server replicas and {store or 'no store line item'}"
    else:
        priced = f"; {h_day['units']:g} lookup-server {h_day['unit']}" + (f" and {store}" if store else "")
    cost_text = f"{rel}; batch alone {_fmt_money(c_b)}/month ({_fmt_x(c_h / c_b)} that){priced}" + (
        f"; {note}" if note else ""
    )
    if c_h <= 2 * c_b:
        cost_leg = Leg("cost", "batch's cost", cost_text, "holds")
    else:
        cost_leg = Leg(
            "cost", "batch's cost", cost_text, f"does not hold: costs {rel}, not batch's", "costs more than claimed"
        )
    stale = Leg(
        "staleness traded",
        "scores as old as the last batch",
        f"scores up to {oldest_h:.1f} h old (refreshed every {w.batch_every_h:g} h; a {ARTICLE_VOLUME:,.0f}-"
        f"customer refresh takes {fmt_duration(job_s)})",
        f"holds only when scores up to {oldest_h:.1f} h old are acceptable",
    )
    legs = (response, cost_leg, stale)
    if response.holds and cost_leg.holds:
        verdict, direction = stale.verdict, ""
    elif response.holds:
        direction = cost_leg.direction
        verdict = (
            f"holds only for response time, when scores up to {oldest_h:.1f} h old are acceptable; it "
            f"{direction}: {rel}, not batch's {_fmt_money(c_b)}/month"
        )
    else:
        direction = response.direction
        where = "" if is_direct else " on the same server"
        verdict = f"does not hold: {slower}{where}" + (
            "" if cost_leg.holds else f", and it {cost_leg.direction}: {rel}"
        )
    shown, used = "", ()
    if other is not None:
        o_runs = [by_id[i] for i in _ids(other)]
        shown = (
            f"; shown beside it, not used: {other.label} (through a lookup server): lookup p99 "
            f"{1e3 * _median_of(o_runs, _lookup_p99):.2f} ms, {_fmt_money(30 * other.cost(at, prices)['cost_per_day'])}/month"
        )
        used = (
            f"the verdict used the direct lookup {h.label} (the article's 'served from a database'); "
            f"the lookup server {other.label} is shown beside it",
        )
    elif is_direct:
        used = (f"the verdict used the direct lookup {h.label}: no lookup-server hybrid run to show beside it",)
    elif server is not None:
        used = (f"the verdict used the lookup server {h.label}: no direct-lookup hybrid run was measured",)
    return Verdict(
        "C7",
        f"{h.label}: " + "; ".join(f"{x.name}: {x.measured}" for x in legs) + shown,
        verdict,
        direction,
        legs,
        _runs(("hybrid", _ids(h)), ("hybrid, lookup server (shown)", _ids(other) if other else []),
              ("live scoring", [r.run_id for r in live]), ("real time", _ids(rt)),
              ("batch", _ids(batch))),  # fmt: skip
        (*_workload_text(w, prices), f"batch every {w.batch_every_h:g} h", *used,
         f"costs within {100 * SAME_COST:.0f}% are 'the same'", "'batch's cost' read as ≤ 2× batch alone"),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# C8: faults
# --------------------------------------------------------------------------------------------


def c8(runs, prices, w) -> Verdict:
    """Faults side by side: a killed batch refresh (hybrid) vs a killed model server (per request)."""
    batch_faults = [r for r in runs if _family(r) == "hybrid" and r.metrics.get("batch_fault")]
    server_faults = [r for r in runs if _family(r) == "real-time" and r.metrics.get("fault_events")]
    if not batch_faults or not server_faults:
        return _pending("C8", "needs a hybrid run with a killed refresh and a request run with a killed server")
    b = batch_faults[0]
    f = b.metrics.get("batch_fault")
    batch_ok = f["errors"] == 0 and f["killed_before_publish"] and f["rerun_ok"]
    before, after = f.get("staleness_max_before_s"), f.get("staleness_max_after_s")
    ages = f"oldest score read {before:.1f} s → {after:.1f} s" if before and after else "ages not measured"
    batch_leg = Leg(
        "failed batch",
        "re-run while stale scores serve",
        f"refresh killed: {f['errors']} failed requests of {b.metrics['predictions']:,}, previous scores served "
        f"({ages}), re-run {'ok' if f['rerun_ok'] else 'failed'}",
        "holds" if batch_ok else "does not hold: requests failed while the refresh was down",
        "" if batch_ok else "less available than claimed",
    )

    def target(r: RunResult) -> str:
        """What the fault killed: the whole server ("server") or one of several replicas ("replica")."""
        return (r.metrics.get("fault") or {}).get("target") or ("server" if _workers(r) == 1 else "replica")

    single = [r for r in server_faults if target(r) == "server"]
    multi = [r for r in server_faults if target(r) == "replica" and _workers(r) >= 2]

    def outage(r: RunResult) -> tuple[int, str]:
        u = r.metrics.get("unavailability") or {}
        fault = r.metrics.get("fault") or {}
        n = fault.get("failed", u.get("failed_requests", 0))
        if target(r) == "replica":
            back = fault.get("recovered_s")
            replaced = f"replica replaced in {back:.2f} s" if back is not None else "replica not replaced in the window"
            return n, (
                f"{n} failed requests of {fault.get('offered_during', 0):,} offered while one of {_workers(r)} "
                f"replicas was down, longest gap between answers {fault.get('max_answer_gap_s') or 0:.3f} s, {replaced}"
            )
        restart = r.metrics.get("fault_events")[0].get("restart_s")
        return n, (
            f"{n} failed requests, unavailable {u.get('unavailable_s', 0):.2f} s (restart "
            f"{restart or float('nan'):.2f} s, {_workers(r)} server process(es), all killed)"
        )

    legs = [batch_leg]
    used = [("failed batch", [b.run_id])]
    if single:
        n, text = outage(single[0])
        legs.append(
            Leg("down endpoint, one replica", "serves nothing", text, "holds" if n > 0 else "does not hold: no request failed",
                "" if n > 0 else "more available than claimed")
        )  # fmt: skip
        used.append(("killed server, one replica", [single[0].run_id]))
    if multi:
        n, text = outage(multi[0])
        legs.append(
            Leg(f"one of {_workers(multi[0])} replicas down", "serves nothing", text,
                "holds" if n > 0 else "does not hold: the other replica kept serving",
                "" if n > 0 else "more available than claimed with redundancy")
        )  # fmt: skip
        used.append(("killed server, redundant", [multi[0].run_id]))
    else:
        legs.append(
            Leg(f"one of {w.min_replicas} replicas down", "serves nothing", "no fault run with ≥2 server processes",
                f"not measured: the cost model prices ≥{w.min_replicas} replicas, the fault test killed one of one")
        )  # fmt: skip
    verdict, direction = _combine(legs)
    if not multi and all(x.holds for x in legs if x.measured_leg):
        verdict = (
            "holds only when the endpoint has one replica: the fault test killed the only one, while the cost "
            f"model prices ≥{w.min_replicas} (not fault-tested)"
        )
    elif multi and legs[-1].measured_leg and not legs[-1].holds and all(x.holds for x in legs[:-1]):
        verdict = (
            f"holds only for a single-replica endpoint; with {_workers(multi[0])} replicas (what the cost model "
            f"prices) killing one {legs[-1].measured.split(',')[0]}"
        )
    return Verdict(
        "C8",
        "; ".join(f"{x.name}: {x.measured}" for x in legs),
        verdict,
        direction,
        tuple(legs),
        _runs(*used),
        (f"the cost model's ≥{w.min_replicas} replicas",),
    )


# --------------------------------------------------------------------------------------------
# C9: the four questions
# --------------------------------------------------------------------------------------------

#: The article's pattern for each of its seven use cases ("near-real-time" lead scoring: streaming or real time).
ARTICLE_PICKS: dict[str, frozenset[str]] = {
    "churn": frozenset({"batch"}),
    "fraud": frozenset({"real-time"}),
    "demand forecasting": frozenset({"batch"}),
    "recommendations": frozenset({"real-time", "hybrid"}),
    "IoT anomalies": frozenset({"streaming"}),
    "lead scoring": frozenset({"batch", "streaming", "real-time"}),
    "content moderation": frozenset({"real-time"}),
}


def _decided_by(rec: recommend.Recommendation) -> str:
    """What chose the pick: the article's trigger rule alone (every other family ineligible), or a
    measurement (another family was eligible and lost on measured latency, staleness or cost)."""
    others = [x for x in rec.runners_up if x.family != rec.choice.family]

    def by_rule(x) -> bool:  # ruled out by the trigger, or by staleness alone (our freshness vs its schedule)
        return not x.eligible or (not x.feasible and all(m.startswith("staleness") for m in x.misses))

    return "rule" if others and all(by_rule(x) for x in others) else "measured"


def c9(runs, prices, w) -> Verdict:
    """The four questions, answered for the seven use cases by the recommender from measured runs, vs the article."""
    if any(o is None for o in _pick(runs, prices, w)):
        return _pending("C9", "needs batch, real-time and streaming options the cost model can price")
    agree, differ, used = [], [], []
    by_rule = []
    for case in answers.USE_CASES:
        r = recommend.recommend(case, runs, prices, w, flip_volumes=None)
        if r.choice is None:
            differ.append(f"{case.name}: nothing measured meets the answers")
            continue
        used += r.choice.runs
        how = _decided_by(r)
        ok = r.choice.family in ARTICLE_PICKS[case.name]
        if ok and how == "rule":
            by_rule.append(case.name)
        article = "" if ok else f" (article: {' or '.join(sorted(ARTICLE_PICKS[case.name]))})"
        (agree if ok else differ).append(f"{case.name} → {r.choice.family}{article}")
    n = len(answers.USE_CASES)
    measured_agree = [a for a in agree if a.split(" →")[0] not in by_rule]
    legs = (
        Leg(
            "by construction",
            "the four questions",
            f"{len(by_rule)} of {n} picks follow from the rules alone ({', '.join(by_rule) or 'none'}): the "
            "recommender encodes the article's trigger rules, our answers mirror its use cases, and every other "
            "family was ruled out by the trigger or by staleness against the schedule",
            "not measured: agreement by construction",
        ),
        Leg(
            "measured",
            "the seven use-case picks",
            f"{len(measured_agree)} agree where measured latency, staleness or cost decided"
            + (f"; differs on: {'; '.join(differ)}" if differ else ""),
            "holds" if not differ else "does not hold" if not agree else
            f"holds only for {', '.join(a.split(' →')[0] for a in agree)}",
            "" if not differ else "picks differ from the article's",
        ),
    )  # fmt: skip
    verdict = legs[1].verdict
    if verdict.startswith("does not hold"):
        verdict = "does not hold: the measured picks differ from the article's on every use case"
    return Verdict(
        "C9",
        f"the recommender agrees with the article on {len(agree)} of {n} use cases: {len(by_rule)} by the rules "
        f"alone (the article's trigger rules, encoded; staleness against the schedule), {len(measured_agree)} "
        "decided by measured latency or cost" + (f"; differs on: {'; '.join(differ)}" if differ else ""),
        verdict + f" — partly by construction: {len(by_rule)} of {n} picks follow from the article's rules, "
        f"{len(measured_agree)} agreeing picks rest on a measurement",
        legs[1].direction,
        legs,
        _runs(("picks", sorted(set(used)))),
        ("the seven use cases' answers are our assumptions (bench.analysis.answers)", *_workload_text(w, prices, None)),
    )


# --------------------------------------------------------------------------------------------
# C10: features on the fly
# --------------------------------------------------------------------------------------------


def c10(runs, prices, w) -> Verdict:
    """An aggregate computed per request from the activity log vs read pre-computed."""
    got = {
        kind: [r for r in runs if r.valid and _family(r) == "real-time" and r.params.get("aggregate") == kind]
        for kind in ("onthefly", "precomputed")
    }
    if not all(got.values()):
        return _pending("C10", "needs request runs with aggregate=onthefly and aggregate=precomputed")
    fly, pre = got["onthefly"], got["precomputed"]
    p50 = {k: _median_of(v, lambda r: r.metrics["latency_s"]["p50"]) for k, v in got.items()}
    p99 = {k: _median_of(v, _p99) for k, v in got.items()}
    cpu = {k: _median_of(v, lambda r: r.metrics["cpu_seconds_per_prediction"]) for k, v in got.items()}
    caps = {k: [(r.metrics.get("capacity") or {}).get("rate_per_s") for r in v] for k, v in got.items()}
    rows = (fly[0].metrics.get("aggregate") or {}).get("log_rows", 0)
    cap_text = ""
    if all(c and all(caps[k]) for k, c in caps.items()):
        cap_f, cap_p = float(np.median(caps["onthefly"])), float(np.median(caps["precomputed"]))
        cap_text = f"; capacity {cap_f:,.0f} vs {cap_p:,.0f} req/s"
    ratio = cpu["onthefly"] / cpu["precomputed"]
    slo = float(np.median([r.params.get("slo_ms", 50.0) for r in fly])) / 1e3
    legs = (
        _band_leg(
            "heavier on the fly", "belongs in batch or a feature store", 2, math.inf, ratio,
            f"{1e6 * cpu['onthefly']:,.0f} vs {1e6 * cpu['precomputed']:,.0f} CPU-µs per request ({ratio:.1f}× "
            f"the CPU){cap_text}",
            "", "about as cheap on the fly at this log size",
        ),
        Leg(
            "computed in ms", "milliseconds",
            f"on the fly p50 {1e3 * p50['onthefly']:.2f} / p99 {1e3 * p99['onthefly']:.2f} ms vs pre-computed "
            f"{1e3 * p50['precomputed']:.2f} / {1e3 * p99['precomputed']:.2f} ms (request SLO {fmt_duration(slo)})",
            "holds" if p99["onthefly"] <= slo else "does not hold: on the fly misses the request SLO",
            "" if p99["onthefly"] <= slo else "slower than a request allows",
        ),
    )  # fmt: skip
    verdict = "holds" if legs[0].holds else "does not hold at this log size"
    return Verdict(
        "C10",
        f"90-day activity aggregate over a {rows:,}-event log, per request: " + "; ".join(x.measured for x in legs),
        verdict,
        legs[0].direction,
        legs,
        _runs(("on the fly", [r.run_id for r in fly]), ("pre-computed", [r.run_id for r in pre])),
        (f"a {rows:,}-event activity log",),
    )


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def code_version(r: RunResult) -> str:
    """The code a run was measured with: its git commit (12 digits), "+dirty" for uncommitted changes."""
    git = (r.provenance or {}).get("git") or {}
    commit = str(git.get("commit") or "unknown")[:12]
    return commit + ("+dirty" if git.get("dirty") else "")


def _versions(ids: Sequence[str], by_id: dict[str, RunResult]) -> tuple[str, int]:
    counts = Counter(code_version(by_id[i]) for i in ids if i in by_id)
    if not counts:
        return "", 0
    if len(counts) == 1:
        return f"one: {next(iter(counts))}", 1
    text = ", ".join(
        f"{v} ({', '.join(i for i in ids if i in by_id and code_version(by_id[i]) == v)})" for v in sorted(counts)
    )
    return f"{len(counts)} versions: {text}", len(counts)


def verdicts(runs: Sequence[RunResult], prices: cost.Prices, w: cost.Workload) -> list[Verdict]:
    """Every claim's verdict from these runs (already filtered to one predictor), in the claims' order."""
    out = {v.claim: v for v in c1_c6(runs, prices, w)}
    for fn in (c2, c3, c4, c5, c7, c8, c9, c10):
        v = fn(runs, prices, w)
        out[v.claim] = v
    return [out[c.id] for c in CLAIMS]


def _selected(runs: Sequence[RunResult], predictor: str) -> list[RunResult]:
    return [r for r in runs if r.valid and cost.predictor_of(r) == predictor]


def table(
    runs: Sequence[RunResult], prices: cost.Prices, w: cost.Workload, predictor: str = "lightgbm"
) -> pl.DataFrame:
    """C1–C10 from the valid runs that scored with ``predictor`` (a verdict never mixes two predictor
    backends). One row per claim, columns:

    * ``claim``, ``the article says`` — the claim's id and paraphrase (``bench.analysis.claims``);
    * ``measured`` — the measured figures, each leg's named;
    * ``verdict`` — "holds", "holds only when/for …", "does not hold: <direction>" or "pending: …"; ends
      "; runs from N code versions" when its runs were measured with different code;
    * ``direction`` — which way the measurement misses the claim ("" where it agrees or is pending);
    * ``legs`` — every leg as "name: verdict (measured; the article: …)", joined by " · ";
    * ``runs`` — the run ids behind it by role, "role: id,id / role: id";
    * ``assumptions`` — what the figures rest on besides measurements (prices, workload, readings of
      the article's words), joined by "; ";
    * ``code versions`` — "one: <commit>" or "N versions: <commit> (ids), …" ("" when pending).
    """
    runs = _selected(runs, predictor)
    by_id = {r.run_id: r for r in runs}
    rows = []
    for claim, v in zip(CLAIMS, verdicts(runs, prices, w), strict=True):
        versions, n = _versions(v.run_ids(), by_id)
        rows.append(
            {
                "claim": claim.id,
                "the article says": claim.statement,
                "measured": v.measured,
                "verdict": v.verdict + (f"; runs from {n} code versions" if n > 1 else ""),
                "direction": v.direction,
                "legs": " · ".join(x.text() for x in v.legs),
                "runs": " / ".join(f"{role}: {','.join(ids)}" for role, ids in v.runs),
                "assumptions": "; ".join(v.assumptions),
                "code versions": versions,
            }
        )
    return pl.DataFrame(rows)


def legs_table(
    runs: Sequence[RunResult], prices: cost.Prices, w: cost.Workload, predictor: str = "lightgbm"
) -> pl.DataFrame:
    """One row per leg of every claim: claim, leg, the article says, measured, verdict, direction."""
    rows = [
        {
            "claim": v.claim,
            "leg": x.name,
            "the article says": x.says,
            "measured": x.measured,
            "verdict": x.verdict,
            "direction": x.direction,
        }
        for v in verdicts(_selected(runs, predictor), prices, w)
        for x in v.legs
    ]
    cols = ("claim", "leg", "the article says", "measured", "verdict", "direction")
    return pl.DataFrame(rows) if rows else pl.DataFrame({c: [] for c in cols}, schema=dict.fromkeys(cols, pl.Utf8))


def by_predictor(runs: Sequence[RunResult], prices: cost.Prices, w: cost.Workload) -> pl.DataFrame:
    """Does a compiled predictor change any verdict? Each claim's verdict per predictor backend measured,
    the compiled backend's measured figure, and whether the verdict changed ("not measured" where that
    backend has no runs the claim needs)."""
    predictors = sorted({cost.predictor_of(r) for r in runs if r.valid and _family(r) != "predictor"} | {"lightgbm"})
    tables = {p: table(runs, prices, w, p) for p in predictors}
    rows = []
    for i, claim in enumerate(CLAIMS):
        row: dict = {"claim": claim.id}
        base = tables["lightgbm"]["verdict"][i]
        for p in predictors:
            row[f"verdict ({p})"] = tables[p]["verdict"][i]
        for p in predictors:
            if p == "lightgbm":
                continue
            verdict = tables[p]["verdict"][i]
            row[f"measured ({p})"] = tables[p]["measured"][i]
            row[f"changed with {p}"] = (
                "not measured"
                if verdict.startswith("pending") or base.startswith("pending")
                else "no"
                if verdict == base
                else "yes"
            )
        rows.append(row)
    return pl.DataFrame(rows)


__all__ = [
    "ARTICLE_PICKS",
    "ARTICLE_VOLUME",
    "Leg",
    "Verdict",
    "by_predictor",
    "code_version",
    "legs_table",
    "read_at",
    "table",
]
