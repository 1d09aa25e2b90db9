"""The predictor alone: per-row cost at each call size, per backend, on the session's small model;
and the report views built on it (the call-size curve, the limits table)."""

from __future__ import annotations

import matplotlib
import numpy as np
import polars as pl
import pytest

from bench import model as model_mod
from bench import results
from bench.core.errors import BenchError
from bench.patterns import batch, request
from bench.patterns import predictor as predictor_pattern
from bench.patterns.base import RunContext
from bench.patterns.predictor import PredictorParams, parse_call_sizes, run
from bench.views import limits as report_limits
from bench.views import report

matplotlib.use("Agg")

SMALL_DATASET_ROWS = 5_000  # tests/conftest.py's small_dataset: 5,000 rows, seed 3
SMALL_DATASET_SEED = 3
SIZES = [1, 10, 100, 1000]
BACKENDS = [
    "lightgbm",
    pytest.param(
        "lleaves",
        marks=pytest.mark.skipif(
            model_mod.predictor_unavailable("lleaves") is not None, reason="lleaves is an optional extra"
        ),
    ),
]


def _small(**overrides) -> PredictorParams:
    """The session's small dataset and model (5k rows; 10 trees, 7 leaves), short measurements."""
    values = {
        "rows": SMALL_DATASET_ROWS,
        "data_seed": SMALL_DATASET_SEED,
        "train_rows": 5_000,
        "trees": 10,
        "leaves": 7,
        "call_sizes": ",".join(map(str, SIZES)),
        "min_seconds": 0.1,
        "min_calls": 5,
    }
    return PredictorParams(**{**values, **overrides})


@pytest.fixture(scope="module")
def limits_dir(tmp_path_factory) -> object:
    return tmp_path_factory.mktemp("limits-results")


@pytest.fixture(scope="module", params=BACKENDS)
def measured(request, small_dataset, small_model, limits_dir):
    """One real run per backend, written into a results directory the report views read."""
    name = request.param
    run_id = f"predictor-{name}"
    run_dir = limits_dir / "runs" / run_id
    result = run(small_dataset, small_model, _small(predictor=name), RunContext(run_id, run_dir))
    results.write(result, run_dir)
    return result


def test_every_size_is_measured_with_its_samples(measured, small_dataset, limits_dir):
    assert (small_dataset.rows, small_dataset.seed) == (SMALL_DATASET_ROWS, SMALL_DATASET_SEED)
    m = measured.metrics
    assert measured.pattern == "predictor" and measured.backend == measured.params["predictor"]
    assert [s["size"] for s in m["call_sizes"]] == SIZES
    for s in m["call_sizes"]:
        assert s["calls"] >= 5 and s["rows"] == s["calls"] * s["size"]
        assert s["call_latency_s"]["count"] == s["calls"]
        assert s["wall_us_per_row"] > 0 and s["cpu_us_per_row"] >= 0 and s["rows_per_s"] > 0
    largest = m["call_sizes"][-1]
    assert m["predictions"] == largest["rows"] and m["largest_call_size"] == 1000
    assert m["throughput_per_s"] == largest["rows_per_s"]
    assert m["cpu_seconds_per_prediction"] == pytest.approx(largest["cpu_seconds"] / largest["rows"])
    assert m["latency_s"] is None and m["dataset_rows"] == SMALL_DATASET_ROWS
    samples = measured.samples
    assert samples.columns == ["size", "call", "start_row", "wall_s", "cpu_s"]
    assert samples.height == sum(s["calls"] for s in m["call_sizes"])
    per_size = samples.group_by("size").agg(pl.len(), pl.col("start_row").max()).sort("size")
    assert per_size["len"].to_list() == [s["calls"] for s in m["call_sizes"]]
    assert all(start + size <= SMALL_DATASET_ROWS for size, _, start in per_size.iter_rows())  # contiguous slices
    written = results.load(limits_dir / "runs" / measured.run_id)
    assert written.metrics["call_sizes"][0]["calls"] == m["call_sizes"][0]["calls"]
    assert results.load_samples(limits_dir / "runs" / measured.run_id).height == samples.height


def test_one_row_per_call_costs_more_per_row_than_a_thousand(measured):
    by_size = {s["size"]: s for s in measured.metrics["call_sizes"]}
    # A real property of both backends; CPU time and a generous factor keep it robust on a busy machine
    # (measured on the small model: 30-85x for LightGBM, ~300x for lleaves).
    assert by_size[1]["cpu_us_per_row"] > 3 * by_size[1000]["cpu_us_per_row"]
    assert by_size[1]["wall_us_per_row"] > by_size[1000]["wall_us_per_row"]


