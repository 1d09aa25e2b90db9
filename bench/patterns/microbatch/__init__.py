"""Streaming micro-batches on Ray: events replayed open-loop, batched, scored by a pool of Ray actors.

The driver is the source, the micro-batcher and the sink. Events arrive at the intended times of a
``bench.measure.load`` schedule (open loop: the source never waits for scoring); the batcher closes a batch
at ``max_batch`` events or ``max_wait_ms`` after its first event, whichever comes first, and hands
it to the actor with the fewest batches in flight, at most ``max_inflight`` in all; closed batches
beyond that wait in a backlog whose depth is recorded over time. The sink records each event's
score the first time it arrives (a retried batch can deliver twice: duplicates are removed by
event id and counted) and its end-to-end latency from the intended arrival time.

Every wait on Ray is bounded: a batch an actor has not answered within ``batch_timeout_s`` is sent
again to another actor, a batch whose actor died is retried (up to ``max_attempts``), and a window
ends by its deadline whatever is still queued. CPU is metered for the whole process tree of the
run: the driver, each actor (by pid), and the rest of the local Ray instance (raylet, GCS, idle
workers) as Ray's own overhead.

Modules: ``batcher`` (``MicroBatcher`` over the ``Pool`` interface: one window's source, batcher and
sink), ``pool`` (``RayPool``: the actors on Ray); windows, capacity and verdicts come from
``bench.measure.openloop``, shared with the per-request and hybrid patterns.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.core.params import require_choice, require_nonnegative, require_positive
from bench.data import events, workload
from bench.measure import load, metrics, openloop
from bench.model import Model, make_predictor
from bench.patterns.base import Pattern, PatternParams, RunContext, Sweep, new_result
from bench.patterns.microbatch.batcher import MicroBatcher, Policy
from bench.patterns.microbatch.brokered import BrokerPolicy, BrokerWindow
from bench.patterns.microbatch.pool import RayPool
from bench.patterns.microbatch.streampool import RayStreamPool
from bench.results import RunResult, ensure_writable
from bench.systems.raysession import RaySession
from bench.systems.valkey import APPENDFSYNC, ValkeyServer

SOURCES = ("table", "broker")
#: batches up to this size (about 30k rows of 32 float64) are passed to actors inline
INLINE_BYTES = 8 << 20


@dataclass(frozen=True)
class MicrobatchParams(PatternParams):
    """Streaming parameters. ``rate`` is the offered event rate of the main window (events/s)."""

    events: int = 100_000  #: events in the replayed table (windows cycle through it)
    event_seed: int = 0
    schedule: str = "poisson"
    rate: float = 2_000.0
    duration_s: float = 10.0  #: minimum measured duration of the main window
    min_events: int = 5_000  #: ... and minimum count (whichever takes longer)
    max_duration_s: float = 120.0
    warmup_s: float = 2.0
    max_batch: int = 1_000
    max_wait_ms: float = 50.0
    n_actors: int = 2
    max_inflight: int = 0  #: batches in flight at once (0 = two per actor)
    slo_ms: float = 1_000.0  #: p99 end-to-end event latency bound
    lag_bound_ms: float = 5.0  #: source lag p99 above this makes a window invalid
    drain_timeout_s: float = 30.0  #: after the last arrival, how long the window waits for the backlog
    batch_timeout_s: float = 30.0  #: an unanswered batch is sent again to another actor after this
    max_attempts: int = 3
    capacity: bool = True
    capacity_window_s: float = 6.0
    capacity_max_rate: float = 500_000.0
    capacity_tolerance: float = 0.1
    knee_factor: float = 2.0
    saturation_events: int = 100_000  #: all offered at once: the pipeline's peak throughput (0 = skip)
    fault_kill_at_s: float = 0.0  #: an actor's process dies mid-batch this long into the main window (0 = none)
    #: where events come from: "table" (replayed by the driver, the lower bound) or "broker" (a
    #: producer process publishes them to a Valkey stream; actors read it through a consumer group)
    source: str = "table"
    broker_url: str = ""  #: with source="broker": an external server (valkey://host:port); "" starts one
    broker_appendfsync: str = "everysec"  #: how often the started broker fsyncs its append-only file
    claim_idle_ms: float = 2_000.0  #: a pending entry idle this long is claimed by another consumer
    fault_broker_kill_at_s: float = 0.0  #: SIGKILL and restart the started broker this long into the main window
    ray_address: str = ""  #: a cluster to join ("" = start a local Ray for the run)
    spread: bool = True  #: place actors on different nodes where there are several
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = "MicrobatchParams"
        require_choice(owner, "schedule", self.schedule, load.SCHEDULES)
        require_positive(
            owner,
            events=self.events,
            rate=self.rate,
            duration_s=self.duration_s,
            min_events=self.min_events,
            max_duration_s=self.max_duration_s,
            max_batch=self.max_batch,
            max_wait_ms=self.max_wait_ms,
            n_actors=self.n_actors,
            slo_ms=self.slo_ms,
            lag_bound_ms=self.lag_bound_ms,
            drain_timeout_s=self.drain_timeout_s,
            batch_timeout_s=self.batch_timeout_s,
            max_attempts=self.max_attempts,
            capacity_window_s=self.capacity_window_s,
            capacity_max_rate=self.capacity_max_rate,
            capacity_tolerance=self.capacity_tolerance,
        )
        require_nonnegative(
            owner,
            warmup_s=self.warmup_s,
            fault_kill_at_s=self.fault_kill_at_s,
            saturation_events=self.saturation_events,
            max_inflight=self.max_inflight,
        )
        require_choice(owner, "source", self.source, SOURCES)
        require_choice(owner, "broker_appendfsync", self.broker_appendfsync, APPENDFSYNC)
        require_positive(owner, claim_idle_ms=self.claim_idle_ms)
        require_nonnegative(owner, fault_broker_kill_at_s=self.fault_broker_kill_at_s)
        if self.source != "broker":
            for name in ("broker_url", "fault_broker_kill_at_s"):
                if getattr(self, name):
                    raise BenchError(f"{owner} parameter {name!r} needs source='broker', not {self.source!r}")
        if self.broker_url and not self.broker_url.startswith(("valkey://", "redis://")):
            raise BenchError(f"{owner} parameter 'broker_url' must be valkey://host:port, got {self.broker_url!r}")
        if self.broker_url and self.fault_broker_kill_at_s:
            raise BenchError(
                f"{owner} parameter 'fault_broker_kill_at_s' kills the broker the run starts, not an external one"
            )
        if not self.knee_factor > 1:
            raise BenchError(f"{owner} parameter 'knee_factor' must be > 1, got {self.knee_factor}")

    @property
    def inflight_limit(self) -> int:
        return self.max_inflight or 2 * self.n_actors


@dataclass
class StreamWindow(openloop.Window):
    """A streaming window: the core's record plus the stream's own (delivery, batches, backlog)."""

    stream: dict = field(default_factory=dict)

    def curve_extras(self) -> dict:
        backlog = self.stream["backlog"]
        return {
            "max_queued_events": backlog["max_queued_events"],
            "backlog": {k: backlog[k] for k in ("t_s", "queued_events")},
        }


def _schedule(params: MicrobatchParams, rate: float, measured_s: float, seed: int) -> np.ndarray:
    return load.schedule(params.schedule, rate, params.warmup_s + measured_s, seed)


def _broker_policy(params: MicrobatchParams) -> BrokerPolicy:
    return BrokerPolicy(
        max_batch=params.max_batch,
        max_wait_ms=params.max_wait_ms,
        claim_idle_ms=params.claim_idle_ms,
        drain_timeout_s=params.drain_timeout_s,
        warmup_s=params.warmup_s,
    )


def _policy(params: MicrobatchParams) -> Policy:
    return Policy(
        max_batch=params.max_batch,
        max_wait_s=params.max_wait_ms / 1e3,
        inflight_limit=params.inflight_limit,
        batch_timeout_s=params.batch_timeout_s,
        max_attempts=params.max_attempts,
        drain_timeout_s=params.drain_timeout_s,
        warmup_s=params.warmup_s,
    )


class _Run:
    """Everything one run shares between its windows: data, pool, Ray's processes (and the broker)."""

    def __init__(self, params: MicrobatchParams, X: np.ndarray, expected: np.ndarray, pool, session) -> None:
        self.params, self.X, self.expected, self.pool, self.session = params, X, expected, pool, session
        self.broker: ValkeyServer | None = None
        self.brokered: BrokerWindow | None = None

    def roots(self) -> dict[str, int]:
        return {
            "driver": os.getpid(),
            **self.session.roots(),
            **{f"actor{i}": pid for i, pid in enumerate(self.pool.pids)},
            **({"broker": self.broker.pid} if self.broker is not None and self.broker.pid else {}),
        }

    def measure(
        self,
        name: str,
        schedule: np.ndarray,
        rate: float,
        fault_at_s: float | None = None,
        broker_at_s: float | None = None,
    ) -> StreamWindow:
        p = self.params
        if self.brokered is not None:
            obs, stream, cpu = self._measure_brokered(name, schedule, fault_at_s, broker_at_s)
        else:
            policy = _policy(p)
            # GC paused first: the collection it starts with is not the pipeline's time or CPU (it was both,
            # ~0.3 s of a 3 s saturation window: ratio_to_bulk 0.75 -> see results/perf/README.md).
            with load.quiet_gc(), metrics.CpuMeter(roots=self.roots(), interval_s=None) as meter:
                batcher = MicroBatcher(self.pool, self.expected, schedule, policy, fault_at_s=fault_at_s, meter=meter)
                obs, stream = batcher.run()
            cpu = meter.result
        summary = openloop.summarize(
            obs,
            cpu,
            warmup_s=min(p.warmup_s, float(schedule[-1])),
            slo_s=p.slo_ms / 1e3,
            lag_bound_s=p.lag_bound_ms / 1e3,
        )
        if stream["mismatches"]:
            summary["valid"] = False
            summary["invalid_reasons"].append(f"{stream['mismatches']} score(s) differ from predict() on the same row")
        return StreamWindow(name, rate, obs, summary, cpu, stream)

    def _measure_brokered(self, name, schedule, actor_at_s, broker_at_s):
        """A window through the broker: the producer process is metered as the source, the broker as
        itself, the driver (now only the sink) as before."""
        bw = self.brokered
        producer, stream, out = bw.producer(name, schedule)
        try:
            t0 = producer.start()
            roots = {**self.roots(), "producer": producer.pid}
            with load.quiet_gc(), metrics.CpuMeter(roots=roots, interval_s=None) as meter:
                bw.meter = meter
                obs, record = bw.run(
                    producer, stream, out, schedule, t0, actor_at_s=actor_at_s, broker_at_s=broker_at_s
                )
        finally:
            bw.meter = None
            producer.finish()
        return obs, record, meter.result


