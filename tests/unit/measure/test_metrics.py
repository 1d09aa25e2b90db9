"""Statistics: latency summaries (nearest rank), throughput, phase timing and CPU-seconds of process trees."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from bench.core.errors import BenchError
from bench.measure import metrics

# --------------------------------------------------------------------------------------------
# Latency summary
# --------------------------------------------------------------------------------------------


def test_latency_summary_known_data() -> None:
    samples = np.arange(1, 1001) / 1000.0  # 1 ms .. 1000 ms
    s = metrics.latency_summary(samples)
    assert s["count"] == 1000
    assert s["min"] == 0.001
    assert s["max"] == 1.0
    assert s["mean"] == pytest.approx(0.5005)
    # nearest rank: the k-th smallest with k = ceil(q * n)
    assert s["p50"] == 0.5
    assert s["p90"] == 0.9
    assert s["p95"] == 0.95
    assert s["p99"] == 0.99
    assert s["p99_9"] == 0.999
    assert s["tail_samples"] == {"p50": 501, "p90": 101, "p95": 51, "p99": 11, "p99_9": 2}


def test_latency_summary_order_does_not_matter() -> None:
    samples = np.arange(1, 1001) / 1000.0
    shuffled = np.random.default_rng(0).permutation(samples)
    assert metrics.latency_summary(list(shuffled)) == metrics.latency_summary(samples)


@pytest.mark.parametrize("n", [1, 2, 7, 99, 1000, 1001])
def test_latency_percentiles_are_observed_nearest_rank_values(n: int) -> None:
    x = np.random.default_rng(n).exponential(0.01, n)
    s = metrics.latency_summary(x)
    for name, q in metrics.PERCENTILES.items():
        p = s[name]
        assert p in x  # every reported value was actually observed
        assert np.mean(x <= p) >= q  # at least q of the samples are at or below it
        assert np.mean(x < p) < q  # and it is the smallest such value
        assert s["tail_samples"][name] == int(np.sum(x >= p))
    assert s["min"] <= s["p50"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["p99_9"] <= s["max"]


def test_latency_summary_single_sample() -> None:
    s = metrics.latency_summary([0.25])
    assert s["count"] == 1
    assert all(s[k] == 0.25 for k in ("min", "mean", "max", *metrics.PERCENTILES))
    assert s["tail_samples"] == dict.fromkeys(metrics.PERCENTILES, 1)


def test_latency_summary_zero_is_allowed() -> None:
    assert metrics.latency_summary([0.0, 0.0])["max"] == 0.0


@pytest.mark.parametrize(
    "samples, match",
    [
        ([], "at least one sample"),
        (np.array([]), "at least one sample"),
        ([0.1, -0.001], "finite and >= 0"),
        ([0.1, float("nan")], "finite and >= 0"),
        ([0.1, float("inf")], "finite and >= 0"),
        (np.ones((10, 2)), "one-dimensional"),
        (np.float64(0.1), "one-dimensional"),
    ],
)
def test_latency_summary_rejects_bad_input(samples: object, match: str) -> None:
    with pytest.raises(BenchError, match=match):
        metrics.latency_summary(samples)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Throughput, phases, stopwatch
# --------------------------------------------------------------------------------------------


def test_throughput() -> None:
    assert metrics.throughput(1000, 4.0) == 250.0
    assert metrics.throughput(0, 1.0) == 0.0
    assert metrics.throughput(3, 0.5) == 6.0


@pytest.mark.parametrize("seconds", [0, 0.0, -1.0])
def test_throughput_rejects_non_positive_duration(seconds: float) -> None:
    with pytest.raises(BenchError, match="positive duration"):
        metrics.throughput(10, seconds)


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Replace bench.measure.metrics' clock by one that returns the listed nanosecond readings in turn."""
    readings: list[int] = []
    fake = types.SimpleNamespace(perf_counter_ns=lambda: readings.pop(0))
    monkeypatch.setattr(metrics, "time", fake)
    yield readings
    assert readings == [], "not every clock reading was used"


