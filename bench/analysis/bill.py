"""A day of one pattern, priced the way a bill charges it.

Inputs: what the runs measured (the ``*Measure`` records, one per run, medians for a point estimate), a
:class:`Workload` and a preset of the catalogue (:class:`bench.analysis.catalogue.Prices`). Formulas,
per billed kind (a pattern's ``cost_kind``):

* **job** (batch) — per job: ``run = rows / measured rows-per-s + measured start + platform start-up``,
  billed ``max(ceil(run / granularity) × granularity, minimum)`` on the cheapest sold size with at
  least the measured cores and peak RSS; ``jobs/day = 24 / batch_every_h``. The measured start is the
  run's ``process_start`` (fresh interpreter to loaded model; it includes the model load, so
  ``model_load`` is not added) plus its other start-ups (Ray); a run without it is billed the fixed
  costs it did measure and its breakdown says the process start was not measured.
* **always-on** on instances — each hour ``needed = ceil(rate / (capacity at the SLO × target
  utilisation))``, ``held = max(min_replicas, needed)``, one replica per sold size; the rate is the peak
  all day, or with ``autoscale`` an hourly diurnal profile whose peak/mean is ``peak_to_mean``.
* **always-on** on a function platform (serverless real time) — per request ``per_request +
  ceil(service time / granularity) × granularity × size price``; the measured cold start is reported
  as a latency cost, not priced.
* **job+always-on** (hybrid) — its refresh jobs as *job* (the whole customer base each time, at the
  job's measured rate and start-up) + its lookup servers as *always-on*.
* **line items** the family needs (load balancer, stores, scheduler, broker, monitoring): per month +
  per million predictions from the catalogue, priced, not measured.
* **a compiled predictor's build**: once per model release on the job platform (one core).

Every day is a dict; ``breakdown`` splits ``cost_per_day`` exactly (see ``BREAKDOWN``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from bench.analysis.catalogue import DAYS_PER_MONTH, Platform, Prices, Size, check_utilisation
from bench.core.errors import BenchError
from bench.core.params import require_positive

SECONDS_PER_DAY = 86_400.0
DEFAULT_TARGET_UTILISATION = 0.6
#: the parts of ``breakdown`` ($/day), in order; they sum to ``cost_per_day``
BREAKDOWN = (
    "compute",  # the vCPU part of the sold size over the time the measured work needs
    "memory",  # the GiB part of the same (the sold size's memory, not only the measured peak)
    "availability_floor",  # replicas held only because of min_replicas
    "billing_minimum",  # billed time beyond the run: the minimum and the rounding to the granularity
    "platform_startup",  # the platform's own start-up before the job's process (priced, not measured)
    "requests",  # per-request fees of a function platform
    "build",  # a compiled predictor's build, once per model release
    "line_items",  # everything outside compute the family needs (priced, not measured)
)


@dataclass(frozen=True)
class Workload:
    """The business side: volume, batch schedule, how peaky requests are, availability, sizing policy."""

    predictions_per_day: float
    batch_every_h: float = 24.0  #: a batch job runs this often
    peak_to_mean: float = 3.0  #: peak request rate over the mean rate
    min_replicas: int = 2  #: always-on replicas kept for availability, however low the load
    customers: float = 0.0  #: hybrid: scores pre-computed per batch (0 = one per prediction of the day)
    releases_per_day: float = 1.0  #: model releases a day; each rebuilds a compiled predictor once
    #: always-on replicas run at this share of their capacity at the SLO (None: the preset's, else 0.6)
    target_utilisation: float | None = None
    autoscale: bool = False  #: replicas follow the hourly profile (else sized for the peak all day)

    def __post_init__(self) -> None:
        require_positive(
            "Workload",
            predictions_per_day=self.predictions_per_day,
            batch_every_h=self.batch_every_h,
            min_replicas=self.min_replicas,
        )
        if self.peak_to_mean < 1:
            raise BenchError(f"Workload 'peak_to_mean' must be >= 1, got {self.peak_to_mean}")
        if self.autoscale and self.peak_to_mean >= 24:
            raise BenchError(
                f"Workload 'peak_to_mean' must be < 24 with autoscale (hourly profile), got {self.peak_to_mean}"
            )
        if self.releases_per_day < 0:
            raise BenchError(f"Workload 'releases_per_day' must be >= 0, got {self.releases_per_day}")
        if self.customers < 0:
            raise BenchError(f"Workload 'customers' must be >= 0, got {self.customers}")
        if self.batch_every_h > 24 * 365:
            raise BenchError(f"Workload 'batch_every_h' must be at most a year, got {self.batch_every_h}")
        if self.target_utilisation is not None:
            check_utilisation(self.target_utilisation, "Workload 'target_utilisation'")

    @property
    def mean_rate_per_s(self) -> float:
        return self.predictions_per_day / SECONDS_PER_DAY

    @property
    def peak_rate_per_s(self) -> float:
        return self.mean_rate_per_s * self.peak_to_mean

    def utilisation(self, p: Prices) -> float:
        return self.target_utilisation or p.target_utilisation or DEFAULT_TARGET_UTILISATION

    def hourly_rates(self) -> np.ndarray:
        """Requests/s in each of the 24 hours: the peak all day, or the diurnal profile when autoscaled."""
        if not self.autoscale:
            return np.full(24, self.peak_rate_per_s)
        return self.mean_rate_per_s * diurnal_profile(self.peak_to_mean)


def diurnal_profile(peak_to_mean: float) -> np.ndarray:
    """24 hourly weights with mean 1 and max ``peak_to_mean``: ``exp(k·cos(2π(h − 14)/24))`` (a single
    afternoon peak, a night trough), ``k`` found by bisection."""
    h = np.arange(24)
    shape = np.cos(2 * np.pi * (h - 14) / 24)

    def ratio(k: float) -> np.ndarray:
        w = np.exp(k * shape)
        return w / w.mean()

    if peak_to_mean <= 1:
        return np.ones(24)
    lo, hi = 0.0, 60.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ratio(mid).max() < peak_to_mean else (lo, mid)
    return ratio((lo + hi) / 2)


# --------------------------------------------------------------------------------------------------
# What the runs measured (one record per run, so repeats can be bootstrapped)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchMeasure:
    run_id: str
    rows_per_s: float
    cpu_s_per_prediction: float
    cores: float  #: cores the job held (its configuration, not a measurement: never perturbed)
    fixed_s: float  #: the measured start billed per job (process start, or what the run measured)
    memory_gib: float  #: the job process tree's peak RSS (0: not measured)
    build_s: float = 0.0  #: a compiled predictor's measured build, once per model release
    process_start_s: float | None = None  #: fresh interpreter to loaded model; None: not measured
    cpu_model: str = ""


@dataclass(frozen=True)
class ServiceMeasure:
    run_id: str
    capacity_per_s: float  #: at the run's SLO, per replica
    cores: float  #: cores one replica holds
    cpu_s_per_prediction: float
    memory_gib: float  #: one replica's peak RSS (0: not measured)
    slo_ms: float
    build_s: float = 0.0
    service_s: float | None = None  #: mean service time per request (client side)
    cold_start_s: float | None = None  #: server process start to first answer
    capacity_lower_bound: bool = False  #: no capacity search: the sustained offered rate within the SLO
    cpu_model: str = ""


@dataclass(frozen=True)
class HybridMeasure:
    run_id: str
    capacity_per_s: float  #: lookup server, at the run's SLO and hit ratio, per replica
    cores: float
    cpu_s_per_prediction: float
    memory_gib: float
    slo_ms: float
    job_rows_per_s: float  #: the refresh job's read + score + publish rate
    job_fixed_s: float  #: the refresh job's measured start-up (interpreter, imports, model load)
    job_cores: float
    job_cpu_s_per_row: float
    build_s: float = 0.0
    service_s: float | None = None
    cold_start_s: float | None = None
    capacity_lower_bound: bool = False
    cpu_model: str = ""

    def service(self) -> ServiceMeasure:
        names = {f.name for f in fields(ServiceMeasure)}
        return ServiceMeasure(**{k: v for k, v in vars(self).items() if k in names})


#: fields that are not measurements: never perturbed (see ``measured_fields``)
_NOT_MEASURED = {"run_id", "cores", "job_cores", "slo_ms", "cpu_model", "capacity_lower_bound"}


def measured_fields(measure) -> list[str]:
    """The numeric fields of a measure that a run measured (the ones a cost can depend on)."""
    return [
        f.name
        for f in fields(measure)
        if f.name not in _NOT_MEASURED and isinstance(getattr(measure, f.name), (int, float))
    ]


def median(measures, cls):
    """A measure whose every number is the median over ``measures`` (ids joined, flags any, None skipped)."""
    values = {}
    for f in fields(cls):
        col = [getattr(m, f.name) for m in measures]
        if f.name == "run_id":
            values[f.name] = ",".join(col)
        elif isinstance(col[0], bool):
            values[f.name] = any(col)
        elif isinstance(col[0], str):
            values[f.name] = ",".join(dict.fromkeys(c for c in col if c))
        else:
            present = [c for c in col if c is not None]
            values[f.name] = float(np.median(present)) if present else None
    return cls(**values)


# --------------------------------------------------------------------------------------------------
# The bill
# --------------------------------------------------------------------------------------------------


def _empty() -> dict:
    return dict.fromkeys(BREAKDOWN, 0.0)


def _fit(plat: Platform, cores: float, gib: float, cpu_model: str, p: Prices, notes: list, what: str) -> Size:
    family = p.cpu_family(cpu_model)
    size, note = plat.fit(cores, gib, family)
    if note:
        notes.append(note)
    if not gib:
        notes.append(f"{what}: memory not measured; sized by its cores only")
    return size


def _priced_as(role: str, plat: Platform, size: Size, cpu_model: str, p: Prices) -> str:
    measured = cpu_model.split(",")[0] if cpu_model else "an unrecorded CPU"
    family = p.cpu_family(cpu_model)
    on = f"{size.describe()} on {plat.name}"
    if plat.kind == "instances":
        return f"{role}: measured on {measured}{f' ({family})' if family else ''}, priced as {on} ({size.cpu or '?'})"
    return f"{role}: measured on {measured}, priced as {on} (the platform does not choose the CPU family)"


def _job(plat: Platform, size: Size, score_s: float, start_s: float) -> tuple[dict, dict]:
    """One job's seconds and its $ breakdown."""
    startup = plat.startup_s
    run = score_s + start_s + startup
    billed = plat.billed_seconds(run)
    work = score_s + start_s
    money = _empty()
    money["compute"] = work * size.per_s * size.compute_share
    money["memory"] = work * size.per_s * (1 - size.compute_share)
    money["platform_startup"] = startup * size.per_s
    money["billing_minimum"] = (billed - run) * size.per_s
    seconds = {"score": score_s, "measured_start": start_s, "platform_startup": startup, "run": run, "billed": billed}
    return seconds, money


