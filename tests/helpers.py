"""Helpers shared by tests: result builders and the busy-machine rule. Not a test module, not fixtures.

Importable as ``helpers`` from any test (pytest puts ``tests/`` on ``sys.path`` for ``tests/conftest.py``).

* :data:`PRICES`, :func:`run_result`, :func:`batch_run`, :func:`service_run`, :func:`as_compiled`: small
  hand-built :class:`~bench.results.RunResult` objects for the cost, verdict and recommendation tests
  (and any view test that checks a table's shape, not a measurement).
* :func:`assert_valid_or_busy`: what a test of a real timed run may accept of a run a busy machine voided.
"""

from __future__ import annotations

from bench.analysis import cost
from bench.results import RunResult

PRICES = cost.Prices("test", vcpu_hour=0.04, gib_hour=0.0, granularity_s=1, minimum_s=60)


def run_result(run_id, pattern, backend, metrics, valid=True) -> RunResult:
    return RunResult(run_id, pattern, backend, "test", {}, metrics, {}, valid=valid)


def batch_run(run_id, rows=1_000_000, rows_per_s=100_000.0, cpu_s=20.0, fixed=2.0, valid=True) -> RunResult:
    """A local batch job of ``rows`` rows at ``rows_per_s`` (2 cores provisioned, 1 GiB peak RSS)."""
    wall = rows / rows_per_s
    m = {
        "predictions": rows,
        "throughput_per_s": rows_per_s,
        "cpu_seconds": cpu_s,
        "wall_seconds": wall,
        "provisioned_core_seconds": 2 * wall,
        "fixed_costs_s": {"model_load": fixed},
        "peak_rss_bytes": 2**30,
    }
    return run_result(run_id, "batch", "local/lightgbm", m, valid)


def service_run(run_id, capacity=2_000.0, backend="http/lightgbm", pattern="request", cores=1, valid=True) -> RunResult:
    """A service run (per-request by default) with a measured capacity at a 50 ms SLO."""
    m = {
        "predictions": 2_000,
        "cpu_seconds": 2.0,
        "wall_seconds": 10.0,
        "provisioned_core_seconds": cores * 10.0,
        "capacity": {"rate_per_s": capacity, "slo_ms": 50.0},
    }
    return run_result(run_id, pattern, backend, m, valid)


def as_compiled(r: RunResult, compile_s: float = 40.0) -> RunResult:
    """The same run made with predictor=lleaves: its backend label, parameter and compile fixed cost."""
    r.backend = r.backend.replace("lightgbm", "lleaves")
    r.params = {**r.params, "predictor": "lleaves"}
    r.metrics.setdefault("fixed_costs_s", {})["predictor_compile"] = compile_s
    return r


#: Reasons the harness gives when it saw other work take the machine (bench.measure.metrics.CpuUsage
#: .contention, bench.measure.capacity.contended).
BUSY = ("machine busy", "while other work took the machine")
#: Reasons that follow from a busy machine without saying so: the load generator could not keep its schedule.
LAG = ("load generator fell behind its schedule", "load generator issued")


def busy(result) -> bool:
    """Whether the harness itself saw the machine busy with other work during this run."""
    return any(b in reason for reason in result.invalid_reasons for b in BUSY)


def assert_valid_or_busy(result, *, lag_ok: bool = False) -> bool:
    """A run must be valid, unless the harness itself saw the machine busy with other work (a parallel
    job): then its timing verdicts are void by design, and the caller checks only what does not depend
    on timing. Every reason must then be a timing one (busy, or the generator's lag that follows from
    it); a correctness reason (scores differ, events lost, 4xx) fails the test whatever else happened.

    ``lag_ok``: also accept the generator's lag alone, for a pattern that loads the machine itself (the
    hybrid run's refresh job shares the 2 cores with the load generator by design).

    Returns True when the run is valid, False when it was voided by a busy machine (so the caller can
    skip its timing checks).
    """
    if result.valid:
        return True
    timing = BUSY + LAG
    assert all(any(t in reason for t in timing) for reason in result.invalid_reasons), result.invalid_reasons
    assert busy(result) or lag_ok, result.invalid_reasons
    return False