def test_phases_accumulate(fake_clock: list[int]) -> None:
    fake_clock.extend([0, 5, 10, 17, 20, 30, 100, 1_000_000_100])
    phases = metrics.Phases()
    with phases("read"):
        pass
    with phases("score"):
        pass
    with phases("read"):
        pass
    with phases("write"):
        pass
    assert phases.ns == {"read": 5 + 10, "score": 7, "write": 1_000_000_000}
    assert phases.seconds() == {"read": 15e-9, "score": 7e-9, "write": 1.0}


def test_phases_record_time_when_the_body_raises(fake_clock: list[int]) -> None:
    fake_clock.extend([100, 350])
    phases = metrics.Phases()
    with pytest.raises(RuntimeError), phases("score"):
        raise RuntimeError("model crashed")
    assert phases.ns == {"score": 250}


def test_phases_real_clock() -> None:
    phases = metrics.Phases()
    for _ in range(2):
        with phases("sleep"):
            time.sleep(0.01)
    assert phases.seconds()["sleep"] >= 0.02  # sleep never returns early; no upper bound is asserted


def test_stopwatch(fake_clock: list[int]) -> None:
    fake_clock.extend([1_000, 2_500_001_000])
    with metrics.stopwatch() as sw:
        assert sw == [0.0]
    assert sw[0] == 2.5


# --------------------------------------------------------------------------------------------
# CpuMeter
# --------------------------------------------------------------------------------------------


def _burn(cpu_seconds: float) -> None:
    t0 = time.process_time()
    x = 0
    while time.process_time() - t0 < cpu_seconds:
        x += 1


