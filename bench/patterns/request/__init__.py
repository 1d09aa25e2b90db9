"""Per-request scoring: one row per call, open-loop load, latency from the intended send time.

Backends (registry, one ``run`` for all): ``inprocess`` calls the predictor directly, one row per call
(the lower bound); ``http`` calls a FastAPI/uvicorn server in its own process over loopback, one JSON
request per row. Each run measures a main window at the offered ``rate``, the no-op floor of the same
stack (``http``), and, if asked, the capacity under the SLO: the highest rate whose window keeps p99
latency within the SLO with no errors, found by doubling then bisection over fixed-length windows
(MLPerf's FindPeakPerformance). Every answered score is checked against ``predict()`` on that row.

A fault (claim C8) can be injected into the main window of an ``http`` run: ``fault_kill_at_s`` in,
``fault_target="server"`` SIGKILLs the whole server (every worker) and the harness restarts it as a
process supervisor would; ``fault_target="replica"`` SIGKILLs one of ``server_workers`` ≥ 2 uvicorn
workers behind the one address (the availability set-up a cost model with two replicas assumes) and
uvicorn's own supervisor replaces it. Either way ``metrics["fault"]`` says what a consumer saw.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import psutil

from bench.core.errors import BenchError
from bench.core.params import require_choice, require_nonnegative, require_positive
from bench.data import features, store, workload
from bench.data.schema import ID
from bench.measure import load, metrics, openloop
from bench.measure.httpclient import HttpPool
from bench.model import Model, make_predictor
from bench.patterns.base import Pattern, PatternParams, RunContext, Sweep, new_result
from bench.results import RunResult, ensure_writable
from bench.systems import affinity, mlserver
from bench.systems.process import ServerProcess
from bench.systems.server_config import AGGREGATES, APPS, ServerConfig

BACKENDS = ("inprocess", "http", "ray_serve", "ray_serve_handle", "mlserver")
#: the generator's connection count when none is given (a label names any other)
DEFAULT_CONNECTIONS = 64
#: backends whose server can batch requests dynamically (``batch_max``): ours, Ray Serve's
#: ``@serve.batch``, MLServer's adaptive batching
BATCHING_BACKENDS = ("http", "ray_serve", "ray_serve_handle", "mlserver")
#: What a fault kills: the whole server, or one replica (worker process) of several behind one address.
FAULT_TARGETS = ("server", "replica")
#: Bound on waiting for a killed server or replica to be back (a restart took ~1–3 s on the 2-core VM).
FAULT_RECOVERY_BOUND_S = 60.0
#: Latency is "back to baseline" from the first of two consecutive 0.5 s bins (by intended time) after
#: the kill with no failure and p90 within 2× the pre-kill p90 + 1 ms: 0.5 s holds ~100 requests at
#: 200 req/s, enough for a p90; a single bin would call one quiet half-second a recovery.
RECOVERY_BIN_S = 0.5
RECOVERY_FACTOR = 2.0
#: ``load.drive_async`` starts its schedule's clock 10 ms after the window's ``setup`` returns: the
#: kill's time on that clock is taken from the end of ``setup`` plus this.
_SCHEDULE_LEAD_S = 0.01


@dataclass(frozen=True)
class RequestParams(PatternParams):
    """Per-request parameters. ``rate`` is the offered load of the main window (requests/s)."""

    rows: int = 10_000  #: distinct customers requests cycle through
    backend: str = "http"
    schedule: str = "poisson"
    rate: float = 200.0  #: offered rate (mean rate for diurnal, middle step for step)
    peak_to_mean: float = 1.5  #: diurnal: peak rate over mean rate (one sine period per window)
    duration_s: float = 10.0  #: minimum measured duration of the main window
    min_requests: int = 2_000  #: ... and minimum count (whichever takes longer, MLPerf's rule)
    max_duration_s: float = 120.0  #: hard bound on the main window
    warmup_s: float = 2.0  #: excluded from statistics (kept in the raw samples)
    timeout_s: float = 2.0  #: per request; a timeout is an error, never a dropped sample
    slo_ms: float = 50.0
    #: generator send-lag p99 above this makes a window invalid. 2 ms: in 30 s windows on a 2-core
    #: host ~1.5% of Poisson sends were 1–3 ms late (often two or three sends due in the same
    #: millisecond), so a 1 ms bound rejected every HTTP window of the full profile. Latency counts
    #: from the intended time, so the lag can only inflate it; the lag is reported beside it.
    lag_bound_ms: float = 2.0
    capacity: bool = True  #: search the capacity under the SLO
    capacity_window_s: float = 4.0
    capacity_max_rate: float = 5_000.0
    capacity_tolerance: float = 0.1  #: stop bisecting when hi/lo < 1 + tolerance
    knee_factor: float = 2.0  #: the knee: last rate before p99 exceeds this × its lowest-load value
    floor: bool = True  #: measure the no-op endpoint of the same server (http)
    host: str = "127.0.0.1"
    server_workers: int = 1  #: http: uvicorn worker processes
    server_app: str = "fastapi"  #: http: "fastapi", or "asgi" (a bare ASGI app: the framework's cost removed)
    server_gc_freeze: bool = True  #: http: freeze the server's start-up heap out of the cyclic GC
    replicas: int = 1  #: ray_serve: deployment replicas
    ray_address: str = ""  #: ray_serve: a cluster to join ("" = start a local Ray for the run)
    connections: int = 64  #: the generator's connections to the server (kept alive); in the label unless 64
    seed: int = 0
    num_threads: int = 1
    fault_kill_at_s: float = 0.0  #: http: SIGKILL the server this long into the main window (0 = no fault)
    fault_restart: bool = True  #: ... and restart it at once, as a process supervisor would
    #: http: what the fault kills: "server" (the whole server, every worker; restarted by the harness
    #: if ``fault_restart``) or "replica" (one of ``server_workers`` >= 2 workers; uvicorn replaces it)
    fault_target: str = "server"
    #: http: also answer the customer's 90-day activity (claim C10): "" no, "onthefly" computed with
    #: polars from the activity log at request time, "precomputed" read from a store built in batch
    aggregate: str = ""
    activity_per_customer: float = 50.0  #: events per customer in the activity log (aggregate runs)
    #: http, ray_serve: server-side dynamic batching of /predict: a batch closes at ``batch_max``
    #: requests or ``batch_wait_ms`` after its first (1 = off, one predict call per request)
    batch_max: int = 1
    batch_wait_ms: float = 0.0
    #: http, ray_serve: rows per request, scored in one predict call (batching by the caller); ``rate``
    #: stays requests/s, and predictions, throughput and capacity count rows
    rows_per_request: int = 1
    #: http, ray_serve, mlserver: the load generator on a CPU of its own and the server on the others
    #: (``bench.systems.affinity``), where the machine has one to spare
    isolate_generator: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = "RequestParams"
        require_choice(owner, "backend", self.backend, BACKENDS)
        require_choice(owner, "schedule", self.schedule, load.SCHEDULES)
        require_choice(owner, "server_app", self.server_app, APPS)
        require_choice(owner, "aggregate", self.aggregate, AGGREGATES)
        if self.aggregate and self.backend != "http":
            raise BenchError(f"{owner} parameter 'aggregate' needs backend 'http', got {self.backend!r}")
        require_positive(owner, activity_per_customer=self.activity_per_customer)
        require_positive(
            owner,
            rate=self.rate,
            duration_s=self.duration_s,
            min_requests=self.min_requests,
            max_duration_s=self.max_duration_s,
            timeout_s=self.timeout_s,
            slo_ms=self.slo_ms,
            lag_bound_ms=self.lag_bound_ms,
            capacity_window_s=self.capacity_window_s,
            capacity_max_rate=self.capacity_max_rate,
            capacity_tolerance=self.capacity_tolerance,
            knee_factor=self.knee_factor,
            server_workers=self.server_workers,
            connections=self.connections,
        )
        require_nonnegative(owner, fault_kill_at_s=self.fault_kill_at_s, warmup_s=self.warmup_s)
        if self.fault_kill_at_s and self.backend != "http":
            raise BenchError(f"{owner} parameter 'fault_kill_at_s' needs backend 'http', got {self.backend!r}")
        require_choice(owner, "fault_target", self.fault_target, FAULT_TARGETS)
        if self.fault_target == "replica":
            if not self.fault_kill_at_s:
                raise BenchError(f"{owner} parameter 'fault_target' 'replica' needs fault_kill_at_s > 0")
            if self.server_workers < 2:
                raise BenchError(
                    f"{owner} parameter 'fault_target' 'replica' needs server_workers >= 2 (one is killed, "
                    f"the others serve), got {self.server_workers}"
                )
            if not self.fault_restart:
                raise BenchError(
                    f"{owner} parameter 'fault_restart' False applies to fault_target 'server' only: with "
                    "'replica', uvicorn's supervisor replaces the dead worker itself"
                )
        require_positive(owner, batch_max=self.batch_max, rows_per_request=self.rows_per_request)
        if self.rows_per_request > 1:
            if self.backend not in ("http", "ray_serve") or self.batch_max > 1 or self.aggregate:
                raise BenchError(
                    f"{owner} parameter 'rows_per_request' > 1 needs backend 'http' or 'ray_serve' with "
                    f"batch_max 1 and no aggregate (the caller's batch is one predict call), got backend "
                    f"{self.backend!r}, batch_max {self.batch_max}"
                )
            if self.rows_per_request > self.rows:
                raise BenchError(
                    f"{owner} parameter 'rows_per_request' {self.rows_per_request} is more than 'rows' ({self.rows})"
                )
        require_nonnegative(owner, batch_wait_ms=self.batch_wait_ms)
        if self.batch_max > 1 or self.batch_wait_ms:
            if self.backend not in BATCHING_BACKENDS:
                raise BenchError(
                    f"{owner} parameters 'batch_max'/'batch_wait_ms' need a server that batches "
                    f"(backend one of {BATCHING_BACKENDS}), got backend {self.backend!r}"
                )
            if self.batch_max == 1:
                raise BenchError(f"{owner} parameter 'batch_wait_ms' needs batch_max > 1 (1 = no batching)")
            if self.aggregate:
                raise BenchError(f"{owner} parameter 'batch_max' batches /predict; 'aggregate' runs use /score")
            if self.batch_wait_ms > self.slo_ms:
                raise BenchError(
                    f"{owner} parameter 'batch_wait_ms' {self.batch_wait_ms} is above the SLO ({self.slo_ms} ms): "
                    "every request that waits for its batch would miss it"
                )
        if not self.knee_factor > 1:
            raise BenchError(f"{owner} parameter 'knee_factor' must be > 1, got {self.knee_factor}")


def request_label(params: RequestParams | dict) -> str:
    """The backend as reports name it: ``http`` is FastAPI, one worker, one thread; else ``http[asgi,2w,2t]``."""
    get = params.get if isinstance(params, dict) else lambda k, d=None: getattr(params, k, d)
    backend = get("backend", "http")
    batch = f"b{get('batch_max', 1)}/{get('batch_wait_ms', 0.0):g}ms" if get("batch_max", 1) > 1 else ""
    if get("rows_per_request", 1) > 1:
        batch = f"{get('rows_per_request')}rows"
    if get("connections", DEFAULT_CONNECTIONS) != DEFAULT_CONNECTIONS:  # a latency depends on it
        batch = ",".join(t for t in (batch, f"{get('connections')}conn") if t)
    if backend != "http":
        return f"{backend}[{batch}]" if batch else backend
    tags = [get("server_app", "fastapi")] if get("server_app", "fastapi") != "fastapi" else []
    if batch:
        tags.append(batch)
    if get("aggregate", ""):
        tags.append(f"agg={get('aggregate')}")
    if get("server_workers", 1) != 1:
        tags.append(f"{get('server_workers')}w")
    if get("num_threads", 1) != 1:
        tags.append(f"{get('num_threads')}t")
    return f"http[{','.join(tags)}]" if tags else "http"


def _schedule(params: RequestParams, rate: float, measured_s: float, seed: int) -> np.ndarray:
    return load.schedule(params.schedule, rate, params.warmup_s + measured_s, seed, params.peak_to_mean)


@dataclass
class Window(openloop.Window):
    """A per-request window: the core's record, plus answers that differ from ``predict()`` and what
    ``/score`` answered besides the score."""

    mismatches: int = 0
    answers: Answers | None = None
    times: ServerTimes | None = None

    def curve_extras(self) -> dict:
        """Per point of the capacity curve: the server's CPU per answered request, and with dynamic
        batching the mean batch size and the p99 queue wait, so each reads against offered load."""
        answered = int((self.obs.status == 200).sum())
        server = sum(v for k, v in self.cpu.by_label.items() if k != "generator")
        out: dict = {"server_cpu_per_request_s": server / answered if answered else None}
        t = self.times
        if t is not None and (t.batch > 0).any():
            batched = t.batch > 0
            out["batch_size_mean"] = float(t.batch[batched].mean())
            out["queue_p99_s"] = float(np.quantile(t.queue_s[batched], 0.99, method="inverted_cdf"))
        return out


class Answers:
    """What ``/score`` answered besides the score, per request: where the score came from, how old its
    inputs were when it arrived, and the aggregate feature if one was asked for."""

    def __init__(self, n: int) -> None:
        self.from_store = np.full(n, -1, dtype=np.int8)  #: 1 looked up, 0 scored live, -1 no answer
        self.age_s = np.full(n, np.nan)  #: arrival time − the score's as_of (staleness)
        self.as_of = np.full(n, np.nan)  #: epoch time the score's inputs were read
        self.events_90d = np.full(n, -1, dtype=np.int64)
        self.amount_90d = np.full(n, np.nan)

    def record(self, i: int, doc: dict) -> None:
        self.from_store[i] = doc.get("source") == "store"
        self.as_of[i] = doc["as_of"]
        self.age_s[i] = time.time() - doc["as_of"]
        if "events_90d" in doc:
            self.events_90d[i], self.amount_90d[i] = doc["events_90d"], doc["amount_90d"]


class ServerTimes:
    """What ``/predict`` answered about the server's side of each request: its time in the handler
    (parse to score), and with dynamic batching the batch's size, the queue wait and predict time."""

    def __init__(self, n: int) -> None:
        self.server_s = np.full(n, np.nan)
        self.batch = np.zeros(n, dtype=np.int32)  #: 0: no answer, or not batched
        self.queue_s = np.full(n, np.nan)
        self.predict_s = np.full(n, np.nan)

    def record(self, i: int, doc: dict) -> None:
        self.server_s[i] = doc.get("server_us", np.nan) / 1e6
        if "batch" in doc:
            self.batch[i] = doc["batch"]
            self.queue_s[i] = doc["queue_us"] / 1e6
            self.predict_s[i] = doc["predict_us"] / 1e6