def _cpu_split(cpu: metrics.CpuUsage) -> dict[str, float]:
    """CPU-seconds by role: driver (source, batcher, sink; with a broker only the sink), actors
    (scoring), Ray's own processes; with a broker also the producer and the broker."""
    out = {"driver": 0.0, "actors": 0.0, "ray": 0.0}
    for label, secs in cpu.by_label.items():
        role = label.split(":")[0]
        role = "actors" if role.startswith("actor") else role if role in ("driver", "producer", "broker") else "ray"
        out[role] = out.get(role, 0.0) + secs
    return out


def _bulk_rows_per_s(model: Model, params: MicrobatchParams, X: np.ndarray) -> dict:
    """Raw ``predict`` over the same rows with the pool's total threads, in this process, before Ray
    starts: the bulk rate the stream's peak throughput is set against."""
    threads = params.n_actors * params.num_threads
    predictor = make_predictor(model, params.predictor, threads)
    predictor.predict(X[: min(len(X), 1000)])  # warm
    times = []
    for _ in range(3):  # median of three: one pass is as noisy as the ratio it is meant to anchor
        with metrics.stopwatch() as secs:
            predictor.predict(X)
        times.append(secs[0])
    median = sorted(times)[1]
    return {"rows": len(X), "seconds": median, "rows_per_s": len(X) / median, "num_threads": threads, "repeats": 3}


