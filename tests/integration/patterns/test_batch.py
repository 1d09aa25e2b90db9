"""Integration tests of the bulk batch pattern: real runs on small data through ``bench.app.runner.run_pattern``.

Every test runs the real pipeline (parquet in, LightGBM, parquet out, result.json) and checks what
was written; none asserts a speed. Data and models live in module-scoped temp dirs; the environment
(BENCH_DATA_DIR / BENCH_RESULTS_DIR) is pointed there wherever ``run_pattern`` is called.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from helpers import assert_valid_or_busy

import bench
import bench.app.notebook  # used as bench.app.notebook below: nothing else imports it for the test
from bench import results
from bench.app import runner
from bench.core.errors import BenchError
from bench.data import workload
from bench.model import Model, ensure_model, make_predictor, predictor_unavailable
from bench.patterns import registry
from bench.patterns.batch import PHASES, BatchParams, local

ROWS = 3_000
DATA_SEED = BatchParams.data_seed  # what run_pattern generates for (rows, data_seed)
#: Small parameters: a 10-tree model on 5k rows, 3k rows scored in 1k-row chunks on one thread.
SMALL: dict[str, Any] = {
    "rows": ROWS,
    "train_rows": 5_000,
    "trees": 10,
    "leaves": 7,
    "chunk_rows": 1_000,
    "num_threads": 1,
}
PREDICTION_COLUMNS = ["customer_id", "score", "model_sha256", "scored_at"]


# --------------------------------------------------------------------------------------------
# Fixtures (module-scoped data and model; the environment points at them wherever a run happens)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("batch-data")


@pytest.fixture(scope="module")
def batch_results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("batch-results")


@pytest.fixture(scope="module")
def batch_model(batch_data_dir: Path) -> Model:
    """The model ``run_pattern`` resolves for SMALL (same ModelParams, hence the same cached file)."""
    return ensure_model(runner.model_params(BatchParams(**SMALL)), directory=batch_data_dir)


@pytest.fixture(scope="module")
def batch_data(batch_data_dir: Path) -> workload.Dataset:
    """The dataset ``run_pattern`` resolves for SMALL (rows, default data_seed)."""
    return workload.ensure_dataset(ROWS, DATA_SEED, directory=batch_data_dir)


@pytest.fixture(scope="module")
def batch_input(batch_data: workload.Dataset) -> pl.DataFrame:
    return pl.read_parquet(batch_data.path)


@pytest.fixture(scope="module")
def batch_expected_scores(batch_model: Model, batch_input: pl.DataFrame) -> np.ndarray:
    """The spec's reference: the booster's own predict over the whole input in one call."""
    return batch_model.booster.predict(workload.feature_matrix(batch_input))


@pytest.fixture
def batch_env(batch_data_dir: Path, batch_results_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENCH_DATA_DIR", str(batch_data_dir))
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(batch_results_dir))
    return batch_results_dir


@pytest.fixture(scope="module")
def batch_run(
    batch_data_dir: Path, batch_results_dir: Path, batch_model: Model, batch_data: workload.Dataset
) -> tuple[results.RunResult, Path]:
    """One real run with SMALL; several tests inspect what it wrote."""
    run_dir = batch_results_dir / "runs" / "reference"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_DATA_DIR", str(batch_data_dir))
        mp.setenv("BENCH_RESULTS_DIR", str(batch_results_dir))
        result = runner.run_pattern("batch", dict(SMALL), run_dir=run_dir)
    return result, run_dir


def _predictions(run_dir: Path) -> pl.DataFrame:
    path = run_dir / "predictions.parquet"
    assert path.is_file(), f"{path} was not written"
    return pl.read_parquet(path)


# --------------------------------------------------------------------------------------------
# A real run and what it wrote
# --------------------------------------------------------------------------------------------


def test_run_is_valid_and_files_are_written(batch_run: tuple[results.RunResult, Path]) -> None:
    result, run_dir = batch_run
    assert_valid_or_busy(result)  # a busy machine voids the timing, never the files or the scores
    assert result.pattern == "batch"
    assert result.run_id == "reference"
    for name in ("predictions.parquet", results.RESULT_FILE, results.SAMPLES_FILE):
        assert (run_dir / name).is_file(), name
    leftovers = sorted(p.name for p in run_dir.iterdir() if p.name.startswith("."))
    assert leftovers == [], f"temp files left behind: {leftovers}"


def test_predictions_columns_rows_and_ids(batch_run: tuple[results.RunResult, Path], batch_input: pl.DataFrame) -> None:
    _, run_dir = batch_run
    pred = _predictions(run_dir)
    assert pred.columns == PREDICTION_COLUMNS
    assert pred.height == ROWS
    assert pred.get_column("customer_id").to_list() == batch_input.get_column("customer_id").to_list()
    assert pred.schema["score"] == pl.Float64
    assert pred.schema["scored_at"] == pl.Datetime("us", "UTC")
    assert pred.get_column("scored_at").null_count() == 0


def test_scores_equal_booster_predict_exactly(
    batch_run: tuple[results.RunResult, Path], batch_expected_scores: np.ndarray
) -> None:
    """The spec's explicit check: every written score equals booster.predict on the same input, bit for bit."""
    _, run_dir = batch_run
    scores = _predictions(run_dir).get_column("score").to_numpy()
    assert scores.shape == batch_expected_scores.shape
    assert np.array_equal(scores, batch_expected_scores)
    assert np.all((scores > 0) & (scores < 1))