def _add(a: dict, b: dict, times: float = 1.0) -> dict:
    return {k: a.get(k, 0.0) + times * b.get(k, 0.0) for k in BREAKDOWN}


def _finish(day: dict, money: dict, family: str, plat: Platform, w: Workload, p: Prices, extra_priced: list) -> dict:
    """Line items, totals and the fields every day carries."""
    items = {i.name: i.per_day(w.predictions_per_day) for i in p.items_for(family, plat)}
    money["line_items"] = sum(items.values())
    total = sum(money.values())
    priced = [*extra_priced, *(f"{n} ({p.line_items[n].description}, as of {p.line_items[n].as_of})" for n in items)]
    return day | {
        "cost_per_day": total,
        "cost_per_month": total * DAYS_PER_MONTH,
        "cost_per_million": total / w.predictions_per_day * 1e6,
        "breakdown": money,
        "line_items": items,
        "priced_not_measured": priced,
        "cpu_utilisation": day["consumed_core_s"] / day["provisioned_core_s"] if day["provisioned_core_s"] else None,
    }


def _build(build_s: float, family: str, w: Workload, p: Prices) -> tuple[float, float, float]:
    """A compiled predictor's builds: ($/day, provisioned core-s, consumed core-s), one core on the job platform."""
    if not build_s or not w.releases_per_day:
        return 0.0, 0.0, 0.0
    plat = p.platform(family, "job")
    size, _ = plat.fit(1.0, 0.0)
    billed = plat.billed_seconds(build_s)
    return (
        w.releases_per_day * billed * size.per_s,
        w.releases_per_day * billed * size.vcpu,
        w.releases_per_day * build_s,
    )


