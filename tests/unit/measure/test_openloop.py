"""The open-loop core: window length, capacity search over windows, verdicts on a result, raw samples."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pytest

from bench.measure import capacity, load, openloop
from bench.measure.metrics import CpuUsage


def _obs(n: int = 200, rate: float = 100.0, latency_s: float = 0.005, status: int = 200) -> load.Observations:
    intended = np.arange(n) / rate
    return load.Observations(
        intended=intended,
        issued=intended.copy(),
        sent=intended.copy(),
        done=intended + latency_s,
        status=np.full(n, status, dtype=np.int32),
        scores=np.zeros(n),
        duration_s=float(intended[-1] + latency_s),
    )


def _cpu(busy_s: float | None = None, wall_s: float = 2.0) -> CpuUsage:
    return CpuUsage(wall_s=wall_s, cpu_s=0.5, by_label={"x": 0.5}, system_busy_s=busy_s, processes=1, peak_rss_bytes=0)


def _window(name: str, rate: float, latency_s: float = 0.005, busy_s: float | None = None) -> openloop.Window:
    obs, cpu = _obs(rate=rate, latency_s=latency_s), _cpu(busy_s)
    summary = openloop.summarize(obs, cpu, warmup_s=0.0, slo_s=0.05, lag_bound_s=0.002)
    return openloop.Window(name, rate, obs, summary, cpu)


@dataclass
class _Result:
    metrics: dict = field(default_factory=dict)
    invalid_reasons: list[str] = field(default_factory=list)

    def invalidate(self, reason: str) -> None:
        self.invalid_reasons.append(reason)


def test_measured_duration_is_mlperfs_min_duration_and_min_count_rule():
    assert openloop.measured_duration(10.0, 2_000, 500.0, 120.0) == 10.0  # the duration is longer
    assert openloop.measured_duration(10.0, 2_000, 100.0, 120.0) == 20.0  # the count is
    assert openloop.measured_duration(10.0, 2_000, 1.0, 120.0) == 120.0  # never beyond the bound


def test_summarize_invalidates_a_window_the_machine_was_busy_for():
    calm = openloop.summarize(_obs(), _cpu(busy_s=0.6), warmup_s=0.0, slo_s=0.05, lag_bound_s=0.002)
    assert calm["valid"] and calm["sustainable"] and calm["invalid_reasons"] == []
    cores = os.cpu_count() or 1
    busy = openloop.summarize(_obs(), _cpu(busy_s=0.5 + cores * 2.0), warmup_s=0.0, slo_s=0.05, lag_bound_s=0.002)
    assert not busy["valid"] and busy["invalid_reasons"][-1].startswith("machine busy with other work")


class _Extra(openloop.Window):
    def curve_extras(self) -> dict:
        return {"name_seen": self.name}


def test_search_capacity_drives_named_windows_and_describes_the_search():
    calls: list[tuple[str, float, int]] = []

    def measure(name: str, rate: float, k: int) -> openloop.Window:
        calls.append((name, rate, k))
        w = _window(name, rate, latency_s=0.005 if rate <= 300 else 0.5)  # capacity 300/s
        return _Extra(w.name, w.rate, w.obs, w.summary, w.cpu)

    cap, windows = openloop.search_capacity(
        measure, start=100, max_rate=10_000, tolerance=0.1, cores=2, slo_ms=50.0, window_s=2.0, knee_factor=2.0
    )
    assert [c[0] for c in calls[:3]] == ["capacity@100", "capacity@200", "capacity@400"]
    assert [c[2] for c in calls] == list(range(len(calls)))  # k: windows measured before, for the seed
    assert [w.name for w in windows] == [c[0] for c in calls]
    assert cap["limited_by"] == "slo" and 270 <= cap["rate_per_s"] <= 300 < cap["first_failing_rate_per_s"]
    assert cap["per_core_per_s"] == cap["rate_per_s"] / 2 and cap["window_s"] == 2.0 and cap["slo_ms"] == 50.0
    assert [p["name_seen"] for p in cap["curve"]] == [w.name for w in windows]  # the pattern's extras
    assert cap["curve"][0] == capacity.curve_point(windows[0].summary, name_seen="capacity@100")
    assert set(cap) == {
        "rate_per_s",
        "per_core_per_s",
        "cores",
        "first_failing_rate_per_s",
        "limited_by",
        "slo_ms",
        "window_s",
        "invalid_windows",
        "curve",
        "knee",
    }


def test_search_capacity_stops_where_the_generator_set_the_limit():
    def measure(name: str, rate: float, k: int) -> openloop.Window:
        w = _window(name, rate)
        if rate > 150:
            w.summary["slo_decidable"] = False
        return w

    cap, windows = openloop.search_capacity(
        measure, start=100, max_rate=1_000, tolerance=0.1, cores=1, slo_ms=50.0, window_s=2.0, knee_factor=2.0
    )
    assert cap["limited_by"] == "generator" and cap["rate_per_s"] == 100 and len(windows) == 2


def test_apply_verdicts_uses_the_reason_strings_results_have_always_carried():
    main = _window("main", 100.0)
    main.summary["invalid_reasons"] = ["load generator fell behind its schedule: x"]
    main.summary["sustainable"] = False
    busy = {"curve": [{"invalid_reasons": ["machine busy with other work: y"]}, {"invalid_reasons": []}]}
    result = _Result()
    openloop.apply_verdicts(result, main, busy, why_not=lambda: "p99 too high")
    assert result.invalid_reasons == [
        "main window: load generator fell behind its schedule: x",
        "1 capacity window(s) ran while other work took the machine: the capacity is not this pattern's",
    ]
    assert result.metrics["not_sustainable_because"] == "p99 too high"

    fine = _Result()
    openloop.apply_verdicts(fine, _window("main", 100.0), None, why_not=pytest.fail)  # sustainable: not asked
    assert fine.invalid_reasons == [] and "not_sustainable_because" not in fine.metrics


def test_samples_frame_concatenates_windows_with_their_names_and_rates():
    windows = [_window("main", 100.0), _window("capacity@200", 200.0)]
    frame = openloop.samples_frame(windows, 0.5)
    expected = pl.concat(
        [w.obs.frame(window=w.name, offered_rate=float(w.rate), warmup_s=0.5) for w in windows], how="vertical_relaxed"
    )
    assert frame.equals(expected)
    assert frame.columns[-3:] == ["window", "offered_rate", "warmup_s"]


def test_samples_frame_adds_a_patterns_columns_to_the_windows_it_names():
    windows = [_window("main", 100.0), _window("capacity@200", 200.0)]
    frame = openloop.samples_frame(windows, 0.0, columns={"main": {"age_s": np.arange(200.0)}})
    main, other = frame.filter(pl.col("window") == "main"), frame.filter(pl.col("window") != "main")
    assert main["age_s"].to_list() == list(np.arange(200.0)) and other["age_s"].null_count() == 200
    assert frame.height == 400