def test_model_sha_column_and_provenance(batch_run: tuple[results.RunResult, Path], batch_model: Model) -> None:
    result, run_dir = batch_run
    shas = _predictions(run_dir).get_column("model_sha256").cast(pl.String).unique().to_list()
    assert shas == [batch_model.sha256]
    assert result.provenance["model_sha256"] == batch_model.sha256


def test_result_json_loads_and_matches(
    batch_run: tuple[results.RunResult, Path], batch_data: workload.Dataset, batch_model: Model
) -> None:
    result, run_dir = batch_run
    loaded = results.load(run_dir / results.RESULT_FILE)
    assert loaded.run_id == result.run_id
    assert loaded.pattern == "batch"
    assert (loaded.valid, loaded.invalid_reasons) == (result.valid, result.invalid_reasons)
    assert loaded.metrics["predictions"] == ROWS
    assert loaded.params["rows"] == ROWS and loaded.params["chunk_rows"] == SMALL["chunk_rows"]
    assert loaded.provenance["data_sha256"] == batch_data.sha256
    assert loaded.provenance["model_sha256"] == batch_model.sha256
    assert results.load(run_dir).run_id == result.run_id  # a run directory loads too


def test_samples_one_row_per_chunk(batch_run: tuple[results.RunResult, Path]) -> None:
    result, run_dir = batch_run
    samples = results.load_samples(run_dir)
    assert samples is not None
    n_chunks = math.ceil(ROWS / SMALL["chunk_rows"])
    assert samples.height == n_chunks == result.metrics["chunks"]
    assert samples.get_column("offset").to_list() == list(range(0, ROWS, SMALL["chunk_rows"]))
    assert samples.get_column("rows").sum() == ROWS
    for phase in PHASES:
        column = samples.get_column(f"{phase}_s")
        assert column.null_count() == 0 and (column >= 0).all(), phase


def test_metrics(batch_run: tuple[results.RunResult, Path]) -> None:
    result, run_dir = batch_run
    m = results.load(run_dir).metrics
    assert set(m["phases_s"]) == {"read", "validate", "prepare", "score", "write"}
    assert all(isinstance(v, float) and v >= 0 for v in m["phases_s"].values()), m["phases_s"]
    assert m["phases_s"]["score"] > 0
    assert m["e2e_to_raw_ratio"] > 0
    assert m["cpu_seconds"] > 0
    assert m["score_mismatches"] == 0
    assert m["verified_rows"] == ROWS
    assert m["wall_seconds"] > 0 and m["throughput_per_s"] > 0
    assert m["latency_s"] is None
    assert m["phases_overlap"] is True
    assert m["output_bytes"] == (run_dir / "predictions.parquet").stat().st_size
    assert m["raw_predict_cpu_seconds"] > 0