#: A child that waits for ``go``, burns 0.5 s of CPU, creates ``done``, then idles until ``stop`` exists
#: (so it is still alive when the meter takes its last sample).
_CHILD = """
import os, sys, time
d = sys.argv[1]
def wait(name):
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(d, name)) and time.monotonic() < deadline:
        time.sleep(0.01)
wait("go")
t0 = time.process_time()
while time.process_time() - t0 < 0.5:
    pass
open(os.path.join(d, "done"), "w").close()
wait("stop")
"""


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def _ended(proc: psutil.Process, timeout: float = 30.0) -> bool:
    """Wait until ``proc`` has exited (gone, or a zombie its new parent has not reaped yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.01)
    return False


def _kill(proc: psutil.Process) -> None:
    """Kill ``proc`` (started by the test) if it is still running."""
    try:
        if not _ended(proc, timeout=0):
            proc.kill()
            _ended(proc, timeout=10)
    except psutil.Error:
        pass


def _start_detached(tmp_path: Path) -> int:
    """Start the burning child so that it is NOT a descendant of this process (like a separately started server)."""
    out = subprocess.run(
        ["sh", "-c", '"$0" -c "$1" "$2" </dev/null >/dev/null 2>&1 & echo $!', sys.executable, _CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(out.stdout.strip())


def test_cpu_meter_counts_driver_cpu() -> None:
    with metrics.CpuMeter(interval_s=0.05) as meter:
        _burn(0.3)
    usage = meter.result
    assert usage is not None
    assert 0.15 < usage.cpu_s < 5
    assert 0.15 < usage.by_label["driver"] < 5
    assert usage.cpu_s == pytest.approx(sum(usage.by_label.values()))
    assert usage.wall_s > 0
    assert usage.processes >= 1
    assert usage.peak_rss_bytes > 0
    d = usage.to_dict()
    for key in ("wall_s", "cpu_s", "by_label", "system_busy_s", "processes", "peak_rss_bytes"):
        assert d[key] == getattr(usage, key)


def test_cpu_meter_excludes_cpu_burned_before_start() -> None:
    _burn(0.3)
    meter = metrics.CpuMeter(interval_s=0.05).start()
    usage = meter.stop()
    assert usage.by_label["driver"] < 0.15


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs /proc/stat (Linux)")
def test_cpu_meter_system_busy_on_linux() -> None:
    with metrics.CpuMeter(interval_s=0.05) as meter:
        _burn(0.2)
    assert meter.result is not None
    assert meter.result.system_busy_s is not None
    assert meter.result.system_busy_s >= 0


def test_cpu_meter_counts_a_child_of_the_driver(tmp_path: Path) -> None:
    meter = metrics.CpuMeter(interval_s=0.05).start()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)])
    try:
        (tmp_path / "go").touch()
        _wait_for(tmp_path / "done")
        usage = meter.stop()
    finally:
        (tmp_path / "stop").touch()
        child.wait(timeout=30)
    assert usage.by_label["driver"] > 0.3
    assert usage.processes >= 2


def test_cpu_meter_add_root_counts_a_separately_started_process(tmp_path: Path) -> None:
    pid = _start_detached(tmp_path)
    server = psutil.Process(pid)
    try:
        assert server.ppid() != os.getpid()
        assert pid not in {p.pid for p in psutil.Process().children(recursive=True)}
        meter = metrics.CpuMeter(interval_s=0.05).start()
        meter.add_root("server", pid)
        (tmp_path / "go").touch()
        _wait_for(tmp_path / "done")
        usage = meter.stop()
        (tmp_path / "stop").touch()
        assert _ended(server)
    finally:
        _kill(server)
    assert set(usage.by_label) == {"driver", "server"}
    assert 0.1 < usage.by_label["server"] < 5
    assert usage.cpu_s == pytest.approx(usage.by_label["driver"] + usage.by_label["server"])


def test_cpu_meter_add_root_for_a_child_of_the_driver(tmp_path: Path) -> None:
    meter = metrics.CpuMeter(interval_s=0.05).start()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)])
    try:
        meter.add_root("server", child.pid)
        (tmp_path / "go").touch()
        _wait_for(tmp_path / "done")
        usage = meter.stop()
    finally:
        (tmp_path / "stop").touch()
        child.wait(timeout=30)
    assert usage.by_label["server"] > 0.1


def test_cpu_meter_lost_root_is_ignored() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    meter = metrics.CpuMeter({"driver": os.getpid(), "gone": proc.pid}, interval_s=0.05).start()
    usage = meter.stop()
    assert usage.by_label["gone"] == 0.0


def _usage(wall_s: float, cpu_s: float, system_busy_s: float | None) -> metrics.CpuUsage:
    return metrics.CpuUsage(wall_s, cpu_s, {"driver": cpu_s}, system_busy_s, processes=1, peak_rss_bytes=1)


def test_foreign_cpu_and_contention() -> None:
    busy = _usage(wall_s=10.0, cpu_s=2.0, system_busy_s=10.0)  # 8 CPU-s elsewhere = 40 % of 2 cores x 10 s
    assert busy.foreign_cpu_s() == 8.0
    assert busy.to_dict()["foreign_cpu_s"] == 8.0
    reason = busy.contention(cores=2)
    assert reason is not None and "8.0 CPU-s" in reason and "40%" in reason
    assert busy.contention(cores=64) is None  # 8 / 640 = 1.25 %: noise
    assert _usage(wall_s=10.0, cpu_s=2.0, system_busy_s=2.5).contention(cores=2) is None
    assert _usage(wall_s=1.0, cpu_s=0.1, system_busy_s=1.0).contention(cores=1) is None  # <= 1 CPU-s
    assert _usage(wall_s=10.0, cpu_s=3.0, system_busy_s=1.0).foreign_cpu_s() == 0.0  # never negative
    unknown = _usage(wall_s=10.0, cpu_s=2.0, system_busy_s=None)
    assert unknown.foreign_cpu_s() is None and unknown.contention(cores=2) is None


def test_cpu_meter_misuse() -> None:
    with pytest.raises(BenchError, match="interval_s"):
        metrics.CpuMeter(interval_s=0)
    with pytest.raises(BenchError, match="before start"):
        metrics.CpuMeter().stop()


def _pt(rate: float, p99_ms: float, errors: int = 0) -> dict:
    return {"offered_rate_per_s": rate, "p99_s": p99_ms / 1e3, "errors": errors}


def test_knee_is_the_last_rate_before_p99_rises_above_factor_times_baseline() -> None:
    curve = [_pt(1600, 4.5), _pt(200, 3.0), _pt(800, 5.9), _pt(400, 3.1), _pt(3200, 400.0)]  # unsorted
    k = metrics.knee(curve, factor=2.0)
    assert k["rate_per_s"] == 1600 and k["baseline_p99_s"] == pytest.approx(0.003)
    assert metrics.knee(curve, factor=1.5)["rate_per_s"] == 400  # 800's 5.9 ms > 4.5 ms stops it


def test_knee_stops_at_errors_and_handles_empty_curves() -> None:
    assert metrics.knee([_pt(100, 1.0), _pt(200, 1.1, errors=3), _pt(400, 1.2)])["rate_per_s"] == 100
    assert metrics.knee([]) is None
    assert metrics.knee([{"offered_rate_per_s": 5.0, "p99_s": None, "errors": 0}]) is None
    assert metrics.knee([_pt(100, 1.0, errors=1)]) is None
    with pytest.raises(BenchError, match="factor"):
        metrics.knee([_pt(100, 1.0)], factor=1.0)


# --------------------------------------------------------------------------------------------
# Repeated calls of one size
# --------------------------------------------------------------------------------------------


def test_call_size_summary_per_row_figures_are_totals_over_rows() -> None:
    wall = [0.001, 0.002, 0.003, 0.010]
    cpu = [0.001, 0.002, 0.002, 0.003]
    s = metrics.call_size_summary(100, wall, cpu)
    assert (s["size"], s["calls"], s["rows"]) == (100, 4, 400)
    assert s["wall_seconds"] == pytest.approx(0.016) and s["cpu_seconds"] == pytest.approx(0.008)
    assert s["wall_us_per_row"] == pytest.approx(40.0) and s["cpu_us_per_row"] == pytest.approx(20.0)
    assert s["rows_per_s"] == pytest.approx(400 / 0.016)
    assert s["call_latency_s"] == metrics.latency_summary(wall)  # a call's wall time, with its count
    assert s["call_latency_s"]["count"] == 4 and s["call_latency_s"]["p99"] == 0.010


@pytest.mark.parametrize(
    ("size", "wall", "cpu", "match"),
    [
        (0, [0.1], [0.1], "call size must be > 0"),
        (10, [0.1, 0.2], [0.1], "one CPU time per call"),
        (10, [], [], "at least one sample"),
        (10, [0.1], [-0.1], "CPU times must be finite"),
        (10, [float("nan")], [0.1], "finite and >= 0"),
    ],
)
def test_call_size_summary_rejects_bad_input(size: int, wall: list, cpu: list, match: str) -> None:
    with pytest.raises(BenchError, match=match):
        metrics.call_size_summary(size, wall, cpu)


def test_cpu_meter_keeps_each_roots_peak_memory() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(64 << 20); time.sleep(30)"])
    try:
        meter = metrics.CpuMeter({"generator": os.getpid(), "server": proc.pid}, interval_s=None).start()
        deadline = time.monotonic() + 20
        while psutil.Process(proc.pid).memory_info().rss < 64 << 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        usage = meter.stop()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    by_label = usage.to_dict()["peak_rss_by_label"]
    assert set(by_label) == {"generator", "server"}
    assert by_label["server"] >= 64 << 20  # the server's own 64 MiB, apart from the generator's
    assert usage.peak_rss_bytes <= by_label["server"] + by_label["generator"]
