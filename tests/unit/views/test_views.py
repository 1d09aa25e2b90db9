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


def test_a_table_shows_every_row_and_character_formatted():
    import polars as pl

    long = "x" * 500
    names = [long] + [f"r{i}" for i in range(99)]
    df = pl.DataFrame({"name": names, "rows": list(range(100)), "$/month": [1234.5] * 100})
    html = report.Table(df, html_id="t")._repr_html_()
    assert long in html and "…" not in html and html.count("<tr>") == 101  # header + every row
    assert '"r1"' not in html and ">1,234.50<" in html.replace("$", "")  # no quotes; money with separators
    assert report.fmt_cell(1_234_567) == "1,234,567" and report.fmt_cell(0.012345) == "0.0123"
    assert report.fmt_cell(None) == "" and report.fmt_cell(True) == "yes"
    blank = report.Table(pl.DataFrame({"a": [1], "b": [None]}))._repr_html_()
    assert "<th>b</th>" not in blank and "not measured in these runs: b" in blank


def test_fault_runs_never_reach_a_main_window():
    runs = _runs()
    fault = service_run("f")
    fault.params = {"fault_kill_at_s": 1.0}
    assert "f" not in {r.run_id for r in report.main_runs([*runs, fault])}
    assert {r.run_id for r in report.main_runs(runs)} == {"b", "rt", "h", "p"}


def test_a_recommendation_names_three_nearest_runners_up():
    from helpers import PRICES

    from bench.analysis import cost, recommend
    from bench.analysis.answers import Answers
    from bench.views import recommend as recommend_view

    runs = [batch_run("b"), *(service_run(f"rt{i}", backend=f"http{i}/lightgbm") for i in range(6))]
    rec = recommend.recommend(Answers("1s", "7d", "request", 1e5), runs, PRICES, cost.Workload(1.0), flip_volumes=None)
    shown, more = recommend_view.nearest(rec)
    assert len(shown) == 3 and more == len(rec.runners_up) - 3
    text = recommend_view.text(rec)
    assert sum(line.startswith("  - real-time http") for line in text.splitlines()) == 3  # nothing is feasible here
    assert f"and {more} more options that lose by more" in text