def test_the_pipeline_split_and_its_bound(batch_run: tuple[results.RunResult, Path]) -> None:
    """The scoring thread's split of the wall time adds up to it, and the run names the phase that set
    its pace (what the batch view and the limits table show)."""
    result, run_dir = batch_run
    m = results.load(run_dir).metrics
    assert m["bound_by"] in PHASES
    split = m["pipeline"]
    parts = ("fill_s", "wait_input_s", "score_s", "wait_output_s", "drain_s", "other_s")
    assert all(split[k] >= 0 for k in parts)
    assert sum(split[k] for k in parts) == pytest.approx(m["wall_seconds"], rel=1e-6, abs=1e-6)
    assert split["score_s"] >= m["phases_s"]["score"]  # the stage's time holds predict()'s
    assert split["input_order"] == "F" and split["depth"] == local.PIPELINE_DEPTH  # LightGBM reads F in place
    assert split["threads"]["predictor"] == SMALL["num_threads"]


def test_process_start_is_measured_apart_and_includes_the_model_load(batch_run: tuple[results.RunResult, Path]) -> None:
    """What a job platform bills from container start: a fresh interpreter to a ready predictor, measured
    once, untimed by the job; it holds the model load the runner also reports (never bill both)."""
    result, run_dir = batch_run
    m = results.load(run_dir).metrics
    start, fixed = m["process_start"], m["fixed_costs_s"]
    assert fixed["process_start"] == start["wall_s"] > fixed["model_load"] > 0
    assert start["cpu_s"] > 0 and start["imports"] == "bench.patterns.batch.local"
    assert 0 < start["split_s"]["model_load_s"] < start["wall_s"] < 60
    assert start["split_s"]["imports_s"] < start["wall_s"] and start["modules"] > 100
    assert m["fixed_costs_s"]["model_load"] >= 0
    assert m == result.metrics  # what was returned is what was written


# --------------------------------------------------------------------------------------------
# Variants: sequential, ragged last chunk, one chunk larger than the data — identical scores
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"overlap": False}, id="sequential"),
        pytest.param({"chunk_rows": 700}, id="ragged-chunks"),
        pytest.param({"chunk_rows": 700, "overlap": False}, id="ragged-sequential"),
        pytest.param({"chunk_rows": 5_000}, id="chunk-larger-than-rows"),
    ],
)
def test_variants_write_identical_scores(
    overrides: dict[str, Any],
    batch_env: Path,
    batch_run: tuple[results.RunResult, Path],
    batch_expected_scores: np.ndarray,
    batch_input: pl.DataFrame,
) -> None:
    params = SMALL | overrides
    run_dir = batch_env / "runs" / f"variant-{'-'.join(f'{k}{v}' for k, v in overrides.items())}"
    result = runner.run_pattern("batch", params, run_dir=run_dir)
    assert_valid_or_busy(result)
    assert result.metrics["score_mismatches"] == 0
    n_chunks = math.ceil(ROWS / params["chunk_rows"])
    assert result.metrics["chunks"] == n_chunks
    assert result.metrics["phases_overlap"] is params.get("overlap", True)
    samples = results.load_samples(run_dir)
    assert samples is not None and samples.height == n_chunks
    assert samples.get_column("rows").sum() == ROWS

    pred = _predictions(run_dir)
    reference = _predictions(batch_run[1])
    assert pred.height == ROWS
    assert pred.get_column("customer_id").to_list() == batch_input.get_column("customer_id").to_list()
    scores = pred.get_column("score").to_numpy()
    assert np.array_equal(scores, reference.get_column("score").to_numpy())
    assert np.array_equal(scores, batch_expected_scores)


# --------------------------------------------------------------------------------------------
# Bad input: a BenchError naming the culprit, and nothing written
# --------------------------------------------------------------------------------------------


def _assert_nothing_written(run_dir: Path) -> None:
    if run_dir.exists():
        assert sorted(p.name for p in run_dir.iterdir()) == [], f"{run_dir} is not empty"
    assert not (run_dir / "predictions.parquet").exists()
    assert not (run_dir / results.RESULT_FILE).exists()


