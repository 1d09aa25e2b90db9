"""The bulk batch pattern on Ray Data (``engine="ray"``): same predictions as the local engine, Ray always stopped.

One real Ray run is shared by the module (a local Ray takes seconds to start on two cores); the
failure test starts one more. None asserts a speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from helpers import assert_valid_or_busy

from bench import model, results
from bench.core.errors import BenchError
from bench.core.params import parse
from bench.data import workload
from bench.patterns import batch
from bench.patterns.base import RunContext
from bench.patterns.batch import BatchParams

#: Parameters of the session's small model (conftest), scored in 1k-row chunks, one LightGBM thread per
#: actor; ``_run`` adds the dataset's rows and seed. The run is handed the fixtures' files directly.
SMALL = {"train_rows": 5_000, "trees": 10, "leaves": 7, "chunk_rows": 1_000, "num_threads": 1}
ROWS = 5_000  #: conftest's small dataset


def _run(dataset: workload.Dataset, mdl: model.Model, run_dir: Path, **overrides) -> results.RunResult:
    params = BatchParams(**(SMALL | {"rows": dataset.rows, "data_seed": dataset.seed} | overrides))
    return batch.run(dataset, mdl, params, RunContext(run_dir.name, run_dir))


@pytest.fixture(scope="module")
def engines(
    tmp_path_factory: pytest.TempPathFactory, small_dataset: workload.Dataset, small_model: model.Model
) -> dict[str, tuple[results.RunResult, pl.DataFrame]]:
    """One local and one Ray run on the same data and model: result and predictions of each."""
    root = tmp_path_factory.mktemp("batch-ray")
    out = {}
    for engine in ("local", "ray"):
        run_dir = root / engine
        result = _run(small_dataset, small_model, run_dir, engine=engine, ray_actors=2)
        out[engine] = (result, pl.read_parquet(run_dir / "predictions.parquet"))
    return out


def test_ray_predictions_equal_local(engines, small_dataset: workload.Dataset) -> None:
    (_, local), (_, ray_pred) = engines["local"], engines["ray"]
    assert ray_pred.columns == local.columns
    assert ray_pred.schema == local.schema
    assert ray_pred.height == ROWS
    # in input order, as the local engine writes them
    ids = pl.read_parquet(small_dataset.path, columns=["customer_id"]).get_column("customer_id")
    assert ray_pred.get_column("customer_id").to_list() == ids.to_list()
    joined = local.join(ray_pred, on="customer_id", suffix="_ray", validate="1:1")
    assert joined.height == ROWS
    assert np.array_equal(joined.get_column("score").to_numpy(), joined.get_column("score_ray").to_numpy())
    assert (
        joined.get_column("model_sha256_ray").cast(pl.String) == joined.get_column("model_sha256").cast(pl.String)
    ).all()


def test_ray_result_is_valid_and_shaped_like_local(engines, small_model: model.Model) -> None:
    (local, _), (result, _) = engines["local"], engines["ray"]
    assert_valid_or_busy(result)
    assert result.backend == "ray/lightgbm" and result.params["engine"] == "ray"
    m = result.metrics
    assert set(local.metrics) <= set(m), f"missing: {set(local.metrics) - set(m)}"
    assert m["predictions"] == ROWS
    assert m["cpu_seconds"] > 0
    assert m["score_mismatches"] == 0 and m["verified_rows"] == ROWS
    assert m["e2e_to_raw_ratio"] > 0
    assert m["fixed_costs_s"]["ray_start"] > 0
    assert m["ray"]["start_s"] == m["fixed_costs_s"]["ray_start"] and m["ray"]["local"] is True
    assert set(m["phases_s"]) == set(batch.PHASES)
    assert all(isinstance(v, float) and v >= 0 for v in m["phases_s"].values())
    assert m["chunks"] >= ROWS // SMALL["chunk_rows"]
    # Ray's processes were metered, not just the driver
    assert any(label.startswith("ray:") for label in m["cpu"]["by_label"])
    assert result.samples is not None and result.samples.get_column("rows").sum() == ROWS


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        pytest.param({"engine": "spark"}, "'engine'", id="unknown-engine"),
        pytest.param({"ray_actors": 0}, "'ray_actors'", id="no-actors"),
        pytest.param({"ray_timeout_s": 0.0}, "'ray_timeout_s'", id="zero-timeout"),
    ],
)
def test_bad_ray_parameters_are_refused(overrides: dict, named: str) -> None:
    with pytest.raises(BenchError, match=named) as info:
        parse(BatchParams, SMALL | overrides)
    if "engine" in overrides:
        assert "'local'" in str(info.value) and "'ray'" in str(info.value)  # says what is allowed


_FAILING_RUN = """
import json, sys
from pathlib import Path
import ray
from bench import model
from bench.core.errors import BenchError
from bench.data import workload
from bench.patterns import batch
from bench.patterns.base import RunContext
from bench.patterns.batch import BatchParams

dataset, mdl_path, run_dir, params = sys.argv[1], sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])
data, mdl = workload.open_dataset(dataset), model.load(mdl_path)
try:
    batch.run(data, mdl, BatchParams(**params), RunContext(run_dir.name, run_dir))
    error = None
except BenchError as exc:
    error = str(exc)
print(json.dumps({"error": error, "ray_initialized": ray.is_initialized()}), flush=True)
"""


def test_ray_is_shut_down_after_a_failing_run(
    tmp_path: Path, small_dataset: workload.Dataset, small_model: model.Model
) -> None:
    """A Ray Data job that times out fails with the parameter's name, stops Ray and leaves no partial file.

    Run in its own process: Ray Data's iterator thread outlives the timed-out job, and on a 2-core machine
    busy with other work a Ray call from it after shutdown has aborted the whole interpreter (seen once:
    the pytest session ended with no summary); here that would fail this test, not the session.
    """
    run_dir = tmp_path / "timed-out"
    params = SMALL | {
        "rows": small_dataset.rows,
        "data_seed": small_dataset.seed,
        "engine": "ray",
        "ray_timeout_s": 0.001,
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _FAILING_RUN,
            str(small_dataset.path),
            str(small_model.path),
            str(run_dir),
            json.dumps(params),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the child printed no outcome (exit {proc.returncode}): {proc.stderr[-2000:]}"
    outcome = json.loads(lines[-1])
    assert outcome["error"] and "ray_timeout_s" in outcome["error"], outcome
    assert not outcome["ray_initialized"]
    assert not run_dir.exists() or sorted(p.name for p in run_dir.iterdir()) == [], "no (partial) predictions"
