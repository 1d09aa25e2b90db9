"""The activity log and its 90-day aggregate (claim C10): generation, caching, both paths agree."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bench.core import files
from bench.core.errors import BenchError
from bench.data import features, workload
from bench.data.features import AS_OF, WINDOW_DAYS

#: A short log keeps these tests fast: ~5 events per customer over the 5k-customer small dataset.
PER_CUSTOMER = 5.0


@pytest.fixture(scope="module")
def activity(small_dataset: workload.Dataset, tmp_path_factory: pytest.TempPathFactory) -> features.Activity:
    return features.ensure_activity(small_dataset, PER_CUSTOMER, seed=1, directory=tmp_path_factory.mktemp("act"))


def test_log_has_the_schema_and_shape_of_an_activity_log(small_dataset, activity):
    df = pl.read_parquet(activity.path)
    assert df.schema == pl.Schema(
        {"customer_id": workload.ID_COLUMN.dtype, "event_time": pl.Datetime("us"), "amount": pl.Float64()}
    )
    assert activity.rows == df.height and activity.per_customer == PER_CUSTOMER and activity.days == 365
    assert activity.dataset_sha256 == small_dataset.sha256 and activity.sha256 == files.sha256_file(activity.path)
    # stored as a log: in time order, customers interleaved (no index for free)
    assert df["event_time"].is_sorted() and not df["customer_id"].is_sorted()
    assert df["event_time"].min() >= AS_OF - timedelta(days=365) and df["event_time"].max() < AS_OF
    customers = pl.read_parquet(small_dataset.path, columns=["customer_id"])["customer_id"]
    assert df["customer_id"].is_in(customers.implode()).all()
    # Poisson per customer: about PER_CUSTOMER on average, some customers without any event
    assert abs(df.height / customers.len() - PER_CUSTOMER) < 0.2
    assert df["customer_id"].n_unique() < customers.len()
    assert (df["amount"] > 0).all() and df["amount"].is_finite().all()


def test_generation_is_deterministic_per_seed(small_dataset):
    a = features.generate_activity(small_dataset, 2.0, seed=4)
    assert a.equals(features.generate_activity(small_dataset, 2.0, seed=4))
    assert not a.equals(features.generate_activity(small_dataset, 2.0, seed=5))
    assert not a.equals(features.generate_activity(small_dataset, 2.0, days=200, seed=4))


def test_cached_log_is_reused_not_regenerated(small_dataset, tmp_path, monkeypatch):
    first = features.ensure_activity(small_dataset, 2.0, seed=7, directory=tmp_path)
    stamp = first.path.stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("generate_activity() called although the cached file is intact")

    monkeypatch.setattr(features, "generate_activity", fail)
    again = features.ensure_activity(small_dataset, 2.0, seed=7, directory=tmp_path)
    assert again == first and again.path.stat().st_mtime_ns == stamp
    assert len(list(tmp_path.glob("*.parquet"))) == 1


def test_log_is_regenerated_when_its_identity_changes(small_dataset, tmp_path, monkeypatch):
    first = features.ensure_activity(small_dataset, 2.0, seed=7, directory=tmp_path)
    calls = []
    real = features.generate_activity

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(features, "generate_activity", counting)
    # a sidecar from another generator version (or "now") is stale: regenerated in place
    meta_path = first.path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["activity_version"] = features.ACTIVITY_VERSION - 1
    meta_path.write_text(json.dumps(meta))
    again = features.ensure_activity(small_dataset, 2.0, seed=7, directory=tmp_path)
    assert len(calls) == 1 and again.sha256 == first.sha256  # deterministic
    assert json.loads(meta_path.read_text())["activity_version"] == features.ACTIVITY_VERSION
    # a new version is a new file; other parameters too
    monkeypatch.setattr(features, "ACTIVITY_VERSION", features.ACTIVITY_VERSION + 1)
    bumped = features.ensure_activity(small_dataset, 2.0, seed=7, directory=tmp_path)
    assert (
        len(calls) == 2
        and bumped.path != first.path
        and bumped.path.name.endswith(f"-v{features.ACTIVITY_VERSION}.parquet")
    )
    other = features.ensure_activity(small_dataset, 2.0, seed=8, directory=tmp_path)
    assert len(calls) == 3 and other.path != bumped.path and other.sha256 != bumped.sha256


def _with_boundary_events(activity: features.Activity, tmp_path: Path) -> tuple[Path, pl.DataFrame, dict]:
    """The log plus events on the window's edges: at as_of - 90 d (in), just before it (out), at as_of (out)."""
    lo = AS_OF - timedelta(days=WINDOW_DAYS)
    edges = {
        90_001: [(lo, 1.25)],  # exactly at the start: counted
        90_002: [(lo - timedelta(microseconds=1), 2.5)],  # a microsecond early: not counted
        90_003: [(AS_OF, 4.0)],  # at as_of: not counted
        90_004: [(AS_OF - timedelta(microseconds=1), 8.0), (lo, 16.0), (AS_OF, 32.0)],
    }
    rows = [(c, t, a) for c, evs in edges.items() for t, a in evs]
    extra = pl.DataFrame(rows, schema=features.ACTIVITY_SCHEMA, orient="row")
    df = pl.concat([pl.read_parquet(activity.path), extra]).sort("event_time", maintain_order=True)
    path = tmp_path / "activity-edges.parquet"
    df.write_parquet(path)
    return path, df, {90_001: (1, 1.25), 90_002: (0, 0.0), 90_003: (0, 0.0), 90_004: (2, 24.0)}


