"""The LightGBM model: training quality, metadata, the strict loader, caching, predictors and the AUC function."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

from bench import model
from bench.core import files
from bench.core.errors import BenchError
from bench.data import workload
from bench.model import ModelParams, training

#: Large enough for a stable AUC (holdout of 4,000 rows), small enough to train in well under a second.
QUALITY_PARAMS = ModelParams(train_rows=20_000, trees=30, leaves=15, num_threads=1)


@pytest.fixture(scope="module")
def quality_model(data_dir: Path) -> model.Model:
    return model.ensure_model(QUALITY_PARAMS, directory=data_dir)


@pytest.fixture(scope="module")
def scoring_frame() -> pl.DataFrame:
    """Customers the models never saw (another seed than any training set)."""
    return workload.generate(10_000, seed=123)


def _booster(feature_names: list[str], rows: int = 300, seed: int = 0) -> lgb.Booster:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, len(feature_names)))
    y = (X[:, 0] + rng.normal(size=rows) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 4, "min_data_in_leaf": 5, "verbosity": -1, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(X, label=y, feature_name=feature_names), num_boost_round=3)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def test_trained_model_auc_in_range(quality_model: model.Model, scoring_frame: pl.DataFrame) -> None:
    holdout_auc = quality_model.meta["holdout_auc"]
    assert 0.55 < holdout_auc < 0.99
    scores = quality_model.booster.predict(workload.feature_matrix(scoring_frame), num_threads=1)
    fresh_auc = model.auc(scoring_frame.get_column("churned").to_numpy(), scores)
    assert 0.55 < fresh_auc < 0.99
    # the holdout is really held out: AUC on unseen customers agrees with it
    assert abs(fresh_auc - holdout_auc) < 0.06


def test_metadata_fields(small_model: model.Model, data_dir: Path) -> None:
    meta = small_model.meta
    params = ModelParams(train_rows=5_000, trees=10, leaves=7, num_threads=1)  # as in conftest.py
    assert small_model.path.parent == data_dir / "models"
    assert small_model.path.name.startswith("churn-") and small_model.path.suffix == ".txt"
    assert meta["format"] == "lightgbm-text"
    assert meta["sha256"] == files.sha256_file(small_model.path) == small_model.sha256
    assert meta["feature_names"] == list(workload.FEATURES)
    assert small_model.feature_names == list(workload.FEATURES)
    assert meta["categorical_features"] == list(workload.CATEGORICAL_FEATURES)
    assert meta["params"] == dataclasses.asdict(params)
    assert isinstance(meta["train_seconds"], float) and meta["train_seconds"] >= 0
    assert 0.5 < meta["holdout_auc"] <= 1.0
    assert (meta["train_rows"], meta["holdout_rows"]) == (4_000, 1_000)
    assert meta["lightgbm_version"] == lgb.__version__
    train_data = workload.ensure_dataset(5_000, seed=params.data_seed, directory=data_dir)
    assert meta["train_data"]["sha256"] == train_data.sha256
    assert meta["train_data"]["path"] == str(train_data.path)
    assert small_model.booster.num_trees() == 10
    # the JSON on disk is what load() returned
    assert json.loads(small_model.path.with_suffix(".json").read_text()) == meta


def test_holdout_auc_recomputes(small_model: model.Model, data_dir: Path) -> None:
    """The recorded holdout AUC is the AUC of the held-out rows (same permutation as training)."""
    params = ModelParams(**small_model.meta["params"])
    df = pl.read_parquet(workload.dataset_path(params.train_rows, params.data_seed, data_dir))
    y = df.get_column("churned").to_numpy()
    n_hold = int(len(y) * params.holdout_fraction)
    hold = np.random.default_rng(params.seed).permutation(len(y))[:n_hold]
    scores = small_model.booster.predict(workload.feature_matrix(df)[hold])
    assert model.auc(y[hold], scores) == pytest.approx(small_model.meta["holdout_auc"], abs=1e-5)


def test_training_is_deterministic(tmp_path: Path) -> None:
    params = ModelParams(train_rows=3_000, trees=5, leaves=7, num_threads=1)
    a = model.train(params, directory=tmp_path / "a")
    b = model.train(params, directory=tmp_path / "b")
    assert a.path.name == b.path.name
    assert a.sha256 == b.sha256
    c = model.train(dataclasses.replace(params, seed=1), directory=tmp_path / "a")
    assert c.path.name != a.path.name


def test_ensure_model_caches(small_model: model.Model, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mtime = small_model.path.stat().st_mtime_ns

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("train() called although the model is on disk")

    monkeypatch.setattr(training, "train", fail)  # what ensure_model calls
    again = model.ensure_model(ModelParams(**small_model.meta["params"]), directory=data_dir)
    assert again.path == small_model.path
    assert again.sha256 == small_model.sha256
    assert again.meta == small_model.meta
    assert small_model.path.stat().st_mtime_ns == mtime


def test_ensure_model_trains_other_params_to_other_file(tmp_path: Path) -> None:
    a = model.ensure_model(ModelParams(train_rows=2_000, trees=3, leaves=4, num_threads=1), directory=tmp_path)
    b = model.ensure_model(ModelParams(train_rows=2_000, trees=4, leaves=4, num_threads=1), directory=tmp_path)
    assert a.path != b.path
    assert (a.booster.num_trees(), b.booster.num_trees()) == (3, 4)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(
        [a.path.name, a.path.with_suffix(".json").name, b.path.name, b.path.with_suffix(".json").name]
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"train_rows": 0}, "train_rows"),
        ({"trees": 0}, "trees"),
        ({"num_threads": 0}, "num_threads"),
        ({"num_threads": -2}, "num_threads"),
        ({"leaves": 1}, "leaves"),
        ({"holdout_fraction": 0.0}, "holdout_fraction"),
        ({"holdout_fraction": 1.0}, "holdout_fraction"),
    ],
)
def test_model_params_validation(kwargs: dict, name: str) -> None:
    with pytest.raises(BenchError, match=name):
        ModelParams(**kwargs)


# --------------------------------------------------------------------------------------------
# The strict loader
# --------------------------------------------------------------------------------------------


def test_load_round_trip(small_model: model.Model) -> None:
    loaded = model.load(str(small_model.path))
    assert loaded.sha256 == small_model.sha256
    assert loaded.meta == small_model.meta
    assert loaded.booster.model_to_string() == small_model.booster.model_to_string()


def test_load_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "churn-missing.txt"
    with pytest.raises(BenchError, match="does not exist") as info:
        model.load(missing)
    assert str(missing) in str(info.value)


def test_load_refuses_non_lightgbm_file(tmp_path: Path) -> None:
    path = tmp_path / "hello.txt"
    path.write_text("hello")
    with pytest.raises(BenchError, match="not a LightGBM text model") as info:
        model.load(path)
    assert str(path) in str(info.value)


def test_load_refuses_unparseable_model(tmp_path: Path) -> None:
    path = tmp_path / "broken.txt"
    path.write_text("tree\nthis is not a model\n")
    with pytest.raises(BenchError, match="could not be parsed"):
        model.load(path)


def test_load_reads_a_models_own_features(tmp_path: Path) -> None:
    """A model of other features loads with its own schema (names in the model's order, no ranges)."""
    path = tmp_path / "other.txt"
    _booster(["alpha", "beta", "gamma"]).save_model(str(path))
    loaded = model.load(path)
    assert not loaded.synthetic
    assert loaded.schema.names == ("alpha", "beta", "gamma") and loaded.schema.categorical == ()


def test_features_in_another_order_are_read_by_name(tmp_path: Path) -> None:
    """The synthetic features in another order are another model's schema: read by name, not position."""
    path = tmp_path / "reordered.txt"
    _booster(list(reversed(workload.FEATURES))).save_model(str(path))
    loaded = model.load(path)
    assert not loaded.synthetic and loaded.schema.names == tuple(reversed(workload.FEATURES))


def test_load_refuses_an_objective_it_cannot_score(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 3)), rng.integers(0, 3, size=300)
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 4, "verbosity": -1, "num_threads": 1}
    path = tmp_path / "multi.txt"
    lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=2).save_model(str(path))
    with pytest.raises(BenchError, match="objective 'multiclass num_class:3'") as info:
        model.load(path)
    assert "binary" in str(info.value) and "regression" in str(info.value)  # says which it scores