def test_unknown_pattern_is_refused(batch_env: Path) -> None:
    with pytest.raises(BenchError, match="'nope'") as info:
        registry.get("nope")
    assert "batch" in str(info.value)  # lists the known ones
    run_dir = batch_env / "runs" / "unknown-pattern"
    with pytest.raises(BenchError, match="'nope'"):
        runner.run_pattern("nope", dict(SMALL), run_dir=run_dir)
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        pytest.param({"rows": 0}, "'rows'", id="rows-zero"),
        pytest.param({"chunk_rows": -1}, "'chunk_rows'", id="chunk_rows-negative"),
        pytest.param({"num_threads": 0}, "'num_threads'", id="num_threads-zero"),
        pytest.param({"trees": 0}, "'trees'", id="trees-zero"),
        pytest.param({"leaves": 1}, "'leaves'", id="leaves-one"),
        pytest.param({"rows": "ten"}, "'rows'", id="rows-wrong-type"),
        pytest.param({"rows": 3.5}, "'rows'", id="rows-float"),
        pytest.param({"overlap": "yes"}, "'overlap'", id="overlap-wrong-type"),
        pytest.param({"rowz": 10}, "'rowz'", id="unknown-parameter"),
        pytest.param({"predictor": "onnx"}, "'predictor'", id="unknown-predictor"),
    ],
)
def test_bad_parameters_are_refused(overrides: dict[str, Any], named: str, batch_env: Path, batch_model: Model) -> None:
    run_dir = batch_env / "runs" / f"bad-{'-'.join(overrides)}"
    with pytest.raises(BenchError, match=named) as info:
        runner.run_pattern("batch", SMALL | overrides, run_dir=run_dir)
    if "predictor" in overrides:
        assert "onnx" in str(info.value)
    _assert_nothing_written(run_dir)


def _bad_parquet(frame: pl.DataFrame, path: Path) -> str:
    frame.write_parquet(path)
    return str(path)


@pytest.mark.parametrize(
    ("corrupt", "named"),
    [
        pytest.param(lambda df: df.drop("age"), "'age'", id="missing-column"),
        pytest.param(
            lambda df: df.with_columns(pl.col("tenure_months").cast(pl.Int64)), "'tenure_months'", id="wrong-dtype"
        ),
        pytest.param(
            lambda df: df.with_columns(
                pl.when(pl.int_range(pl.len()) == 17)
                .then(float("nan"))
                .otherwise(pl.col("monthly_charges"))
                .alias("monthly_charges")
            ),
            "'monthly_charges'",
            id="nan-in-float-feature",
        ),
        pytest.param(
            lambda df: df.with_columns(pl.lit(None, dtype=pl.Int32).alias("age")), "'age'", id="null-in-non-nullable"
        ),
        pytest.param(
            lambda df: df.with_columns(pl.lit(-5, dtype=pl.Int32).alias("tenure_months")),
            "'tenure_months'",
            id="below-minimum",
        ),
        pytest.param(lambda df: df.head(0), "has 0 rows", id="no-rows"),
    ],
)
def test_bad_input_file_is_refused(
    corrupt, named: str, batch_env: Path, batch_input: pl.DataFrame, batch_model: Model, tmp_path: Path
) -> None:
    data_path = _bad_parquet(corrupt(batch_input), tmp_path / "bad.parquet")
    run_dir = batch_env / "runs" / f"bad-file-{tmp_path.name}"
    with pytest.raises(BenchError, match=named):
        runner.run_pattern("batch", SMALL | {"data_path": data_path}, run_dir=run_dir)
    _assert_nothing_written(run_dir)


def test_nan_error_says_nan(batch_env: Path, batch_input: pl.DataFrame, batch_model: Model, tmp_path: Path) -> None:
    frame = batch_input.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(float("nan"))
        .otherwise(pl.col("data_usage_gb"))
        .alias("data_usage_gb")
    )
    data_path = _bad_parquet(frame, tmp_path / "nan.parquet")
    run_dir = batch_env / "runs" / "bad-nan"
    with pytest.raises(BenchError, match=r"'data_usage_gb' has 1 NAN"):
        runner.run_pattern("batch", SMALL | {"data_path": data_path}, run_dir=run_dir)
    _assert_nothing_written(run_dir)


