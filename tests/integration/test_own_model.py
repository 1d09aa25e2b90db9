"""Issue 18: any LightGBM model file and parquet table, on every pattern, and bad ones refused by name.

The model and table here are not the synthetic generator's: other feature names, a string
categorical the model maps through its ``pandas_categorical``, an id column of another name, extra
columns the model does not read. Each pattern's scores must equal the model's own ``predict()``.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import polars as pl
import pytest
from helpers import assert_valid_or_busy

from bench import model
from bench.app import cli, pipeline, runner
from bench.core.errors import BenchError
from bench.core.params import parse
from bench.patterns import registry

ROWS = 3_000
LEVELS = ["bronze", "silver", "gold"]


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "account_no": np.arange(10_000, 10_000 + rows, dtype=np.int64),
            "spend": rng.gamma(2.0, 50.0, rows),
            "visits": rng.integers(0, 40, rows),
            "ratio": np.where(rng.random(rows) < 0.1, np.nan, rng.random(rows)),
            "tier": pd.Categorical(rng.choice(LEVELS, rows), categories=LEVELS),
            "comment": ["x"] * rows,  # a column the model does not read
        }
    )


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A binary model over (spend, visits, ratio, tier) trained from pandas, and a parquet table of it."""
    d = tmp_path_factory.mktemp("own-model")
    train = _frame(2_000, 1)
    y = ((train["spend"] > 100) ^ (train["tier"] == "gold")).astype(int)
    features = ["spend", "visits", "ratio", "tier"]
    params = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 10, "verbosity": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(train[features], label=y), num_boost_round=15)
    model_path = d / "mine.txt"
    booster.save_model(str(model_path))
    table = _frame(ROWS, 2)
    data_path = d / "mine.parquet"
    pl.from_pandas(table).with_columns(pl.col("tier").cast(pl.String)).write_parquet(data_path)
    expected = lgb.Booster(model_file=str(model_path)).predict(table[features])
    return {"dir": d, "model": model_path, "data": data_path, "expected": expected, "table": table}


def _params(own: dict, **extra) -> dict:
    return {"model_path": str(own["model"]), "data_path": str(own["data"]), "id_column": "account_no", **extra}


def test_the_model_declares_its_own_schema(own: dict) -> None:
    loaded = model.load(own["model"])
    assert loaded.schema.names == ("spend", "visits", "ratio", "tier")
    assert loaded.schema.categorical == ("tier",) and loaded.schema.levels["tier"] == tuple(LEVELS)


def test_batch_scores_equal_the_models_own_predict(own: dict, tmp_path: Path) -> None:
    """Through ``bench run`` (papermill and the batch notebook), as a user runs it."""
    argv = ["run", "batch", "--results", str(tmp_path / "results")]
    for key, value in _params(own, rows=ROWS, chunk_rows=1_000, num_threads=1).items():
        argv += ["--param", f"{key}={value}"]
    assert cli.main(argv) == 0
    (run_dir,) = (tmp_path / "results" / "runs").iterdir()
    result = json.loads((run_dir / "result.json").read_text())
    assert result["valid"] or all("busy" in r for r in result["invalid_reasons"]), result["invalid_reasons"]
    assert result["provenance"]["model_sha256"] == model.load(own["model"]).sha256
    written = pl.read_parquet(run_dir / "predictions.parquet").sort("customer_id")
    assert written["customer_id"].to_list() == own["table"]["account_no"].tolist()  # the table's own ids
    np.testing.assert_array_equal(written["score"].to_numpy(), own["expected"])


def _smoke(pattern: str, own: dict, **extra) -> dict:
    """The smoke profile's parameters of ``pattern`` on the user's model and table, no capacity search."""
    values = pipeline.pattern_parameters(pattern, "smoke") | _params(own) | {"capacity": False, **extra}
    values["rows"] = min(values["rows"], ROWS)
    return values


def test_request_scores_equal_the_models_own_predict(own: dict, tmp_path: Path) -> None:
    result = runner.run_pattern("request", _smoke("request", own, backend="http", floor=False), run_dir=tmp_path / "r")
    assert_valid_or_busy(result)
    assert result.metrics["predictions"] > 0 and result.metrics["score_mismatches"] == 0


def test_microbatch_scores_equal_the_models_own_predict(own: dict, tmp_path: Path) -> None:
    result = runner.run_pattern("microbatch", _smoke("microbatch", own, saturation_events=0), run_dir=tmp_path / "r")
    assert_valid_or_busy(result)
    assert result.metrics["delivery"]["mismatches"] == 0 and result.metrics["predictions"] > 0