def test_load_accepts_model_without_metadata(tmp_path: Path) -> None:
    path = tmp_path / "bare.txt"
    _booster(list(workload.FEATURES)).save_model(str(path))
    loaded = model.load(path)
    assert loaded.meta == {}
    assert loaded.sha256 == files.sha256_file(path)


def test_load_refuses_model_that_does_not_match_its_metadata(small_model: model.Model, tmp_path: Path) -> None:
    copy = tmp_path / small_model.path.name
    shutil.copy(small_model.path, copy)
    shutil.copy(small_model.path.with_suffix(".json"), copy.with_suffix(".json"))
    assert model.load(copy).sha256 == small_model.sha256  # an intact copy loads
    with open(copy, "a") as f:
        f.write("\n")  # still a valid LightGBM model, but not the one the metadata describes
    lgb.Booster(model_file=str(copy))
    with pytest.raises(BenchError, match="sha256"):
        model.load(copy)


# --------------------------------------------------------------------------------------------
# Predictors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_threads", [1, 2])
def test_lightgbm_predictor_equals_booster(
    small_model: model.Model, small_dataset: workload.Dataset, num_threads: int
) -> None:
    X = workload.feature_matrix(pl.read_parquet(small_dataset.path))
    predictor = model.make_predictor(small_model, "lightgbm", num_threads=num_threads)
    assert isinstance(predictor, model.LightGBMPredictor)
    assert (predictor.name, predictor.num_threads) == ("lightgbm", num_threads)
    scores = predictor.predict(X)
    assert scores.shape == (X.shape[0],)
    assert np.array_equal(scores, small_model.booster.predict(X))
    assert np.all((scores > 0) & (scores < 1))
    # single rows score the same as the bulk
    assert np.array_equal(np.concatenate([predictor.predict(X[i : i + 1]) for i in range(5)]), scores[:5])