@dataclass
class Backend:
    """What a backend must give the driver: a way to run one window against ``X``."""

    params: RequestParams
    X: np.ndarray
    expected: np.ndarray
    model: Model
    run_dir: Path
    roots: dict[str, int] = field(default_factory=dict)
    fixed_costs_s: dict[str, float] = field(default_factory=dict)
    cores: int = 1
    meter: metrics.CpuMeter | None = None  #: the window's meter, so a restarted server is counted too
    events: list[dict] = field(default_factory=list)  #: faults injected and what followed
    #: the main window's fault as it happened, on the harness's clock (``fault_block`` reads it)
    fault_record: dict | None = None
    window_t0: float | None = None  #: perf_counter of the last window's schedule start
    ids: np.ndarray | None = None  #: customer ids of ``X``'s rows (sent to ``/score``)
    path: str = "/predict"  #: the route scoring requests go to
    #: ``ServerConfig`` fields that ``prepare`` adds to the params' (store, aggregate and their paths)
    server_options: dict[str, str] = field(default_factory=dict)
    answers: Answers | None = None  #: the last window's extra answers (``/score`` only)
    server_times: ServerTimes | None = None  #: the last window's server-side timings (``/predict``)
    #: with ``rows_per_request`` k > 1: request b's k expected scores (row b of this), and the
    #: answered rows after each request's first that differed from them
    expected_rows: np.ndarray | None = None
    row_mismatches: int = 0
    #: which CPUs the generator and the server ran on (``isolate_generator``), or why not separated
    isolation: affinity.Isolation = field(default_factory=lambda: affinity.Isolation(reason="in process"))

    def isolate(self, roots: list[int], cores_needed: int) -> None:
        """Keep the generator (this process) and the server's ``roots`` on separate CPUs, if asked."""
        if not self.params.isolate_generator:
            self.isolation = affinity.Isolation(reason="isolate_generator is off")
        else:
            self.isolation = affinity.isolate(roots, cores_needed)

    expected_aggregate: tuple[np.ndarray, np.ndarray] | None = None  #: per row of X: events, amount
    aggregate_info: dict | None = None

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def window(self, schedule: np.ndarray, path: str = "/predict") -> load.Observations: ...

    def prepare(self, data: workload.Dataset) -> None:
        """Build what the server reads besides the model (called before ``start``)."""

    @contextlib.contextmanager
    def around(self, name: str) -> Iterator[None]:
        """What runs beside the load during window ``name`` (faults, refresh jobs)."""
        yield

    def untracked_cpu(self) -> dict[str, float]:
        """CPU-seconds of short-lived processes the window's meter could not sample, by label."""
        return {}


