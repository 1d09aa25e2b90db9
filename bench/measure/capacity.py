"""Capacity under an SLO: the highest offered rate whose fixed-length window passes.

MLPerf LoadGen's FindPeakPerformance shape: double the rate from a start until a window fails, then
bisect between the last pass and the first failure until they are within a tolerance. Shared by
every pattern that has a capacity (per-request, streaming); the pattern supplies ``passes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.measure.metrics import knee

#: a window's verdict: True (sustainable), False (not), None (the load generator, not the system,
#: set the limit — the search stops there and says so)
Verdict = bool | None


@dataclass(frozen=True)
class Capacity:
    rate_per_s: float  #: the last passing rate (0 if none passed)
    first_failing_rate_per_s: float | None
    limited_by: str  #: "slo", "generator", "max_rate" (never failed up to the cap) or "max_windows"
    windows: int


def search(
    passes: Callable[[float], Verdict],
    *,
    start: float,
    max_rate: float,
    tolerance: float = 0.1,
    max_windows: int = 16,
    min_rate: float = 1.0,
) -> Capacity:
    """Doubling from ``start`` (capped at ``max_rate``), then bisection; at most ``max_windows`` windows.

    If the first window fails, halve down to ``min_rate`` to find a passing rate first.
    """
    calls = 0

    def judge(rate: float) -> Verdict:
        nonlocal calls
        calls += 1
        return passes(rate)

    lo, hi = 0.0, None
    rate = min(start, max_rate)
    while True:  # doubling
        verdict = judge(rate)
        if verdict is None:
            return Capacity(lo, hi, "generator", calls)
        if not verdict:
            hi = rate
            break
        lo = rate
        if rate >= max_rate:
            return Capacity(lo, None, "max_rate", calls)
        if calls >= max_windows:
            return Capacity(lo, None, "max_windows", calls)
        rate = min(rate * 2, max_rate)
    while lo == 0.0 and hi / 2 >= min_rate and calls < max_windows:  # even the start failed: halve
        verdict = judge(hi / 2)
        if verdict is None:
            return Capacity(lo, hi, "generator", calls)
        if verdict:
            lo = hi / 2
        else:
            hi = hi / 2
    while lo > 0 and hi / lo > 1 + tolerance:  # bisection
        if calls >= max_windows:
            return Capacity(lo, hi, "max_windows", calls)
        mid = (lo + hi) / 2
        verdict = judge(mid)
        if verdict is None:
            return Capacity(lo, hi, "generator", calls)
        lo, hi = (mid, hi) if verdict else (lo, mid)
    return Capacity(lo, hi, "slo", calls)


def contended(cap: dict | None) -> str | None:
    """Why a capacity cannot be trusted: some of its windows ran while other work took the machine."""
    busy = [p for p in (cap or {}).get("curve", []) if any("machine busy" in r for r in p["invalid_reasons"])]
    if not busy:
        return None
    return f"{len(busy)} capacity window(s) ran while other work took the machine: the capacity is not this pattern's"


def curve_point(summary: dict, **extra: object) -> dict:
    """One point of a latency-vs-load curve from a window's ``metrics.window_summary``."""
    lat = summary["latency_s"] or {}
    return {
        "offered_rate_per_s": summary["offered_rate_per_s"],
        "throughput_per_s": summary["throughput_per_s"],
        "p50_s": lat.get("p50"),
        "p99_s": lat.get("p99"),
        "count": lat.get("count", 0),
        "errors": summary["error_count"],
        "sustainable": summary["sustainable"],
        "valid": summary["valid"],
        "invalid_reasons": list(summary["invalid_reasons"]),
        "generator_lag_p99_s": (summary["generator_lag_s"] or {}).get("p99"),
        **extra,
    }


def describe(
    found: Capacity, curve: list[dict], *, cores: float, slo_ms: float, window_s: float, knee_factor: float
) -> dict:
    """What a result records of a capacity search: the capacity, per core, what limited it, the curve, its knee."""
    return {
        "rate_per_s": found.rate_per_s,
        "per_core_per_s": found.rate_per_s / cores,
        "cores": cores,
        "first_failing_rate_per_s": found.first_failing_rate_per_s,
        "limited_by": found.limited_by,
        "slo_ms": slo_ms,
        "window_s": window_s,
        "invalid_windows": sum(1 for p in curve if not p["valid"]),
        "curve": curve,
        "knee": knee(curve, knee_factor),
    }