def test_scores_equal_lightgbm(measured):
    diff = measured.metrics["max_abs_diff_vs_lightgbm"]
    assert diff <= predictor_pattern.MAX_ABS_DIFF
    if measured.params["predictor"] == "lightgbm":
        assert diff == 0.0
    assert not any("differ from LightGBM" in r for r in measured.invalid_reasons)


def test_a_score_off_lightgbm_makes_the_run_invalid(small_dataset, small_model, tmp_path, monkeypatch):
    real = predictor_pattern.make_predictor
    made = []

    class Shifted:
        def __init__(self, inner):
            self.inner, self.name, self.num_threads = inner, inner.name, inner.num_threads

        def predict(self, X):
            return self.inner.predict(X) + 1e-6

        def predict_row(self, row):
            return self.inner.predict_row(row) + 1e-6

    def fake(model, name="lightgbm", num_threads=1):
        made.append(name)
        p = real(model, name, num_threads)
        return p if len(made) == 1 else Shifted(p)  # the first is the reference; the measured one is off

    monkeypatch.setattr(predictor_pattern, "make_predictor", fake)
    r = run(small_dataset, small_model, _small(call_sizes="1,10", min_seconds=0.01), RunContext("off", tmp_path))
    assert not r.valid and r.metrics["max_abs_diff_vs_lightgbm"] == pytest.approx(1e-6)
    assert any("differ from LightGBM" in reason for reason in r.invalid_reasons)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "comma-separated"),
        ("1,,10", "comma-separated"),
        ("1,ten", "whole numbers"),
        ("1.5", "whole numbers"),
        ("0,10", "sizes > 0"),
        ("-1", "sizes > 0"),
        ("10,10", "repeats a size"),
        ("1,10000", "more than the dataset's 5,000 rows"),
    ],
)
def test_bad_call_sizes_are_refused_naming_the_parameter(text, message):
    with pytest.raises(BenchError, match=message) as err:
        _small(call_sizes=text)
    assert "'call_sizes'" in str(err.value)


def test_call_sizes_parse_sorted_and_the_defaults_fit_a_million_rows():
    assert parse_call_sizes(" 100, 1,10 ") == [1, 10, 100]
    default = PredictorParams()
    assert parse_call_sizes(default.call_sizes)[-1] == default.rows == 1_000_000
    with pytest.raises(BenchError, match="'min_calls'"):
        _small(min_calls=10, max_calls=5)
    with pytest.raises(BenchError, match="'min_seconds' must be > 0"):
        _small(min_seconds=0.0)


def test_a_size_larger_than_an_explicit_file_is_refused_before_any_work(small_dataset, small_model, tmp_path):
    params = _small(data_path=str(small_dataset.path), rows=1_000_000, call_sizes="1,6000")  # rows: not the file's
    with pytest.raises(BenchError, match="'call_sizes' holds 6,000 rows per call, more than the dataset's 5,000"):
        run(small_dataset, small_model, params, RunContext("big", tmp_path / "run"))
    assert not list((tmp_path / "run").iterdir())


def test_max_calls_caps_a_size(small_dataset, small_model, tmp_path):
    r = run(
        small_dataset,
        small_model,
        _small(call_sizes="1", min_seconds=5.0, min_calls=2, max_calls=50),
        RunContext("cap", tmp_path),
    )
    assert r.metrics["call_sizes"][0]["calls"] == 50 and r.metrics["measurement"]["capped_by_max_calls"] == [1]


# ---------------------------------------------------------------------------------- report views


#: The request run's capacity as the limits view is given it. A capacity search is a timing verdict a
#: busy machine voids, and on windows this short the harness cannot even tell (2 cores × 0.5 s is at most
#: 1 CPU-s of other work, the contention threshold): a parallel job once left the search at 0 req/s and the
#: table without a request row. The view tests check the table's arithmetic, so the figure is stated.
GIVEN_CAPACITY = {"rate_per_s": 150.0, "limited_by": "slo", "slo_ms": 50.0, "curve": []}