class _InProcess(Backend):
    """The predictor called directly, one row per call, on the driver's thread (a one-thread server)."""

    def start(self) -> None:
        self.predictor = make_predictor(self.model, self.params.predictor, self.params.num_threads)
        self.cores = self.params.num_threads

    def window(self, schedule: np.ndarray, path: str = "/predict") -> load.Observations:
        X, predictor, n = self.X, self.predictor, len(self.X)

        def call(i: int) -> tuple[int, float]:
            j = i % n
            return 200, predictor.predict_row(X[j])

        return load.drive_sync(schedule, call, deadline_s=float(schedule[-1]) + self.params.timeout_s)


class HttpBackend(Backend):
    """A uvicorn server in its own process; the generator sends pre-encoded JSON over kept-alive connections."""

    def prepare(self, data: workload.Dataset) -> None:
        """With an aggregate (C10): the activity log, and for ``precomputed`` its batch aggregation in a store."""
        p = self.params
        if not p.aggregate:
            return
        activity = features.ensure_activity(data, per_customer=p.activity_per_customer)
        with metrics.stopwatch() as took:
            table = features.aggregate_all(pl.read_parquet(activity.path), customers=self.ids)
        agg = pl.DataFrame({"customer_id": self.ids}).join(table, on="customer_id", how="left")
        events, amount = agg["events_90d"].to_numpy(), agg["amount_90d"].to_numpy()
        self.expected_aggregate = (events, amount)
        self.path = "/score"
        self.server_options = {"aggregate": p.aggregate, "aggregate_path": str(activity.path)}
        self.aggregate_info = {"kind": p.aggregate, "log_rows": activity.rows, "log_sha256": activity.sha256}
        if p.aggregate == "precomputed":
            path = self.run_dir / "aggregates.sqlite"
            with metrics.stopwatch() as wrote:
                store.publish(path, self.ids, {"events_90d": events, "amount_90d": amount}, {"as_of": time.time()})
            self.server_options["aggregate_path"] = str(path)
            self.fixed_costs_s["aggregate_batch"] = took[0] + wrote[0]

    def server_config(self) -> ServerConfig:
        """The server's one configuration: the params' server settings plus what ``prepare`` built."""
        p = self.params
        return ServerConfig(
            str(self.model.path),
            predictor=p.predictor,
            num_threads=p.num_threads,
            app=p.server_app,
            workers=p.server_workers,
            gc_freeze=p.server_gc_freeze,
            host=p.host,
            batch_max=p.batch_max,
            batch_wait_ms=p.batch_wait_ms,
            max_body_bytes=max(65_536, 2_048 * p.rows_per_request),  # a row is ~0.9 KB of JSON
            **self.server_options,
        )

    def start(self) -> None:
        p = self.params
        self.server = ServerProcess(self.server_config(), self.run_dir / "server.log").start()
        self.fixed_costs_s["server_start"] = self.server.start_seconds or 0.0
        self.roots = {"server": self.server.pid}
        self.cores = p.server_workers * p.num_threads
        self.isolate([self.server.pid], self.cores)
        self._encode_bodies()

    def _encode_bodies(self) -> None:
        """Every request body encoded once, before any window: encoding is not part of a request's time."""
        pool = HttpPool(self.params.host, self.server.port, self.params.connections)
        rows = [[None if np.isnan(v) else float(v) for v in row] for row in self.X]
        k = self.params.rows_per_request
        if self.path == "/score":
            docs = [{"customer_id": int(c), "features": r} for c, r in zip(self.ids, rows, strict=True)]
        elif k > 1:
            n = len(rows) // k
            docs = [{"rows": rows[b * k : (b + 1) * k]} for b in range(n)]
            self.expected_rows = self.expected[: n * k].reshape(n, k)
        else:
            docs = [{"features": r} for r in rows]
        self.bodies = [pool.encode("POST", self.path, orjson.dumps(d)) for d in docs]
        self.noop = pool.encode("GET", "/noop")

    def score_of(self, i: int, body: bytes, answers: Answers | None, times: ServerTimes | None) -> float:
        """Request ``i``'s score from the server's answer, recording what else it said."""
        doc = orjson.loads(body)
        if answers is not None:
            answers.record(i, doc)
        if times is not None:
            times.record(i, doc)
        if self.expected_rows is not None:
            want = self.expected_rows[i % len(self.expected_rows)]
            self.row_mismatches += int(np.sum(np.asarray(doc["scores"][1:]) != want[1:]))
            return doc["scores"][0]
        return doc["score"]

    def stop(self) -> None:
        affinity.release(self.isolation)
        if getattr(self, "server", None) is not None:
            self.server.stop()

    @contextlib.contextmanager
    def around(self, name: str) -> Iterator[None]:
        """The main window's fault, if one is asked for; waits (bounded) for its recovery to be recorded."""
        p = self.params
        fault = self.inject_fault(p.warmup_s + p.fault_kill_at_s) if name == "main" and p.fault_kill_at_s else None
        try:
            yield
        finally:
            if fault is not None:
                fault.join(timeout=FAULT_RECOVERY_BOUND_S + 60.0)
                if self.fault_record is not None:  # the main window's clock (later windows reset it)
                    self.fault_record["t_window"] = self.window_t0

    def inject_fault(self, at_s: float) -> threading.Timer:
        """``at_s`` seconds from now, SIGKILL the server (restarting it on the same port if asked) or
        one of its workers (``fault_target``), and record how long until it was back."""

        def fault() -> None:
            if self.meter is not None:
                self.meter.sample()  # the killed process's CPU up to now still counts
            if self.params.fault_target == "replica":
                self._kill_replica(at_s)
            else:
                self._kill_server(at_s)
            if self.meter is not None:
                self.meter.sample()  # the replacement is charged from its birth

        timer = threading.Timer(at_s, fault)
        timer.daemon = True
        timer.start()
        return timer

    def _kill_server(self, at_s: float) -> None:
        killed = self.server.pid
        before = _process(killed)
        t_kill = time.perf_counter()
        self.server.kill()
        event = {"kind": "server_killed", "at_s": at_s, "restarted": False}
        record = {"t_kill": t_kill, "killed_pid": killed, "recovered_s": None}
        if self.params.fault_restart:
            try:
                self.server.restart(timeout_s=FAULT_RECOVERY_BOUND_S)  # the same configuration on the same port
                if self.isolation.isolated:  # started from the generator's CPU: back to the server's
                    affinity.pin_trees([self.server.pid], self.isolation.server_cpus)
                event |= {"restarted": True, "restart_s": time.perf_counter() - t_kill}
                record |= {"recovered_s": event["restart_s"], "replacement_pid": self.server.pid}
                if self.meter is not None:
                    self.meter.add_root("server_restarted", self.server.pid)
            except BenchError as exc:
                event["restart_error"] = str(exc)
        record |= {"killed_gone": _gone(before), "live_workers": len(self.server.worker_pids())}
        self.events.append(event)
        self.fault_record = record

    def _kill_replica(self, at_s: float) -> None:
        workers = self.server.worker_pids()
        if len(workers) < 2:  # never kill the last one: that would be the server fault, mislabelled
            self.events.append({"kind": "replica_not_killed", "at_s": at_s, "live_workers": len(workers)})
            self.fault_record = {"error": f"{len(workers)} live worker(s) at the kill, need >= 2"}
            return
        killed = workers[0]
        before = _process(killed)
        try:
            self.server.kill_worker(killed)
        except BenchError as exc:  # it died on its own between the look and the kill: say so, kill nothing
            self.events.append({"kind": "replica_not_killed", "at_s": at_s, "error": str(exc)})
            self.fault_record = {"error": str(exc)}
            return
        t_kill = time.perf_counter()  # SIGKILL is delivered at once; the supervisor sees it within 0.5 s
        back = self.server.await_replacement(set(workers), timeout_s=FAULT_RECOVERY_BOUND_S)
        event = {"kind": "replica_killed", "at_s": at_s, "pid": killed, **back}
        self.events.append(event)
        self.fault_record = {
            "t_kill": t_kill,
            "killed_pid": killed,
            "recovered_s": back["ready_s"],
            "replaced_s": back["replaced_s"],
            "replacement_pid": back["replacement_pid"],
            "live_workers": back["live_workers"],
            "killed_gone": _gone(before),
        }

    def window(self, schedule: np.ndarray, path: str = "/predict") -> load.Observations:
        p = self.params
        pool = HttpPool(p.host, self.server.port, p.connections)
        bodies, n = self.bodies, len(self.bodies)
        answers = self.answers = Answers(schedule.size) if path == "/score" else None

        times = self.server_times = ServerTimes(schedule.size) if path == "/predict" else None

        async def call(i: int, on_send) -> tuple[int, float]:
            raw = bodies[i % n] if path != "/noop" else self.noop
            status, body = await pool.request(raw, p.timeout_s, on_send)
            if status != 200:
                return status, float("nan")
            return status, self.score_of(i, body, answers, times)

        async def setup() -> None:
            await pool.warm(min(p.connections, 16))
            self.window_t0 = time.perf_counter() + _SCHEDULE_LEAD_S

        async def teardown() -> None:
            pool.close()

        return load.drive_async(
            schedule, call, deadline_s=float(schedule[-1]) + p.timeout_s + 1.0, setup=setup, teardown=teardown
        )


