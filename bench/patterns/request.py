"""Per-request scoring: one row per call, open-loop load, latency from the intended send time.

Backends (registry, one ``run`` for all): ``inprocess`` calls the predictor directly, one row per call
(the lower bound); ``http`` calls a FastAPI/uvicorn server in its own process over loopback, one JSON
request per row. Each run measures a main window at the offered ``rate``, the no-op floor of the same
stack (``http``), and, if asked, the capacity under the SLO: the highest rate whose window keeps p99
latency within the SLO with no errors, found by doubling then bisection over fixed-length windows
(MLPerf's FindPeakPerformance). Every answered score is checked against ``predict()`` on that row.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import polars as pl

from bench import capacity, load, metrics, workload
from bench.errors import BenchError
from bench.httpclient import HttpPool
from bench.model import Model, make_predictor
from bench.params import require_choice, require_positive
from bench.patterns import Pattern, PatternParams, RunContext, new_result
from bench.results import RunResult, ensure_writable
from bench.serve.http_app import APPS
from bench.serve.process import ServerProcess

BACKENDS = ("inprocess", "http", "ray_serve")


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
    lag_bound_ms: float = 1.0  #: generator send-lag p99 above this makes a window invalid
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
    connections: int = 64
    seed: int = 0
    num_threads: int = 1
    fault_kill_at_s: float = 0.0  #: http: SIGKILL the server this long into the main window (0 = no fault)
    fault_restart: bool = True  #: ... and restart it at once, as a process supervisor would

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = "RequestParams"
        require_choice(owner, "backend", self.backend, BACKENDS)
        require_choice(owner, "schedule", self.schedule, load.SCHEDULES)
        require_choice(owner, "server_app", self.server_app, APPS)
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
        if self.fault_kill_at_s < 0:
            raise BenchError(f"{owner} parameter 'fault_kill_at_s' must be >= 0, got {self.fault_kill_at_s}")
        if self.fault_kill_at_s and self.backend != "http":
            raise BenchError(f"{owner} parameter 'fault_kill_at_s' needs backend 'http', got {self.backend!r}")
        if self.warmup_s < 0:
            raise BenchError(f"{owner} parameter 'warmup_s' must be >= 0, got {self.warmup_s}")
        if not self.knee_factor > 1:
            raise BenchError(f"{owner} parameter 'knee_factor' must be > 1, got {self.knee_factor}")


def request_label(params: RequestParams | dict) -> str:
    """The backend as reports name it: ``http`` is FastAPI, one worker, one thread; else ``http[asgi,2w,2t]``."""
    get = params.get if isinstance(params, dict) else lambda k, d=None: getattr(params, k, d)
    backend = get("backend", "http")
    if backend != "http":
        return backend
    tags = [get("server_app", "fastapi")] if get("server_app", "fastapi") != "fastapi" else []
    if get("server_workers", 1) != 1:
        tags.append(f"{get('server_workers')}w")
    if get("num_threads", 1) != 1:
        tags.append(f"{get('num_threads')}t")
    return f"http[{','.join(tags)}]" if tags else "http"


def _schedule(params: RequestParams, rate: float, measured_s: float, seed: int) -> np.ndarray:
    return load.schedule(params.schedule, rate, params.warmup_s + measured_s, seed, params.peak_to_mean)


@dataclass
class _Window:
    name: str
    rate: float
    obs: load.Observations
    summary: dict
    cpu: metrics.CpuUsage
    mismatches: int = 0


@dataclass
class _Backend:
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

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def window(self, schedule: np.ndarray, path: str = "/predict") -> load.Observations: ...


class _InProcess(_Backend):
    """The predictor called directly, one row per call, on the driver's thread (a one-thread server)."""

    def start(self) -> None:
        self.predictor = make_predictor(self.model, self.params.predictor, self.params.num_threads)
        self.cores = self.params.num_threads

    def window(self, schedule: np.ndarray, path: str = "/predict") -> load.Observations:
        X, predictor, n = self.X, self.predictor, len(self.X)

        def call(i: int) -> tuple[int, float]:
            j = i % n
            return 200, float(predictor.predict(X[j : j + 1])[0])

        return load.drive_sync(schedule, call, deadline_s=float(schedule[-1]) + self.params.timeout_s)