def run(data: workload.Dataset, model: Model, params: MicrobatchParams, context: RunContext) -> RunResult:
    """Main window at ``rate`` (with the fault if asked), capacity search, saturation window."""
    run_dir = Path(context.run_dir)
    ensure_writable(run_dir)
    table = events.ensure_events(data, params.events, params.event_seed)
    event_ids, X = events.read(table, data.schema)
    expected = make_predictor(model, params.predictor, 1).predict(X)
    sat_n = params.saturation_events
    bulk = _bulk_rows_per_s(model, params, X)
    measured_s = openloop.measured_duration(params.duration_s, params.min_events, params.rate, params.max_duration_s)
    # Batches go to actors inline over gRPC, not through the object store (Ray's default above 100 KiB;
    # a 1,000-row batch is 256 KiB): measured on 2 cores, Ray's own CPU per 300 batches fell 0.83 ->
    # 0.17 s. Applies to a local instance; a cluster keeps the configuration it was started with.
    session = RaySession(address=params.ray_address, system_config={"max_direct_call_object_size": INLINE_BYTES})
    windows: list[StreamWindow] = []
    cap = saturation = None
    pool = broker = None
    try:
        if params.source == "broker":
            # Started before Ray (seconds sooner to fail on a bad URL or a binary that will not start)
            broker = ValkeyServer(run_dir / "broker.log", appendfsync=params.broker_appendfsync, url=params.broker_url)
            broker.start()
        session.start()
        cluster_cpus = session.info["cluster_cpus"]
        if params.n_actors * params.num_threads > cluster_cpus:
            raise BenchError(
                f"MicrobatchParams n_actors × num_threads = {params.n_actors * params.num_threads} CPUs, "
                f"but the Ray cluster has {cluster_cpus:g}"
            )
        # the event table as one file every actor (or the broker's producer) maps: rows travel by range
        rows_path = run_dir / "stream" / "rows.npy"
        rows_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(rows_path, X)
        sizing = {"n_actors": params.n_actors, "num_threads": params.num_threads, "predictor": params.predictor}
        if broker is not None:
            pool = RayStreamPool(model, **sizing, spread=params.spread)
        else:
            pool = RayPool(model, rows_path, **sizing, spread=params.spread)
        session.info["rss_bytes_with_actors"] = session.rss_bytes()
        r = _Run(params, X, expected, pool, session)
        if broker is not None:
            r.broker = broker
            r.brokered = BrokerWindow(
                broker, pool, rows_path, expected, X.shape[1], rows_path.parent, _broker_policy(params)
            )
        fault_at = params.warmup_s + params.fault_kill_at_s if params.fault_kill_at_s else None
        broker_at = params.warmup_s + params.fault_broker_kill_at_s if params.fault_broker_kill_at_s else None
        main = r.measure(
            "main", _schedule(params, params.rate, measured_s, params.seed), params.rate, fault_at, broker_at
        )
        windows.append(main)
        pool.wait_up()
        if params.capacity:
            cap, searched = _capacity(r)
            windows.extend(searched)
        if sat_n:
            w = r.measure("saturation", np.zeros(sat_n), float("inf"))
            windows.append(w)
            saturation = {
                "events": sat_n,
                "throughput_per_s": w.summary["throughput_per_s"],
                "seconds": w.obs.duration_s,
                "bulk": bulk,
                "ratio_to_bulk": w.summary["throughput_per_s"] / bulk["rows_per_s"],
                "delivered_events": w.stream["delivered_events"],
                "max_queued_events": w.stream["backlog"]["max_queued_events"],
                "cpu_seconds": w.cpu.cpu_s,
                "cpu": _cpu_split(w.cpu),
                **({"consumer_seconds": w.stream["consumer_seconds"]} if "consumer_seconds" in w.stream else {}),
            }
    finally:
        if pool is not None:
            pool.stop()
        session.stop()
        shutil.rmtree(run_dir / "stream", ignore_errors=True)  # the mapped table, the producer's schedules
        if broker is not None:
            broker_info = {"start_s": broker.start_seconds, "url": broker.url, "external": broker.external}
            broker.stop()
    result = _result(params, context, model, data, table, session, pool, windows, cap, saturation, bulk)
    if broker is not None:
        _broker_metrics(result, params, windows[0], broker_info)
    return result


