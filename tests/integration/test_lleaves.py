"""The compiled predictor backend (lleaves): same scores as LightGBM, compiled once per model, a clear
error (and a working native backend) where it cannot run."""

from __future__ import annotations

import sys

import numpy as np
import polars as pl
import pytest
from helpers import assert_valid_or_busy

from bench import model
from bench.app import runner
from bench.core.errors import BenchError
from bench.data import workload

pytest.importorskip("lleaves", reason="the compiled backend is an optional extra: pip install -e '.[compiled]'")


@pytest.fixture(scope="module")
def matrix(small_dataset: workload.Dataset) -> np.ndarray:
    return workload.feature_matrix(pl.read_parquet(small_dataset.path))


@pytest.mark.parametrize("num_threads", [1, 2])
def test_scores_equal_lightgbm_on_the_whole_dataset(small_model, matrix, num_threads):
    cats = [workload.FEATURES.index(c) for c in workload.CATEGORICAL_FEATURES]
    assert np.isnan(matrix).any(axis=1).sum() > 100, "the dataset must include rows with missing values"
    assert cats and len(np.unique(matrix[:, cats[0]])) > 1, "and categorical features with several codes"
    compiled = model.make_predictor(small_model, "lleaves", num_threads=num_threads)
    assert (compiled.name, compiled.num_threads) == ("lleaves", num_threads)
    native = model.make_predictor(small_model, "lightgbm").predict(matrix)
    scores = compiled.predict(matrix)
    assert scores.shape == native.shape
    assert np.max(np.abs(scores - native)) <= 1e-9
    # one row per call (the per-request path) scores the same as the bulk
    singles = np.concatenate([compiled.predict(matrix[i : i + 1]) for i in range(0, len(matrix), 97)])
    assert np.max(np.abs(singles - native[::97])) <= 1e-9


def test_compiled_once_per_model_and_reused(small_model, tmp_path):
    path = model.compiled_cache_path(small_model)
    first = model.ensure_compiled(small_model)
    again = model.ensure_compiled(small_model)
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert again["cache_hit"] and again["compile_s"] == first["compile_s"] > 0
    assert again["model_sha256"] == small_model.sha256
    assert model.predictor_fixed_costs(small_model, "lleaves") == {"predictor_compile": first["compile_s"]}
    assert model.predictor_fixed_costs(small_model, "lightgbm") == {}
    # another model gets its own cache entry, compiled from scratch
    other = model.train(model.ModelParams(train_rows=5_000, trees=4, leaves=5, num_threads=1), tmp_path)
    assert model.compiled_cache_path(other) != path
    assert not model.ensure_compiled(other)["cache_hit"]
    assert model.ensure_compiled(other)["cache_hit"]


def test_without_lleaves_the_error_says_so_and_lightgbm_still_works(small_model, small_dataset, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "lleaves", None)  # import lleaves -> ImportError
    reason = model.predictor_unavailable("lleaves")
    assert reason and "lleaves" in reason and "llvmlite==0.44.0" in reason
    assert model.predictor_unavailable("lightgbm") is None
    with pytest.raises(BenchError, match="predictor 'lleaves' is not available"):
        model.make_predictor(small_model, "lleaves")
    params = {"rows": 5_000, "data_path": str(small_dataset.path), "train_rows": 5_000, "trees": 10, "leaves": 7}
    with pytest.raises(BenchError, match="not available"):  # refused before any work
        runner.run_pattern("batch", {**params, "predictor": "lleaves"}, run_dir=tmp_path / "refused")
    assert not (tmp_path / "refused" / "result.json").exists()
    assert_valid_or_busy(runner.run_pattern("batch", params, run_dir=tmp_path / "native"))


@pytest.mark.notebook
@pytest.mark.parametrize(
    ("pattern", "overrides"),
    [
        ("batch", {}),
        ("request", {"backend": "http"}),
        ("microbatch", {}),
        ("hybrid", {}),
    ],
)
def test_every_pattern_notebook_runs_with_predictor_lleaves(pattern, overrides, tmp_path, monkeypatch):
    """``--param predictor=lleaves`` through papermill, on the smoke profile: real notebook, real backend."""
    from bench import results
    from bench.app import pipeline

    out = tmp_path / "results"
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(out))
    values = pipeline.pattern_parameters(pattern, "smoke", {"predictor": "lleaves", **overrides})
    run_dir = pipeline.run_pattern(pattern, values, "smoke", out)
    result = results.load(run_dir)
    # validity is a timing verdict (a busy machine voids it); this test is about the backend working
    assert not [r for r in result.invalid_reasons if "differ" in r or "mismatch" in r], result.invalid_reasons
    assert result.params["predictor"] == "lleaves" and "lleaves" in result.backend
    assert result.metrics["fixed_costs_s"]["predictor_compile"] > 0
    assert result.metrics.get("score_mismatches", 0) == 0