def test_missing_data_file_is_refused(batch_env: Path, batch_model: Model, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file.parquet"
    run_dir = batch_env / "runs" / "bad-missing-file"
    with pytest.raises(BenchError, match="no-such-file.parquet"):
        runner.run_pattern("batch", SMALL | {"data_path": str(missing)}, run_dir=run_dir)
    _assert_nothing_written(run_dir)


def test_explicit_good_data_path_is_scored(
    batch_env: Path, batch_data: workload.Dataset, batch_model: Model, batch_expected_scores: np.ndarray
) -> None:
    """The data_path route (an existing file) scores the same rows as the generated route."""
    run_dir = batch_env / "runs" / "explicit-data-path"
    result = runner.run_pattern("batch", SMALL | {"data_path": str(batch_data.path)}, run_dir=run_dir)
    assert_valid_or_busy(result)
    assert result.provenance["data_sha256"] == batch_data.sha256
    assert np.array_equal(_predictions(run_dir).get_column("score").to_numpy(), batch_expected_scores)


def test_unwritable_results_dir_is_refused(batch_env: Path, batch_model: Model, tmp_path: Path) -> None:
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a directory")
    run_dir = blocker / "runs" / "r1"
    with pytest.raises(BenchError, match="not writable") as info:
        runner.run_pattern("batch", dict(SMALL), run_dir=run_dir)
    assert str(blocker) in str(info.value)
    assert not run_dir.exists()
    assert blocker.read_text() == "not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-regular-file"]


# --------------------------------------------------------------------------------------------
# A stage that fails mid-run (on its thread) fails the run, and nothing is written
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlap", [True, False], ids=["pipelined", "sequential"])
@pytest.mark.parametrize("stage", ["reader", "writer"])
def test_a_stage_failing_mid_run_fails_the_run_and_writes_nothing(
    stage: str, overlap: bool, batch_env: Path, batch_model: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}

    def fail_on_second(real):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("disk went away")
            return real(*args, **kwargs)

        return wrapped

    if stage == "reader":
        monkeypatch.setattr(local, "prepare", fail_on_second(local.prepare))
    else:
        monkeypatch.setattr(local, "WRITE_GROUP_ROWS", 1)  # a row group per chunk: flushed on the writer's thread
        monkeypatch.setattr(local.ChunkWriter, "_flush", fail_on_second(local.ChunkWriter._flush))
    run_dir = batch_env / "runs" / f"failing-{stage}-{overlap}"
    expected = "disk went away" if not overlap else rf"the batch {stage} stage failed: OSError: disk went away"
    with pytest.raises((BenchError, OSError), match=expected):
        runner.run_pattern("batch", SMALL | {"overlap": overlap}, run_dir=run_dir)
    _assert_nothing_written(run_dir)
    assert not [t for t in threading.enumerate() if t.name.startswith("batch-")]


@pytest.mark.skipif(predictor_unavailable("lleaves") is not None, reason="lleaves is an optional extra")
def test_the_compiled_predictor_gets_row_major_input_and_the_same_scores(
    batch_env: Path, batch_model: Model, batch_input: pl.DataFrame
) -> None:
    """lleaves reads row-major in place (a column-major matrix it would copy): the job hands it that,
    and every written score equals lleaves' own predict on the column-major matrix, bit for bit."""
    run_dir = batch_env / "runs" / "lleaves"
    result = runner.run_pattern("batch", SMALL | {"predictor": "lleaves", "chunk_rows": 700}, run_dir=run_dir)
    assert_valid_or_busy(result)
    assert result.metrics["score_mismatches"] == 0
    assert result.metrics["pipeline"]["input_order"] == "C"
    expected = make_predictor(batch_model, "lleaves", 1).predict(workload.feature_matrix(batch_input))
    assert np.array_equal(_predictions(run_dir).get_column("score").to_numpy(), expected)


# --------------------------------------------------------------------------------------------
# A run killed mid-write leaves no partial predictions file
# --------------------------------------------------------------------------------------------

