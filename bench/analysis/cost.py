"""Cost model: what each pattern costs per day and per million predictions, from measured results only.

Prices come from a YAML table (``bench/prices.yaml``: named presets of illustrative list prices,
dated; override by file or keyword). A workload says how many predictions a day, how often batch
runs, how peaky the request rate is and how many replicas availability demands. Then:

* **batch** — per job: rows / measured rows-per-second + measured fixed costs (model load, Ray start
  where used), billed on the job's cores and memory at the price's granularity and minimum;
* **always-on** (per-request backends, streaming configurations) — replicas × cores × 24 h, with
  replicas = max(min replicas, ceil(peak rate / measured capacity per replica at the SLO));
* **hybrid** — its batch jobs (each re-scores the whole customer base at the measured job rate, plus
  the job's measured start-up) + its always-on lookup servers, sized like any always-on service by
  the lookup capacity measured at the run's hit ratio;
* **a compiled predictor's build** (lleaves) — paid once per model release, not per job or replica:
  its measured compile time on one core, ``releases_per_day`` times a day (the object file is then
  shipped to every job and replica of the same machine type);
* **consumed** core-seconds (measured CPU per prediction × volume) are shown beside the
  **provisioned** ones (what is billed, idle included).

A pattern without the measurement it needs (no valid run, no capacity) gets no cost and a reason,
never a guess. Ratios carry a bootstrap interval over repeated runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from bench.core.errors import BenchError
from bench.core.params import require_positive
from bench.patterns import registry
from bench.results import RunResult

PRICES_FILE = Path(__file__).with_name("prices.yaml")
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Prices:
    """One price preset: per vCPU-hour and per GiB-hour, billed in ``granularity_s`` steps with a minimum."""

    name: str
    vcpu_hour: float
    gib_hour: float
    granularity_s: float = 1.0
    minimum_s: float = 0.0
    as_of: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        require_positive(f"prices {self.name!r}", vcpu_hour=self.vcpu_hour, granularity_s=self.granularity_s)
        for name in ("gib_hour", "minimum_s"):
            if getattr(self, name) < 0:
                raise BenchError(f"prices {self.name!r}: {name!r} must be >= 0, got {getattr(self, name)}")

    def billed_seconds(self, seconds: float) -> float:
        """What a run of ``seconds`` is billed for: rounded up to the granularity, at least the minimum."""
        return max(math.ceil(seconds / self.granularity_s) * self.granularity_s, self.minimum_s)

    def per_hour(self, cores: float, gib: float) -> float:
        return cores * self.vcpu_hour + gib * self.gib_hour


def load_prices(path: str | Path | None = None, preset: str | None = None, **overrides: float) -> Prices:
    """A preset from a price file (default: the repo's table), with any field overridden by keyword."""
    path = Path(path) if path else PRICES_FILE
    try:
        table = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BenchError(f"price file {str(path)!r} cannot be read as YAML: {exc}") from exc
    presets = (table or {}).get("presets") if isinstance(table, dict) else None
    if not isinstance(presets, dict) or not presets:
        raise BenchError(f"price file {str(path)!r} has no 'presets' mapping")
    name = preset or table.get("default") or next(iter(presets))
    if name not in presets:
        raise BenchError(f"price preset {name!r} is not in {str(path)!r}; expected one of: {', '.join(presets)}")
    known = {f.name for f in fields(Prices)}
    unknown = set(presets[name]) - known | set(overrides) - known
    if unknown:
        raise BenchError(f"price preset {name!r}: unknown field(s) {sorted(unknown)}; expected {sorted(known)}")
    return Prices(**{"name": name, "as_of": str(table.get("as_of", "")), **presets[name], **overrides})


@dataclass(frozen=True)
class Workload:
    """The business side: volume, batch schedule, how peaky requests are, availability."""

    predictions_per_day: float
    batch_every_h: float = 24.0  #: a batch job runs this often
    peak_to_mean: float = 3.0  #: peak request rate over the mean rate
    min_replicas: int = 2  #: always-on replicas kept for availability, however low the load
    customers: float = 0.0  #: hybrid: scores pre-computed per batch (0 = one per prediction of the day)
    releases_per_day: float = 1.0  #: model releases a day; each rebuilds a compiled predictor once

    def __post_init__(self) -> None:
        require_positive(
            "Workload",
            predictions_per_day=self.predictions_per_day,
            batch_every_h=self.batch_every_h,
            min_replicas=self.min_replicas,
        )
        if self.peak_to_mean < 1:
            raise BenchError(f"Workload 'peak_to_mean' must be >= 1, got {self.peak_to_mean}")
        if self.releases_per_day < 0:
            raise BenchError(f"Workload 'releases_per_day' must be >= 0, got {self.releases_per_day}")
        if self.customers < 0:
            raise BenchError(f"Workload 'customers' must be >= 0, got {self.customers}")
        if self.batch_every_h > 24 * 365:
            raise BenchError(f"Workload 'batch_every_h' must be at most a year, got {self.batch_every_h}")

    @property
    def peak_rate_per_s(self) -> float:
        return self.predictions_per_day / SECONDS_PER_DAY * self.peak_to_mean


# --------------------------------------------------------------------------------------------
# What each pattern's runs measured (one record per run, so repeats can be bootstrapped)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchMeasure:
    run_id: str
    rows_per_s: float
    cpu_s_per_prediction: float
    cores: float
    fixed_s: float  #: measured fixed costs of one job (model load, Ray start, ...)
    memory_gib: float
    build_s: float = 0.0  #: a compiled predictor's measured build, once per model release


@dataclass(frozen=True)
class ServiceMeasure:
    run_id: str
    capacity_per_s: float  #: at the run's SLO, per replica
    cores: float  #: cores one replica holds
    cpu_s_per_prediction: float
    memory_gib: float  #: 0 where the run did not measure it
    slo_ms: float
    build_s: float = 0.0  #: a compiled predictor's measured build, once per model release


@dataclass(frozen=True)
class HybridMeasure:
    run_id: str
    capacity_per_s: float  #: lookup server, at the run's SLO and hit ratio, per replica
    cores: float  #: cores one lookup replica holds
    cpu_s_per_prediction: float  #: lookup server CPU per answer
    memory_gib: float
    slo_ms: float
    job_rows_per_s: float  #: the batch job's read + score + publish rate
    job_fixed_s: float  #: the batch job's start-up (interpreter, imports, model load)
    job_cores: float
    job_cpu_s_per_row: float  #: the job's whole CPU over its rows (start-up included)
    build_s: float = 0.0  #: a compiled predictor's measured build, once per model release


#: fixed costs paid once per model release rather than once per job or replica start
PER_RELEASE_COSTS = ("predictor_compile",)


def cost_kind(r: RunResult) -> str:
    """How a day of the run's pattern is billed (its registry entry's ``cost_kind``)."""
    return registry.get(r.pattern).cost_kind


def predictor_of(r: RunResult) -> str:
    """The predictor backend a run scored with (runs from before the parameter existed: lightgbm)."""
    return r.params.get("predictor") or "lightgbm"


def _fixed(m: dict) -> tuple[float, float]:
    """A run's fixed costs split into (per job or start, per model release)."""
    costs = m.get("fixed_costs_s") or {}
    release = sum(v for k, v in costs.items() if k in PER_RELEASE_COSTS)
    return sum(costs.values()) - release, release


def batch_measures(runs: Sequence[RunResult], engine: str = "local", predictor: str = "lightgbm") -> list[BatchMeasure]:
    """Valid batch runs of ``engine`` and ``predictor`` at the largest measured job size (throughput's plateau)."""
    pool = [
        r
        for r in runs
        if cost_kind(r) == "job" and r.valid and r.backend.startswith(engine) and predictor_of(r) == predictor
    ]
    if not pool:
        return []
    size = max(r.metrics["predictions"] for r in pool)
    out = []
    for r in pool:
        m = r.metrics
        if m["predictions"] != size or not m["wall_seconds"]:
            continue
        out.append(
            BatchMeasure(
                run_id=r.run_id,
                rows_per_s=m["throughput_per_s"],
                cpu_s_per_prediction=m["cpu_seconds"] / m["predictions"],
                cores=m["provisioned_core_seconds"] / m["wall_seconds"],
                fixed_s=_fixed(m)[0],
                memory_gib=m.memory.gib,  # the job process tree's peak RSS
                build_s=_fixed(m)[1],
            )
        )
    return out


def service_measures(runs: Sequence[RunResult], pattern: str, backend: str) -> list[ServiceMeasure]:
    """Valid runs of one always-on configuration that found a capacity under their SLO."""
    out = []
    for r in runs:
        if r.pattern != pattern or r.backend != backend or not r.valid:
            continue
        m = r.metrics
        cap = m.get("capacity") or {}
        if not cap.get("rate_per_s") or not m.get("wall_seconds") or not m.get("predictions"):
            continue
        out.append(
            ServiceMeasure(
                run_id=r.run_id,
                capacity_per_s=cap["rate_per_s"],
                cores=m["provisioned_core_seconds"] / m["wall_seconds"],
                cpu_s_per_prediction=m["cpu_seconds"] / m["predictions"],
                # one replica's peak RSS: the Ray cluster with its actors (streaming), the server (per
                # request, hybrid: it was priced at $0 before the typed memory block)
                memory_gib=m.memory.gib,
                slo_ms=cap["slo_ms"],
                build_s=_fixed(m)[1],
            )
        )
    return out


def hybrid_measures(runs: Sequence[RunResult], backend: str) -> list[HybridMeasure]:
    """Valid hybrid runs of one configuration with a lookup capacity and a successful batch job."""
    out = []
    for r in runs:
        if cost_kind(r) != "job+always-on" or r.backend != backend or not r.valid:
            continue
        job = r.metrics.get("job") or {}
        service = service_measures([r], r.pattern, backend)
        if not service or not job:
            continue
        out.append(
            HybridMeasure(
                **vars(service[0]),
                job_rows_per_s=job["rows_per_s"],
                job_fixed_s=job["fixed_s"],
                job_cores=job["cores"],
                job_cpu_s_per_row=job["cpu_s"] / job["rows"],
            )
        )
    return out


def _median(measures: Sequence, cls):
    """A measure whose every number is the median over ``measures`` (run ids joined)."""
    values = {}
    for f in fields(cls):
        col = [getattr(m, f.name) for m in measures]
        values[f.name] = ",".join(col) if f.name == "run_id" else float(np.median(col))
    return cls(**values)


# --------------------------------------------------------------------------------------------
# Cost of one day
# --------------------------------------------------------------------------------------------


def batch_cost(m: BatchMeasure, w: Workload, p: Prices) -> dict:
    """A day of batch jobs: each job scores its share of the day's volume, billed by the price's rules."""
    jobs = 24.0 / w.batch_every_h
    rows = w.predictions_per_day / jobs
    wall = rows / m.rows_per_s + m.fixed_s
    billed = p.billed_seconds(wall)
    return _with_build(
        {
            "cost_per_day": jobs * billed / 3600 * p.per_hour(m.cores, m.memory_gib),
            "provisioned_core_s": jobs * billed * m.cores,
            "consumed_core_s": w.predictions_per_day * m.cpu_s_per_prediction + jobs * m.fixed_s,
            "units": jobs,
            "unit": "jobs/day",
            "job_wall_s": wall,
        },
        m.build_s,
        w,
        p,
    )


def _with_build(day: dict, build_s: float, w: Workload, p: Prices) -> dict:
    """A day's cost plus the compiled predictor's builds (one core each, ``releases_per_day``)."""
    if not build_s or not w.releases_per_day:
        return day | {"build_cost_per_day": 0.0}
    billed = p.billed_seconds(build_s)
    cost = w.releases_per_day * billed / 3600 * p.per_hour(1.0, 0.0)
    return day | {
        "cost_per_day": day["cost_per_day"] + cost,
        "build_cost_per_day": cost,
        "provisioned_core_s": day["provisioned_core_s"] + w.releases_per_day * billed,
        "consumed_core_s": day["consumed_core_s"] + w.releases_per_day * build_s,
    }


def service_cost(m: ServiceMeasure, w: Workload, p: Prices) -> dict:
    """A day of always-on replicas, enough for the peak rate at the measured capacity (and never fewer
    than the availability minimum)."""
    replicas = max(w.min_replicas, math.ceil(w.peak_rate_per_s / m.capacity_per_s))
    day = {
        "cost_per_day": replicas * 24 * p.per_hour(m.cores, m.memory_gib),
        "provisioned_core_s": replicas * m.cores * SECONDS_PER_DAY,
        "consumed_core_s": w.predictions_per_day * m.cpu_s_per_prediction,
        "units": replicas,
        "unit": "replicas",
        "job_wall_s": None,
    }
    return _with_build(day, m.build_s, w, p)


def hybrid_cost(m: HybridMeasure, w: Workload, p: Prices) -> dict:
    """A day of hybrid: its batch refreshes of the whole customer base plus its always-on lookup servers."""
    jobs = 24.0 / w.batch_every_h
    customers = w.customers or w.predictions_per_day
    wall = customers / m.job_rows_per_s + m.job_fixed_s
    billed = p.billed_seconds(wall)
    batch = jobs * billed / 3600 * p.per_hour(m.job_cores, 0.0)
    serve = service_cost(
        ServiceMeasure(m.run_id, m.capacity_per_s, m.cores, m.cpu_s_per_prediction, m.memory_gib, m.slo_ms), w, p
    )
    day = serve | {
        "cost_per_day": batch + serve["cost_per_day"],
        "batch_cost_per_day": batch,
        "provisioned_core_s": serve["provisioned_core_s"] + jobs * billed * m.job_cores,
        "consumed_core_s": serve["consumed_core_s"] + jobs * customers * m.job_cpu_s_per_row,
        "job_wall_s": wall,
    }
    return _with_build(day, m.build_s, w, p)


@dataclass(frozen=True)
class Option:
    """One costed way of serving: a label, its measured runs, and how a day of it is priced."""

    label: str
    kind: str  #: how it is billed: a pattern's cost_kind, "job", "always-on" or "job+always-on"
    measures: tuple

    def cost(self, w: Workload, p: Prices, measure=None) -> dict:
        m = measure or _median(self.measures, type(self.measures[0]))
        return _COSTS[self.kind](m, w, p)


_COSTS = {"job": batch_cost, "always-on": service_cost, "job+always-on": hybrid_cost}


def options(runs: Sequence[RunResult]) -> tuple[list[Option], list[dict]]:
    """Every pattern configuration the results can cost, and the ones they cannot (with the reason)."""
    found, missing = [], []
    predictors = sorted({predictor_of(r) for r in runs if cost_kind(r) == "job"} | {"lightgbm"})
    for engine in ("local", "ray"):
        for predictor in predictors:
            ms = batch_measures(runs, engine, predictor)
            label = f"batch ({engine})" if predictor == "lightgbm" else f"batch ({engine}, {predictor})"
            if ms:
                found.append(Option(label, "job", tuple(ms)))
            elif engine == "local" and predictor == "lightgbm":
                missing.append({"option": "batch", "reason": "no valid batch run"})
    # always-on patterns, then job + always-on ones; within a kind by family (real-time, streaming)
    served = [p for p in registry.PATTERNS.values() if p.cost_kind in ("always-on", "job+always-on")]
    for spec in sorted(served, key=lambda p: (p.cost_kind != "always-on", p.family)):
        for backend in sorted({r.backend for r in runs if r.pattern == spec.name and serving(r)}):
            if backend.startswith("inprocess"):
                continue  # a library call inside the caller's process: not a service one can buy
            label = f"{spec.family} {backend}"
            if spec.cost_kind == "job+always-on":
                ms = hybrid_measures(runs, backend)
            else:
                ms = service_measures(runs, spec.name, backend)
            if ms:
                found.append(Option(label, spec.cost_kind, tuple(ms)))
            else:
                missing.append({"option": label, "reason": "no valid run with a capacity at its SLO"})
    for spec in served:
        if spec.cost_kind == "job+always-on" and not any(r.pattern == spec.name for r in runs):
            missing.append({"option": spec.family, "reason": f"no {spec.name} run"})
    return found, missing


def serving(r: RunResult) -> bool:
    """Runs that size a service: not fault runs, and not per-request runs computing an extra aggregate (C10)."""
    p = r.params
    return not (p.get("fault_kill_at_s") or p.get("fault_batch_kill_at_s") or p.get("aggregate"))


def sweep(
    runs: Sequence[RunResult],
    prices: Prices,
    base: Workload,
    volumes: Sequence[float] = tuple(np.logspace(3, 9, 25)),
) -> pl.DataFrame:
    """Cost per day and per million predictions of every costed option at each daily volume."""
    opts, _ = options(runs)
    rows = []
    for v in volumes:
        w = replace(base, predictions_per_day=float(v))
        for o in opts:
            c = o.cost(w, prices)
            rows.append(
                {
                    "predictions_per_day": float(v),
                    "option": o.label,
                    "kind": o.kind,
                    "cost_per_day": c["cost_per_day"],
                    "cost_per_million": c["cost_per_day"] / v * 1e6,
                    "provisioned_core_s": c["provisioned_core_s"],
                    "consumed_core_s": c["consumed_core_s"],
                    "units": c["units"],
                    "unit": c["unit"],
                    "runs": len(o.measures),
                }
            )
    return pl.DataFrame(rows)


def crossovers(table: pl.DataFrame, reference: str = "batch (local)") -> pl.DataFrame:
    """Daily volumes where an option's cost crosses the reference's (log-linear interpolation)."""
    if table.is_empty() or reference not in table["option"].to_list():
        return pl.DataFrame()
    ref = table.filter(pl.col("option") == reference).sort("predictions_per_day")
    out = []
    for option in sorted(set(table["option"]) - {reference}):
        other = table.filter(pl.col("option") == option).sort("predictions_per_day")
        v = ref["predictions_per_day"].to_numpy()
        d = np.log(other["cost_per_day"].to_numpy()) - np.log(ref["cost_per_day"].to_numpy())
        for i in np.nonzero(np.sign(d[:-1]) * np.sign(d[1:]) < 0)[0]:
            t = d[i] / (d[i] - d[i + 1])
            at = float(np.exp(np.log(v[i]) + t * (np.log(v[i + 1]) - np.log(v[i]))))
            cheaper = reference if d[i + 1] > 0 else option
            out.append({"option": option, "reference": reference, "crosses_at_per_day": at, "cheaper_above": cheaper})
    return pl.DataFrame(out)


def ratio_interval(
    option: Option,
    reference: Option,
    w: Workload,
    p: Prices,
    *,
    draws: int = 2000,
    seed: int = 0,
) -> dict:
    """Cost ratio option/reference with a 95% bootstrap interval over each side's repeated runs."""
    rng = np.random.default_rng(seed)
    point = option.cost(w, p)["cost_per_day"] / reference.cost(w, p)["cost_per_day"]
    ratios = []
    for _ in range(draws):
        a = [option.measures[i] for i in rng.integers(0, len(option.measures), len(option.measures))]
        b = [reference.measures[i] for i in rng.integers(0, len(reference.measures), len(reference.measures))]
        ma, mb = _median(a, type(a[0])), _median(b, type(b[0]))
        ratios.append(option.cost(w, p, ma)["cost_per_day"] / reference.cost(w, p, mb)["cost_per_day"])
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return {
        "ratio": point,
        "ci95_low": float(lo),
        "ci95_high": float(hi),
        "runs": (len(option.measures), len(reference.measures)),
    }
