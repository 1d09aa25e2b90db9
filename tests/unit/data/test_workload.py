"""The synthetic workload: deterministic generation, schema, the validation gate and the content-addressed files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bench.core import files, paths
from bench.core.errors import BenchError
from bench.data import workload

NULLABLE = [c.name for c in workload.SCHEMA if c.nullable]
NON_NULLABLE = [c.name for c in workload.SCHEMA if not c.nullable]
FLOAT_COLUMNS = [c.name for c in workload.SCHEMA if c.dtype == pl.Float64]


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    """2,000 rows: enough for the validation cases, which each break one value."""
    return workload.generate(2_000, seed=0)


@pytest.fixture(scope="module")
def big_frame() -> pl.DataFrame:
    """50,000 rows: large enough that every missing-value mechanism fires (days_since_login is ~0.03 %)."""
    return workload.generate(50_000, seed=5)


def _set_first(df: pl.DataFrame, column: str, value: object) -> pl.DataFrame:
    """``df`` with row 0 of ``column`` replaced by ``value``, keeping the column's dtype."""
    dtype = df.schema[column]
    first = pl.int_range(pl.len()) == 0
    return df.with_columns(pl.when(first).then(pl.lit(value)).otherwise(pl.col(column)).cast(dtype).alias(column))


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def test_generate_is_deterministic() -> None:
    a = workload.generate(3_000, seed=11)
    b = workload.generate(3_000, seed=11)
    assert a.equals(b)


def test_generate_other_seed_gives_other_data() -> None:
    a = workload.generate(3_000, seed=11)
    b = workload.generate(3_000, seed=12)
    assert not a.equals(b)
    # not just one column: the features themselves differ
    assert not a.get_column("monthly_charges").equals(b.get_column("monthly_charges"))
    assert not a.get_column("plan").equals(b.get_column("plan"))


def test_generate_rows_and_ids() -> None:
    df = workload.generate(1_234, seed=2)
    assert df.height == 1_234
    assert df.get_column("customer_id").to_list() == list(range(1_234))


def test_schema_dtypes_and_order(frame: pl.DataFrame) -> None:
    expected = [(c.name, c.dtype) for c in workload.SCHEMA]
    assert list(frame.schema.items()) == expected
    assert frame.schema["plan"] == pl.Enum(workload.PLANS)
    assert frame.schema["region"] == pl.Enum(workload.REGIONS)
    assert frame.schema["contract_type"] == pl.Enum(workload.CONTRACTS)
    assert frame.schema["churned"] == pl.Int8


def test_features_constants_consistent() -> None:
    assert workload.FEATURES == tuple(c.name for c in workload.FEATURE_COLUMNS)
    assert workload.CATEGORICAL_FEATURES == ("plan", "region", "contract_type")
    assert len(set(workload.FEATURES)) == len(workload.FEATURES)
    assert workload.SCHEMA[0].name == "customer_id" and workload.SCHEMA[-1].name == "churned"


@pytest.mark.parametrize("column", NULLABLE)
def test_nullable_columns_have_nulls(big_frame: pl.DataFrame, column: str) -> None:
    assert big_frame.get_column(column).null_count() > 0


def test_non_nullable_columns_have_no_nulls(big_frame: pl.DataFrame) -> None:
    counts = big_frame.select(NON_NULLABLE).null_count().row(0, named=True)
    assert counts == dict.fromkeys(NON_NULLABLE, 0)


def test_float_columns_have_no_nan_or_inf(big_frame: pl.DataFrame) -> None:
    bad = big_frame.select([(~pl.col(c).is_finite()).sum().alias(c) for c in FLOAT_COLUMNS]).row(0, named=True)
    assert bad == dict.fromkeys(FLOAT_COLUMNS, 0)


