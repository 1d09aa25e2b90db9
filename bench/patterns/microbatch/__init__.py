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
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from bench.core.errors import BenchError
from bench.core.params import require_choice, require_positive
from bench.data import events, workload
from bench.measure import capacity, load, metrics
from bench.model import Model, make_predictor
from bench.patterns.base import Pattern, PatternParams, RunContext, new_result
from bench.results import RunResult, ensure_writable
from bench.systems.raysession import RaySession

#: batches up to this size (about 30k rows of 32 float64) are passed to actors inline
INLINE_BYTES = 8 << 20
#: status of events whose batch failed on every attempt (lost, unless the sink has them)
FAILED = load.CONN_ERROR


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
        for name in ("warmup_s", "fault_kill_at_s", "saturation_events", "max_inflight"):
            if getattr(self, name) < 0:
                raise BenchError(f"{owner} parameter {name!r} must be >= 0, got {getattr(self, name)}")
        if not self.knee_factor > 1:
            raise BenchError(f"{owner} parameter 'knee_factor' must be > 1, got {self.knee_factor}")

    @property
    def inflight_limit(self) -> int:
        return self.max_inflight or 2 * self.n_actors


def _scorer_class():
    import ray

    @ray.remote(max_restarts=-1, max_task_retries=0)
    class Scorer:
        """One scoring actor: loads the model once, scores a batch of rows per call."""

        def __init__(self, model_path: str, predictor: str, num_threads: int) -> None:
            from bench import model as model_mod

            self.predictor = model_mod.make_predictor(model_mod.load(model_path), predictor, num_threads)

        def ready(self) -> tuple[int, str]:
            import ray as _ray

            return os.getpid(), _ray.get_runtime_context().get_node_id()

        def score(self, X: np.ndarray, crash: bool = False) -> np.ndarray:
            if crash:  # fault injection: the process dies mid-batch, as under the OOM killer
                os.kill(os.getpid(), signal.SIGKILL)
            return self.predictor.predict(X)

    return Scorer


@dataclass
class _Batch:
    lo: int  #: events [lo, hi) of the window: events arrive in order, so a batch is a range
    hi: int
    closed_by: str  #: "size", "wait" or "end"
    attempt: int = 1
    actor: int = 0
    sent_s: float = 0.0


@dataclass
class _Window:
    name: str
    rate: float
    obs: load.Observations
    summary: dict
    cpu: metrics.CpuUsage
    stream: dict = field(default_factory=dict)  #: delivery, batches, backlog of this window


class _Pool:
    """The scoring actors of a run and what happened to them."""

    def __init__(self, model: Model, params: MicrobatchParams) -> None:
        import ray

        self.params = params
        scheduling = {"scheduling_strategy": "SPREAD"} if params.spread else {}
        cls = _scorer_class()
        self.actors = [
            cls.options(num_cpus=params.num_threads, **scheduling).remote(
                str(model.path), params.predictor, params.num_threads
            )
            for _ in range(params.n_actors)
        ]
        t0 = time.perf_counter()
        try:
            placed = ray.get([a.ready.remote() for a in self.actors], timeout=120.0)
        except ray.exceptions.GetTimeoutError as exc:
            raise BenchError(
                f"{params.n_actors} scoring actors did not start within 120 s "
                f"(each asks for {params.num_threads} CPU; the cluster has {ray.cluster_resources().get('CPU', 0)})"
            ) from exc
        self.start_s = time.perf_counter() - t0
        self.pids = [pid for pid, _ in placed]
        self.nodes = [node for _, node in placed]
        self.inflight = [0] * len(self.actors)
        self.down: set[int] = set()  #: actors that failed and have not answered since
        self._stopping = threading.Event()
        self._watchers: list[threading.Thread] = []
        self.events: list[dict] = []

    def pick(self) -> int | None:
        """The live actor with the fewest batches in flight (None while every actor is down)."""
        up = [i for i in range(len(self.actors)) if i not in self.down]
        return min(up, key=self.inflight.__getitem__) if up else None

    def mark_down(self, index: int, meter: metrics.CpuMeter | None, event: dict | None = None) -> None:
        """Take a failed actor out of rotation; a thread puts it back once Ray's restart answers."""
        import ray

        if index in self.down:
            return
        self.down.add(index)
        t_kill = time.perf_counter()
        event = event or {"kind": "actor_failed", "actor": index, "pid": self.pids[index]}
        self.events.append(event)

        def wait_restart() -> None:
            deadline, error = t_kill + 120.0, "no answer within 120 s"
            # "temporarily unavailable" until the restart is done; never touch Ray once the pool stops
            while time.perf_counter() < deadline and not self._stopping.is_set():
                try:
                    pid, _ = ray.get(self.actors[index].ready.remote(), timeout=5.0)
                except Exception as exc:  # noqa: BLE001 - recorded, never raised from a thread
                    error = f"{type(exc).__name__}: {exc}"
                    time.sleep(0.05)
                    continue
                if pid == event["pid"]:  # answered before the kill took effect: not restarted yet
                    time.sleep(0.05)
                    continue
                event.update(restarted=True, restart_s=time.perf_counter() - t_kill, new_pid=pid)
                self.pids[index] = pid
                if meter is not None:
                    meter.add_root(f"actor{index}:restarted", pid)
                self.down.discard(index)
                return
            if self._stopping.is_set():
                error = "the run ended before the actor answered again"
            event.update(restarted=False, restart_error=error)

        watcher = threading.Thread(target=wait_restart, name="actor-restart", daemon=True)
        self._watchers.append(watcher)
        watcher.start()

    def wait_up(self, timeout_s: float = 120.0) -> None:
        """Wait (bounded) until every failed actor is back: a window measured with an actor missing
        would measure a smaller pool than the run's."""
        deadline = time.perf_counter() + timeout_s
        while self.down and time.perf_counter() < deadline:
            time.sleep(0.05)
        if self.down:
            raise BenchError(f"scoring actor(s) {sorted(self.down)} did not come back within {timeout_s:.0f} s")

    def stop(self) -> None:
        """Stop the restart watchers (before Ray shuts down: a Ray call after that kills the process),
        then the actors."""
        import ray

        self._stopping.set()
        for watcher in self._watchers:
            watcher.join(timeout=10.0)
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - best effort; ray.shutdown follows
                pass