def _batch_start(m: BatchMeasure, notes: list) -> None:
    if m.process_start_s is None:
        notes.append(
            f"process start not measured for run {m.run_id} (older run): billed only the fixed costs it "
            f"measured ({m.fixed_s:.3g} s); a fresh interpreter, imports and model load take seconds"
        )


def batch_cost(m: BatchMeasure, w: Workload, p: Prices, family: str = "batch") -> dict:
    """A day of batch jobs: each scores its share of the day's volume, billed as the job platform bills."""
    plat = p.platform(family, "job")
    notes: list[str] = []
    _batch_start(m, notes)
    size = _fit(plat, m.cores, m.memory_gib, m.cpu_model, p, notes, "job")
    jobs = 24.0 / w.batch_every_h
    seconds, per_job = _job(plat, size, w.predictions_per_day / jobs / m.rows_per_s, m.fixed_s)
    money = _add(_empty(), per_job, jobs)
    build, build_prov, build_used = _build(m.build_s, family, w, p)
    money["build"] = build
    day = {
        "provisioned_core_s": jobs * seconds["billed"] * size.vcpu + build_prov,
        "consumed_core_s": w.predictions_per_day * m.cpu_s_per_prediction + jobs * m.fixed_s + build_used,
        "units": jobs,
        "unit": "jobs/day",
        "job_wall_s": seconds["score"] + seconds["measured_start"],
        "job_billed_s": seconds["billed"],
        "job_seconds": seconds,
        "build_cost_per_day": build,
        "utilisation": (seconds["score"] + seconds["measured_start"]) / seconds["billed"],
        "platforms": {"job": plat.name},
        "sold_units": {"job": size.describe()},
        "priced_as": [_priced_as("job", plat, size, m.cpu_model, p)],
        "notes": notes,
    }
    return _finish(day, money, family, plat, w, p, _job_priced(plat))