def test_missing_value_mechanisms(big_frame: pl.DataFrame) -> None:
    """Structural missingness is exactly the documented condition (data card); surveys are missing at random."""
    df = big_frame
    assert df.get_column("total_charges").is_null().equals(df.get_column("tenure_months") == 0, check_names=False)
    assert (
        df.get_column("avg_resolution_hours")
        .is_null()
        .equals(df.get_column("support_tickets_365d") == 0, check_names=False)
    )
    assert df.get_column("days_since_login").is_null().equals(df.get_column("logins_30d") == 0, check_names=False)
    nps_rate = df.get_column("nps_score").is_null().mean()
    sat_rate = df.get_column("satisfaction").is_null().mean()
    assert 0.33 < nps_rate < 0.37
    assert 0.18 < sat_rate < 0.22


def test_label_rate_plausible(big_frame: pl.DataFrame) -> None:
    labels = big_frame.get_column("churned")
    assert set(labels.unique().to_list()) == {0, 1}
    assert 0.05 < labels.mean() < 0.6


def test_label_depends_on_features(big_frame: pl.DataFrame) -> None:
    """Month-to-month contracts churn more than two-year ones (the largest term of the logistic model)."""
    rate = big_frame.group_by("contract_type").agg(pl.col("churned").mean()).sort("contract_type")
    by_contract = dict(
        zip(rate.get_column("contract_type").to_list(), rate.get_column("churned").to_list(), strict=True)
    )
    assert by_contract["month_to_month"] > by_contract["two_year"] + 0.05


def test_validate_passes_on_generated_data(frame: pl.DataFrame, big_frame: pl.DataFrame) -> None:
    workload.validate(frame)
    workload.validate(frame, require_label=True)
    workload.validate(big_frame.lazy(), require_label=True)


@pytest.mark.parametrize("rows", [0, -1])
def test_generate_rejects_non_positive_rows(rows: int) -> None:
    with pytest.raises(BenchError, match="rows"):
        workload.generate(rows)


# --------------------------------------------------------------------------------------------
# The validation gate
# --------------------------------------------------------------------------------------------