def _rows(table: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Events ``[lo, hi)`` of a window that cycles through ``table``: a view (no copy) unless the
    range wraps past the table's end."""
    m = len(table)
    start = lo % m
    if start + (hi - lo) <= m:
        return table[start : start + (hi - lo)]
    return table[np.arange(lo, hi) % m]


def _schedule(params: MicrobatchParams, rate: float, measured_s: float, seed: int) -> np.ndarray:
    return load.schedule(params.schedule, rate, params.warmup_s + measured_s, seed)


def _stream(
    pool: _Pool,
    X: np.ndarray,
    expected: np.ndarray,
    schedule: np.ndarray,
    params: MicrobatchParams,
    *,
    fault_at_s: float | None = None,
    meter: metrics.CpuMeter | None = None,
) -> tuple[load.Observations, dict]:
    """Replay ``schedule`` through the batcher and the pool; return per-event observations and the
    stream's own record (deliveries, batches, backlog depth over time)."""
    import ray

    n, m = schedule.size, len(X)
    rec = load.Recorder(schedule)
    delivered = np.zeros(n, np.int32)
    max_wait = params.max_wait_ms / 1e3
    inflight: dict = {}  # ref -> _Batch, the live attempt of each batch
    stale: dict = {}  # ref -> _Batch, attempts superseded by a retry (a late answer is a duplicate)
    backlog: deque[_Batch] = deque()
    batches: list[_Batch] = []
    depth: list[tuple[float, int, int]] = []
    counts = {"retries": 0, "timeouts": 0, "failed_batches": 0, "duplicates_removed": 0, "mismatches": 0}
    arrived = opened = 0  # events arrived so far; first event of the open batch
    waiting = peak = 0  # events in closed batches not yet sent to an actor; most events queued at once
    fault_done, crash_next = fault_at_s is None, False
    deadline = float(schedule[-1]) + params.drain_timeout_s if n else 0.0
    next_depth = 0.0
    t0 = 0.0  # the window's start, set once the loop is about to run (below)

    def submit(b: _Batch, now: float) -> bool:
        nonlocal crash_next
        actor = pool.pick()
        if actor is None:
            return False
        b.actor = actor
        if crash_next and meter is not None:
            meter.sample()  # the actor about to die: its CPU up to now still counts
        ref = pool.actors[b.actor].score.remote(_rows(X, b.lo, b.hi), crash_next)
        if crash_next:
            pool.events.append({"kind": "actor_crashed", "actor": actor, "pid": pool.pids[actor], "at_s": now})
            crash_next = False
        if b.attempt == 1:
            rec.sent[b.lo : b.hi] = now
        b.sent_s = now
        pool.inflight[b.actor] += 1
        inflight[ref] = b
        return True

    def retry(b: _Batch, now: float) -> None:
        nonlocal waiting
        counts["retries"] += 1
        if b.attempt >= params.max_attempts:
            counts["failed_batches"] += 1
            undelivered = delivered[b.lo : b.hi] == 0
            rec.status[b.lo : b.hi][undelivered] = FAILED
            rec.done[b.lo : b.hi][undelivered] = now
            return
        again = _Batch(b.lo, b.hi, b.closed_by, b.attempt + 1)
        if not submit(again, now):
            backlog.appendleft(again)  # every actor is down: first in line when one is back
            waiting += again.hi - again.lo

    def deliver(ref, b: _Batch, now: float) -> None:
        try:
            scores = ray.get(ref, timeout=params.batch_timeout_s)
        except ray.exceptions.RayError as exc:
            if isinstance(exc, ray.exceptions.RayActorError | ray.exceptions.ActorUnavailableError):
                pool.mark_down(b.actor, meter)
            if ref in stale:
                return  # a superseded attempt failed: its retry is already out
            retry(b, now)
            return
        lo, hi = b.lo, b.hi
        got = delivered[lo:hi]
        if not got.any():  # the usual case: no event of the batch delivered before (slices, no index arrays)
            got += 1
            rec.done[lo:hi] = now
            rec.scores[lo:hi] = scores
            rec.status[lo:hi] = 200
            counts["mismatches"] += int(np.count_nonzero(scores != _rows(expected, lo, hi)))
            return
        first = got == 0
        counts["duplicates_removed"] += int((~first).sum())
        got += 1
        new = np.arange(lo, hi)[first]
        rec.done[new] = now
        rec.scores[new] = scores[first]
        rec.status[new] = 200
        counts["mismatches"] += int(np.sum(scores[first] != expected[new % m]))

    # The caller pauses the cyclic GC (``load.quiet_gc``) around the window: its full collection of the
    # driver's heap (~0.3 s with Ray loaded) must be in neither the window's time nor its CPU.
    t0 = time.perf_counter() + 0.01
    while True:
        now = time.perf_counter() - t0
        k = int(np.searchsorted(schedule, now, side="right"))
        if k > arrived:  # the source: events whose time has come join the open batch
            rec.issued[arrived:k] = now
            arrived = k
        while arrived - opened >= params.max_batch:
            b = _Batch(opened, opened + params.max_batch, "size")
            backlog.append(b)
            batches.append(b)
            waiting += b.hi - b.lo
            opened = b.hi
        if arrived > opened and (arrived == n or now - rec.issued[opened] >= max_wait):
            b = _Batch(opened, arrived, "end" if arrived == n else "wait")
            backlog.append(b)
            batches.append(b)
            waiting += b.hi - b.lo
            opened = arrived
        peak = max(peak, (arrived - opened) + waiting)  # before dispatch: a burst's whole size counts
        while backlog and len(inflight) < params.inflight_limit and submit(backlog[0], now):
            b = backlog.popleft()
            waiting -= b.hi - b.lo
        if not fault_done and now >= fault_at_s:
            crash_next, fault_done = True, True
        for ref, b in list(inflight.items()):  # an actor that does not answer: send the batch again
            if now - b.sent_s > params.batch_timeout_s:
                counts["timeouts"] += 1
                stale[ref] = inflight.pop(ref)
                pool.inflight[b.actor] -= 1
                retry(b, now)
        if now >= next_depth:
            queued = (arrived - opened) + waiting
            depth.append((now, queued, sum(b.hi - b.lo for b in inflight.values())))
            next_depth = now + 0.05
        if arrived == n and opened == n and not backlog and not inflight:
            break
        if now > deadline:
            break
        # Sleep until the next arrival, the open batch's deadline or an answer, at most 5 ms.
        wake = float(schedule[arrived]) - now if arrived < n else 0.005
        if arrived > opened:
            wake = min(wake, float(rec.issued[opened]) + max_wait - now)
        wake = min(max(wake, 0.0), 0.005)
        refs = list(inflight) + list(stale)
        if refs:
            ready, rest = ray.wait(refs, num_returns=1, timeout=wake)
            if ready and rest:
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                ready += more
            now = time.perf_counter() - t0
            for ref in ready:
                if ref in stale:
                    deliver(ref, stale.pop(ref), now)
                else:
                    b = inflight.pop(ref)
                    pool.inflight[b.actor] -= 1
                    deliver(ref, b, now)
        elif wake > 0:
            time.sleep(wake)
    duration = time.perf_counter() - t0
    for ref in list(inflight) + list(stale):  # the deadline passed: leave nothing running
        ray.cancel(ref, force=False)
    pool.inflight = [0] * len(pool.actors)
    sizes = np.array([b.hi - b.lo for b in batches], dtype=np.float64)
    unfinished = int(((delivered == 0) & (rec.status != FAILED)).sum())
    stream = {
        "offered_events": int(n),
        "delivered_events": int((delivered > 0).sum()),
        "lost_events": int((rec.status == FAILED).sum()),
        "unfinished_at_deadline": unfinished,
        **counts,
        "batches": len(batches),
        "batch_size": metrics.latency_summary(sizes) if sizes.size else None,
        "batches_closed_by": {r: sum(1 for b in batches if b.closed_by == r) for r in ("size", "wait", "end")},
        "backlog": {
            "t_s": [round(t, 3) for t, _, _ in depth],
            "queued_events": [q for _, q, _ in depth],
            "inflight_events": [f for _, _, f in depth],
            "max_queued_events": peak,
        },
    }
    return rec.result(duration), stream


class _Run:
    """Everything one run shares between its windows: data, pool, Ray's processes."""

    def __init__(self, params: MicrobatchParams, X: np.ndarray, expected: np.ndarray, pool: _Pool, session) -> None:
        self.params, self.X, self.expected, self.pool, self.session = params, X, expected, pool, session

    def roots(self) -> dict[str, int]:
        return {
            "driver": os.getpid(),
            **self.session.roots(),
            **{f"actor{i}": pid for i, pid in enumerate(self.pool.pids)},
        }

    def measure(self, name: str, schedule: np.ndarray, rate: float, fault_at_s: float | None = None) -> _Window:
        p = self.params
        # GC paused first: the collection it starts with is not the pipeline's time or CPU (it was both,
        # ~0.3 s of a 3 s saturation window: ratio_to_bulk 0.75 -> see results/profiles/README.md).
        with load.quiet_gc(), metrics.CpuMeter(roots=self.roots(), interval_s=None) as meter:
            obs, stream = _stream(self.pool, self.X, self.expected, schedule, p, fault_at_s=fault_at_s, meter=meter)
        summary = metrics.window_summary(
            obs, warmup_s=min(p.warmup_s, float(schedule[-1])), slo_s=p.slo_ms / 1e3, lag_bound_s=p.lag_bound_ms / 1e3
        )
        busy = meter.result.contention()
        if busy:
            summary["valid"] = False
            summary["invalid_reasons"].append(busy)
        if stream["mismatches"]:
            summary["valid"] = False
            summary["invalid_reasons"].append(f"{stream['mismatches']} score(s) differ from predict() on the same row")
        return _Window(name, rate, obs, summary, meter.result, stream)


def _cpu_split(cpu: metrics.CpuUsage) -> dict[str, float]:
    """CPU-seconds by role: driver (source, batcher, sink), actors (scoring), Ray's own processes."""
    out = {"driver": 0.0, "actors": 0.0, "ray": 0.0}
    for label, secs in cpu.by_label.items():
        role = "driver" if label == "driver" else "actors" if label.startswith("actor") else "ray"
        out[role] += secs
    return out


def _curve_point(w: _Window) -> dict:
    backlog = w.stream["backlog"]
    return capacity.curve_point(
        w.summary,
        max_queued_events=backlog["max_queued_events"],
        backlog={k: backlog[k] for k in ("t_s", "queued_events")},
    )


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
    event_ids, X = events.read(table)
    expected = make_predictor(model, params.predictor, 1).predict(X)
    sat_n = params.saturation_events
    bulk = _bulk_rows_per_s(model, params, X)
    measured_s = min(max(params.duration_s, params.min_events / params.rate), params.max_duration_s)
    # Batches go to actors inline over gRPC, not through the object store (Ray's default above 100 KiB;
    # a 1,000-row batch is 256 KiB): measured on 2 cores, Ray's own CPU per 300 batches fell 0.83 ->
    # 0.17 s. Applies to a local instance; a cluster keeps the configuration it was started with.
    session = RaySession(address=params.ray_address, system_config={"max_direct_call_object_size": INLINE_BYTES})
    windows: list[_Window] = []
    cap = saturation = None
    pool = None
    try:
        session.start()
        cluster_cpus = session.info["cluster_cpus"]
        if params.n_actors * params.num_threads > cluster_cpus:
            raise BenchError(
                f"MicrobatchParams n_actors × num_threads = {params.n_actors * params.num_threads} CPUs, "
                f"but the Ray cluster has {cluster_cpus:g}"
            )
        pool = _Pool(model, params)
        session.info["rss_bytes_with_actors"] = session.rss_bytes()
        r = _Run(params, X, expected, pool, session)
        fault_at = params.warmup_s + params.fault_kill_at_s if params.fault_kill_at_s else None
        main = r.measure("main", _schedule(params, params.rate, measured_s, params.seed), params.rate, fault_at)
        windows.append(main)
        pool.wait_up()
        if params.capacity:
            cap = _capacity(r)
            windows.extend(cap.pop("_windows"))
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
            }
    finally:
        if pool is not None:
            pool.stop()
        session.stop()
    return _result(params, context, model, data, table, session, pool, windows, cap, saturation, bulk)


