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
* **a measured component** — a server the run started and metered beside its service (the hybrid's
  online store with ``store=valkey``, the streaming broker with ``source=broker``) — replaces its flat
  line item with the nodes its measurement needs, on the item's sold node (``vcpu``, ``gib``, and
  ``per_month`` per node)::

      by CPU    = ceil(peak rate × measured CPU-s per prediction / (node vCPU × target utilisation))
                  (node vCPU: the ones its engine runs commands on, ``engine_vcpu``, when the item says)
      by memory = ceil(measured peak RSS × scale / (node GiB × NODE_MEMORY_SHARE))
      nodes     = max(min_replicas, by CPU, by memory, 1)

  ``scale`` is the workload's data over the run's: a store holds one entry per customer, so ``customers
  (0: the day's predictions) / rows the run's store held``; a broker's stream holds what is in flight, so
  ``max(1, peak rate / the run's offered rate)``. The peak rate is held all day (a store's nodes are not
  scaled by the hour, even with ``autoscale``); the floor is ``min_replicas``, the same availability the
  bill holds for replicas (a single node is a single point of failure on every answer's path). Nodes
  beyond what CPU and memory need are ``availability_floor``; the rest is ``components``. A component
  that cannot be sized keeps the flat line item, priced, not measured, and says why: the server was
  external (joined by URL: its CPU was not measured here), its CPU was not measured, or the catalogue's
  item gives no ``vcpu``/``gib`` (a price file from before them). A run with no component (SQLite store,
  table source) keeps the flat line item. ``line_item_basis`` says which, per item.
* **no service of its own** (``Pattern.has_service`` False: hybrid ``lookup="direct"``, clients read the
  store) — no replicas and no line item that fronts a service (``fronts_service``: the load balancer, an
  API gateway): clients reach the store's own endpoint. The rest of the family's attach list (the
  store, the refresh's scheduler) stays; the always-on part is the store's nodes.
* **a compiled predictor's build**: once per model release on the job platform (one core).

Every day is a dict; ``breakdown`` splits ``cost_per_day`` exactly (see ``BREAKDOWN``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from bench.analysis.catalogue import DAYS_PER_MONTH, LineItem, Platform, Prices, Size, check_utilisation
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
    "components",  # a measured server's nodes (online store, broker) that its measured CPU and memory need
    "line_items",  # everything outside compute the family needs (priced, not measured)
)
#: the share of a node's memory a sized component may fill: ElastiCache reserves 25% by default
#: (``reserved-memory-percent``) for replication buffers, the fork of a snapshot and fragmentation
NODE_MEMORY_SHARE = 0.75


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
    #: False: the run held no always-on service of its own (``Pattern.has_service``): no replicas billed
    has_service: bool = True
    #: the catalogue line item a server the run metered beside its service stands for ("online_store",
    #: "broker"); "" = none (an SQLite store, a table source): the flat line item applies
    component: str = ""
    component_cpu_s_per_prediction: float | None = None  #: its CPU-s per prediction (None: not measured)
    component_gib: float = 0.0  #: its peak RSS (0: not measured)
    component_scales_with: str = ""  #: what its memory grows with: "customers", "rate" ("" = as measured)
    component_at: float | None = None  #: how much of that the run had (rows its store held, events/s offered)
    component_external: bool = False  #: a server the run joined by URL: its CPU was not measured here


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
    #: False: the run held no always-on service of its own (``Pattern.has_service``): no replicas billed
    has_service: bool = True
    #: the catalogue line item a server the run metered beside its service stands for ("online_store",
    #: "broker"); "" = none (an SQLite store, a table source): the flat line item applies
    component: str = ""
    component_cpu_s_per_prediction: float | None = None  #: its CPU-s per prediction (None: not measured)
    component_gib: float = 0.0  #: its peak RSS (0: not measured)
    component_scales_with: str = ""  #: what its memory grows with: "customers", "rate" ("" = as measured)
    component_at: float | None = None  #: how much of that the run had (rows its store held, events/s offered)
    component_external: bool = False  #: a server the run joined by URL: its CPU was not measured here

    def service(self) -> ServiceMeasure:
        names = {f.name for f in fields(ServiceMeasure)}
        return ServiceMeasure(**{k: v for k, v in vars(self).items() if k in names})


#: fields that are not measurements: never perturbed (see ``measured_fields``)
_NOT_MEASURED = {
    "run_id",
    "cores",
    "job_cores",
    "slo_ms",
    "cpu_model",
    "capacity_lower_bound",
    "has_service",
    "component_at",  # the run's configuration (rows, offered rate), the reference a memory is scaled from
    "component_external",
}


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


def _rate(per_s: float) -> str:
    return f"{per_s:,.0f}/s" if per_s >= 100 else f"{per_s:.3g}/s"


def _priced(item: LineItem) -> str:
    return f"{item.name} ({item.description}, as of {item.as_of})"


def _component(m, w: Workload, p: Prices) -> dict | None:
    """The server the run metered beside its service (``m.component``) on its line item's nodes, or why
    it cannot be sized (``sized`` False: the flat line item applies); None when the run metered none."""
    name = getattr(m, "component", "") if m is not None else ""
    if not name:
        return None
    what = name.replace("_", " ")
    item = p.line_items.get(name)
    if item is None:
        return {"name": name, "sized": False, "basis": "", "note": f"the catalogue has no {name!r} line item: the "
                f"measured {what} is not priced"}  # fmt: skip
    cpu = m.component_cpu_s_per_prediction
    why = ""
    if m.component_external:
        why = "an external server (joined by URL): its CPU was not measured here"
    elif cpu is None:
        why = f"the run did not measure the {what}'s CPU"
    elif not item.sized:
        why = (
            f"the catalogue's {name!r} entry gives no vcpu/gib (a price file from before them), so the measured "
            f"CPU per prediction ({cpu * 1e6:.3g} µs) cannot size it"
        )
    if why:
        flat = f"priced, not measured: {why} ({item.description}, as of {item.as_of})"
        return {"name": name, "sized": False, "basis": flat, "note": f"{what}: {flat}"}
    u = w.utilisation(p)
    peak = w.peak_rate_per_s
    by_cpu = math.ceil(peak * cpu / (item.command_vcpu * u) - 1e-9)
    scale, scaled_by = 1.0, "as measured"
    if m.component_at:
        if m.component_scales_with == "customers":
            customers = w.customers or w.predictions_per_day
            scale, scaled_by = (
                customers / m.component_at,
                f"× {customers:,.0f} customers / {m.component_at:,.0f} rows held",
            )
        elif m.component_scales_with == "rate":
            scale = max(1.0, peak / m.component_at)
            scaled_by = f"× max(1, peak {_rate(peak)} / {_rate(m.component_at)} offered)"
    memory = m.component_gib * scale
    by_memory = math.ceil(memory / (item.gib * NODE_MEMORY_SHARE) - 1e-9) if memory else 0
    needed = max(1, by_cpu, by_memory)
    nodes = max(w.min_replicas, needed)
    vcpus = (
        f"the {item.command_vcpu:g} vCPU its engine runs commands on"
        if item.command_vcpu < item.vcpu
        else f"its {item.vcpu:g} vCPU"
    )
    memory_text = (
        f"{by_memory} for {memory:.3g} GiB (the measured peak RSS {scaled_by}, filled to {NODE_MEMORY_SHARE:.0%})"
        if memory
        else "memory not measured"
    )
    basis = (
        f"sized by the measured CPU per prediction ({cpu * 1e6:.3g} µs) → {nodes} node(s) of {item.describe_node()}: "
        f"{by_cpu} for CPU ({_rate(peak)} at the peak, all day, at {u:.0%} of {vcpus}), {memory_text}, "
        f"at least {w.min_replicas} (min_replicas, for availability)"
    )
    rates = w.hourly_rates()
    return {
        "name": name,
        "sized": True,
        "basis": basis,
        "note": "" if memory else f"{what}: memory not measured; sized by its CPU only",
        "node": item.describe_node(),
        "nodes": nodes,
        "needed": needed,
        "by_cpu": by_cpu,
        "by_memory": by_memory,
        "memory_gib": memory,
        "cpu_us_per_prediction": cpu * 1e6,
        "cost_per_day": nodes * item.node_per_day + item.per_million * w.predictions_per_day / 1e6,
        "needed_per_day": needed * item.node_per_day + item.per_million * w.predictions_per_day / 1e6,
        "floor_per_day": (nodes - needed) * item.node_per_day,
        "provisioned_core_s": nodes * item.vcpu * SECONDS_PER_DAY,
        "consumed_core_s": w.predictions_per_day * cpu,
        "utilisation": float(rates.mean() * cpu / (nodes * item.command_vcpu)),
    }


def _finish(
    day: dict, money: dict, family: str, plat: Platform, w: Workload, p: Prices, extra_priced: list, m=None
) -> dict:
    """Line items (flat, or a measured component's nodes), totals and the fields every day carries."""
    service = getattr(m, "has_service", True)
    comp = _component(m, w, p)
    flat = p.items_for(family, plat, service)
    notes = list(day.get("notes", []))
    components = {}
    if comp and comp["sized"]:
        flat = [i for i in flat if i.name != comp["name"]]
        money["components"] = comp["needed_per_day"]
        money["availability_floor"] += comp["floor_per_day"]
        components[comp["name"]] = {k: v for k, v in comp.items() if k not in ("name", "sized", "note")}
        day = day | {
            "provisioned_core_s": day["provisioned_core_s"] + comp["provisioned_core_s"],
            "consumed_core_s": day["consumed_core_s"] + comp["consumed_core_s"],
        }
        if not service:  # what stays on is the component: its nodes are the units, its load the utilisation
            day |= {"units": comp["nodes"], "unit": f"{comp['name'].replace('_', ' ')} nodes"}
            day |= {"utilisation": comp["utilisation"]}
    items = {i.name: i.per_day(w.predictions_per_day) for i in flat}
    money["line_items"] = sum(items.values())
    basis = {n: f"priced, not measured ({p.line_items[n].description}, as of {p.line_items[n].as_of})" for n in items}
    if comp and (comp["sized"] or comp["name"] in items):
        basis[comp["name"]] = comp["basis"]
    if comp and comp["note"] and (comp["sized"] or comp["name"] in items or not comp["basis"]):
        notes.append(comp["note"])
    total = sum(money.values())
    priced = [*extra_priced, *(_priced(i) for i in flat)]
    return day | {
        "cost_per_day": total,
        "cost_per_month": total * DAYS_PER_MONTH,
        "cost_per_million": total / w.predictions_per_day * 1e6,
        "breakdown": money,
        "line_items": items,
        "components": components,
        "line_item_basis": basis,
        "priced_not_measured": priced,
        "notes": notes,
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
    """A day of an always-on service: replicas on sold sizes (instances), or per request (a function);
    none for a run with no service of its own. Plus its line items or its measured component."""
    day, money, plat, priced = _serve(m, w, p, family)
    return _finish(day, money, family, plat, w, p, priced, m)


def _no_service(m: ServiceMeasure, w: Workload, p: Prices, family: str, plat: Platform) -> tuple[dict, dict]:
    """The always-on part of a run that held no service of its own: no replicas (its component, sized in
    ``_finish``, is what stays on)."""
    build, build_prov, build_used = _build(m.build_s, family, w, p)
    money = _empty()
    money["build"] = build
    day = {
        "provisioned_core_s": build_prov,
        "consumed_core_s": build_used,
        "units": 0,
        "unit": "replicas",
        "job_wall_s": None,
        "replicas_by_hour": [0] * 24,
        "replica_hours": 0.0,
        "build_cost_per_day": build,
        "utilisation": None,
        "target_utilisation": w.utilisation(p),
        "autoscale": w.autoscale,
        "platforms": {},
        "sold_units": {},
        "priced_as": [],
        "capacity_lower_bound": False,
        "has_service": False,
        "notes": [
            f"no always-on service of its own (run {m.run_id}: its consumers read the store directly): no "
            f"replicas on {plat.name}, and no line item that fronts a service (a load balancer); what stays "
            "on is the store"
        ],
    }
    return day, money


def _serve(m: ServiceMeasure, w: Workload, p: Prices, family: str) -> tuple[dict, dict, Platform, list[str]]:
    """The always-on part of a day before its line items: (day, money, platform, what is priced)."""
    plat = p.platform(family, "service")
    if not m.has_service:
        return (*_no_service(m, w, p, family, plat), plat, [])
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
        day, money, priced = _function_day(m, w, p, plat, size, money, consumed, build_prov, notes)
        return day, money, plat, priced
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
        "has_service": True,
        "notes": notes,
    }
    floor = [f"availability_floor (min_replicas {w.min_replicas})"] if money["availability_floor"] else []
    return day, money, plat, floor


def _function_day(m, w, p, plat, size, money, consumed, build_prov, notes) -> tuple[dict, dict, list[str]]:
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
        "has_service": True,
        "notes": notes,
    }
    priced = [f"requests (${plat.per_request * 1e6:g} per million on {plat.name}, as of {plat.as_of})"]
    if billed > m.service_s:
        priced.append(f"billing_minimum ({plat.granularity_s * 1e3:g} ms steps on {plat.name})")
    return day, money, priced


def hybrid_cost(m: HybridMeasure, w: Workload, p: Prices, family: str = "hybrid") -> dict:
    """A day of hybrid: refresh jobs of the whole customer base + always-on lookup servers (none when
    clients read the store directly) + its store (measured nodes, or the flat line item)."""
    serve, serve_money, splat, serve_priced = _serve(m.service(), w, p, family)
    plat = p.platform(family, "job")
    notes = list(serve["notes"])
    notes.append("refresh job memory not measured apart: sized by its cores only")
    size = _fit(plat, m.job_cores, 0.0, m.cpu_model, p, [], "refresh job")
    jobs = 24.0 / w.batch_every_h
    customers = w.customers or w.predictions_per_day
    seconds, per_job = _job(plat, size, customers / m.job_rows_per_s, m.job_fixed_s)
    money = _add(serve_money, per_job, jobs)
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
    return _finish(day, money, family, splat, w, p, [*_job_priced(plat), *serve_priced], m)


COSTS = {"job": batch_cost, "always-on": service_cost, "job+always-on": hybrid_cost}
