"""The one place statistics are computed: latency summaries, throughput, phase timing, CPU of a process tree.

Patterns hand raw observations here and never compute their own percentiles. Clocks are
``time.perf_counter_ns`` (monotonic, highest resolution).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Self

import numpy as np
import psutil

from bench.core.errors import BenchError
from bench.measure.load import Observations, generator_lag

#: Share of the machine other processes may take during a run before the run is marked invalid.
CONTENTION_SHARE = 0.20

#: Percentiles reported for every latency distribution (name -> quantile).
PERCENTILES: dict[str, float] = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p99_9": 0.999}


def latency_summary(samples_s: np.ndarray | list[float]) -> dict[str, float | int]:
    """Summary of raw latency samples in seconds: count, min, mean, percentiles, max.

    Percentiles use the nearest-rank rule (numpy ``inverted_cdf``): every reported value is a
    latency that was actually observed. ``tail_samples`` says how many samples lie at or above
    each percentile, so a p99.9 resting on a handful of samples is visible as such.
    """
    x = np.asarray(samples_s, dtype=np.float64)
    if x.ndim != 1:
        raise BenchError(f"latency samples must be one-dimensional, got shape {x.shape}")
    if x.size == 0:
        raise BenchError("latency summary needs at least one sample")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise BenchError("latency samples must be finite and >= 0 seconds")
    out: dict[str, float | int] = {"count": int(x.size), "min": float(x.min()), "mean": float(x.mean())}
    for name, q in PERCENTILES.items():
        out[name] = float(np.quantile(x, q, method="inverted_cdf"))
    out["max"] = float(x.max())
    out["tail_samples"] = {name: int(np.sum(x >= out[name])) for name in PERCENTILES}  # type: ignore[assignment]
    return out


def knee(curve: Sequence[Mapping], factor: float = 2.0) -> dict | None:
    """The knee of a latency-vs-load curve: the highest offered rate before p99 latency first rises
    above ``factor`` × its value at the lowest measured rate (queueing has set in), with no errors.

    ``curve`` holds points with ``offered_rate_per_s``, ``p99_s`` and ``errors`` (windows without
    latencies are skipped). Returns the knee point's rate and p99 and the baseline it was judged
    against, or None when no point qualifies.
    """
    if factor <= 1:
        raise BenchError(f"knee factor must be > 1, got {factor}")
    pts = sorted((p for p in curve if p.get("p99_s") is not None), key=lambda p: p["offered_rate_per_s"])
    if not pts:
        return None
    base = pts[0]["p99_s"]
    best = None
    for p in pts:
        if p["p99_s"] > factor * base or p.get("errors"):
            break
        best = p
    if best is None:
        return None
    return {"rate_per_s": best["offered_rate_per_s"], "p99_s": best["p99_s"], "baseline_p99_s": base, "factor": factor}


def throughput(count: int, seconds: float) -> float:
    """Completed items per wall-second."""
    if seconds <= 0:
        raise BenchError(f"throughput needs a positive duration, got {seconds}")
    return count / seconds


class Phases:
    """Accumulates wall time of named phases (``with phases("read"): ...``) in nanoseconds."""

    def __init__(self) -> None:
        self.ns: dict[str, int] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter_ns()
        try:
            yield
        finally:
            self.ns[name] = self.ns.get(name, 0) + time.perf_counter_ns() - t0

    def seconds(self) -> dict[str, float]:
        return {k: v / 1e9 for k, v in self.ns.items()}


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as sw: ...``; afterwards ``sw[0]`` is the elapsed wall time in seconds."""
    out: list[float] = [0.0]
    t0 = time.perf_counter_ns()
    try:
        yield out
    finally:
        out[0] = (time.perf_counter_ns() - t0) / 1e9


# --------------------------------------------------------------------------------------------
# CPU-seconds of a process tree
# --------------------------------------------------------------------------------------------


