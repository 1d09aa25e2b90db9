"""Streaming micro-batches on a real local Ray: every event scored once, faults retried, backlog shown."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from bench.core.errors import BenchError
from bench.data import events
from bench.model import make_predictor
from bench.patterns.base import RunContext
from bench.patterns.microbatch import MicrobatchParams, run
from bench.systems.raysession import LOCAL_SYSTEM_CONFIG

SMALL = {"rows": 5_000, "train_rows": 5_000, "trees": 10, "leaves": 7}


def _params(**overrides) -> MicrobatchParams:
    base = {
        **SMALL,
        "events": 4_000,
        "rate": 400.0,
        "duration_s": 2.0,
        "min_events": 200,
        "warmup_s": 0.3,
        "max_batch": 100,
        "max_wait_ms": 20.0,
        "capacity": False,
        "saturation_events": 0,
        "drain_timeout_s": 10.0,
    }
    return MicrobatchParams(**{**base, **overrides})


def test_events_carry_their_customers_features_and_are_cached(small_dataset, tmp_path):
    e = events.ensure_events(small_dataset, 500, seed=1, directory=tmp_path)
    assert events.ensure_events(small_dataset, 500, seed=1, directory=tmp_path).sha256 == e.sha256
    df = pl.read_parquet(e.path)
    assert df["event_id"].to_list() == list(range(500)) and df["event_time"].is_sorted()
    customers = pl.read_parquet(small_dataset.path)
    joined = df.join(customers, on="customer_id", suffix="_c")
    assert joined.height == 500 and (joined["tenure_months"] == joined["tenure_months_c"]).all()
    other = events.ensure_events(small_dataset, 500, seed=2, directory=tmp_path)
    assert other.sha256 != e.sha256


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_batch", 0, "'max_batch' must be > 0"),
        ("max_wait_ms", -1.0, "'max_wait_ms' must be > 0"),
        ("n_actors", 0, "'n_actors' must be > 0"),
        ("schedule", "bursty", "'schedule' must be one of"),
        ("fault_kill_at_s", -1.0, "'fault_kill_at_s' must be >= 0"),
    ],
)
def test_bad_params_are_refused_before_any_work(field, value, message):
    with pytest.raises(BenchError, match=message):
        _params(**{field: value})


@pytest.fixture(scope="module")
def faulted(small_dataset, small_model, tmp_path_factory):
    """A run whose main window loses an actor mid-batch."""
    params = _params(fault_kill_at_s=0.8)
    t0 = time.monotonic()
    result = run(small_dataset, small_model, params, RunContext("mb", tmp_path_factory.mktemp("mb")))
    return result, params, time.monotonic() - t0


@pytest.fixture(scope="module")
def searched(small_dataset, small_model, tmp_path_factory):
    """A run with a capacity search and a saturation window (and no fault)."""
    params = _params(
        capacity=True, capacity_window_s=1.0, capacity_max_rate=400_000.0, saturation_events=6_000, slo_ms=300.0
    )
    t0 = time.monotonic()
    result = run(small_dataset, small_model, params, RunContext("mbc", tmp_path_factory.mktemp("mbc")))
    return result, params, time.monotonic() - t0


def test_every_event_gets_exactly_one_correct_score_despite_a_crash(faulted, small_dataset, small_model):
    result, params, _ = faulted
    m = result.metrics
    d = m["delivery"]
    assert d["lost_events"] == 0 and d["unfinished_at_deadline"] == 0
    assert d["delivered_events"] == d["offered_events"] > 500
    assert d["retries"] >= 1  # the batch the dead actor held went to another actor
    assert d["mismatches"] == 0
    assert [e["kind"] for e in m["fault_events"]][:2] == ["actor_crashed", "actor_failed"]
    main = result.samples.filter(pl.col("window") == "main")
    assert (main["status"] == 200).all()
    table = events.ensure_events(small_dataset, params.events, params.event_seed)
    _, X = events.read(table)
    expected = make_predictor(small_model).predict(X)
    n = main.height
    assert np.array_equal(main["score"].to_numpy(), expected[np.arange(n) % len(X)])
    assert m["recovery"]["max_latency_after_kill_s"] > m["recovery"]["baseline_p99_s"]


def test_latency_batches_and_cpu_are_recorded(faulted):
    result, params, _ = faulted
    m = result.metrics
    assert m["latency_s"]["count"] == m["predictions"]
    assert m["batch_size"]["max"] <= params.max_batch
    assert sum(m["batches_closed_by"].values()) == m["delivery"]["batches"]
    assert m["cpu_seconds_by_role"]["actors"] > 0 and m["cpu_seconds_by_role"]["driver"] > 0
    assert m["fixed_costs_s"]["ray_start"] > 0 and m["ray"]["rss_bytes_after_start"] > 0
    assert len(m["backlog"]["t_s"]) == len(m["backlog"]["queued_events"]) > 10


def test_capacity_search_and_an_overloaded_window_show_the_backlog(searched):
    result, params, elapsed = searched
    cap = result.metrics["capacity"]
    assert cap["rate_per_s"] > 0 and cap["curve"], cap["curve"]
    failing = [p for p in cap["curve"] if not p["sustainable"]]
    assert failing, "the search must have found a rate the pipeline cannot sustain"
    assert all(p["offered_rate_per_s"] > cap["rate_per_s"] for p in failing)
    sat = result.metrics["saturation"]
    assert sat["delivered_events"] == 6_000 and 0 < sat["ratio_to_bulk"]
    # everything offered at once: all but the batches in flight wait in the backlog, and it is seen
    assert sat["max_queued_events"] >= 6_000 - params.inflight_limit * params.max_batch
    assert elapsed < 240


def test_ray_is_shut_down_after_a_run_and_after_a_failure(faulted, small_dataset, small_model, tmp_path):
    import ray

    assert not ray.is_initialized()
    result = faulted[0]
    assert all("restarted" in e for e in result.metrics["fault_events"] if e["kind"] == "actor_failed")
    with pytest.raises(BenchError, match="the Ray cluster has"):
        run(small_dataset, small_model, _params(n_actors=64), RunContext("bad", tmp_path))
    assert not ray.is_initialized()


def test_actors_spread_over_the_nodes_of_a_two_node_cluster(small_dataset, small_model, tmp_path, monkeypatch):
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "_system_config": LOCAL_SYSTEM_CONFIG},
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes(timeout=120)
        params = _params(ray_address=cluster.address, n_actors=2, duration_s=1.0, min_events=100)
        result = run(small_dataset, small_model, params, RunContext("cluster", tmp_path))
    finally:
        cluster.shutdown()
    m = result.metrics
    assert m["ray"]["nodes"] == 2 and len(m["actors"]["nodes"]) == 2
    assert m["delivery"]["lost_events"] == 0 and m["delivery"]["delivered_events"] == m["delivery"]["offered_events"]


def test_a_batch_is_a_view_of_the_event_table_unless_it_wraps():
    from bench.patterns.microbatch.batcher import rows as _rows

    X = np.arange(50, dtype=np.float64).reshape(10, 5)
    view = _rows(X, 12, 17)  # a later pass over the table, no wrap
    assert np.shares_memory(view, X) and np.array_equal(view, X[2:7])
    wrapped = _rows(X, 8, 13)  # crosses the table's end
    assert not np.shares_memory(wrapped, X) and np.array_equal(wrapped, X[[8, 9, 0, 1, 2]])