@pytest.fixture(scope="module")
def limits_runs(measured, small_dataset, small_model, limits_dir):
    """The predictor runs beside a real batch job and a real in-process request run (its capacity given:
    ``GIVEN_CAPACITY``), all on the small model, loaded back from the results directory as the report
    loads them."""
    request_params = request.RequestParams(
        rows=500, backend="inprocess", rate=100.0, duration_s=0.5, min_requests=50, warmup_s=0.1, capacity=False
    )
    for run_id, module, params in (
        ("batch-small", batch, batch.BatchParams(rows=SMALL_DATASET_ROWS, chunk_rows=2_000, num_threads=1)),
        ("request-small", request, request_params),
    ):
        run_dir = limits_dir / "runs" / run_id
        if not (run_dir / results.RESULT_FILE).exists():
            result = module.run(small_dataset, small_model, params, RunContext(run_id, run_dir))
            if run_id == "request-small":
                result.metrics["capacity"] = dict(GIVEN_CAPACITY)
            results.write(result, run_dir)
    return results.load_all(limits_dir).results


def test_call_size_table_and_curve_show_each_backend(limits_runs, measured):
    t = report_limits.call_size_table(limits_runs)
    mine = t.filter(pl.col("backend") == measured.backend)
    assert mine["call_size"].to_list() == SIZES and set(mine["runs"].to_list()) == {1}
    assert mine["cpu_us_per_row"][0] > mine["cpu_us_per_row"][-1]
    assert {"wall_us_per_row", "rows_per_s", "call_p50_us", "call_p99_us", "calls_per_run"} <= set(t.columns)
    ax = report_limits.plot_call_size_curve(limits_runs)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert any(measured.backend in line.get_label() and "n=1" in line.get_label() for line in ax.get_lines())
    card = dict(zip(*report_limits.predictor_card(measured).get_columns(), strict=True))
    assert card["1 row(s) per call"].endswith("calls)") and "max |score − LightGBM|" in card


def test_limits_table_sets_each_pattern_against_the_raw_predictor(limits_runs):
    t = report_limits.limits_table(limits_runs)
    b = t.filter(pl.col("pattern") == "batch").row(0, named=True)
    job = next(r for r in limits_runs if r.pattern == "batch").metrics
    assert b["ratio"] == pytest.approx(job["e2e_to_raw_ratio"], abs=1e-3) and "score" in b["where_the_rest_goes"]
    assert b["raw_rows_per_s"] == pytest.approx(job["raw_predict_rows_per_s"], abs=1)
    req = t.filter(pl.col("pattern") == "request").row(0, named=True)
    # the reference is the fastest single-row path measured: predict_row, not predict() on a 1-row matrix
    one_row = next(r for r in limits_runs if r.pattern == "predictor" and r.backend == "lightgbm")
    one_row = one_row.metrics["single_row_fast"]
    assert one_row["size"] == 1 and one_row["calls"] >= 3
    assert req["predictor"] == "lightgbm" and req["runs"] == 1
    assert req["measured_rows_per_s"] == GIVEN_CAPACITY["rate_per_s"]
    assert req["raw_rows_per_s"] == pytest.approx(1e6 / one_row["wall_us_per_row"], rel=1e-3)
    assert req["ratio"] == pytest.approx(req["measured_rows_per_s"] / req["raw_rows_per_s"], rel=1e-2)  # 3 sig. figs
    assert "predictor pattern, single-row call (n=1)" == req["raw_reference"]
    assert "server CPU" in req["where_the_rest_goes"] and "vs" in req["where_the_rest_goes"]


def test_report_views_without_predictor_runs_say_so(limits_runs):
    others = [r for r in limits_runs if r.pattern != "predictor"]
    assert report_limits.call_size_table(others).is_empty()
    note = report_limits.table_or_note(report_limits.call_size_table(others), "no predictor runs yet")
    assert "no predictor runs yet" in note.data
    ax = report_limits.plot_call_size_curve(others)
    assert any("no predictor runs yet" in t.get_text() for t in ax.texts)
    req = report_limits.limits_table(others).filter(pl.col("pattern") == "request").row(0, named=True)
    assert (
        req["raw_rows_per_s"] is None and req["ratio"] is None and req["raw_reference"].startswith("no predictor run")
    )
    assert report_limits.limits_table([]).is_empty()


def test_the_report_selection_feeds_the_views(limits_runs, limits_dir):
    sel = report.select(limits_dir)
    report_limits.limits_table(sel.runs)  # whatever stayed valid on a busy machine, the views hold
    report_limits.call_size_table(sel.runs)
    seen = {r.run_id for r in sel.runs} | {r.run_id for r in sel.invalid} | {r.run_id for r in sel.other_model_runs}
    assert seen >= {r.run_id for r in limits_runs}  # every run is in the headline, invalid, or another model's
    assert np.isfinite([r.metrics["throughput_per_s"] for r in limits_runs]).all()