class _RayServe(HttpBackend):
    """The same scorer as a Ray Serve deployment behind Serve's HTTP proxy; Ray's own processes are
    measured as part of the pattern (they are what it costs to run it)."""

    def start(self) -> None:
        # Lazy: Ray Serve (~0.6 s to import on this VM, on top of Ray) loads only for this backend.
        # Lazy: this module imports Ray itself (~1.7 s on this VM); only a Ray Serve run pays for it.
        from bench.systems.ray_serve import RayServeServer

        p = self.params
        self.server = RayServeServer(self.server_config(), replicas=p.replicas, address=p.ray_address)
        try:
            self.server.start()
        finally:
            self.fixed_costs_s.update(self.server.fixed_costs_s)
        self.roots = self.server.ray_roots()
        # A local Ray holds the whole machine (num_cpus = all cores): that is what is provisioned,
        # unless the generator has a CPU of its own; then Ray (all its processes) has the rest.
        self.cores = os.cpu_count() or 1
        if not p.ray_address:
            self.isolate(list(self.roots.values()), 1)
            if self.isolation.isolated:
                self.cores = len(self.isolation.server_cpus)
        self._encode_bodies()


class _MLServer(HttpBackend):
    """Seldon's MLServer with its LightGBM runtime, as a team would deploy it off the shelf (in a venv
    of its own, ``make setup``), over the V2 inference protocol; adaptive batching with ``batch_max``.
    The anchor our own server is held against in the same run. It reports no server-side timings."""

    def start(self) -> None:
        p = self.params
        if not mlserver.available():
            raise BenchError(
                f"backend 'mlserver' needs MLServer in {mlserver.MLSERVER_VENV}: run `make setup` (or "
                "`make setup-mlserver`)"
            )
        self.path = mlserver.infer_path()
        self.server = mlserver.MLServerProcess(
            str(self.model.path),
            self.run_dir / "mlserver",
            batch_max=p.batch_max,
            batch_wait_ms=p.batch_wait_ms,
            host=p.host,
            num_threads=p.num_threads,
        ).start()
        self.fixed_costs_s["server_start"] = self.server.start_seconds or 0.0
        self.roots = {"server": self.server.pid}
        self.cores = p.num_threads
        self.isolate([self.server.pid], self.cores)
        pool = HttpPool(p.host, self.server.port, p.connections)
        self.bodies = [pool.encode("POST", self.path, mlserver.v2_body(row)) for row in self.X]
        self.noop = b""  # no no-op route: the floor is measured on our own server only

    def window(self, schedule: np.ndarray, path: str = "/predict") -> load.Observations:
        return super().window(schedule, self.path)

    def score_of(self, i: int, body: bytes, answers: Answers | None, times: ServerTimes | None) -> float:
        return mlserver.parse_score(body)