BROKEN = {
    "missing column": (lambda df: df.drop("age"), "age", "missing column"),
    "missing id": (lambda df: df.drop("customer_id"), "customer_id", "missing column"),
    "wrong int dtype": (lambda df: df.with_columns(pl.col("tenure_months").cast(pl.Int64)), "tenure_months", "Int64"),
    "float as int": (lambda df: df.with_columns(pl.col("age").cast(pl.Float64)), "age", "dtype"),
    "enum as string": (lambda df: df.with_columns(pl.col("plan").cast(pl.String)), "plan", "dtype"),
    "enum other categories": (
        lambda df: df.with_columns(pl.col("region").cast(pl.String).cast(pl.Enum([*workload.REGIONS, "mars"]))),
        "region",
        "dtype",
    ),
    "null in non-nullable int": (lambda df: _set_first(df, "tenure_months", None), "tenure_months", "null"),
    "null in non-nullable float": (lambda df: _set_first(df, "monthly_charges", None), "monthly_charges", "null"),
    "NaN in float": (lambda df: _set_first(df, "monthly_charges", float("nan")), "monthly_charges", "NAN"),
    "NaN in nullable float": (lambda df: _set_first(df, "satisfaction", float("nan")), "satisfaction", "NAN"),
    "inf": (lambda df: _set_first(df, "data_usage_gb", float("inf")), "data_usage_gb", "INF"),
    "-inf": (lambda df: _set_first(df, "price_increase_pct_12m", float("-inf")), "price_increase_pct_12m", "INF"),
    "below min int": (lambda df: _set_first(df, "age", 17), "age", "below its minimum"),
    "below min float": (lambda df: _set_first(df, "monthly_charges", -0.01), "monthly_charges", "below its minimum"),
    "below min id": (lambda df: _set_first(df, "customer_id", -1), "customer_id", "below its minimum"),
    "above max int": (lambda df: _set_first(df, "nps_score", 11), "nps_score", "above its maximum"),
    "above max float": (lambda df: _set_first(df, "satisfaction", 5.01), "satisfaction", "above its maximum"),
    "above max flag": (lambda df: _set_first(df, "autopay", 2), "autopay", "above its maximum"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_validate_rejects_and_names_column(frame: pl.DataFrame, case: str) -> None:
    breaker, column, what = BROKEN[case]
    broken = breaker(frame)
    with pytest.raises(BenchError) as info:
        workload.validate(broken, source="unit-test")
    message = str(info.value)
    assert column in message
    assert what in message
    assert message.startswith("unit-test:")
    # the lazy path reports the same thing
    with pytest.raises(BenchError, match=column):
        workload.validate(broken.lazy())


def test_validate_label_only_when_required(frame: pl.DataFrame) -> None:
    without = frame.drop("churned")
    workload.validate(without)
    with pytest.raises(BenchError, match="churned"):
        workload.validate(without, require_label=True)
    bad_label = _set_first(frame, "churned", 2)
    workload.validate(bad_label)
    with pytest.raises(BenchError, match="churned.*above its maximum"):
        workload.validate(bad_label, require_label=True)


def test_validate_accepts_boundary_values(frame: pl.DataFrame) -> None:
    df = _set_first(frame, "age", 18)
    df = _set_first(df, "nps_score", 10)
    df = _set_first(df, "satisfaction", 1.0)
    df = _set_first(df, "price_increase_pct_12m", -100.0)
    df = _set_first(df, "nps_score", None)  # nullable: null is fine
    workload.validate(df)


def test_validate_ignores_extra_columns(frame: pl.DataFrame) -> None:
    workload.validate(frame.with_columns(pl.lit("x").alias("note")))


# --------------------------------------------------------------------------------------------
# Feature matrix
# --------------------------------------------------------------------------------------------


def test_feature_matrix_shape_order_and_values(frame: pl.DataFrame) -> None:
    X = workload.feature_matrix(frame)
    assert X.shape == (frame.height, len(workload.FEATURES))
    assert X.dtype == np.float64
    for j, name in enumerate(workload.FEATURES):
        col = frame.get_column(name)
        if name in workload.CATEGORICAL_FEATURES:
            continue
        expected = col.cast(pl.Float64).fill_null(float("nan")).to_numpy()
        np.testing.assert_array_equal(X[:, j], expected, err_msg=name)


def test_feature_matrix_nulls_become_nan(frame: pl.DataFrame) -> None:
    X = workload.feature_matrix(frame)
    for name in NULLABLE:
        j = workload.FEATURES.index(name)
        np.testing.assert_array_equal(np.isnan(X[:, j]), frame.get_column(name).is_null().to_numpy(), err_msg=name)
    non_nullable = [j for j, c in enumerate(workload.FEATURE_COLUMNS) if not c.nullable]
    assert not np.isnan(X[:, non_nullable]).any()


@pytest.mark.parametrize(
    "name, categories",
    [("plan", workload.PLANS), ("region", workload.REGIONS), ("contract_type", workload.CONTRACTS)],
)
def test_feature_matrix_categoricals_are_integer_codes(frame: pl.DataFrame, name: str, categories: list[str]) -> None:
    X = workload.feature_matrix(frame)
    codes = X[:, workload.FEATURES.index(name)]
    expected = np.array([categories.index(v) for v in frame.get_column(name).to_list()], dtype=np.float64)
    np.testing.assert_array_equal(codes, expected)
    assert set(np.unique(codes)) == set(range(len(categories)))


def test_feature_matrix_ignores_id_and_label_and_column_order(frame: pl.DataFrame) -> None:
    shuffled = frame.select(list(reversed(frame.columns)))
    np.testing.assert_array_equal(workload.feature_matrix(shuffled), workload.feature_matrix(frame))


# --------------------------------------------------------------------------------------------
# Content-addressed files
# --------------------------------------------------------------------------------------------


def test_small_dataset_file(small_dataset: workload.Dataset, data_dir: Path) -> None:
    assert small_dataset.path == workload.dataset_path(5_000, 3, data_dir)
    assert small_dataset.path.parent == data_dir
    assert small_dataset.path.name == f"customers-r5000-s3-g{workload.GENERATOR_VERSION}.parquet"
    assert (small_dataset.rows, small_dataset.seed) == (5_000, 3)
    assert small_dataset.generator_version == workload.GENERATOR_VERSION
    assert small_dataset.sha256 == files.sha256_file(small_dataset.path)
    meta = json.loads(small_dataset.path.with_suffix(".json").read_text())
    assert meta["sha256"] == small_dataset.sha256
    assert (meta["rows"], meta["seed"]) == (5_000, 3)


def test_parquet_round_trip_equals_generate(small_dataset: workload.Dataset) -> None:
    on_disk = pl.read_parquet(small_dataset.path)
    assert on_disk.equals(workload.generate(5_000, seed=3))
    assert on_disk.schema == workload.generate(10, seed=3).schema
    workload.validate(on_disk, require_label=True)


def test_default_directory_is_bench_data_dir(data_dir: Path) -> None:
    assert paths.data_dir() == data_dir
    assert workload.dataset_path(10, 0).parent == data_dir


def test_ensure_dataset_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = workload.ensure_dataset(2_000, seed=1, directory=tmp_path)
    stamp = (first.path.stat().st_mtime_ns, first.path.with_suffix(".json").stat().st_mtime_ns)

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("generate() called although the cached file is intact")

    monkeypatch.setattr(workload, "generate", fail)
    second = workload.ensure_dataset(2_000, seed=1, directory=tmp_path)
    assert second.path == first.path
    assert second.sha256 == first.sha256
    assert (second.path.stat().st_mtime_ns, second.path.with_suffix(".json").stat().st_mtime_ns) == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.path.name, first.path.with_suffix(".json").name])


