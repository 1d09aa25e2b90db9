"""Issue 14: bad input gets a one-line error naming the thing, before any work; nothing half-valid is written.

Each test here failed before the fix it names: an empty table ran as a "valid" request/hybrid run of 0
predictions, NaN passed every ``< 0`` check and reached result.json, a truncated model crashed the
kernel, and data errors surfaced as the last line of a notebook traceback in a run directory."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from papermill.exceptions import PapermillExecutionError

from bench import model, results
from bench.app import cli, pipeline, runner
from bench.core.errors import BenchError
from bench.data import workload
from bench.measure import load, metrics
from bench.model import training
from bench.patterns import registry
from bench.patterns.hybrid import HybridParams
from bench.patterns.microbatch import MicrobatchParams
from bench.patterns.request import RequestParams

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def empty_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("empty") / "empty.parquet"
    workload.generate(10, seed=0).head(0).write_parquet(path)
    return path


def _result(run_id: str, predictions: int = 2_000) -> results.RunResult:
    """A complete request result (everything ``results.write`` checks), with ``predictions`` answers."""
    m = {
        "predictions": predictions,
        "wall_seconds": 10.0,
        "throughput_per_s": predictions / 10.0,
        "cpu_seconds": 2.0,
        "provisioned_core_seconds": 10.0,
        "latency_s": None,
        "errors": {"timeout": 0, "connection": 0},
    }
    prov = results.provenance(model_sha256="m" * 64, data_sha256="d" * 64)
    return results.RunResult(run_id, "request", "inprocess", "test", {}, m, prov)


def _cli(argv: list[str], results_dir: Path, capsys) -> tuple[int, str]:
    code = cli.main([*argv, "--results", str(results_dir)])
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# An empty table: refused for every pattern, before any work, naming the file
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["batch", "request", "hybrid", "microbatch", "predictor"])
def test_an_empty_table_is_refused_for_every_pattern_before_a_run_directory(
    pattern: str, empty_table: Path, tmp_path: Path, capsys
) -> None:
    code, err = _cli(["run", pattern, "--param", f"data_path={empty_table}"], tmp_path / "results", capsys)
    assert code == 2 and "has 0 rows" in err and str(empty_table) in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results" / "runs").exists() or not any((tmp_path / "results" / "runs").iterdir())


def test_a_run_with_no_predictions_is_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """request and hybrid once wrote valid: true with 0 predictions; now the runner voids such a run."""
    real = registry.get("request")

    def no_predictions(data, model_, params, context):
        r = _result(context.run_id, predictions=0)
        r.metrics["errors"] = {"backend_exception": 900}
        return r

    monkeypatch.setattr(registry, "get", lambda name: dataclasses.replace(real, run=no_predictions))
    values = {"rows": 2_000, "train_rows": 2_000, "trees": 2, "leaves": 4, "backend": "inprocess"}
    result = runner.run_pattern("request", values, run_dir=tmp_path / "run")
    assert not result.valid and any("no predictions" in r and "backend_exception" in r for r in result.invalid_reasons)
    assert results.load(tmp_path / "run").valid is False


def test_an_in_process_exception_is_booked_as_the_backends_not_as_a_connection() -> None:
    def call(i: int):
        raise IndexError("index 0 is out of bounds")  # what an empty table did

    obs = load.drive_sync(np.arange(20) * 1e-3, call, deadline_s=5.0)
    assert (obs.status == load.BACKEND_ERROR).all()
    s = metrics.window_summary(obs, warmup_s=0.0, slo_s=0.05, lag_bound_s=1.0, in_process=True)
    assert s["errors"]["backend_exception"] == 20 and s["errors"]["connection"] == 0 and s["completed"] == 0


def test_a_refused_connection_is_still_booked_as_a_connection_error() -> None:
    import socket

    from bench.measure.httpclient import HttpPool

    # a port held bound but never listening for the whole test: connecting is refused, and no other
    # process (a parallel test's server) can take the port in between
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        pool = HttpPool("127.0.0.1", port, 2)
        raw = pool.encode("GET", "/")

        async def call(i: int, on_send):
            return await pool.request(raw, 1.0, on_send)

        obs = load.drive_async(np.arange(5) * 1e-3, call, deadline_s=5.0)
    assert (obs.status == load.CONN_ERROR).all()


# --------------------------------------------------------------------------------------------
# Non-finite numbers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "field"),
    [
        (RequestParams, "fault_kill_at_s"),
        (RequestParams, "warmup_s"),
        (RequestParams, "rate"),
        (RequestParams, "peak_to_mean"),
        (HybridParams, "refresh_interval_s"),
        (HybridParams, "fault_batch_kill_at_s"),
        (HybridParams, "hit_ratio"),
        (MicrobatchParams, "fault_kill_at_s"),
        (MicrobatchParams, "max_wait_ms"),
    ],
)
@pytest.mark.parametrize("value", [NAN, INF])
def test_every_float_parameter_must_be_finite(cls, field: str, value: float) -> None:
    with pytest.raises(BenchError, match=f"'{field}' must be"):
        cls(**{field: value})


def test_every_registered_params_type_refuses_nan_in_every_float_field() -> None:
    for name in registry.names():
        params = registry.get(name).params
        for f in dataclasses.fields(params):
            if isinstance(f.default, float):
                with pytest.raises(BenchError, match=f"'{f.name}'"):
                    params(**{f.name: NAN})


@pytest.mark.parametrize(
    ("pattern", "param", "message"),
    [
        ("request", "fault_kill_at_s=nan", "'fault_kill_at_s' must be a finite number"),
        ("request", "rate=inf", "'rate' must be a finite number"),
        ("hybrid", "refresh_interval_s=nan", "'refresh_interval_s' must be a finite number"),
        ("request", "duration_s=-5", "'duration_s' must be > 0"),
        ("request", "warmup_s=-1", "'warmup_s' must be >= 0"),
        ("request", "rate=fast", "'rate' must be float"),
    ],
)
def test_the_cli_refuses_non_finite_and_out_of_range_numbers(pattern, param, message, tmp_path, capsys) -> None:
    code, err = _cli(["run", pattern, "--param", param], tmp_path / "results", capsys)
    assert code == 2 and message in err


def test_result_json_never_holds_nan(tmp_path: Path) -> None:
    r = _result("r1")
    r.metrics["fault"] = {"recovery_s": NAN}
    with pytest.raises(BenchError, match=r"run r1: .*fault\.recovery_s"):
        results.write(r, tmp_path / "r1")
    assert not (tmp_path / "r1" / results.RESULT_FILE).exists()


# --------------------------------------------------------------------------------------------
# Files checked before papermill starts; a failure inside a notebook in one line
# --------------------------------------------------------------------------------------------


def _no_papermill(*args, **kwargs):
    raise AssertionError("papermill started for a run that should have been refused")


def test_a_truncated_cached_model_is_refused_before_papermill(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(pipeline, "execute", _no_papermill)
    values = pipeline.pattern_parameters("batch", "smoke", {"train_rows": "2000", "trees": "2", "leaves": "4"})
    params = registry.get("batch").params(**values)
    trained = model.ensure_model(runner.model_params(params))
    assert training.cached_model_path(runner.model_params(params)) == trained.path
    text = trained.path.read_bytes()
    trained.path.write_bytes(text[: len(text) // 2])
    args = ["run", "batch", "--param", "train_rows=2000", "--param", "trees=2", "--param", "leaves=4"]
    code, err = _cli(args, tmp_path / "results", capsys)
    assert code == 2 and str(trained.path) in err and "delete it to retrain" in err
    assert not (tmp_path / "results" / "runs").exists() or not any((tmp_path / "results" / "runs").iterdir())


def test_a_data_file_missing_a_column_is_refused_before_papermill(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "lacking.parquet"
    workload.generate(50, seed=0).drop("age").write_parquet(path)
    monkeypatch.setattr(pipeline, "execute", _no_papermill)
    code, err = _cli(["run", "request", "--param", f"data_path={path}"], tmp_path / "results", capsys)
    assert code == 2 and "missing column(s) ['age']" in err and str(path) in err


def test_a_data_path_that_is_a_directory_is_refused(tmp_path: Path, capsys) -> None:
    code, err = _cli(["run", "request", "--param", f"data_path={tmp_path}"], tmp_path / "results", capsys)
    assert code == 2 and "is a directory" in err


def test_a_bencherror_inside_the_notebook_is_printed_as_one_line_and_the_notebook_kept(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    def failing(notebook, output, parameters):
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("{}")  # papermill keeps the executed notebook
        raise PapermillExecutionError(3, 4, "run()", "BenchError", "store x holds 3 rows, expected 5", ["a", "b"])

    monkeypatch.setattr(pipeline, "execute", failing)
    code, err = _cli(["run", "batch", "--param", "rows=1000"], tmp_path / "results", capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "store x holds 3 rows, expected 5" in err and "10_batch.ipynb" in err
    assert list((tmp_path / "results" / "runs").glob("*/10_batch.ipynb"))


def test_other_bad_input(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cli.main(["run", "batch", "--results", str(blocker)]) == 2
    assert "not writable" in capsys.readouterr().err
    code, err = _cli(["run", "nosuch"], tmp_path / "results", capsys)
    assert code == 2 and "unknown pattern 'nosuch'" in err


# --------------------------------------------------------------------------------------------
# The report survives any result on disk
# --------------------------------------------------------------------------------------------


def test_a_results_dir_holding_a_zero_prediction_result_renders(tmp_path: Path) -> None:
    """Written before the fix: valid: true, 0 predictions; the report's tables divided by it."""
    from bench.results import selection
    from bench.views import report

    r = _result("zero", predictions=0)
    results.write(r, results.run_dir_for("zero", tmp_path))
    data = json.loads((results.run_dir_for("zero", tmp_path) / results.RESULT_FILE).read_text())
    assert data["metrics"]["predictions"] == 0 and data["valid"] is True
    sel = selection.select(tmp_path)
    # listed as invalid with the reason, never compared (the verdicts divided by its 0 predictions)
    assert [r.run_id for r in sel.invalid] == ["zero"] and "no predictions" in sel.invalid[0].invalid_reasons[-1]
    from bench.analysis import cost, verdicts

    loaded = results.load_all(tmp_path).results
    verdicts.table(loaded, cost.load_prices(), cost.Workload(1e5))
    report.runs_table(sel.runs)
    report.cpu_per_prediction(sel.runs)
    report.appendix_runs(sel.runs)
    assert isinstance(report.selection_summary(sel), pl.DataFrame)
