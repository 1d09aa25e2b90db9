"""Cost model: what each pattern costs per day, shaped like a bill, from measured results only.

The pieces: ``catalogue`` (the dated price catalogue: sold sizes per platform, billing rules, line
items, presets — ``prices.yaml``), ``bill`` (a day of one pattern priced as a bill charges it: the
formulas per billed kind are in its docstring) and this module, which reads the runs into measures,
lists the options they can cost, sweeps volumes, finds crossovers and bootstraps ratios.

A pattern without the measurement it needs (no valid run, no capacity) gets no cost and a reason,
never a guess. Ratios carry a bootstrap interval over repeated runs — or say that neither side depends
on a measured quantity (a floor or a minimum sets both), when no interval can mean anything.

The cost dict of ``Option.cost`` (every value per day unless named otherwise):

* ``cost_per_day``, ``cost_per_month``, ``cost_per_million``;
* ``breakdown``: $/day by part, summing to ``cost_per_day`` (``bill.BREAKDOWN``: compute, memory,
  availability_floor, billing_minimum, platform_startup, requests, build, components, line_items);
* ``line_items``: {name: $/day} (priced, not measured); ``priced_not_measured``: what in the bill
  comes from the catalogue, not from a run, each with its date; ``components``: {name: {nodes, needed,
  by_cpu, by_memory, node, cost_per_day, ...}} for a server the run measured (its online store, its
  broker), sized on its line item's nodes; ``line_item_basis``: {name: "priced, not measured (…)" or
  "sized by the measured CPU per prediction (X µs) → N node(s) …"} for every item of either kind;
* ``units`` + ``unit`` (jobs/day, replicas at the busiest hour, requests/day), ``replicas_by_hour``,
  ``replica_hours``, ``job_wall_s`` (scoring + measured start), ``job_billed_s``, ``job_seconds``
  ({score, measured_start, platform_startup, run, billed} of one job);
* ``utilisation`` (always-on: load over the capacity at the SLO held; jobs and functions: busy share
  of the billed time), ``cpu_utilisation`` (consumed / provisioned core-seconds),
  ``provisioned_core_s``, ``consumed_core_s``, ``target_utilisation``, ``autoscale``;
* ``platforms`` {role: platform}, ``sold_units`` {role: size}, ``priced_as`` (e.g. "service: measured
  on AMD EPYC … (amd), priced as m7a.medium (1 vCPU, 4 GiB) on ec2-on-demand (amd)");
* ``measured``: False when the cost is unchanged with every measured quantity halved or doubled (it
  rests on floors and minimums only); ``notes``: what was not measured, lower bounds, cold starts;
* ``build_cost_per_day``, hybrid's ``batch_cost_per_day``, a function's ``cold_start_s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from bench.analysis import bill
from bench.analysis.bill import (
    BREAKDOWN,
    SECONDS_PER_DAY,
    BatchMeasure,
    HybridMeasure,
    ServiceMeasure,
    Workload,
    batch_cost,
    hybrid_cost,
    service_cost,
)
from bench.analysis.catalogue import PRICES_FILE, Catalogue, Prices, load_catalogue, load_prices
from bench.patterns import registry
from bench.results import RunResult

__all__ = [
    "BREAKDOWN",
    "PRICES_FILE",
    "SECONDS_PER_DAY",
    "BatchMeasure",
    "Catalogue",
    "HybridMeasure",
    "Option",
    "Prices",
    "ServiceMeasure",
    "Workload",
    "batch_cost",
    "batch_measures",
    "component",
    "cost_kind",
    "crossovers",
    "has_service",
    "hybrid_cost",
    "hybrid_measures",
    "load_catalogue",
    "load_prices",
    "options",
    "predictor_of",
    "ratio_interval",
    "service_cost",
    "service_measures",
    "serving",
    "sweep",
]

#: fixed costs paid once per model release rather than once per job or replica start
PER_RELEASE_COSTS = ("predictor_compile",)
#: the batch pattern's measured fresh interpreter to loaded model (it includes the model load)
PROCESS_START = "process_start"
#: a server a run starts and meters beside its service, by its metrics block (its meter label is the
#: same name): the catalogue line item it stands for, and what its memory grows with — a store holds
#: one entry per customer; a broker's stream what is in flight, which grows with the rate
COMPONENTS = {"store": ("online_store", "customers"), "broker": ("broker", "rate")}


def cost_kind(r: RunResult) -> str:
    """How a day of the run's pattern is billed (its registry entry's ``cost_kind``)."""
    return registry.get(r.pattern).cost_kind


def predictor_of(r: RunResult) -> str:
    """The predictor backend a run scored with (runs from before the parameter existed: lightgbm)."""
    return r.params.get("predictor") or "lightgbm"


def _cpu_model(r: RunResult) -> str:
    return str(((r.provenance or {}).get("machine") or {}).get("cpu_model") or "")


def _fixed(m) -> tuple[float, float, float | None]:
    """A run's fixed costs as (billed per job or start, per model release, the measured process start).

    With ``process_start`` measured it replaces ``model_load`` (which it includes); other start-ups
    (Ray) are added. Without it: every per-job fixed cost the run measured."""
    costs = dict(m.get("fixed_costs_s") or {})
    release = sum(v for k, v in costs.items() if k in PER_RELEASE_COSTS)
    per_job = {k: v for k, v in costs.items() if k not in PER_RELEASE_COSTS}
    start = per_job.get(PROCESS_START)
    if start is not None:
        per_job.pop("model_load", None)
    return sum(per_job.values()), release, start


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
        per_job, release, start = _fixed(m)
        out.append(
            BatchMeasure(
                run_id=r.run_id,
                rows_per_s=m["throughput_per_s"],
                cpu_s_per_prediction=m["cpu_seconds"] / m["predictions"],
                cores=m["provisioned_core_seconds"] / m["wall_seconds"],
                fixed_s=per_job,
                memory_gib=m.memory.gib,  # the job process tree's peak RSS
                build_s=release,
                process_start_s=start,
                cpu_model=_cpu_model(r),
            )
        )
    return out


def _capacity(r: RunResult) -> tuple[float, float, bool] | None:
    """(rate per replica, SLO ms, lower bound?): the capacity search's, else the offered rate a valid run
    sustained with its p99 within its SLO and no errors (a lower bound on the capacity)."""
    m = r.metrics
    cap = m.get("capacity") or {}
    if cap.get("rate_per_s"):
        return cap["rate_per_s"], cap["slo_ms"], False
    slo = r.params.get("slo_ms")
    latency = m.get(registry.get(r.pattern).latency_key) or {}
    errors = m.get("errors") or {}
    offered = m.get("offered_rate_per_s")
    if (
        slo
        and offered
        and m.get("sustainable") is True
        and latency.get("p99") is not None
        and latency["p99"] * 1e3 <= slo
        and not any(errors.values())
    ):
        return offered, slo, True
    return None


def _cold_start(m) -> float | None:
    costs = m.get("fixed_costs_s") or {}
    # backend_start spans the process start to its first answer (it contains server_start)
    for key in ("backend_start", "server_start"):
        if costs.get(key):
            return costs[key]
    return None


def has_service(r: RunResult) -> bool:
    """Whether the run kept an always-on service of its own (``Pattern.has_service``): False for a hybrid
    whose clients read the store directly, whose bill then holds no replicas."""
    return registry.get(r.pattern).has_service(r.params)


def component(r: RunResult) -> dict:
    """The server the run started and metered beside its service (``COMPONENTS``: its online store, its
    broker), as the measure's ``component*`` fields, and how much of the run's own CPU-s and peak RSS
    were that server's (``{}`` and zeros when it metered none: an SQLite store, a table source).

    A block is a server when it measured a CPU or was joined by URL (``external``); a joined server's
    CPU is not ours to measure, so it stays priced, not measured. Its CPU per prediction is the block's
    ``cpu_seconds_per_event`` where given, else its main-window ``cpu_seconds`` over the predictions."""
    m = r.metrics
    by_label = (m.get("cpu") or {}).get("by_label") or {}
    rss_by_label = (m.get("cpu") or {}).get("peak_rss_by_label") or {}
    for key, (item, scales_with) in COMPONENTS.items():
        block = m.get(key)
        if not isinstance(block, dict) or not (block.get("external") or block.get("cpu_seconds") is not None):
            continue
        external = bool(block.get("external"))
        cpu_s = None if external else block.get("cpu_seconds")
        per = block.get("cpu_seconds_per_event")
        if per is None and cpu_s is not None and m.get("predictions"):
            per = cpu_s / m["predictions"]
        rss = block.get("peak_rss_bytes")
        at = block.get("rows") if scales_with == "customers" else m.get("offered_rate_per_s")
        fields = {
            "component": item,
            "component_cpu_s_per_prediction": None if external else per,
            "component_gib": 0.0 if external or not rss else rss / 2**30,
            "component_scales_with": scales_with,
            "component_at": float(at) if at else None,
            "component_external": external,
        }
        # what of the run's own figures was this server: its CPU where its meter root is in the run's
        # CPU-s (hybrid counts its store in the serving path), its memory where the replica's peak is
        # the sum of the server processes' roots (``Memory.of``: hybrid's server + store)
        # (a root's label may carry a suffix after ":", as the broker's does)
        mine = [label for label in {*by_label, *rss_by_label} if label.split(":")[0] == key]
        in_cpu = cpu_s if cpu_s is not None and any(label in by_label for label in mine) else 0.0
        rss_parts = [rss_by_label[label] or 0 for label in mine if label in rss_by_label]
        in_rss = sum(rss_parts) if m.memory.measured_as == "server processes" else 0
        return {"fields": fields, "cpu_s": in_cpu, "gib": in_rss / 2**30}
    return {"fields": {}, "cpu_s": 0.0, "gib": 0.0}


def _service_measure(r: RunResult, cap: tuple[float, float, bool] | None) -> ServiceMeasure:
    """One run's always-on measure; its component (a store, a broker) apart from the replica's figures."""
    m = r.metrics
    comp = component(r)
    return ServiceMeasure(
        run_id=r.run_id,
        capacity_per_s=cap[0] if cap else 0.0,
        cores=m["provisioned_core_seconds"] / m["wall_seconds"],
        cpu_s_per_prediction=max(0.0, m["cpu_seconds"] - comp["cpu_s"]) / m["predictions"],
        # one replica's peak RSS: the Ray cluster with its actors (streaming), the server (per request, hybrid)
        memory_gib=max(0.0, m.memory.gib - comp["gib"]),
        slo_ms=cap[1] if cap else float(r.params.get("slo_ms") or 0.0),
        build_s=_fixed(m)[1],
        service_s=(m.get("service_s") or {}).get("mean"),
        cold_start_s=_cold_start(m),
        capacity_lower_bound=cap[2] if cap else False,
        cpu_model=_cpu_model(r),
        has_service=has_service(r),
        **comp["fields"],
    )


def service_measures(runs: Sequence[RunResult], pattern: str, backend: str) -> list[ServiceMeasure]:
    """Valid runs of one always-on configuration with a capacity under their SLO (searched, or the
    sustained rate as a lower bound); a run with no service of its own needs none (no replicas to size)."""
    out = []
    for r in runs:
        if r.pattern != pattern or r.backend != backend or not r.valid or not serving(r):
            continue  # a fault run or a C10 aggregate run does not size a service
        m = r.metrics
        cap = _capacity(r)
        if (not cap and has_service(r)) or not m.get("wall_seconds") or not m.get("predictions"):
            continue
        out.append(_service_measure(r, cap))
    return out


def hybrid_measures(runs: Sequence[RunResult], backend: str, service: bool | None = None) -> list[HybridMeasure]:
    """Valid hybrid runs of one configuration with a lookup capacity (none needed when clients read the
    store directly) and a successful batch job; ``service`` True/False: only runs with / without a
    service of their own."""
    out = []
    for r in runs:
        if cost_kind(r) != "job+always-on" or r.backend != backend or not r.valid:
            continue
        if service is not None and has_service(r) != service:
            continue
        job = r.metrics.get("job") or {}
        serve = service_measures([r], r.pattern, backend)
        if not serve or not job:
            continue
        out.append(
            HybridMeasure(
                **vars(serve[0]),
                job_rows_per_s=job["rows_per_s"],
                job_fixed_s=job["fixed_s"],
                job_cores=job["cores"],
                job_cpu_s_per_row=job["cpu_s"] / job["rows"],
            )
        )
    return out


_median = bill.median  # the name callers of the flat model used


_FAMILY_OF_KIND = {"job": "batch", "always-on": "real-time", "job+always-on": "hybrid"}


@dataclass(frozen=True)
class Option:
    """One costed way of serving: a label, its measured runs, and how a day of it is priced."""

    label: str
    kind: str  #: how it is billed: a pattern's cost_kind, "job", "always-on" or "job+always-on"
    measures: tuple
    family: str = ""  #: the pattern family ("batch", "streaming", "real-time", "hybrid"); "" = from kind
    notes: tuple[str, ...] = ()  #: said beside every cost of it (e.g. a related measurement to cite)

    @property
    def pattern_family(self) -> str:
        return self.family or _FAMILY_OF_KIND[self.kind]

    def point(self):
        """The measure every cost of this option uses by default: the median over its runs."""
        return bill.median(self.measures, type(self.measures[0]))

    def cost(self, w: Workload, p: Prices, measure=None) -> dict:
        m = measure or self.point()
        day = bill.COSTS[self.kind](m, w, p, self.pattern_family)
        day["notes"] = [*day["notes"], *self.notes]
        if measure is None:
            day["measured"] = self.depends_on_measurement(w, p, day["cost_per_day"])
            day["runs"] = len(self.measures)
        return day

    def depends_on_measurement(self, w: Workload, p: Prices, base: float | None = None) -> bool:
        """Whether the cost changes when every measured quantity is halved or doubled (False: it rests on
        floors and minimums alone, and no measurement can move it)."""
        m = self.point()
        base = base if base is not None else bill.COSTS[self.kind](m, w, p, self.pattern_family)["cost_per_day"]
        names = bill.measured_fields(m)
        for factor in (0.5, 2.0):
            changed = replace(m, **{n: getattr(m, n) * factor for n in names})
            other = bill.COSTS[self.kind](changed, w, p, self.pattern_family)["cost_per_day"]
            if abs(other - base) > 1e-9 * max(abs(base), 1e-12):
                return True
        return False


def options(runs: Sequence[RunResult]) -> tuple[list[Option], list[dict]]:
    """Every pattern configuration the results can cost, and the ones they cannot (with the reason)."""
    found, missing = [], []
    predictors = sorted({predictor_of(r) for r in runs if cost_kind(r) == "job"} | {"lightgbm"})
    jobs = [p for p in registry.PATTERNS.values() if p.cost_kind == "job"]
    family = jobs[0].family if jobs else "batch"
    for engine in ("local", "ray"):
        for predictor in predictors:
            ms = batch_measures(runs, engine, predictor)
            label = f"batch ({engine})" if predictor == "lightgbm" else f"batch ({engine}, {predictor})"
            if ms:
                found.append(Option(label, "job", tuple(ms), family, _start_cited(runs, ms)))
            elif engine == "local" and predictor == "lightgbm":
                missing.append({"option": "batch", "reason": "no valid batch run"})
    # always-on patterns, then job + always-on ones; within a kind by family (real-time, streaming)
    served = [p for p in registry.PATTERNS.values() if p.cost_kind in ("always-on", "job+always-on")]
    for spec in sorted(served, key=lambda p: (p.cost_kind != "always-on", p.family)):
        # a run with no service of its own (clients read the store) never shares an option with one that has
        configs = {(r.backend, has_service(r)) for r in runs if r.pattern == spec.name and serving(r)}
        for backend, service in sorted(configs, key=lambda c: (c[0], not c[1])):
            if backend.startswith("inprocess"):
                continue  # a library call inside the caller's process: not a service one can buy
            label = f"{spec.family} {backend}" + ("" if service or (backend, True) not in configs else " (no service)")
            if spec.cost_kind == "job+always-on":
                ms = hybrid_measures(runs, backend, service)
            else:
                ms = [m for m in service_measures(runs, spec.name, backend) if m.has_service == service]
            if ms:
                found.append(Option(label, spec.cost_kind, tuple(ms), spec.family))
            else:
                why = "no valid run with a capacity at its SLO" if service else "no valid run with its refresh job"
                missing.append({"option": label, "reason": why})
    for spec in served:
        if spec.cost_kind == "job+always-on" and not any(r.pattern == spec.name for r in runs):
            missing.append({"option": spec.family, "reason": f"no {spec.name} run"})
    return found, missing


def _start_cited(runs: Sequence[RunResult], ms: Sequence[BatchMeasure]) -> tuple[str, ...]:
    """Where batch runs lack a measured process start: the hybrid refresh job's measured start-up, the
    same kind of job (a fresh process that imports, loads the model and scores), cited beside it."""
    if all(m.process_start_s is not None for m in ms):
        return ()
    starts = [
        (r.run_id, r.metrics["job"]["fixed_s"])
        for r in runs
        if cost_kind(r) == "job+always-on" and r.valid and (r.metrics.get("job") or {}).get("fixed_s")
    ]
    if not starts:
        return ()
    values = [s for _, s in starts]
    return (
        f"for comparison, the hybrid pattern's refresh job (a fresh process of the same kind) measured a "
        f"start-up of {np.median(values):.3g} s (median of {len(values)} run(s): {', '.join(i for i, _ in starts)}); "
        "it is not billed here",
    )


def serving(r: RunResult) -> bool:
    """Runs that size a service: not fault runs, and not runs answering another question (a C10
    aggregate, a caller's own batch of rows: ``Pattern.sizes_a_service``)."""
    return registry.get(r.pattern).sizes_a_service(r.params)


def sweep(
    runs: Sequence[RunResult],
    prices: Prices,
    base: Workload,
    volumes: Sequence[float] = tuple(np.logspace(3, 9, 25)),
) -> pl.DataFrame:
    """Cost per day and per million predictions of every costed option at each daily volume, with the
    breakdown (one ``<part>_per_day`` column per ``BREAKDOWN`` part) and the utilisation."""
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
                    "family": o.pattern_family,
                    "cost_per_day": c["cost_per_day"],
                    "cost_per_million": c["cost_per_million"],
                    "cost_per_month": c["cost_per_month"],
                    "provisioned_core_s": c["provisioned_core_s"],
                    "consumed_core_s": c["consumed_core_s"],
                    "units": c["units"],
                    "unit": c["unit"],
                    "utilisation": c["utilisation"],
                    "measured": c["measured"],
                    **{f"{k}_per_day": c["breakdown"][k] for k in BREAKDOWN},
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
        # costs are step functions of whole replicas, so two can tie exactly on a swept volume: the sign
        # changes between the nearest points that differ, and the crossing is the first tie between them
        # (read point to point, a tie made both products 0 and the crossing was lost)
        nz = np.nonzero(d)[0]
        for i, j in zip(nz[:-1], nz[1:], strict=True):
            if np.sign(d[i]) == np.sign(d[j]):
                continue
            if j == i + 1:
                t = d[i] / (d[i] - d[j])
                at = float(np.exp(np.log(v[i]) + t * (np.log(v[j]) - np.log(v[i]))))
            else:
                at = float(v[i + 1])
            cheaper = reference if d[j] > 0 else option
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
    key: str = "cost_per_day",
) -> dict:
    """Cost ratio option/reference with a 95% bootstrap interval over each side's repeated runs.

    ``measured`` says whether either side's cost depends on a measured quantity; when neither does,
    ``interval`` is "no measured quantity" and ``ci95_low``/``ci95_high`` are None (a floor over a
    minimum has no sampling error to show). ``runs`` is (n option, n reference)."""
    a, b = option.cost(w, p), reference.cost(w, p)
    point = a[key] / b[key]
    n = (len(option.measures), len(reference.measures))
    out = {"ratio": point, "runs": n, "measured": a["measured"] or b["measured"]}
    if not out["measured"]:
        return out | {"ci95_low": None, "ci95_high": None, "interval": "no measured quantity"}
    if n == (1, 1):
        return out | {"ci95_low": point, "ci95_high": point, "interval": "one run per side: no spread to bootstrap"}
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(draws):
        sa = [option.measures[i] for i in rng.integers(0, n[0], n[0])]
        sb = [reference.measures[i] for i in rng.integers(0, n[1], n[1])]
        ma, mb = bill.median(sa, type(sa[0])), bill.median(sb, type(sb[0]))
        ratios.append(option.cost(w, p, ma)[key] / reference.cost(w, p, mb)[key])
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    label = f"95% bootstrap over runs (n = {n[0]} / {n[1]})"
    return out | {"ci95_low": float(lo), "ci95_high": float(hi), "interval": label}
