"""The article's four questions, answered with measurements: which pattern a use case calls for, and why.

The four answers (acceptable latency, how fresh a prediction must be, what triggers it, daily volume)
are checked against every option ``bench.analysis.cost.options`` can cost from the measured runs. Each option
gets the latency and staleness its consumer would see, both from the runs, and its cost per day
under the price table; the cheapest feasible option wins and every other one says why it loses.

Latency and staleness as the consumer sees them:

* **real-time, streaming** — the median over the option's runs of the main window's measured p99;
  a score computed when asked for is as old as that latency when it is used.
* **batch** — staleness up to the schedule interval + the job's wall time (a score is read until the
  next run has published). Latency: the job's wall time when a schedule triggers the scoring (the
  schedule *is* the trigger); the interval + the job when an event does (the event waits for the
  next run).
* **hybrid** — staleness as batch; latency: its measured p99 lookup latency for request and schedule
  triggers, the interval + the job for an event trigger (the event's data reaches the store then).

Batch and hybrid run on the least frequent schedule of a ladder of round intervals (24 h … 1 min)
that meets the answers: fewer jobs cost less (each is billed at least the price's minimum). A
schedule is never more frequent than ``MIN_INTERVAL_OVER_BILLED`` (10) × the job's billed time,
start-up included: a job that holds its machine more than a tenth of the time is an always-on service
in all but name, and a 60 s billing minimum makes a job every minute cost a machine kept on. Such
rungs are refused (the option is infeasible when only they would meet the answers, and says so); when
even the least frequent rung is refused (a job billed over 2.4 h) it is kept and flagged. A
freshness of exactly 24 h therefore gets a 12 h schedule: a daily job's scores are 24 h + the job
old before they are replaced. A hybrid job re-scores ``workload_base.customers`` entities (0: the
day's volume), as ``bench.analysis.cost`` prices it. Always-on latency is the p99 measured at the run's
offered rate; ``bench.analysis.cost`` sizes replicas so the peak stays within the capacity measured at the SLO.

Streaming and real-time replicas are priced on the cores their runs held (one streaming replica: a Ray
cluster with its actors; one real-time replica: one server process). When the options compared hold
different core counts the recommendation says so (``Recommendation.notes``): no run measured either
at the other's size, and capacity is not rescaled by a guess.

Which families a trigger may use (the rest are listed with the reason):

* ``schedule`` — every family.
* ``request`` — real-time and hybrid (when its staleness is tolerated). Not streaming: a caller
  waits for an answer, while a stream writes its scores to a sink nobody waits on. Not batch alone:
  a file of scores answers nobody's call (serving it by lookup is the hybrid pattern).
* ``event`` — streaming and real-time; batch and hybrid too, when the acceptable latency covers the
  wait for the next run (which the latency above already includes).

Every figure comes from the runs and the price table; an option missing a measurement says so and is
never given a number.

The answers are parsed in ``bench.analysis.answers``, laid out for a person in ``bench.views.recommend``,
and asked from the command line by ``bench.app.recommend``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.analysis import cost
from bench.analysis.answers import Answers, fmt_duration, fmt_money, fmt_ratio, fmt_volume
from bench.core import paths
from bench.core.errors import BenchError
from bench.core.params import parse, user_values
from bench.results import RunResult
from bench.results.selection import select

FAMILIES = ("batch", "hybrid", "streaming", "real-time")  #: simplest to run first: breaks cost ties
#: Batch and hybrid schedules tried, least frequent (cheapest) first; a minute is cron's granularity.
BATCH_INTERVALS_H = (24.0, 12.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.25, 1 / 6, 1 / 12, 1 / 30, 1 / 60)
#: Daily volumes swept to find where the recommendation flips.
FLIP_VOLUMES = tuple(float(v) for v in np.logspace(3, 9, 49))
#: A batch or hybrid job runs at most once per this many times its billed wall time (start-up included).
MIN_INTERVAL_OVER_BILLED = 10.0


# --------------------------------------------------------------------------------------------
# Assessing each option against the answers
# --------------------------------------------------------------------------------------------


def family(label: str) -> str | None:
    """The pattern family of a cost option, by its label's prefix (None for one we do not know)."""
    return next((f for f in FAMILIES if label.startswith(f)), None)