@pytest.mark.parametrize("damage", ["replace", "flip-byte", "meta-sha"])
def test_ensure_dataset_regenerates_on_hash_mismatch(tmp_path: Path, damage: str) -> None:
    first = workload.ensure_dataset(2_000, seed=1, directory=tmp_path)
    meta_path = first.path.with_suffix(".json")
    if damage == "replace":
        first.path.write_bytes(b"not a parquet file")
    elif damage == "flip-byte":
        raw = bytearray(first.path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        first.path.write_bytes(bytes(raw))
    else:
        meta = json.loads(meta_path.read_text())
        meta["sha256"] = "0" * 64
        meta_path.write_text(json.dumps(meta))
    assert files.sha256_file(first.path) != json.loads(meta_path.read_text())["sha256"]
    old = first.path.stat().st_mtime_ns
    os.utime(first.path, ns=(old - 10**9, old - 10**9))  # a rewrite must show up as a newer mtime

    again = workload.ensure_dataset(2_000, seed=1, directory=tmp_path)
    assert again.path.stat().st_mtime_ns != old - 10**9
    assert again.sha256 == first.sha256  # generation (and the parquet writer) are deterministic
    assert files.sha256_file(again.path) == again.sha256
    assert json.loads(meta_path.read_text())["sha256"] == again.sha256
    assert pl.read_parquet(again.path).equals(workload.generate(2_000, seed=1))


def test_ensure_dataset_regenerates_when_metadata_missing(tmp_path: Path) -> None:
    first = workload.ensure_dataset(500, seed=2, directory=tmp_path)
    first.path.with_suffix(".json").unlink()
    again = workload.ensure_dataset(500, seed=2, directory=tmp_path)
    assert again.sha256 == first.sha256
    assert first.path.with_suffix(".json").exists()


def test_ensure_dataset_regenerates_when_metadata_corrupt(tmp_path: Path) -> None:
    first = workload.ensure_dataset(500, seed=2, directory=tmp_path)
    first.path.with_suffix(".json").write_text('{"sha256": "trunc')
    again = workload.ensure_dataset(500, seed=2, directory=tmp_path)
    assert again.sha256 == first.sha256
    assert json.loads(first.path.with_suffix(".json").read_text())["sha256"] == first.sha256


def test_ensure_dataset_other_parameters_other_file(tmp_path: Path) -> None:
    a = workload.ensure_dataset(500, seed=2, directory=tmp_path)
    b = workload.ensure_dataset(500, seed=3, directory=tmp_path)
    c = workload.ensure_dataset(501, seed=2, directory=tmp_path)
    assert len({a.path, b.path, c.path}) == 3
    assert len({a.sha256, b.sha256, c.sha256}) == 3


def test_ensure_dataset_rejects_non_positive_rows(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="rows"):
        workload.ensure_dataset(0, directory=tmp_path)
    assert not any(tmp_path.iterdir())


def test_open_dataset_missing_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "customers.parquet"
    with pytest.raises(BenchError) as info:
        workload.open_dataset(missing)
    assert str(missing) in str(info.value)


def test_open_dataset_existing(small_dataset: workload.Dataset, tmp_path: Path) -> None:
    opened = workload.open_dataset(str(small_dataset.path))
    assert opened.path == small_dataset.path
    assert (opened.rows, opened.seed, opened.sha256) == (5_000, 3, small_dataset.sha256)
    # a file of unknown provenance (no metadata JSON) opens with seed -1
    foreign = tmp_path / "foreign.parquet"
    workload.generate(321, seed=9).write_parquet(foreign)
    other = workload.open_dataset(foreign)
    assert (other.rows, other.seed, other.generator_version) == (321, -1, -1)
    assert other.sha256 == files.sha256_file(foreign)


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    payload = os.urandom(3 * 1024 + 17)
    path = tmp_path / "blob"
    path.write_bytes(payload)
    assert files.sha256_file(path, chunk=1024) == hashlib.sha256(payload).hexdigest()


def test_atomic_write_leaves_no_temp_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    target.parent.mkdir()
    target.write_text("old")

    def boom(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        files.atomic_write_bytes(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_open_dataset_refuses_a_file_that_is_not_parquet(tmp_path: Path) -> None:
    bad = tmp_path / "data.parquet"
    bad.write_text("not parquet")
    with pytest.raises(BenchError, match="not a readable parquet file"):
        workload.open_dataset(bad)


# --------------------------------------------------------------------------------------------
# open_dataset: a user's file, checked before any work
# --------------------------------------------------------------------------------------------


def test_open_dataset_refuses_an_empty_table_naming_the_file(frame: pl.DataFrame, tmp_path: Path) -> None:
    """A 0-row table was refused by batch only; request and hybrid ran on it and reported a valid run."""
    path = tmp_path / "empty.parquet"
    frame.head(0).write_parquet(path)
    with pytest.raises(BenchError, match="has 0 rows") as info:
        workload.open_dataset(path)
    assert str(path) in str(info.value)


def test_open_dataset_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="is a directory"):
        workload.open_dataset(tmp_path)


def test_open_dataset_checks_the_schema(frame: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "lacking.parquet"
    frame.drop("tenure_months").write_parquet(path)
    with pytest.raises(BenchError, match=r"missing column\(s\) \['tenure_months'\]") as info:
        workload.open_dataset(path)
    assert str(path) in str(info.value)


def test_open_dataset_refuses_a_file_its_sidecar_does_not_describe(frame: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    frame.write_parquet(path)
    assert workload.open_dataset(path).rows == frame.height
    path.with_suffix(".json").write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(BenchError, match="does not match the sha256"):
        workload.open_dataset(path)
    path.with_suffix(".json").write_text("{broken")
    with pytest.raises(BenchError, match="not valid JSON"):
        workload.open_dataset(path)