_BACKENDS: dict[str, type[Backend]] = {
    "inprocess": _InProcess,
    "http": HttpBackend,
    "ray_serve": _RayServe,
    "mlserver": _MLServer,
}


def backend_class(name: str) -> type[Backend]:
    """The backend class registered under ``name`` (``BACKENDS``)."""
    if name == "ray_serve_handle":
        # Lazy: its module subclasses _RayServe from this one (a cycle at import time otherwise), and
        # only a run through Serve's handle needs it.
        from bench.patterns.request.serve_handle import ServeHandleBackend

        return ServeHandleBackend
    return _BACKENDS[name]


def measure(backend: Backend, name: str, rate: float, measured_s: float, seed: int, path: str = "") -> Window:
    """One open-loop window at ``rate`` against the backend, its CPU metered, its answers checked."""
    p = backend.params
    path = path or backend.path
    schedule = _schedule(p, rate, measured_s, seed)
    with metrics.CpuMeter(roots={"generator": os.getpid(), **backend.roots}, interval_s=None) as meter:
        backend.meter = meter
        with backend.around(name):
            obs = backend.window(schedule, path)
    for label, cpu_s in backend.untracked_cpu().items():
        meter.result.charge(label, cpu_s)
    summary = openloop.summarize(
        obs,
        meter.result,
        warmup_s=p.warmup_s,
        slo_s=p.slo_ms / 1e3,
        lag_bound_s=p.lag_bound_ms / 1e3,
        in_process=p.backend == "inprocess",
    )
    mismatches = 0
    if path != "/noop":
        ok = (obs.status == 200) & ~np.isnan(obs.scores)
        # each request's first row's expected score (with k rows per request, the others are
        # checked as each answer arrives: ``row_mismatches``)
        first = backend.expected if backend.expected_rows is None else backend.expected_rows[:, 0]
        idx = np.arange(obs.intended.size)[ok] % len(first)
        mismatches = int(np.sum(obs.scores[ok] != first[idx]))
        if backend.expected_aggregate is not None and backend.answers is not None:
            events, amount = backend.expected_aggregate
            a = backend.answers
            wrong = (a.events_90d[ok] != events[idx]) | ~np.isclose(a.amount_90d[ok], amount[idx], rtol=1e-9, atol=1e-6)
            mismatches += int(wrong.sum())
    return Window(
        name,
        rate,
        obs,
        summary,
        meter.result,
        mismatches,
        backend.answers if path == "/score" else None,
        backend.server_times if path == "/predict" else None,
    )