def _capacity(r: _Run) -> tuple[dict, list[StreamWindow]]:
    p = r.params
    return openloop.search_capacity(
        lambda name, rate, k: r.measure(name, _schedule(p, rate, p.capacity_window_s, p.seed + k + 1), rate),
        start=p.rate,
        max_rate=p.capacity_max_rate,
        tolerance=p.capacity_tolerance,
        cores=p.n_actors * p.num_threads,
        slo_ms=p.slo_ms,
        window_s=p.capacity_window_s,
        knee_factor=p.knee_factor,
    )


def _result(params, context, model, data, table, session, pool, windows, cap, saturation, bulk) -> RunResult:
    main = windows[0]
    s = main.summary
    cluster_cpus = session.info.get("cluster_cpus") or (os.cpu_count() or 1)
    result = new_result(
        "microbatch",
        # the compiled predictor is named; LightGBM (the default) is not, as in results made before it existed
        f"ray/b{params.max_batch}-w{params.max_wait_ms:g}ms"
        + ("" if params.predictor == "lightgbm" else f"/{params.predictor}")
        + _source_tag(params),
        params,
        context,
        model,
        data,
    )
    predictions = s["completed"]
    m = {
        "predictions": predictions,
        "wall_seconds": s["window_s"],
        "throughput_per_s": s["throughput_per_s"],
        "offered_rate_per_s": s["offered_rate_per_s"],
        "cpu_seconds": main.cpu.cpu_s,
        "cpu_seconds_by_role": _cpu_split(main.cpu),
        "cpu_seconds_per_prediction": main.cpu.cpu_s / predictions if predictions else None,
        "provisioned_core_seconds": cluster_cpus * s["window_s"],
        "cpu": main.cpu.to_dict(),
        "latency_s": s["latency_s"],
        "service_s": s["service_s"],
        "generator_lag_s": s["generator_lag_s"],
        "errors": s["errors"],
        "sustainable": s["sustainable"],
        "delivery": {
            k: v
            for k, v in main.stream.items()
            if k not in ("backlog", "batch_size", "batches_closed_by", "hops", "consumer_lag", "faults")
        },
        "hops": main.stream["hops"],
        "batch_size": main.stream["batch_size"],
        "batches_closed_by": main.stream["batches_closed_by"],
        "backlog": main.stream["backlog"],
        "capacity": cap,
        "saturation": saturation,
        "bulk_predict": bulk,
        "fault_events": (pool.events if pool else []) + main.stream.get("faults", []),
        "recovery": _recovery(
            main, params.warmup_s + (params.fault_kill_at_s or params.fault_broker_kill_at_s), params.warmup_s
        )
        if params.fault_kill_at_s or params.fault_broker_kill_at_s
        else None,
        "ray": session.info,
        "actors": {"n": params.n_actors, "nodes": sorted(set(pool.nodes)) if pool else [], "start_s": pool.start_s}
        if pool
        else None,
        "events_table": {"path": str(table.path), "count": table.count, "sha256": table.sha256},
        "fixed_costs_s": {"ray_start": session.start_s, "actors_start": pool.start_s if pool else 0.0},
    }
    result.metrics = m
    openloop.apply_verdicts(result, main, cap, why_not=lambda: _why_not(s, main.stream, params))
    if main.stream["lost_events"] and not params.fault_broker_kill_at_s:  # a broker kill's loss is its finding
        result.invalidate(f"{main.stream['lost_events']} event(s) lost: accepted, never scored")
    result.samples = openloop.samples_frame(windows, params.warmup_s)
    return result