def test_on_the_fly_equals_the_batch_aggregate_for_every_customer(small_dataset, activity, tmp_path):
    path, df, edges = _with_boundary_events(activity, tmp_path)
    ids = pl.read_parquet(small_dataset.path, columns=["customer_id"])["customer_id"].to_numpy()
    customers = np.concatenate([ids, np.array(sorted(edges)), np.array([10**9])])  # + one never seen
    table = features.aggregate_all(df, customers=customers)
    assert table.columns == ["customer_id", "events_90d", "amount_90d"]
    assert table.schema["events_90d"] == pl.Int64 and table.schema["amount_90d"] == pl.Float64
    assert (
        table["customer_id"].to_numpy().tolist() == customers.tolist()
        and table.null_count().sum_horizontal().item() == 0
    )
    batch = features.lookup(table)
    reference = features.expected(df, customers)
    fly = features.OnTheFly(path)
    assert fly.rows == df.height == activity.rows + 6
    without_window = 0
    for c in customers.tolist():
        got = fly.get(c)
        assert isinstance(got[0], int) and isinstance(got[1], float)
        assert got[0] == batch[c][0] == reference[c][0], c
        assert got[1] == pytest.approx(batch[c][1], rel=1e-12, abs=1e-9) == reference[c][1], c
        without_window += got[0] == 0
    for c, want in edges.items():
        assert fly.get(c) == want and batch[c] == want
    assert fly.get(10**9) == batch[10**9] == (0, 0.0)
    assert without_window > 1  # some real customers have nothing in the window (PER_CUSTOMER is small)


def test_aggregate_all_without_customers_has_every_customer_of_the_log(activity):
    df = pl.read_parquet(activity.path)
    table = features.aggregate_all(df)
    assert table["customer_id"].to_list() == sorted(df["customer_id"].unique().to_list())
    ref = features.expected(df, table["customer_id"].to_numpy())
    assert features.lookup(table).keys() == ref.keys()
    for c, (n, amount) in features.lookup(table).items():
        assert n == ref[c][0] and amount == pytest.approx(ref[c][1], rel=1e-12, abs=1e-9)
    assert (table["events_90d"] == 0).any()  # customers whose events are all older than the window
    # a shorter window, another "now": fewer events
    earlier = features.aggregate_all(df, as_of=AS_OF - timedelta(days=100), window_days=30)
    assert earlier["events_90d"].sum() < table["events_90d"].sum()
    fly = features.OnTheFly(activity.path, as_of=AS_OF - timedelta(days=100), window_days=30)
    row = earlier.filter(pl.col("events_90d") > 0).row(0)
    assert fly.get(row[0]) == (row[1], pytest.approx(row[2]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_customer": 0.0}, "'per_customer' must be > 0"),
        ({"per_customer": float("nan")}, "'per_customer' must be > 0"),
        ({"days": WINDOW_DAYS - 1}, f"'days' must be an integer >= {WINDOW_DAYS}"),
        ({"days": 365.0}, "'days' must be an integer"),
        ({"seed": -1}, "'seed' must be an integer >= 0"),
    ],
)
def test_bad_generation_parameters_are_refused(small_dataset, tmp_path, kwargs, message):
    with pytest.raises(BenchError, match=message):
        features.ensure_activity(small_dataset, directory=tmp_path, **kwargs)
    with pytest.raises(BenchError, match=message):
        features.generate_activity(small_dataset, **kwargs)
    assert not list(tmp_path.iterdir())


def test_bad_aggregate_parameters_are_refused(activity):
    df = pl.read_parquet(activity.path)
    with pytest.raises(BenchError, match="'window_days' must be > 0"):
        features.aggregate_all(df, window_days=0)
    with pytest.raises(BenchError, match="'window_days' must be > 0"):
        features.OnTheFly(activity.path, window_days=-1)
    with pytest.raises(BenchError, match="'customers' has duplicate ids"):
        features.aggregate_all(df, customers=np.array([1, 2, 1]))


def test_missing_or_bad_activity_file_names_the_file(tmp_path, small_dataset):
    missing = tmp_path / "nope.parquet"
    with pytest.raises(BenchError, match=r"activity file '.*nope\.parquet' does not exist"):
        features.OnTheFly(missing)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not a parquet file")
    with pytest.raises(BenchError, match=r"activity file '.*garbage\.parquet' is not a readable parquet file"):
        features.OnTheFly(garbage)
    wrong = tmp_path / "wrong.parquet"
    pl.DataFrame({"customer_id": [1], "event_time": [AS_OF], "amount": [1]}).write_parquet(wrong)
    with pytest.raises(BenchError, match=r"wrong\.parquet'.*'amount' has dtype Int64, expected Float64"):
        features.OnTheFly(wrong)
    pl.DataFrame({"customer_id": [1], "amount": [1.0]}).write_parquet(wrong)
    with pytest.raises(BenchError, match=r"wrong\.parquet' has no 'event_time' column"):
        features.OnTheFly(wrong)
    no_data = workload.Dataset(tmp_path / "customers.parquet", 10, 0, "0" * 64)
    with pytest.raises(BenchError, match=r"data file '.*customers\.parquet'"):
        features.ensure_activity(no_data, directory=tmp_path)