def server_side(window: Window, params: RequestParams) -> dict | None:
    """The server's side of the window's measured requests, from what each answer said: where a
    request's time went (``hops``: the client's latency, the server handler's share, and with
    batching the queue wait and the batch's predict call) and the batch sizes. None without timings
    (in-process, ``/score``)."""
    t, obs = window.times, window.obs
    if t is None:
        return None
    answered = (obs.intended >= params.warmup_s) & (obs.status == 200) & ~np.isnan(t.server_s)
    n = int(answered.sum())
    if n == 0:
        return None
    latency = (obs.done - obs.intended)[answered]
    server = t.server_s[answered]
    hops = {
        "latency_s": metrics.latency_summary(latency),
        "server_s": metrics.latency_summary(server),
        #: the latency the server's handler did not account for: the client, the sockets, the
        #: HTTP stack on both sides (and, for Ray Serve, its proxy), per request
        "outside_server_s": metrics.latency_summary(np.clip(latency - server, 0, None)),
    }
    block: dict = {"requests": n, "hops": hops, "batching": None}
    batched = answered & (t.batch > 0)
    if batched.any():
        sizes = t.batch[batched]
        counts = np.bincount(sizes, minlength=params.batch_max + 1)
        hops["queue_s"] = metrics.latency_summary(t.queue_s[batched])
        hops["predict_s"] = metrics.latency_summary(t.predict_s[batched])
        block["batching"] = {
            "batch_max": params.batch_max,
            "batch_wait_ms": params.batch_wait_ms,
            "requests": int(batched.sum()),
            #: by request: the size of the batch each request was scored in (a request's view)
            "batch_size_mean": float(sizes.mean()),
            "batch_size_p50": int(np.quantile(sizes, 0.5, method="inverted_cdf")),
            "batch_size_max": int(sizes.max()),
            #: requests scored in batches of each size, ``[size, requests]`` for the sizes seen
            "batch_size_requests": [[int(k), int(c)] for k, c in enumerate(counts) if c],
            #: batches of each size (requests / size): the batcher's view
            "batches": int(sum(c / k for k, c in enumerate(counts) if k and c)),
        }
    return block