def _recovery(w: StreamWindow, kill: float, warmup_s: float) -> dict | None:
    """The latency spike a killed actor (or broker) caused at window time ``kill``: the p99 of events
    delivered before the kill, the worst latency of those delivered after it, and the recovery time:
    from the kill until the last event slower than twice that p99 was delivered."""
    obs = w.obs
    ok = obs.status == 200
    lat = obs.done - obs.intended
    before = ok & (obs.intended >= warmup_s) & (obs.done < kill)
    after = ok & (obs.done >= kill)
    if not before.any() or not after.any():
        return None
    base = float(np.quantile(lat[before], 0.99, method="inverted_cdf"))
    slow = after & (lat > 2 * base)
    return {
        "baseline_p99_s": base,
        "max_latency_after_kill_s": float(lat[after].max()),
        "recovery_s": float(obs.done[slow].max() - kill) if slow.any() else 0.0,
        "events_above_2x_baseline": int(slow.sum()),
    }


def _source_tag(params: MicrobatchParams) -> str:
    """The label's source: nothing for the table; ``/broker`` (its AOF policy named unless everysec)."""
    if params.source != "broker":
        return ""
    return "/broker" if params.broker_appendfsync == "everysec" else f"/broker[{params.broker_appendfsync or 'no-aof'}]"