KILL_ROWS = 400_000
KILL_PARAMS: dict[str, Any] = {
    "rows": KILL_ROWS,
    "train_rows": 5_000,
    "trees": 50,
    "leaves": 31,
    "chunk_rows": 20_000,
    "num_threads": 1,
}


@pytest.fixture(scope="module")
def batch_kill_inputs(batch_data_dir: Path) -> Iterator[None]:
    """Generate the big dataset and train the model here, so the subprocess only scores."""
    workload.ensure_dataset(KILL_ROWS, DATA_SEED, directory=batch_data_dir)
    ensure_model(runner.model_params(BatchParams(**KILL_PARAMS)), directory=batch_data_dir)
    yield


def test_killed_run_leaves_no_partial_predictions(
    batch_data_dir: Path, batch_results_dir: Path, batch_kill_inputs: None
) -> None:
    run_dir = batch_results_dir / "runs" / "killed"
    code = textwrap.dedent(
        f"""
        from bench.app import runner
        runner.run_pattern("batch", {KILL_PARAMS!r}, run_dir={str(run_dir)!r})
        """
    )
    env = os.environ | {"BENCH_DATA_DIR": str(batch_data_dir), "BENCH_RESULTS_DIR": str(batch_results_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=Path(bench.__file__).resolve().parents[1],
    )
    seen: list[Path] = []
    try:
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and proc.poll() is None:
            if run_dir.is_dir():
                seen = list(run_dir.glob(".predictions.parquet.*.tmp"))
                if seen:
                    break
            time.sleep(0.005)
        running = proc.poll() is None
        if running:
            proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=30)
    assert seen, (
        f"no temp file appeared in {run_dir} (exit code {proc.returncode}); "
        f"stderr: {stderr.decode(errors='replace')[-2000:]}"
    )
    assert running, "the run finished before it could be killed mid-write; make it longer"
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "predictions.parquet").exists()
    assert not (run_dir / results.RESULT_FILE).exists()
    assert not (run_dir / results.SAMPLES_FILE).exists()
    # the run directory counts as incomplete, never as a result
    loaded = results.load_all(batch_results_dir)
    assert "killed" in loaded.incomplete
    assert all(r.run_id != "killed" for r in loaded.results)


# --------------------------------------------------------------------------------------------
# Notebook parameter validation
# --------------------------------------------------------------------------------------------


def test_notebook_params_accepts_a_notebook_namespace() -> None:
    namespace = {
        "rows": 10,
        "chunk_rows": 5,
        "profile": "smoke",
        "run_dir": "",
        "In": [],
        "Out": {},
        "_": None,
        "_i1": "rows = 10",
        "bench": bench,
        "np": np,
    }
    params, run = bench.app.notebook.pattern_params("batch", namespace)
    assert isinstance(params, BatchParams)
    assert params.rows == 10 and params.chunk_rows == 5
    assert params.trees == BatchParams.trees  # untouched defaults stay
    assert run == {"profile": "smoke", "run_dir": ""}


def test_notebook_params_defaults_only() -> None:
    params, run = bench.app.notebook.pattern_params("batch", {"bench": bench})
    assert params == BatchParams()
    assert run == {}


@pytest.mark.parametrize(
    ("namespace", "named"),
    [
        pytest.param({"rowz": 10}, "'rowz'", id="unknown-name"),
        pytest.param({"rows": "10"}, "'rows'", id="rows-as-string"),
        pytest.param({"overlap": 1}, "'overlap'", id="int-for-bool"),
        pytest.param({"rows": 0}, "'rows'", id="rows-out-of-range"),
        pytest.param({"profile": 3}, "'profile'", id="profile-not-str"),
        pytest.param({"run_dir": None}, "'run_dir'", id="run_dir-not-str"),
    ],
)
def test_notebook_params_rejects(namespace: dict[str, Any], named: str) -> None:
    with pytest.raises(BenchError, match=named):
        bench.app.notebook.pattern_params("batch", namespace | {"bench": bench})


def test_notebook_params_unknown_pattern() -> None:
    with pytest.raises(BenchError, match="'nope'"):
        bench.app.notebook.pattern_params("nope", {})
