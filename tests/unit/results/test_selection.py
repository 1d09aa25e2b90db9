"""The report's selection keeps one model: runs of the model-cost sweep never enter the headline."""

from __future__ import annotations

from helpers import PRICES, batch_run, service_run

from bench import results
from bench.analysis import cost, verdicts
from bench.results import RunResult, selection
from bench.views import report

BASE = {"train_rows": 200_000, "trees": 200, "leaves": 63, "model_seed": 0}
CHEAP = {**BASE, "trees": 50, "leaves": 15}


def _of(r: RunResult, model: dict) -> RunResult:
    """The run as one of ``model``'s, complete enough for ``results.write``."""
    r.params = {**r.params, **model, "predictor": "lightgbm"}
    r.provenance = results.provenance(model_sha256=f"{model['trees']}x{model['leaves']}", data_sha256="d" * 64)
    r.metrics.setdefault("throughput_per_s", r.metrics["predictions"] / r.metrics["wall_seconds"])
    r.metrics.setdefault("latency_s", None)
    return r


def _runs() -> list[RunResult]:
    """Three runs of the base model, and two of a cheap sweep model that would win every comparison."""
    return [
        _of(batch_run("base-batch"), BASE),
        _of(service_run("base-http", capacity=2_000.0), BASE),
        _of(service_run("base-http-2", capacity=2_200.0), BASE),
        _of(batch_run("cheap-batch", rows_per_s=1_000_000.0, cpu_s=1.0), CHEAP),
        _of(service_run("cheap-http", capacity=50_000.0), CHEAP),
    ]


def test_runs_are_keyed_by_their_model_and_a_model_file_by_its_hash():
    runs = _runs()
    groups = selection.by_model(runs)
    assert [len(v) for v in groups.values()] == [3, 2]  # most runs first
    assert selection.headline_model(runs) == selection.key_of(BASE)
    assert selection.headline_model(runs, CHEAP) == selection.key_of(CHEAP)
    assert selection.model_label(selection.key_of(CHEAP)) == "50 trees × 15 leaves (200,000 training rows, seed 0)"
    own = _of(service_run("own"), BASE)
    own.params["model_path"] = "/models/churn.txt"
    assert selection.model_label(selection.model_key(own)) == "model file 200x63"
    # a pipeline on a user's model file: the profile's synthetic model has no run, the file's runs are compared
    assert selection.headline_model([own], BASE) == selection.model_key(own)


def test_select_keeps_the_base_model_and_sets_the_sweep_apart(tmp_path):
    for r in _runs():
        results.write(r, results.run_dir_for(r.run_id, tmp_path))
    sel = selection.select(tmp_path)  # no profile: the model most runs scored
    assert sorted(r.run_id for r in sel.runs) == ["base-batch", "base-http", "base-http-2"]
    assert sorted(r.run_id for r in sel.other_model_runs) == ["cheap-batch", "cheap-http"]
    assert sel.model.startswith("200 trees × 63 leaves") and sel.model_key == selection.key_of(BASE)
    assert sel.other_models == {"50 trees × 15 leaves (200,000 training rows, seed 0)": 2}
    # a profile's base model wins over the count
    assert sorted(r.run_id for r in selection.select(tmp_path, model=CHEAP).runs) == ["cheap-batch", "cheap-http"]
    summary = dict(zip(*report.selection_summary(sel).to_dict(as_series=False).values(), strict=True))
    assert summary["runs of other models (the model-cost sweep; not mixed in)"].endswith(": 2")


def test_no_headline_table_uses_a_sweep_models_runs():
    runs = _runs()
    sweep_ids = {"cheap-batch", "cheap-http"}
    pooled, _ = cost.options(runs)  # what the report did before: the cheap model's runs in every option
    assert any(sweep_ids & {m.run_id for m in o.measures} for o in pooled)
    sel = selection.Selection("m", runs[:3], {}, [], {}, [], "base", selection.key_of(BASE), runs[3:])
    w = cost.Workload(1e5)
    opts, _ = cost.options(report.main_runs(sel.runs))
    assert opts and not any(sweep_ids & {m.run_id for m in o.measures} for o in opts)
    t = verdicts.table(sel.runs, PRICES, w)
    assert not any(i in text for text in t["runs"].to_list() for i in sweep_ids)
    html = str(report.decision(sel, PRICES, w)) + str(report.verdict_table(sel.runs, PRICES, w))
    html += report.cost_table(sel.runs, PRICES, w)._repr_html_()
    assert not any(i in html for i in sweep_ids) and "one model, base" in html
