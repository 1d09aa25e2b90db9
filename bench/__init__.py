"""Batch vs streaming vs per-request scoring of one LightGBM model, measured: the ``bench`` harness."""

from bench import metrics, model, notebook, params, patterns, profiles, report, results, runner, workload
from bench.errors import BenchError
from bench.results import RunResult

__all__ = [
    "BenchError",
    "RunResult",
    "metrics",
    "model",
    "notebook",
    "params",
    "patterns",
    "profiles",
    "report",
    "results",
    "runner",
    "workload",
]