def _job_priced(plat: Platform) -> list[str]:
    out = []
    if plat.startup_s:
        out.append(f"platform_startup ({plat.startup_s:g} s per job on {plat.name}, as of {plat.as_of})")
    if plat.minimum_s or plat.granularity_s > 1:
        out.append(f"billing_minimum ({plat.minimum_s:g} s minimum, {plat.granularity_s:g} s steps on {plat.name})")
    return out


def _replicas(m: ServiceMeasure, w: Workload, p: Prices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rate, needed, held) per hour."""
    rates = w.hourly_rates()
    per_replica = m.capacity_per_s * w.utilisation(p)
    needed = np.where(rates > 0, np.maximum(1, np.ceil(rates / per_replica - 1e-9)), 0)
    held = np.maximum(w.min_replicas, needed)
    return rates, needed, held


def service_cost(m: ServiceMeasure, w: Workload, p: Prices, family: str = "real-time") -> dict:
    """A day of an always-on service: replicas on sold sizes (instances), or per request (a function)."""
    plat = p.platform(family, "service")
    notes: list[str] = []
    if m.capacity_lower_bound:
        notes.append(
            f"capacity {m.capacity_per_s:.4g}/s is a lower bound (the rate run {m.run_id} sustained within its "
            f"{m.slo_ms:g} ms SLO; no capacity search): replicas are an upper bound at high volume"
        )
    size = _fit(plat, m.cores, m.memory_gib, m.cpu_model, p, notes, "replica")
    build, build_prov, build_used = _build(m.build_s, family, w, p)
    money = _empty()
    money["build"] = build
    consumed = w.predictions_per_day * m.cpu_s_per_prediction + build_used
    if plat.kind == "function":
        return _function_cost(m, w, p, family, plat, size, money, consumed, build_prov, notes)
    rates, needed, held = _replicas(m, w, p)
    money["compute"] = float(needed.sum()) * size.hour * size.compute_share
    money["memory"] = float(needed.sum()) * size.hour * (1 - size.compute_share)
    money["availability_floor"] = float((held - needed).sum()) * size.hour
    day = {
        "provisioned_core_s": float(held.sum()) * 3600 * size.vcpu + build_prov,
        "consumed_core_s": consumed,
        "units": int(held.max()),
        "unit": "replicas",
        "job_wall_s": None,
        "replicas_by_hour": [int(x) for x in held],
        "replica_hours": float(held.sum()),
        "build_cost_per_day": build,
        "utilisation": float(rates.sum() / (held * m.capacity_per_s).sum()),
        "target_utilisation": w.utilisation(p),
        "autoscale": w.autoscale,
        "platforms": {"service": plat.name},
        "sold_units": {"service": size.describe()},
        "priced_as": [_priced_as("service", plat, size, m.cpu_model, p)],
        "capacity_lower_bound": m.capacity_lower_bound,
        "notes": notes,
    }
    floor = [f"availability_floor (min_replicas {w.min_replicas})"] if money["availability_floor"] else []
    return _finish(day, money, family, plat, w, p, floor)


def _function_cost(m, w, p, family, plat, size, money, consumed, build_prov, notes) -> dict:
    if m.service_s is None:
        raise BenchError(
            f"run {m.run_id} measured no service time per request: it cannot be priced per request on {plat.name!r}"
        )
    billed = plat.billed_seconds(m.service_s)
    n = w.predictions_per_day
    money["compute"] = n * m.service_s * size.per_s * size.compute_share
    money["memory"] = n * m.service_s * size.per_s * (1 - size.compute_share)
    money["billing_minimum"] = n * (billed - m.service_s) * size.per_s
    money["requests"] = n * plat.per_request
    notes.append(
        f"duration = the measured service time per request ({m.service_s * 1e3:.3g} ms, client side: it "
        f"includes the HTTP round trip), billed in {plat.granularity_s * 1e3:g} ms steps"
    )
    notes.append("no availability floor: the platform keeps its own redundancy; idle time is not billed")
    if m.cold_start_s is not None:
        notes.append(
            f"cold start: the measured process start to first answer, {m.cold_start_s:.3g} s, is a latency "
            "cost of a request that finds no warm instance (not priced)"
        )
    day = {
        "provisioned_core_s": n * billed * size.vcpu + build_prov,
        "consumed_core_s": consumed,
        "units": n,
        "unit": "requests/day",
        "job_wall_s": None,
        "build_cost_per_day": money["build"],
        "utilisation": m.service_s / billed,
        "cold_start_s": m.cold_start_s,
        "platforms": {"service": plat.name},
        "sold_units": {"service": size.describe()},
        "priced_as": [_priced_as("service", plat, size, m.cpu_model, p)],
        "capacity_lower_bound": m.capacity_lower_bound,
        "notes": notes,
    }
    priced = [f"requests (${plat.per_request * 1e6:g} per million on {plat.name}, as of {plat.as_of})"]
    if billed > m.service_s:
        priced.append(f"billing_minimum ({plat.granularity_s * 1e3:g} ms steps on {plat.name})")
    return _finish(day, money, family, plat, w, p, priced)


def hybrid_cost(m: HybridMeasure, w: Workload, p: Prices, family: str = "hybrid") -> dict:
    """A day of hybrid: refresh jobs of the whole customer base + always-on lookup servers."""
    serve = service_cost(m.service(), w, p, family)
    plat = p.platform(family, "job")
    notes = list(serve["notes"])
    notes.append("refresh job memory not measured apart: sized by its cores only")
    size = _fit(plat, m.job_cores, 0.0, m.cpu_model, p, [], "refresh job")
    jobs = 24.0 / w.batch_every_h
    customers = w.customers or w.predictions_per_day
    seconds, per_job = _job(plat, size, customers / m.job_rows_per_s, m.job_fixed_s)
    money = _add(serve["breakdown"], per_job, jobs)
    money["line_items"] = 0.0
    day = serve | {
        "provisioned_core_s": serve["provisioned_core_s"] + jobs * seconds["billed"] * size.vcpu,
        "consumed_core_s": serve["consumed_core_s"] + jobs * customers * m.job_cpu_s_per_row,
        "job_wall_s": seconds["score"] + seconds["measured_start"],
        "job_billed_s": seconds["billed"],
        "job_seconds": seconds,
        "batch_cost_per_day": jobs * sum(per_job.values()),
        "platforms": {"job": plat.name, **serve["platforms"]},
        "sold_units": {"job": size.describe(), **serve["sold_units"]},
        "priced_as": [_priced_as("job", plat, size, m.cpu_model, p), *serve["priced_as"]],
        "notes": notes,
    }
    splat = p.platform(family, "service")
    extra = [s for s in serve["priced_not_measured"] if not s.startswith(tuple(p.line_items))]
    return _finish(day, money, family, splat, w, p, [*_job_priced(plat), *extra])


COSTS = {"job": batch_cost, "always-on": service_cost, "job+always-on": hybrid_cost}