def search_capacity(backend: Backend) -> tuple[dict, list[Window]]:
    """Doubling from the main rate, then bisection, over fixed windows; the last passing rate is the capacity."""
    p = backend.params
    return openloop.search_capacity(
        lambda name, rate, k: measure(backend, name, rate, p.capacity_window_s, p.seed + k + 1),
        start=p.rate,
        max_rate=p.capacity_max_rate,
        tolerance=p.capacity_tolerance,
        cores=backend.cores,
        slo_ms=p.slo_ms,
        window_s=p.capacity_window_s,
        knee_factor=p.knee_factor,
    )


def make_backend(
    kind: type[Backend], data: workload.Dataset, model: Model, params: RequestParams, run_dir: Path
) -> Backend:
    """A backend over the first ``rows`` customers, with every row's expected score, prepared."""
    ensure_writable(run_dir)
    frame = data.scan().head(params.rows).collect()
    data.schema.validate(frame, source=str(data.path))
    X = np.ascontiguousarray(data.schema.matrix(frame))
    expected = make_predictor(model, params.predictor, 1).predict(X)
    backend = kind(params, X, expected, model, run_dir)
    backend.ids = frame[ID].to_numpy()
    backend.prepare(data)
    return backend


def run_windows(backend: Backend, floor: bool) -> tuple[Window, Window | None, dict | None, list[Window]]:
    """Start the backend, measure (the floor,) the main window and the capacity search, always stop it."""
    params = backend.params
    measured_s = openloop.measured_duration(params.duration_s, params.min_requests, params.rate, params.max_duration_s)
    windows: list[Window] = []
    cap = floor_window = None
    try:
        with metrics.stopwatch() as start_s:
            backend.start()
        backend.fixed_costs_s.setdefault("backend_start", start_s[0])
        if floor:
            floor_window = measure(backend, "floor", min(params.rate, 500.0), 2.0, params.seed + 100, path="/noop")
            windows.append(floor_window)
        main = measure(backend, "main", params.rate, measured_s, params.seed)
        windows.append(main)
        if params.capacity:
            cap, searched = search_capacity(backend)
            windows.extend(searched)
    finally:
        backend.stop()
    return main, floor_window, cap, windows


def run(data: workload.Dataset, model: Model, params: RequestParams, context: RunContext) -> RunResult:
    """Run the main window (and the floor and capacity search) against the chosen backend."""
    backend = make_backend(backend_class(params.backend), data, model, params, Path(context.run_dir))
    main, floor, cap, windows = run_windows(backend, floor=params.floor and params.backend == "http")

    s = main.summary
    server_cpu = sum(v for k, v in main.cpu.by_label.items() if k != "generator")
    generator_cpu = main.cpu.by_label.get("generator", 0.0)
    # In process, and through Serve's handle (its router runs in the caller: what the proxy did on
    # the HTTP path), the caller's CPU is part of the serving path: counted, generator included.
    cpu = main.cpu.cpu_s if params.backend in ("inprocess", "ray_serve_handle") else server_cpu
    result = new_result("request", f"{request_label(params)}/{params.predictor}", params, context, model, data)
    k = params.rows_per_request  # rows per request: predictions, throughput and capacity count rows
    predictions = s["completed"] * k
    m = {
        "predictions": predictions,
        "rows_per_request": k,
        "requests": s["completed"],
        "wall_seconds": s["window_s"],
        "throughput_per_s": s["throughput_per_s"] * k,
        "cpu_seconds": cpu,
        "provisioned_core_seconds": backend.cores * s["window_s"],
        "latency_s": s["latency_s"],
        "service_s": s["service_s"],
        "generator_lag_s": s["generator_lag_s"],
        "offered_rate_per_s": s["offered_rate_per_s"] * k,
        "issued_rate_per_s": s["issued_rate_per_s"] * k,
        "errors": s["errors"],
        "sustainable": s["sustainable"],
        "cpu_seconds_per_prediction": cpu / predictions if predictions else None,
        "generator_cpu_seconds": generator_cpu if params.backend in ("http", "ray_serve_handle", "mlserver") else None,
        "cpu": main.cpu.to_dict(),
        "floor_latency_s": floor.summary["latency_s"] if floor else None,
        "floor_service_s": floor.summary["service_s"] if floor else None,
        "capacity": _in_rows(cap, k),
        "score_mismatches": sum(w.mismatches for w in windows) + backend.row_mismatches,
        "unavailability": metrics.unavailability(main.obs, params.warmup_s),
        "fault_events": backend.events,
        "fault": fault_block(main.obs, backend, params) if params.fault_kill_at_s else None,
        "fixed_costs_s": dict(backend.fixed_costs_s),
        "aggregate": backend.aggregate_info,
        "server_side": server_side(main, params),
        "isolation": backend.isolation.to_dict(),
    }
    result.metrics = m
    openloop.apply_verdicts(result, main, cap, why_not=lambda: _why_not(s, params))
    if m["score_mismatches"]:
        result.invalidate(
            f"{m['score_mismatches']} answer(s) differ from predict() (or the batch aggregate) on the same row"
        )
    result.samples = openloop.samples_frame(windows, params.warmup_s)
    return result


