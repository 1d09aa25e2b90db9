"""Views of the per-request (real-time) pattern: a run's card (30_request) and the report's summary."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from bench.patterns.request import PATTERN
from bench.results import RunResult
from bench.views.report import _window_columns, runs_of


def request_card(result: RunResult) -> pl.DataFrame:
    """A per-request run's headline figures: offered vs answered, latency with its sample count, floor, capacity."""
    m = result.metrics
    lat, svc, lag = m.get("latency_s") or {}, m.get("service_s") or {}, m.get("generator_lag_s") or {}
    floor = m.get("floor_latency_s") or {}
    cap = m.get("capacity") or {}

    def ms(d: dict, key: str) -> str:
        return f"{1e3 * d[key]:.3f}" if d.get(key) is not None else "n/a"

    items = {
        "run_id": result.run_id,
        "valid": "yes" if result.valid else f"NO: {'; '.join(result.invalid_reasons)}",
        "sustainable at the offered rate": "yes"
        if m.get("sustainable")
        else f"NO: {m.get('not_sustainable_because', '')}",
        "offered / answered (req/s)": f"{m['offered_rate_per_s']:.1f} / {m['throughput_per_s']:.1f}",
        "latency from intended send p50 / p99 / p99.9 (ms)": f"{ms(lat, 'p50')} / {ms(lat, 'p99')} / {ms(lat, 'p99_9')}",
        "latency samples": str(lat.get("count", 0)),
        "service time p50 / p99 (ms)": f"{ms(svc, 'p50')} / {ms(svc, 'p99')}",
        "generator send lag p99 (ms)": ms(lag, "p99"),
        "no-op floor p50 / p99 (ms)": f"{ms(floor, 'p50')} / {ms(floor, 'p99')}" if floor else "n/a",
        "errors": str(m.get("errors")),
        "server CPU µs per prediction": f"{1e6 * m['cpu_seconds_per_prediction']:.1f}"
        if m.get("cpu_seconds_per_prediction")
        else "n/a",
        "generator CPU seconds": f"{m['generator_cpu_seconds']:.2f}"
        if m.get("generator_cpu_seconds") is not None
        else "n/a",
        "capacity at SLO (req/s)": f"{cap['rate_per_s']:.0f} ({cap['limited_by']}; {cap['per_core_per_s']:.0f} per core)"
        if cap
        else "not searched",
        "fixed costs (s)": str({k: round(v, 3) for k, v in m.get("fixed_costs_s", {}).items()}),
    }
    return pl.DataFrame({"metric": list(items), "value": list(items.values())})


def request_summary(runs: Sequence[RunResult]) -> pl.DataFrame:
    """One row per per-request run: offered vs answered, latency with sample count, floor, capacity, CPU."""
    rows = []
    for r in runs_of(runs, PATTERN):
        m = r.metrics
        floor, cap = m.get("floor_latency_s") or {}, m.get("capacity") or {}
        rows.append(
            {
                "backend": r.backend,
                **_window_columns(m, "answered_per_s", digits=3),
                "floor_p50_ms": round(1e3 * floor["p50"], 3) if floor else None,
                "gen_lag_p99_ms": round(1e3 * m["generator_lag_s"]["p99"], 3) if m.get("generator_lag_s") else None,
                "server_cpu_us_per_pred": round(1e6 * m["cpu_seconds_per_prediction"], 1)
                if m.get("cpu_seconds_per_prediction")
                else None,
                "capacity_per_s": round(cap["rate_per_s"], 1) if cap else None,
                "capacity_limited_by": cap.get("limited_by") if cap else None,
                "capacity_per_core": round(cap["per_core_per_s"], 1) if cap else None,
                "knee_per_s": round(cap["knee"]["rate_per_s"], 1) if cap and cap.get("knee") else None,
                "start_s": round(sum(m.get("fixed_costs_s", {}).values()), 2),
                "run_id": r.run_id,
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()