def _broker_metrics(result: RunResult, params: MicrobatchParams, main: StreamWindow, info: dict) -> None:
    """The broker as a measured component (its CPU and memory in the main window), the consumer lag
    over time, and, under a broker kill, what was lost and how long recovery took."""
    m = result.metrics
    cpu = main.cpu
    secs = sum(v for k, v in cpu.by_label.items() if k.split(":")[0] == "broker")
    n = m["predictions"]
    rss = cpu.to_dict().get("peak_rss_by_label", {})
    m["source"] = "broker"
    m["broker"] = {
        "kind": "valkey",
        "url": info["url"],
        "external": info["external"],
        "appendfsync": params.broker_appendfsync,
        "start_s": info["start_s"],
        "cpu_seconds": None if info["external"] else secs,
        "cpu_seconds_per_event": None if info["external"] or not n else secs / n,
        "peak_rss_bytes": max((v for k, v in rss.items() if k.split(":")[0] == "broker"), default=None),
    }
    m["consumer_lag"] = main.stream["consumer_lag"]
    killed = [f for f in main.stream["faults"] if f["kind"] == "broker_killed"]
    if killed:
        d = main.stream
        m["broker_fault"] = {
            **{k: killed[0][k] for k in ("at_s", "down_s", "appendfsync")},
            "accepted_events": d["accepted_events"],
            "lost_events": d["lost_events"],
            "duplicates_removed": d["duplicates_removed"],
            "unpublished_events": d["unpublished_events"],
            "recovery": m["recovery"],
        }


def _why_not(s: dict, stream: dict, params: MicrobatchParams) -> str:
    parts = []
    lat = s["latency_s"]
    if lat and lat["p99"] > params.slo_ms / 1e3:
        parts.append(f"p99 {1e3 * lat['p99']:.0f} ms > SLO {params.slo_ms:g} ms")
    if stream["unfinished_at_deadline"]:
        parts.append(f"{stream['unfinished_at_deadline']} event(s) still queued at the deadline (backlog grew)")
    if stream["lost_events"]:
        parts.append(f"{stream['lost_events']} event(s) lost")
    if s["completed"] < 0.99 * s["offered_requests"]:
        parts.append(f"scored {s['completed']} of {s['offered_requests']} offered")
    return "; ".join(parts) or "source invalid"


def microbatch_label(values: dict) -> str:
    """A sweep point in a progress line: how a batch is closed."""
    return f"max_batch {values.get('max_batch', 1000)}, max_wait {values.get('max_wait_ms', 50.0)} ms"


PATTERN = Pattern(
    name="microbatch",
    params=MicrobatchParams,
    run=run,
    notebook="20_microbatch.ipynb",
    family="streaming",
    cost_kind="always-on",
    label=microbatch_label,
    sweep=Sweep(
        base="microbatch", variants="microbatch_variants", extras="microbatch_extras", compiled="microbatch_compiled"
    ),
    view="bench.views.microbatch",
    limits="saturation",
)