class _Http(_Backend):
    """A uvicorn server in its own process; the generator sends pre-encoded JSON over kept-alive connections."""

    def start(self) -> None:
        p = self.params
        self.server = ServerProcess(
            self.model.path,
            self.run_dir / "server.log",
            host=p.host,
            workers=p.server_workers,
            num_threads=p.num_threads,
            app=p.server_app,
            gc_freeze=p.server_gc_freeze,
        ).start()
        self.fixed_costs_s["server_start"] = self.server.start_seconds or 0.0
        self.roots = {"server": self.server.pid}
        self.cores = p.server_workers * p.num_threads
        self._encode_bodies()

    def _encode_bodies(self) -> None:
        """Every request body encoded once, before any window: encoding is not part of a request's time."""
        pool = HttpPool(self.params.host, self.server.port, self.params.connections)
        rows = [[None if np.isnan(v) else float(v) for v in row] for row in self.X]
        self.bodies = [pool.encode("POST", "/predict", orjson.dumps({"features": r})) for r in rows]
        self.noop = pool.encode("GET", "/noop")

    def stop(self) -> None:
        if getattr(self, "server", None) is not None:
            self.server.stop()

    def inject_fault(self, at_s: float) -> threading.Timer:
        """Kill the server ``at_s`` seconds from now; restart it on the same port if asked."""

        def fault() -> None:
            if self.meter is not None:
                self.meter.sample()  # the killed server's CPU up to now still counts
            t_kill = time.perf_counter()
            self.server.kill()
            event = {"kind": "server_killed", "at_s": at_s, "restarted": False}
            if self.params.fault_restart:
                old = self.server
                self.server = ServerProcess(
                    old.model_path,
                    old.log_path,
                    host=old.host,
                    port=old.port,
                    workers=old.workers,
                    num_threads=old.num_threads,
                    app=old.app,
                    gc_freeze=old.gc_freeze,
                )
                try:
                    self.server.start()
                    event |= {"restarted": True, "restart_s": time.perf_counter() - t_kill}
                    if self.meter is not None:
                        self.meter.add_root("server_restarted", self.server.pid)
                except BenchError as exc:
                    event["restart_error"] = str(exc)
            self.events.append(event)

        timer = threading.Timer(at_s, fault)
        timer.daemon = True
        timer.start()
        return timer

    def window(self, schedule: np.ndarray, path: str = "/predict") -> load.Observations:
        p = self.params
        pool = HttpPool(p.host, self.server.port, p.connections)
        bodies, n = self.bodies, len(self.bodies)

        async def call(i: int, on_send) -> tuple[int, float]:
            raw = bodies[i % n] if path == "/predict" else self.noop
            status, body = await pool.request(raw, p.timeout_s, on_send)
            return status, orjson.loads(body)["score"] if status == 200 else float("nan")

        async def setup() -> None:
            await pool.warm(min(p.connections, 16))

        async def teardown() -> None:
            pool.close()

        return load.drive_async(
            schedule, call, deadline_s=float(schedule[-1]) + p.timeout_s + 1.0, setup=setup, teardown=teardown
        )


class _RayServe(_Http):
    """The same scorer as a Ray Serve deployment behind Serve's HTTP proxy; Ray's own processes are
    measured as part of the pattern (they are what it costs to run it)."""

    def start(self) -> None:
        from bench.serve.ray_app import RayServeServer

        p = self.params
        self.server = RayServeServer(
            self.model.path, host=p.host, replicas=p.replicas, num_threads=p.num_threads, address=p.ray_address
        )
        try:
            self.server.start()
        finally:
            self.fixed_costs_s.update(self.server.fixed_costs_s)
        self.roots = self.server.ray_roots()
        # A local Ray holds the whole machine (num_cpus = all cores): that is what is provisioned.
        self.cores = os.cpu_count() or 1
        self._encode_bodies()


_BACKENDS: dict[str, type[_Backend]] = {"inprocess": _InProcess, "http": _Http, "ray_serve": _RayServe}


def _measure(
    backend: _Backend, name: str, rate: float, measured_s: float, seed: int, path: str = "/predict"
) -> _Window:
    p = backend.params
    schedule = _schedule(p, rate, measured_s, seed)
    with metrics.CpuMeter(roots={"generator": os.getpid(), **backend.roots}, interval_s=None) as meter:
        backend.meter = meter
        fault = None
        if name == "main" and p.fault_kill_at_s:
            fault = backend.inject_fault(p.warmup_s + p.fault_kill_at_s)
        obs = backend.window(schedule, path)
        if fault is not None:
            fault.join(timeout=120.0)
    summary = metrics.window_summary(
        obs,
        warmup_s=p.warmup_s,
        slo_s=p.slo_ms / 1e3,
        lag_bound_s=p.lag_bound_ms / 1e3,
        in_process=p.backend == "inprocess",
    )
    busy = meter.result.contention()
    if busy:  # other work on the machine inflates latency: say so, as batch runs do
        summary["valid"] = False
        summary["invalid_reasons"].append(busy)
    mismatches = 0
    if path == "/predict":
        ok = (obs.status == 200) & ~np.isnan(obs.scores)
        idx = np.arange(obs.intended.size)[ok] % len(backend.expected)
        mismatches = int(np.sum(obs.scores[ok] != backend.expected[idx]))
    return _Window(name, rate, obs, summary, meter.result, mismatches)