def _in_rows(cap: dict | None, k: int) -> dict | None:
    """The capacity block with its rates in predictions/s (rows), as every other pattern's; the
    search's own rates (requests/s) stay in its curve, ``requests_per_s`` says the request rate."""
    if cap is None or k == 1:
        return cap
    return cap | {
        "rate_per_s": cap["rate_per_s"] * k,
        "per_core_per_s": cap["per_core_per_s"] * k,
        "first_failing_rate_per_s": cap["first_failing_rate_per_s"] and cap["first_failing_rate_per_s"] * k,
        "requests_per_s": cap["rate_per_s"],
        "rows_per_request": k,
    }


def _why_not(s: dict, params: RequestParams) -> str:
    lat = s["latency_s"]
    parts = []
    if s["error_count"]:
        parts.append(f"{s['error_count']} failed request(s): {s['errors']}")
    if lat and lat["p99"] > params.slo_ms / 1e3:
        parts.append(f"p99 {1e3 * lat['p99']:.1f} ms > SLO {params.slo_ms} ms")
    if s["completed"] < 0.99 * s["offered_requests"]:
        parts.append(f"answered {s['completed']} of {s['offered_requests']} offered")
    return "; ".join(parts) or "generator invalid"


def _process(pid: int):
    """A handle on ``pid`` that later tells whether *that* process still runs (not a reused pid)."""
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _gone(proc) -> bool:
    """Whether the process behind ``proc`` has exited (a zombie not yet reaped counts as gone)."""
    if proc is None:
        return True
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def fault_block(obs: load.Observations, backend: Backend, params: RequestParams) -> dict:
    """What the main window's fault did, on the schedule's clock (seconds after warm-up).

    ``failed``: requests of the measured window that failed (a healthy window has none);
    ``served_during``: requests intended between the kill and ``recovered_s`` that were answered;
    ``recovered_s``: kill to the restarted server answering (server) or to the pool back at
    ``replicas`` live workers with the replacement answering (replica); ``latency_recovered_s``:
    kill to latency back at baseline (``RECOVERY_BIN_S``); ``max_answer_gap_s``: the longest time
    with no successful answer in the measured window — the outage a consumer saw, or its absence.
    """
    rec = backend.fault_record or {}
    t_kill, t0 = rec.get("t_kill"), rec.get("t_window")
    block: dict = {
        "target": params.fault_target,
        "replicas": params.server_workers,
        "killed_pid": rec.get("killed_pid"),
        "at_s": None,
        "requests": 0,
        "failed": 0,
        "served_during": 0,
        "offered_during": 0,
        "recovered_s": rec.get("recovered_s"),
        "latency_recovered_s": None,
        "max_answer_gap_s": None,
        "replaced_s": rec.get("replaced_s"),
        "replacement_pid": rec.get("replacement_pid"),
        "live_workers_after": rec.get("live_workers"),
        "killed_gone": rec.get("killed_gone"),
        "error": rec.get("error", "" if t_kill is not None else "the fault did not fire"),
    }
    measured = obs.intended >= params.warmup_s
    ok = obs.status == 200
    block["requests"] = int(measured.sum())
    block["failed"] = int((measured & ~ok).sum())
    done = np.sort(obs.done[measured & ok])
    if done.size >= 2:
        block["max_answer_gap_s"] = float(np.diff(done).max())
    if t_kill is None or t0 is None:
        return block
    kill = t_kill - t0  # on the schedule's clock
    block["at_s"] = kill - params.warmup_s
    end = kill + block["recovered_s"] if block["recovered_s"] is not None else float(obs.intended.max())
    during = measured & (obs.intended >= kill) & (obs.intended < end)
    block["offered_during"] = int(during.sum())
    block["served_during"] = int((during & ok).sum())
    block["latency_recovered_s"] = _latency_recovered(obs, kill, params.warmup_s)
    return block


def _latency_recovered(obs: load.Observations, kill: float, warmup_s: float) -> float | None:
    """Seconds from the kill to the first of two consecutive healthy bins (see ``RECOVERY_BIN_S``)."""
    ok = obs.status == 200
    latency = obs.done - obs.intended
    before = ok & (obs.intended >= warmup_s) & (obs.intended < kill)
    if before.sum() < 20:  # too few answers before the kill for a baseline p90
        return None
    bound = RECOVERY_FACTOR * metrics.latency_summary(latency[before])["p90"] + 1e-3
    n_bins = int(np.ceil((float(obs.intended.max()) - kill) / RECOVERY_BIN_S))
    healthy = []
    for i in range(max(n_bins, 0)):
        lo = kill + i * RECOVERY_BIN_S
        in_bin = (obs.intended >= lo) & (obs.intended < lo + RECOVERY_BIN_S)
        answered = bool(ok[in_bin].all())
        healthy.append(answered and (not in_bin.any() or metrics.latency_summary(latency[in_bin])["p90"] <= bound))
    for i, good in enumerate(healthy):
        if good and (i + 1 == len(healthy) or healthy[i + 1]):
            return i * RECOVERY_BIN_S
    return None


def request_point_label(values: dict) -> str:
    """A sweep point in a progress line: the backend, and the fault when there is one."""
    if not values.get("fault_kill_at_s"):
        return request_label(values)
    if values.get("fault_target") == "replica":
        return request_label(values) + f", 1 of {values.get('server_workers')} replicas killed"
    return request_label(values) + ", server killed"


PATTERN = Pattern(
    name="request",
    params=RequestParams,
    run=run,
    notebook="30_request.ipynb",
    family="real-time",
    cost_kind="always-on",
    label=request_point_label,
    sweep=Sweep(
        base="request",
        variants="request_variants",
        repeats="request_repeats",
        extras="request_extras",
        compiled="request_compiled",
    ),
    view="bench.views.request",
    limits="capacity",
    fault_params=("fault_kill_at_s",),  # whichever fault_target
    not_a_service_params=("aggregate", "rows_per_request"),
)