def test_make_predictor_unknown_name(small_model: model.Model) -> None:
    with pytest.raises(BenchError, match="onnx") as info:
        model.make_predictor(small_model, "onnx")
    assert "lightgbm" in str(info.value)


@pytest.mark.parametrize("num_threads", [0, -1])
def test_predictor_rejects_non_positive_threads(small_model: model.Model, num_threads: int) -> None:
    with pytest.raises(BenchError, match="num_threads"):
        model.LightGBMPredictor(small_model, num_threads=num_threads)
    with pytest.raises(BenchError, match="num_threads"):
        model.make_predictor(small_model, num_threads=num_threads)


# --------------------------------------------------------------------------------------------
# AUC
# --------------------------------------------------------------------------------------------


def _pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos = scores[labels == 1]
    neg = scores[labels == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(6))
def test_auc_matches_pairwise_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 200))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]  # both classes
    scores = rng.integers(0, 6, n).astype(np.float64) + 0.5 * labels * rng.integers(0, 2, n)  # many ties
    assert model.auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores), abs=1e-12)


def test_auc_known_values() -> None:
    labels = np.array([0, 0, 1, 1])
    assert model.auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert model.auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert model.auc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert model.auc([0, 1, 0, 1], [0.1, 0.4, 0.45, 0.8]) == 0.75


def test_auc_invariant_to_monotone_transform() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 500)
    scores = rng.normal(size=500) + labels
    assert model.auc(labels, scores) == pytest.approx(model.auc(labels, np.exp(3 * scores)), abs=1e-12)


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1]])
def test_auc_needs_both_classes(labels: list[int]) -> None:
    with pytest.raises(BenchError, match="both classes"):
        model.auc(np.array(labels), np.linspace(0, 1, len(labels)))


def _copy_with_sidecar(small_model: model.Model, tmp_path: Path) -> Path:
    copy = tmp_path / small_model.path.name
    shutil.copy(small_model.path, copy)
    shutil.copy(small_model.path.with_suffix(".json"), copy.with_suffix(".json"))
    return copy


def test_truncated_model_is_refused_by_its_sidecar_before_lightgbm_parses_it(
    small_model: model.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A truncated cached model once crashed the notebook kernel inside LightGBM (DeadKernelError):
    the sidecar's sha256 is checked first, and the error names the file and what to do."""
    copy = _copy_with_sidecar(small_model, tmp_path)
    text = copy.read_bytes()
    copy.write_bytes(text[: len(text) // 3])

    def no_parse(*args, **kwargs):
        raise AssertionError("LightGBM parsed a file that fails its sidecar's hash")

    monkeypatch.setattr(training.lgb, "Booster", no_parse)
    with pytest.raises(BenchError) as info:
        model.load(copy)
    message = str(info.value)
    assert str(copy) in message and "sha256" in message and "delete it to retrain" in message
    assert "\n" not in message


def test_truncated_model_without_sidecar_is_parsed_in_a_child_process_first(
    small_model: model.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bare.txt"
    text = small_model.path.read_bytes()
    path.write_bytes(text[: len(text) // 3])
    parsed_here: list[str] = []
    real = training.lgb.Booster
    monkeypatch.setattr(training.lgb, "Booster", lambda **kw: parsed_here.append(kw["model_file"]) or real(**kw))
    with pytest.raises(BenchError, match="could not be parsed by LightGBM") as info:
        model.load(path)
    assert str(path) in str(info.value) and "delete it to retrain" in str(info.value)
    assert parsed_here == []  # this process never handed the file to LightGBM


def test_verify_file_refuses_a_directory_and_a_corrupt_sidecar(small_model: model.Model, tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="is a directory"):
        training.verify_file(tmp_path)
    copy = _copy_with_sidecar(small_model, tmp_path)
    copy.with_suffix(".json").write_text("{not json")
    with pytest.raises(BenchError, match="sidecar .* is not valid JSON"):
        training.verify_file(copy)


def test_cached_model_path_is_where_ensure_model_keeps_it(small_model: model.Model, data_dir: Path) -> None:
    params = ModelParams(**small_model.meta["params"])
    assert training.cached_model_path(params, data_dir) == small_model.path
    assert training.cached_model_path(ModelParams(train_rows=123, trees=1), data_dir) is None  # data not there