def _capacity(backend: _Backend) -> dict:
    """Doubling from the main rate, then bisection, over fixed windows; the last passing rate is the capacity."""
    p = backend.params
    windows: list[_Window] = []

    def passes(rate: float) -> bool | None:
        w = _measure(backend, f"capacity@{rate:.0f}", rate, p.capacity_window_s, p.seed + len(windows) + 1)
        windows.append(w)
        if not w.summary["slo_decidable"]:
            return None  # the generator, not the server, set the limit: stop searching
        return w.summary["sustainable"]

    found = capacity.search(
        passes, start=p.rate, max_rate=p.capacity_max_rate, tolerance=p.capacity_tolerance, max_windows=16
    )
    curve = [capacity.curve_point(w.summary) for w in windows]
    out = capacity.describe(
        found,
        curve,
        cores=backend.cores,
        slo_ms=p.slo_ms,
        window_s=p.capacity_window_s,
        knee_factor=p.knee_factor,
    )
    return out | {"_windows": windows}


def run(data: workload.Dataset, model: Model, params: RequestParams, context: RunContext) -> RunResult:
    """Run the main window (and the floor and capacity search) against the chosen backend."""
    run_dir = Path(context.run_dir)
    ensure_writable(run_dir)
    frame = pl.scan_parquet(data.path).head(params.rows).collect()
    workload.validate(frame, source=str(data.path))
    X = np.ascontiguousarray(workload.feature_matrix(frame))
    expected = make_predictor(model, params.predictor, 1).predict(X)
    backend = _BACKENDS[params.backend](params, X, expected, model, run_dir)
    measured_s = min(max(params.duration_s, params.min_requests / params.rate), params.max_duration_s)
    windows: list[_Window] = []
    cap = None
    try:
        with metrics.stopwatch() as start_s:
            backend.start()
        backend.fixed_costs_s.setdefault("backend_start", start_s[0])
        floor = None
        if params.floor and params.backend == "http":
            floor = _measure(backend, "floor", min(params.rate, 500.0), 2.0, params.seed + 100, path="/noop")
            windows.append(floor)
        main = _measure(backend, "main", params.rate, measured_s, params.seed)
        windows.append(main)
        if params.capacity:
            cap = _capacity(backend)
            windows.extend(cap.pop("_windows"))
    finally:
        backend.stop()

    s = main.summary
    server_cpu = sum(v for k, v in main.cpu.by_label.items() if k != "generator")
    generator_cpu = main.cpu.by_label.get("generator", 0.0)
    cpu = main.cpu.cpu_s if params.backend == "inprocess" else server_cpu
    result = new_result("request", f"{request_label(params)}/{params.predictor}", params, context, model, data)
    predictions = s["completed"]
    m = {
        "predictions": predictions,
        "wall_seconds": s["window_s"],
        "throughput_per_s": s["throughput_per_s"],
        "cpu_seconds": cpu,
        "provisioned_core_seconds": backend.cores * s["window_s"],
        "latency_s": s["latency_s"],
        "service_s": s["service_s"],
        "generator_lag_s": s["generator_lag_s"],
        "offered_rate_per_s": s["offered_rate_per_s"],
        "issued_rate_per_s": s["issued_rate_per_s"],
        "errors": s["errors"],
        "sustainable": s["sustainable"],
        "cpu_seconds_per_prediction": cpu / predictions if predictions else None,
        "generator_cpu_seconds": generator_cpu if params.backend == "http" else None,
        "cpu": main.cpu.to_dict(),
        "floor_latency_s": floor.summary["latency_s"] if floor else None,
        "floor_service_s": floor.summary["service_s"] if floor else None,
        "capacity": cap,
        "score_mismatches": sum(w.mismatches for w in windows),
        "unavailability": metrics.unavailability(main.obs, params.warmup_s),
        "fault_events": backend.events,
        "fixed_costs_s": dict(backend.fixed_costs_s),
    }
    result.metrics = m
    for reason in s["invalid_reasons"]:
        result.invalidate(f"main window: {reason}")
    if busy := capacity.contended(cap):
        result.invalidate(busy)
    if m["score_mismatches"]:
        result.invalidate(f"{m['score_mismatches']} answered score(s) differ from predict() on the same row")
    if not s["sustainable"]:
        m["not_sustainable_because"] = _why_not(s, params)
    result.samples = pl.concat(
        [w.obs.frame(window=w.name, offered_rate=float(w.rate), warmup_s=float(params.warmup_s)) for w in windows],
        how="vertical_relaxed",
    )
    return result


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


PATTERN = Pattern(name="request", params=RequestParams, run=run, notebook="30_request.ipynb")