def _capacity(r: _Run) -> dict:
    p = r.params
    windows: list[_Window] = []

    def passes(rate: float) -> capacity.Verdict:
        schedule = _schedule(p, rate, p.capacity_window_s, p.seed + len(windows) + 1)
        w = r.measure(f"capacity@{rate:.0f}", schedule, rate)
        windows.append(w)
        return w.summary["sustainable"] if w.summary["slo_decidable"] else None

    found = capacity.search(passes, start=p.rate, max_rate=p.capacity_max_rate, tolerance=p.capacity_tolerance)
    curve = [_curve_point(w) for w in windows]
    cores = p.n_actors * p.num_threads
    out = capacity.describe(
        found, curve, cores=cores, slo_ms=p.slo_ms, window_s=p.capacity_window_s, knee_factor=p.knee_factor
    )
    return out | {"_windows": windows}


def _result(params, context, model, data, table, session, pool, windows, cap, saturation, bulk) -> RunResult:
    main = windows[0]
    s = main.summary
    cluster_cpus = session.info.get("cluster_cpus") or (os.cpu_count() or 1)
    result = new_result(
        "microbatch",
        # the compiled predictor is named; LightGBM (the default) is not, as in results made before it existed
        f"ray/b{params.max_batch}-w{params.max_wait_ms:g}ms"
        + ("" if params.predictor == "lightgbm" else f"/{params.predictor}"),
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
        "delivery": {k: v for k, v in main.stream.items() if k not in ("backlog", "batch_size", "batches_closed_by")},
        "batch_size": main.stream["batch_size"],
        "batches_closed_by": main.stream["batches_closed_by"],
        "backlog": main.stream["backlog"],
        "capacity": cap,
        "saturation": saturation,
        "bulk_predict": bulk,
        "fault_events": pool.events if pool else [],
        "recovery": _recovery(main, params) if params.fault_kill_at_s else None,
        "ray": session.info,
        "actors": {"n": params.n_actors, "nodes": sorted(set(pool.nodes)) if pool else [], "start_s": pool.start_s}
        if pool
        else None,
        "events_table": {"path": str(table.path), "count": table.count, "sha256": table.sha256},
        "fixed_costs_s": {"ray_start": session.start_s, "actors_start": pool.start_s if pool else 0.0},
    }
    result.metrics = m
    for reason in s["invalid_reasons"]:
        result.invalidate(f"main window: {reason}")
    if busy := capacity.contended(cap):
        result.invalidate(busy)
    if main.stream["lost_events"]:
        result.invalidate(f"{main.stream['lost_events']} event(s) lost: their batch failed on every attempt")
    if not s["sustainable"]:
        m["not_sustainable_because"] = _why_not(s, main.stream, params)
    result.samples = pl.concat(
        [w.obs.frame(window=w.name, offered_rate=float(w.rate), warmup_s=float(params.warmup_s)) for w in windows],
        how="vertical_relaxed",
    )
    return result


def _recovery(w: _Window, params: MicrobatchParams) -> dict | None:
    """The latency spike a killed actor caused: the p99 of events delivered before the kill, the worst
    latency of those delivered after it, and the recovery time: from the kill until the last event
    slower than twice that p99 was delivered."""
    obs, kill = w.obs, params.warmup_s + params.fault_kill_at_s
    ok = obs.status == 200
    lat = obs.done - obs.intended
    before = ok & (obs.intended >= params.warmup_s) & (obs.done < kill)
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


PATTERN = Pattern(name="microbatch", params=MicrobatchParams, run=run, notebook="20_microbatch.ipynb")