def test_hybrid_serves_the_models_scores(own: dict, tmp_path: Path) -> None:
    result = runner.run_pattern("hybrid", _smoke("hybrid", own, floor=False), run_dir=tmp_path / "r")
    assert_valid_or_busy(result)
    assert result.metrics["predictions"] > 0


# --------------------------------------------------------------------------------------------
# Bad input: refused before any work, naming the file, the column or the objective
# --------------------------------------------------------------------------------------------


def _table(own: dict, tmp_path: Path, change) -> str:
    path = tmp_path / "bad.parquet"
    change(pl.read_parquet(own["data"])).write_parquet(path)
    return str(path)


@pytest.mark.parametrize(
    ("change", "params", "message"),
    [
        (lambda df: df.drop("visits"), {}, r"missing column\(s\) \['visits'\]"),
        (lambda df: df.with_columns(pl.col("spend").cast(pl.String)), {}, "feature 'spend' has dtype String"),
        (lambda df: df.head(0), {}, "has 0 rows"),
        (lambda df: df, {"id_column": "nope"}, r"missing column\(s\) \['nope'\]"),
        (lambda df: df.with_columns(pl.lit(7).alias("account_no")), {}, "id_column 'account_no' is not unique"),
        (lambda df: df.with_columns(pl.lit("platinum").alias("tier")), {}, "'tier' holds a value that is not one of"),
        (lambda df: df.with_columns(pl.lit(float("inf")).alias("ratio")), {}, "'ratio' has .* infinite"),
    ],
    ids=["missing-feature", "wrong-type", "empty", "no-id-column", "id-not-unique", "unknown-level", "infinite"],
)
def test_a_bad_table_is_refused_before_any_work(own: dict, tmp_path: Path, change, params, message) -> None:
    values = _params(own) | {"data_path": _table(own, tmp_path, change)} | params
    spec = pipeline.pattern_parameters("batch", "smoke") | values
    with pytest.raises(BenchError, match=message):
        pipeline.check_inputs(parse(registry.get("batch").params, spec))


def test_a_file_that_is_not_a_lightgbm_model_is_refused(own: dict, tmp_path: Path) -> None:
    bogus = tmp_path / "model.txt"
    bogus.write_text("hello\n")
    with pytest.raises(BenchError, match="is not a LightGBM text model"):
        model.load(bogus)


def test_the_generated_data_is_refused_for_a_model_of_other_features(own: dict, tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="give data_path"):
        runner.run_pattern("batch", {"model_path": str(own["model"]), "rows": 100}, run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "result.json").exists()


# --------------------------------------------------------------------------------------------
# bench pipeline on your workload: the profile's runs fitted to your model and table
# --------------------------------------------------------------------------------------------


def test_the_pipeline_plans_every_pattern_on_your_model_and_table(own: dict) -> None:
    workload = {k: str(v) for k, v in _params(own).items()}
    rows = pipeline.check_workload("smoke", workload)
    assert rows == ROWS
    for name in registry.names():
        points, _ = pipeline.plan("smoke", name, workload, rows)
        assert points, name
        assert all(p["model_path"] == str(own["model"]) and p["id_column"] == "account_no" for p in points)
        assert all(p.get("rows", 0) <= ROWS for p in points), name
        parse_all = [parse(registry.get(name).params, p) for p in points]  # every point is a valid run
        assert len(parse_all) == len(points)
    batch, left_out = pipeline.plan("smoke", "batch", workload, rows)
    assert left_out > 0 and len({p["rows"] for p in batch}) == 1  # a batch run scores the whole table
    (predictor, *_), _ = pipeline.plan("smoke", "predictor", workload, rows)
    assert max(int(s) for s in predictor["call_sizes"].split(",")) <= ROWS


def test_the_pipeline_refuses_a_parameter_that_is_not_the_workload(own: dict) -> None:
    with pytest.raises(BenchError, match=r"sets only model_path, data_path, id_column .* not \['rows'\]"):
        pipeline.check_workload("smoke", {"rows": "5"})


def test_the_pipeline_refuses_a_bad_table_before_any_run(own: dict, tmp_path: Path) -> None:
    bad = _table(own, tmp_path, lambda df: df.drop("tier"))
    with pytest.raises(BenchError, match=r"missing column\(s\) \['tier'\]"):
        pipeline.full("smoke", tmp_path / "results", workload=_params(own) | {"data_path": bad})
    assert not (tmp_path / "results" / "runs").exists()
