"""The capacity search: doubling then bisection, on synthetic systems with a known capacity."""

from __future__ import annotations

import pytest

from bench.measure import capacity


def _system(true_capacity: float, log: list[float] | None = None):
    def passes(rate: float) -> bool:
        if log is not None:
            log.append(rate)
        return rate <= true_capacity

    return passes


@pytest.mark.parametrize("true_capacity", [150.0, 1000.0, 3333.0])
def test_search_brackets_the_true_capacity_within_tolerance(true_capacity):
    found = capacity.search(_system(true_capacity), start=100, max_rate=10_000, tolerance=0.05, max_windows=40)
    assert found.limited_by == "slo"
    assert found.rate_per_s <= true_capacity < found.first_failing_rate_per_s
    assert found.first_failing_rate_per_s / found.rate_per_s <= 1.05


def test_search_doubles_then_bisects():
    log: list[float] = []
    capacity.search(_system(300, log), start=100, max_rate=10_000, tolerance=0.1, max_windows=40, min_rate=1)
    assert log[:3] == [100, 200, 400] and log[3] == 300


def test_search_halves_when_the_start_fails():
    found = capacity.search(_system(30), start=100, max_rate=1000, tolerance=0.1, max_windows=40)
    assert 27 <= found.rate_per_s <= 30 and found.limited_by == "slo"


def test_search_stops_at_the_cap_the_generator_and_the_window_budget():
    assert capacity.search(_system(1e9), start=100, max_rate=1000).limited_by == "max_rate"
    gen = capacity.search(lambda r: None if r > 300 else True, start=100, max_rate=1000)
    assert gen.limited_by == "generator" and gen.rate_per_s == 200
    few = capacity.search(_system(333), start=100, max_rate=10_000, tolerance=0.001, max_windows=5)
    assert few.limited_by == "max_windows" and few.windows == 5
    never = capacity.search(lambda r: False, start=100, max_rate=1000, max_windows=40)
    assert never.rate_per_s == 0.0 and never.first_failing_rate_per_s < 2


def test_a_capacity_with_windows_on_a_busy_machine_is_flagged():
    clean = {"curve": [{"invalid_reasons": []}, {"invalid_reasons": ["load generator fell behind its schedule"]}]}
    assert capacity.contended(clean) is None and capacity.contended(None) is None
    busy = {"curve": [{"invalid_reasons": ["machine busy with other work: 5 CPU-s"]}, {"invalid_reasons": []}]}
    assert "1 capacity window(s)" in capacity.contended(busy)
