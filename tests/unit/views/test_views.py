"""Cross-pattern views ask each run's registry entry, never its name: labels, filters and exclusions."""

from __future__ import annotations

from helpers import batch_run, run_result, service_run

from bench.patterns import registry
from bench.views import report


def _runs():
    predictor = run_result("p", "predictor", "lightgbm", {"predictions": 10, "cpu_seconds": 1.0})
    return [
        batch_run("b"),
        service_run("rt"),
        service_run("h", backend="lookup[sqlite,95%]/lightgbm", pattern="hybrid"),
        predictor,
    ]


def test_cpu_per_prediction_labels_by_cost_kind_and_leaves_out_the_predictor_alone():
    t = report.cpu_per_prediction(_runs())
    labels = set(t["pattern"])
    assert labels == {
        "batch local/lightgbm (1,000,000 rows)",  # a job: its size matters
        "request http/lightgbm",
        "hybrid lookup[sqlite,95%]/lightgbm (lookup server only)",  # its refresh job is billed apart
    }


def test_runs_of_and_family_ask_the_registry():
    runs = _runs()
    assert [r.run_id for r in report.runs_of(runs, registry.get("hybrid"))] == ["h"]
    assert [report.family(r) for r in runs] == ["batch", "real-time", "hybrid", "predictor"]


def test_a_view_module_per_pattern():
    import importlib

    views = {registry.get(n).view for n in registry.names()}
    assert views == {f"bench.views.{v}" for v in ("batch", "microbatch", "request", "hybrid", "limits")}
    for v in views:
        importlib.import_module(v)