def ineligible_reason(fam: str, trigger: str) -> str | None:
    """Why a family cannot serve a trigger at all, or None when it can (then feasibility decides)."""
    if trigger == "request" and fam == "streaming":
        return "not for a request trigger: a caller waits for its answer, a stream writes scores to a sink"
    if trigger == "request" and fam == "batch":
        return "not for a request trigger: batch alone writes a file; serving it by lookup is the hybrid pattern"
    return None


@dataclass(frozen=True)
class Assessment:
    """One option checked against the answers: what its consumer would see, what it costs, why it loses."""

    label: str
    family: str
    kind: str
    runs: tuple[str, ...]
    eligible: bool
    feasible: bool
    latency_s: float | None  #: as the consumer sees it (see the module's docstring)
    latency_basis: str  #: what that latency is: "p99", "job wall", "next run + job", "lookup p99"
    staleness_s: float | None  #: the oldest a prediction gets before it is replaced
    cost_per_day: float
    units: float
    unit: str
    batch_every_h: float | None = None
    job_wall_s: float | None = None
    misses: tuple[str, ...] = ()  #: what it misses by, one item per unmet answer
    miss_factor: float = 0.0  #: worst of measured / acceptable (<= 1 when feasible)
    reason: str = ""  #: why it is not the recommendation (filled when ranked)
    cores_per_unit: float | None = None  #: always-on: cores one replica holds (as its runs measured)
    flags: tuple[str, ...] = ()  #: what a reader must know about this figure (e.g. an implausible schedule)

    def summary(self) -> str:
        """Its figures in one line: latency, staleness, schedule, cost and what is billed."""
        sched = f", every {fmt_duration(self.batch_every_h * 3600)}" if self.batch_every_h else ""
        shown = self.job_wall_s is not None and self.latency_basis != "job wall"
        job = f", job {fmt_duration(self.job_wall_s)}" if shown else ""
        cores = f" of {self.cores_per_unit:g} cores" if self.cores_per_unit else ""
        flags = "".join(f"; flagged: {f}" for f in self.flags)
        return (
            f"{self.latency_basis} {fmt_duration(self.latency_s)}, staleness ≤ {fmt_duration(self.staleness_s)}"
            f"{sched}{job}; {fmt_money(self.cost_per_day)}/day ({self.units:g} {self.unit}{cores}){flags}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (the CLI's --json)."""
        return {**asdict(self), "runs": list(self.runs), "misses": list(self.misses), "flags": list(self.flags)}


def _runs_of(option: cost.Option) -> tuple[str, ...]:
    # A measure built as a median carries its runs comma-joined: split so each is looked up.
    return tuple(i for m in option.measures for i in str(m.run_id).split(",") if i)


def _median_metric(by_id: Mapping[str, RunResult], ids: Sequence[str], get) -> float | None:
    values = []
    for i in ids:
        r = by_id.get(i)
        v = get(r.metrics) if r is not None else None
        if v is not None and math.isfinite(v):
            values.append(float(v))
    return float(np.median(values)) if values else None


def _cores_per_unit(option: cost.Option) -> float | None:
    """Cores one replica of an always-on option holds: the median over its measures (None if unknown)."""
    cores = [getattr(m, "cores", None) for m in option.measures]
    cores = [float(c) for c in cores if isinstance(c, int | float)]
    return float(np.median(cores)) if cores else None


def billed_s(prices: cost.Prices, seconds: float) -> float:
    """What one job of ``seconds`` is billed for under the price table (its minimum and granularity)."""
    billed = getattr(prices, "billed_seconds", None)
    return float(billed(seconds)) if callable(billed) else float(seconds)


def min_interval_s(prices: cost.Prices, job_wall_s: float) -> float:
    """The shortest schedule a job of ``job_wall_s`` (start-up included) is run on: 10× its billed time."""
    return MIN_INTERVAL_OVER_BILLED * billed_s(prices, job_wall_s)


def _p99(m: dict) -> float | None:
    return (m.get("latency_s") or {}).get("p99")


def _misses(a: Answers, latency: float | None, basis: str, staleness: float | None) -> tuple[list[str], float]:
    if latency is None or staleness is None:
        return [f"no measured {basis} latency in its runs"], math.inf
    out = []
    if latency > a.latency_s:
        out.append(
            f"{basis} {fmt_duration(latency)} > {fmt_duration(a.latency_s)} acceptable "
            f"({fmt_ratio(latency / a.latency_s)} over)"
        )
    if staleness > a.freshness_s:
        out.append(
            f"staleness up to {fmt_duration(staleness)} > {fmt_duration(a.freshness_s)} tolerated "
            f"({fmt_ratio(staleness / a.freshness_s)} over)"
        )
    return out, max(latency / a.latency_s, staleness / a.freshness_s)


def _assess(
    option: cost.Option,
    fam: str,
    a: Answers,
    by_id: Mapping[str, RunResult],
    prices: cost.Prices,
    base: cost.Workload,
) -> Assessment:
    """Latency, staleness, cost and feasibility of one option for one set of answers."""
    ids = _runs_of(option)
    why_not = ineligible_reason(fam, a.trigger)
    w = replace(base, predictions_per_day=a.predictions_per_day)
    common = {"label": option.label, "family": fam, "kind": option.kind, "runs": ids}
    if fam in ("real-time", "streaming"):
        c = option.cost(w, prices)
        lat = _median_metric(by_id, ids, _p99)
        misses, factor = _misses(a, lat, "p99", lat)
        return Assessment(
            **common,
            eligible=why_not is None,
            feasible=why_not is None and not misses,
            latency_s=lat,
            latency_basis="p99",
            staleness_s=lat,
            cost_per_day=c["cost_per_day"],
            units=c["units"],
            unit=c["unit"],
            misses=tuple(misses),
            miss_factor=factor,
            cores_per_unit=_cores_per_unit(option),
        )
    # batch and hybrid: the least frequent round schedule that meets the answers, or the most frequent
    # one the job's billed time allows (MIN_INTERVAL_OVER_BILLED)
    lookup = _median_metric(by_id, ids, _p99) if fam == "hybrid" else None
    bound = a.freshness_s if a.trigger != "event" else min(a.freshness_s, a.latency_s)
    intervals = [h for h in BATCH_INTERVALS_H if h * 3600 < bound] or [BATCH_INTERVALS_H[-1]]

    def at(h: float) -> tuple[Assessment, float | None]:
        """The option on a schedule of every ``h`` hours, and its job's billed seconds (start-up included)."""
        c = option.cost(replace(w, batch_every_h=h), prices)
        wall = c.get("job_wall_s")
        billed = c.get("job_billed_s") or (None if wall is None else billed_s(prices, wall))
        staleness = None if wall is None else h * 3600 + wall
        if a.trigger == "event":
            lat, basis = staleness, "next run + job"
        elif fam == "hybrid":
            lat, basis = lookup, "lookup p99"
        else:
            lat, basis = wall, "job wall"
        misses, factor = _misses(a, lat, basis, staleness)
        return Assessment(
            **common,
            eligible=why_not is None,
            feasible=why_not is None and not misses,
            latency_s=lat,
            latency_basis=basis,
            staleness_s=staleness,
            cost_per_day=c["cost_per_day"],
            units=c["units"],
            unit=c["unit"],
            batch_every_h=h,
            job_wall_s=wall,
            misses=tuple(misses),
            miss_factor=factor,
        ), billed

    found, refused = None, None  # refused: the first rung too frequent for the job's billed time
    for h in intervals:
        x, billed = at(h)
        shortest = None if billed is None else MIN_INTERVAL_OVER_BILLED * billed
        if shortest is not None and h * 3600 < shortest:
            if h == BATCH_INTERVALS_H[0]:  # even a daily job holds its machine over a tenth of the day: kept, said
                shown = fmt_duration(billed)
                x = replace(x, flags=(f"its job is billed {shown}: even daily it runs over a tenth of the time",))
            else:
                refused = refused or (h, shortest)
                continue
        found = x
        if not x.misses or x.job_wall_s is None:
            break
    if refused is not None and (found is None or found.misses):
        h, shortest = refused
        why = (
            f"a job every {fmt_duration(h * 3600)} is refused: billed {fmt_duration(shortest / MIN_INTERVAL_OVER_BILLED)}"
            f" a job (start-up included), it runs at most every {fmt_duration(shortest)}"
        )
        base_x = found or at(h)[0]
        found = replace(
            base_x,
            feasible=False,
            misses=(*base_x.misses, why),
            miss_factor=max(base_x.miss_factor, shortest / (h * 3600)),  # how much too often
        )
    return found


def assess(
    answers: Answers, runs: Sequence[RunResult], prices: cost.Prices, workload_base: cost.Workload
) -> tuple[list[Assessment], list[dict]]:
    """Every costed option assessed for these answers (unranked), and the options that could not be costed."""
    opts, missing = cost.options(runs)
    by_id = {r.run_id: r for r in runs}
    out = []
    for o in opts:
        fam = family(o.label)
        if fam is None:
            missing.append({"option": o.label, "reason": f"unknown pattern family (expected one of {FAMILIES})"})
            continue
        out.append(_assess(o, fam, answers, by_id, prices, workload_base))
    return out, missing


def _simplicity(x: Assessment) -> int:
    return FAMILIES.index(x.family)


def _ranked(answers: Answers, items: Sequence[Assessment]) -> tuple[Assessment | None, list[Assessment]]:
    """The cheapest feasible option, then the others each with the reason it loses: dearer feasible ones
    by cost, infeasible ones by how far they miss, then the ones the trigger rules out."""
    feasible = sorted((x for x in items if x.feasible), key=lambda x: (x.cost_per_day, _simplicity(x), x.label))
    best = feasible[0] if feasible else None
    ranked = []
    for x in feasible[1:]:
        more = x.cost_per_day - best.cost_per_day
        if more <= 1e-3 * best.cost_per_day:
            why = f"costs the same ({fmt_money(x.cost_per_day)}/day); {best.label} is as simple or simpler to run"
        else:
            ratio = x.cost_per_day / best.cost_per_day if best.cost_per_day > 0 else math.inf
            why = f"costs {fmt_money(more)}/day more ({fmt_ratio(ratio)})"
        ranked.append(replace(x, reason=why))
    infeasible = sorted((x for x in items if x.eligible and not x.feasible), key=lambda x: (x.miss_factor, x.label))
    ranked += [replace(x, reason="; ".join(x.misses)) for x in infeasible]
    ineligible = sorted((x for x in items if not x.eligible), key=lambda x: x.label)
    ranked += [replace(x, reason=ineligible_reason(x.family, answers.trigger) or "") for x in ineligible]
    return best, ranked


# --------------------------------------------------------------------------------------------
# The recommendation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flip:
    """A daily volume where the recommendation changes, with the same answers otherwise."""

    at_per_day: float
    before: str | None  #: the pick just below (None: nothing feasible)
    after: str | None
    why: str

    def text(self) -> str:
        after = self.after or "nothing measured is feasible"
        verb = " becomes the pick" if self.after else ""
        return f"above {fmt_volume(self.at_per_day)} predictions/day, {after}{verb} ({self.why})"


@dataclass(frozen=True)
class Recommendation:
    """The pick for one set of answers: the option, its measured figures, the runners-up and the flips."""

    answers: Answers
    prices: str  #: preset name and date
    choice: Assessment | None
    runners_up: tuple[Assessment, ...]
    flips: tuple[Flip, ...] = ()
    not_costed: tuple[dict, ...] = ()
    swept: tuple[float, float] | None = None  #: the volume range the flips were searched over
    notes: tuple[str, ...] = ()  #: what the comparison rests on, e.g. replicas of different core counts

    @property
    def closest(self) -> Assessment | None:
        """When nothing is feasible: the eligible option that misses the answers by the least."""
        if self.choice is not None:
            return None
        near = [x for x in self.runners_up if x.eligible and math.isfinite(x.miss_factor)]
        return min(near, key=lambda x: x.miss_factor) if near else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: the answers, the pick, the runners-up, the flips, what was not costed."""
        return {
            "answers": asdict(self.answers),
            "prices": self.prices,
            "recommended": self.choice.to_dict() if self.choice else None,
            "closest": self.closest.to_dict() if self.closest else None,
            "runners_up": [x.to_dict() for x in self.runners_up],
            "flips": [asdict(f) for f in self.flips],
            "flips_searched_per_day": list(self.swept) if self.swept else None,
            "not_costed": list(self.not_costed),
            "notes": list(self.notes),
        }

    def headline(self) -> str:
        """The pick in a few words, or why there is none."""
        if self.choice:
            return self.choice.label
        if self.closest:
            return f"nothing feasible (closest: {self.closest.label})"
        return "nothing measured can serve this"


def sizing_notes(items: Sequence[Assessment]) -> tuple[str, ...]:
    """Whether streaming and real-time replicas were sized on the same core count, and why not when not."""
    cores = {
        fam: sorted({x.cores_per_unit for x in items if x.family == fam and x.eligible and x.cores_per_unit})
        for fam in ("streaming", "real-time")
    }
    if not all(cores.values()) or cores["streaming"] == cores["real-time"]:
        return ()
    show = {fam: "/".join(f"{c:g}" for c in cs) for fam, cs in cores.items()}
    return (
        f"replicas are not sized on the same core count: a streaming replica holds {show['streaming']} cores "
        f"(a Ray cluster with its actors), a real-time replica {show['real-time']} (one server process), as "
        "their runs measured them; no run measured either at the other's size, so capacity is not rescaled "
        "(it does not scale linearly with cores) and each is priced per replica as measured",
    )


def _check_inputs(answers: Any, prices: Any, workload_base: Any) -> None:
    if not isinstance(answers, Answers):
        raise BenchError(f"recommend() needs Answers, got {type(answers).__name__}")
    if not isinstance(prices, cost.Prices):
        raise BenchError(f"recommend() needs cost.Prices (see cost.load_prices), got {type(prices).__name__}")
    if not isinstance(workload_base, cost.Workload):
        raise BenchError(f"recommend() needs a cost.Workload for the base workload, got {type(workload_base).__name__}")


def _pick(answers: Answers, runs, prices, base, volume: float) -> tuple[Assessment | None, list[Assessment]]:
    items, _ = assess(replace(answers, predictions_per_day=volume), runs, prices, base)
    return _ranked(answers, items)


def _label(x: Assessment | None) -> str | None:
    """The pick's label, comparable across volumes (None: nothing feasible)."""
    return x.label if x else None


def find_flips(
    answers: Answers,
    runs: Sequence[RunResult],
    prices: cost.Prices,
    workload_base: cost.Workload,
    volumes: Sequence[float] = FLIP_VOLUMES,
) -> list[Flip]:
    """Daily volumes where the pick changes, with the same answers: a sweep, then bisection on log volume."""
    _check_inputs(answers, prices, workload_base)
    vols = sorted(float(v) for v in volumes)
    picks = [_label(_pick(answers, runs, prices, workload_base, v)[0]) for v in vols]
    out = []
    for i in range(len(vols) - 1):
        if picks[i] == picks[i + 1]:
            continue
        lo, hi = math.log(vols[i]), math.log(vols[i + 1])
        for _ in range(30):  # ~1e-9 of a decade: the crossing as precisely as the cost model defines it
            mid = (lo + hi) / 2
            if _label(_pick(answers, runs, prices, workload_base, math.exp(mid))[0]) == picks[i]:
                lo = mid
            else:
                hi = mid
        at = math.exp(hi)
        new, ranked = _pick(answers, runs, prices, workload_base, at)
        old = next((x for x in ranked if x.label == picks[i]), None)
        if old is not None and not old.feasible:
            why = f"{old.label} no longer meets the answers: {old.reason}"
        elif old is not None and new is not None:
            why = f"cheaper than {old.label}: {fmt_money(new.cost_per_day)} vs {fmt_money(old.cost_per_day)}/day"
        elif new is not None:
            why = f"becomes feasible: {new.summary()}"
        else:
            why = "no option is feasible"
        out.append(Flip(at, picks[i], _label(new), why))
    return out


def recommend(
    answers: Answers,
    runs: Sequence[RunResult],
    prices: cost.Prices,
    workload_base: cost.Workload,
    *,
    flip_volumes: Sequence[float] | None = FLIP_VOLUMES,
) -> Recommendation:
    """The cheapest measured option that meets the four answers, the runners-up with why each loses, and
    the volumes where the pick would flip. ``workload_base`` supplies peak-to-mean and min replicas."""
    _check_inputs(answers, prices, workload_base)
    items, missing = assess(answers, runs, prices, workload_base)
    best, ranked = _ranked(answers, items)
    flips: list[Flip] = []
    swept = None
    if flip_volumes is not None and len(flip_volumes) > 1:
        flips = find_flips(answers, runs, prices, workload_base, flip_volumes)
        swept = (float(min(flip_volumes)), float(max(flip_volumes)))
    label = f"{prices.name} ({prices.as_of})" if prices.as_of else prices.name
    notes = sizing_notes(items)
    return Recommendation(answers, label, best, tuple(ranked), tuple(flips), tuple(missing), swept, notes)


# --------------------------------------------------------------------------------------------
# Inputs from disk (the CLI and the notebook)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecommendNotebook:
    """95_recommend's parameters: where the results are, the prices, the workload, and one custom question."""

    results_dir: str = ""
    price_preset: str = ""  #: "" = the price file's default
    prices_file: str = ""  #: "" = bench/analysis/prices.yaml
    peak_to_mean: float = 3.0
    min_replicas: int = 2
    latency: str | float = "100ms"
    freshness: str | float = "24h"
    trigger: str = "request"
    volume: str | float = 1e6


def notebook_params(namespace: Mapping[str, Any]) -> RecommendNotebook:
    """The notebook's parameters from its globals: an unknown or ill-typed one fails naming it."""
    return parse(RecommendNotebook, user_values(namespace), owner="notebook 95_recommend")


@dataclass
class Inputs:
    """What a recommendation is computed from: one machine's valid runs, the prices, the base workload."""

    runs: list[RunResult]
    machine: str | None
    prices: cost.Prices
    base: cost.Workload
    results_dir: Path
    left_out: dict[str, int] = field(default_factory=dict)  #: other machines' valid runs, not mixed in


def inputs(
    results_dir: str | Path | None = None,
    price_preset: str = "",
    prices_file: str | Path = "",
    peak_to_mean: float = 3.0,
    min_replicas: int = 2,
    *,
    require_runs: bool = False,
) -> Inputs:
    """Load the results (the report's loader: one machine's valid runs), the prices and the base workload."""
    prices = cost.load_prices(prices_file or None, price_preset or None)
    # the volume is a placeholder: every recommendation replaces it with its answer's
    base = cost.Workload(1.0, peak_to_mean=peak_to_mean, min_replicas=min_replicas)
    directory = Path(results_dir or paths.results_dir())
    sel = select(directory)
    if require_runs and not sel.runs:
        raise BenchError(
            f"no valid results under {str(directory / 'runs')!r}: run `make report` first "
            "(or `bench run <pattern>`), or point --results at a results directory"
        )
    return Inputs(sel.runs, sel.machine, prices, base, directory, sel.other_machines)