def _system_busy_seconds() -> float | None:
    """Busy CPU time of the whole machine from /proc/stat (None where there is no /proc)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuUsage:
    """What a :class:`CpuMeter` saw between start and stop."""

    wall_s: float
    cpu_s: float  #: user+system of every tracked process, children included
    by_label: dict[str, float]  #: the same split by the root each process descends from
    system_busy_s: float | None  #: whole machine's busy time from /proc/stat, for a cross-check
    processes: int  #: distinct processes seen
    peak_rss_bytes: int  #: largest summed RSS of the tree over the samples
    #: the same per root label (a server's own memory apart from the load generator's)
    peak_rss_by_label: dict[str, int] = field(default_factory=dict)

    def foreign_cpu_s(self) -> float | None:
        """CPU the machine spent on processes outside the tree during the run (other work, noise)."""
        return None if self.system_busy_s is None else max(0.0, self.system_busy_s - self.cpu_s)

    def contention(self, cores: int | None = None) -> str | None:
        """A reason to distrust the run if other work took a real share of the machine, else None.

        Threshold: more than 1 CPU-second and more than 20% of the machine's capacity (cores × wall)
        went to processes outside the measured tree; below that, noise cannot be told from jitter.
        """
        foreign = self.foreign_cpu_s()
        cores = cores or os.cpu_count() or 1
        if foreign is None or self.wall_s <= 0:
            return None
        share = foreign / (cores * self.wall_s)
        if foreign > 1.0 and share > CONTENTION_SHARE:
            return (
                f"machine busy with other work: {foreign:.1f} CPU-s ({100 * share:.0f}% of {cores} cores × "
                f"{self.wall_s:.1f} s) went to processes outside the measured tree"
            )
        return None

    def charge(self, label: str, cpu_s: float) -> None:
        """Add CPU a tracked process spent between samples (e.g. a short job's own report at exit)."""
        self.by_label[label] = self.by_label.get(label, 0.0) + cpu_s
        self.cpu_s += cpu_s

    def to_dict(self) -> dict:
        return {
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "by_label": self.by_label,
            "system_busy_s": self.system_busy_s,
            "processes": self.processes,
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_rss_by_label": self.peak_rss_by_label,
            "foreign_cpu_s": self.foreign_cpu_s(),
        }


@dataclass
class _Proc:
    label: str
    base: float  #: CPU seconds when first seen (0 for processes born during the measurement)
    last: float


class CpuMeter:
    """CPU-seconds (user+system) of one or more process trees, sampled in a background thread.

    ``interval_s=None`` samples only at start and stop: right for long-lived processes (a server,
    the load generator) where a sampling thread's GIL holds would disturb sub-millisecond timing.
    Roots are labelled (``driver``, ``server``, ``raylet``…); every descendant of a root is
    charged to it, so processes that are not children of the driver (a server started separately,
    Ray workers under the raylet) are counted once their root is added. Processes that exit
    between samples are counted up to their last sample, so keep ``interval_s`` short relative to
    worker lifetimes; ``system_busy_s`` from /proc/stat is the machine-wide cross-check.
    """

    def __init__(self, roots: dict[str, int] | None = None, interval_s: float | None = 0.2) -> None:
        if interval_s is not None and interval_s <= 0:
            raise BenchError(f"CpuMeter interval_s must be > 0, got {interval_s}")
        self.roots: dict[str, int] = dict(roots or {"driver": os.getpid()})
        self.interval_s = interval_s
        self._procs: dict[tuple[int, float], _Proc] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak_rss = 0
        self._peak_rss_by_label: dict[str, int] = {}
        self._t0 = 0
        self._busy0: float | None = None
        self._started = False
        self.result: CpuUsage | None = None

    def add_root(self, label: str, pid: int) -> None:
        """Track another process tree (e.g. a server or the raylet) from now on."""
        with self._lock:
            self.roots[label] = pid
        if self._started:
            self._sample(initial=True)

    def _walk(self) -> list[tuple[str, psutil.Process]]:
        """Every process of every tree, each charged to its closest root (a server the driver spawned
        and added as a root is charged to the server, not the driver)."""
        trees: dict[str, list[psutil.Process]] = {}
        for label, pid in self.roots.items():
            try:
                root = psutil.Process(pid)
                trees[label] = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
        owner: dict[int, tuple[str, psutil.Process]] = {}
        # A nested tree is a subset of the tree holding it, so visiting larger trees first lets the
        # closer (smaller) root claim its processes last.
        for label in sorted(trees, key=lambda lbl: -len(trees[lbl])):
            for proc in trees[label]:
                owner[proc.pid] = (label, proc)
        return list(owner.values())

    def _sample(self, initial: bool = False) -> None:
        rss = 0
        rss_by_label: dict[str, int] = {}
        with self._lock:
            for label, proc in self._walk():
                try:
                    with proc.oneshot():
                        t = proc.cpu_times()
                        key = (proc.pid, proc.create_time())
                        cpu = t.user + t.system
                        proc_rss = proc.memory_info().rss
                        rss += proc_rss
                        rss_by_label[label] = rss_by_label.get(label, 0) + proc_rss
                except psutil.Error:
                    continue
                entry = self._procs.get(key)
                if entry is None:
                    # A process already running at start (or when its root was added) is charged
                    # only from then on; one born later is charged from zero.
                    base = cpu if initial else 0.0
                    self._procs[key] = _Proc(label, base, cpu)
                else:
                    entry.last = max(entry.last, cpu)
                    entry.label = label  # a root added later claims its processes
            self._peak_rss = max(self._peak_rss, rss)
            for label, value in rss_by_label.items():
                self._peak_rss_by_label[label] = max(self._peak_rss_by_label.get(label, 0), value)

    def sample(self) -> None:
        """Take a sample now (e.g. just before killing a tracked process, so its CPU so far counts)."""
        if self._started:
            self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> CpuMeter:
        self._t0 = time.perf_counter_ns()
        self._busy0 = _system_busy_seconds()
        self._sample(initial=True)
        self._started = True
        if self.interval_s is not None:
            self._thread = threading.Thread(target=self._loop, name="cpu-meter", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> CpuUsage:
        if not self._started:
            raise BenchError("CpuMeter.stop() called before start()")
        self._sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        wall = (time.perf_counter_ns() - self._t0) / 1e9
        busy1 = _system_busy_seconds()
        by_label: dict[str, float] = {label: 0.0 for label in self.roots}
        for p in self._procs.values():
            by_label[p.label] = by_label.get(p.label, 0.0) + (p.last - p.base)
        self.result = CpuUsage(
            wall_s=wall,
            cpu_s=sum(by_label.values()),
            by_label=by_label,
            system_busy_s=None if self._busy0 is None or busy1 is None else busy1 - self._busy0,
            processes=len(self._procs),
            peak_rss_bytes=self._peak_rss,
            peak_rss_by_label=dict(self._peak_rss_by_label),
        )
        self._started = False
        return self.result

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Open-loop windows
# --------------------------------------------------------------------------------------------


def window_summary(
    obs,
    *,
    warmup_s: float,
    slo_s: float,
    lag_bound_s: float,
    in_process: bool = False,
) -> dict:
    """Statistics of one open-loop window (``bench.measure.load.Observations``), warm-up excluded.

    ``latency_s`` runs from the *intended* send time to the answer (queueing included, no
    coordinated omission); ``service_s`` from the actual send. The window is ``valid`` only if the
    generator kept its schedule (lag p99 within ``lag_bound_s`` and ≥ 99% of the offered requests
    issued); it is ``sustainable`` only if nothing failed, p99 latency met the SLO, the answers kept
    up with the offered rate, and the generator's lag was small enough not to decide the verdict
    (``slo_decidable``: valid, or lag p99 under a tenth of the SLO).
    """
    measured = obs.intended >= warmup_s
    window_s = max(float(obs.intended[measured].max() - warmup_s) if measured.any() else 0.0, 1e-9)
    offered = int(measured.sum())
    ok = measured & (obs.status >= 200) & (obs.status < 300)
    issued = measured & ~np.isnan(obs.issued)
    lag = generator_lag(_subset(obs, measured), in_process=in_process)
    errors = {
        "timeout": int((measured & (obs.status == 0) & ~np.isnan(obs.issued)).sum()),
        "connection": int((measured & (obs.status == -1)).sum()),
        "backend_exception": int((measured & (obs.status == -2)).sum()),
        "http_4xx": int((measured & (obs.status >= 400) & (obs.status < 500)).sum()),
        "http_5xx": int((measured & (obs.status >= 500)).sum()),
        "not_sent": int((measured & np.isnan(obs.issued)).sum()),
    }
    # Completion rate over the span it took to answer the window's requests: a server that fell
    # behind stretches the span, so its throughput falls below the offered rate.
    span = max(float(obs.done[ok].max()) - warmup_s, window_s) if ok.any() else window_s
    out: dict = {
        "offered_requests": offered,
        "offered_rate_per_s": offered / window_s,
        "issued_rate_per_s": int(issued.sum()) / window_s,
        "completed": int(ok.sum()),
        "throughput_per_s": int(ok.sum()) / span,
        "window_s": window_s,
        "errors": errors,
        "error_count": sum(errors.values()),
        "latency_s": latency_summary((obs.done - obs.intended)[ok]) if ok.any() else None,
        "service_s": latency_summary((obs.done - obs.sent)[ok]) if ok.any() else None,
        "generator_lag_s": latency_summary(np.maximum(lag, 0.0)) if lag.size else None,
        "latency_trend_s": latency_trend(obs.intended[ok], (obs.done - obs.intended)[ok]),
    }
    reasons = []
    if lag.size and out["generator_lag_s"]["p99"] > lag_bound_s:
        reasons.append(
            f"load generator fell behind its schedule: send lag p99 {1e3 * out['generator_lag_s']['p99']:.2f} ms "
            f"> bound {1e3 * lag_bound_s:.2f} ms"
        )
    if offered and issued.sum() < 0.99 * offered:
        reasons.append(f"load generator issued {int(issued.sum())} of {offered} offered requests (< 99%)")
    if errors["http_4xx"]:  # the generator only sends well-formed requests: a 4xx is the harness's fault
        reasons.append(f"{errors['http_4xx']} request(s) rejected with 4xx: the harness sent what the server refuses")
    out["valid"] = not reasons
    out["invalid_reasons"] = reasons
    # The SLO verdict still stands when the generator's lag, though above the bound, is under a tenth
    # of the SLO: it cannot move p99 across the line. The capacity search uses this, and says so.
    lag_p99 = out["generator_lag_s"]["p99"] if out["generator_lag_s"] else 0.0
    out["slo_decidable"] = bool(out["valid"] or (issued.sum() >= 0.99 * offered and lag_p99 < 0.1 * slo_s))
    p99 = out["latency_s"]["p99"] if out["latency_s"] else float("inf")
    trend = out["latency_trend_s"]
    # A queue that grows through the window is a system behind its load even if the SLO still holds:
    # median latency of the last third above the first third's by more than a tenth of the SLO.
    out["falling_behind"] = bool(trend and trend["last"] - trend["first"] > 0.1 * slo_s)
    out["sustainable"] = bool(
        out["slo_decidable"]
        and out["error_count"] == 0
        and p99 <= slo_s
        and ok.sum() >= 0.99 * offered
        and not out["falling_behind"]
    )
    return out


def latency_trend(t: np.ndarray, latency: np.ndarray) -> dict | None:
    """Median latency of the first and the last third of a window's answered requests, by intended
    time: a growing queue shows as a rising trend. None with fewer than 30 answers."""
    if t.size < 30:
        return None
    order = np.argsort(t, kind="stable")
    third = t.size // 3
    first, last = latency[order[:third]], latency[order[-third:]]
    return {"first": float(np.median(first)), "last": float(np.median(last)), "count_per_third": int(third)}


def unavailability(obs, warmup_s: float = 0.0) -> dict | None:
    """The outage a consumer saw: from the first failed request to the first success after the last
    failure (by intended time), with the failures counted; None if nothing failed."""
    measured = obs.intended >= warmup_s
    failed = measured & ((obs.status < 200) | (obs.status >= 300))
    if not failed.any():
        return None
    first, last = float(obs.intended[failed].min()), float(obs.intended[failed].max())
    ok_after = measured & (obs.status == 200) & (obs.intended > last)
    recovered = float(obs.intended[ok_after].min()) if ok_after.any() else None
    return {
        "failed_requests": int(failed.sum()),
        "first_failure_s": first - warmup_s,
        "recovered_at_s": None if recovered is None else recovered - warmup_s,
        "unavailable_s": (recovered if recovered is not None else float(obs.intended[measured].max())) - first,
        "recovered": recovered is not None,
    }


def _subset(obs, mask: np.ndarray):
    return Observations(
        obs.intended[mask],
        obs.issued[mask],
        obs.sent[mask],
        obs.done[mask],
        obs.status[mask],
        obs.scores[mask],
        obs.duration_s,
    )


# --------------------------------------------------------------------------------------------
# Repeated calls of one size (the predictor alone)
# --------------------------------------------------------------------------------------------


def call_size_summary(size: int, wall_s: np.ndarray | Sequence[float], cpu_s: np.ndarray | Sequence[float]) -> dict:
    """Per-row cost of ``len(wall_s)`` calls that each scored ``size`` rows.

    ``wall_s`` and ``cpu_s`` are each call's elapsed wall time and process CPU time (every thread of
    the process) in seconds. Per-row figures are totals over totals (the mean cost of a row, not a
    mean of per-call ratios); ``call_latency_s`` is the distribution of a call's wall time, with its
    sample count, as :func:`latency_summary` reports it.
    """
    wall = np.asarray(wall_s, dtype=np.float64)
    cpu = np.asarray(cpu_s, dtype=np.float64)
    if size <= 0:
        raise BenchError(f"call size must be > 0, got {size}")
    if wall.shape != cpu.shape:
        raise BenchError(f"one CPU time per call is needed: {wall.shape} wall times, {cpu.shape} CPU times")
    if not np.all(np.isfinite(cpu)) or np.any(cpu < 0):
        raise BenchError("call CPU times must be finite and >= 0 seconds")
    latency = latency_summary(wall)  # also refuses empty, non-finite and negative wall times
    calls = int(wall.size)
    rows = calls * int(size)
    total_wall, total_cpu = float(wall.sum()), float(cpu.sum())
    return {
        "size": int(size),
        "calls": calls,
        "rows": rows,
        "wall_seconds": total_wall,
        "cpu_seconds": total_cpu,
        "wall_us_per_row": 1e6 * total_wall / rows,
        "cpu_us_per_row": 1e6 * total_cpu / rows,
        "rows_per_s": throughput(rows, total_wall) if total_wall > 0 else None,
        "call_latency_s": latency,
    }
