"""Hybrid ``lookup="direct"``: a real valkey-server, real refresh jobs publishing into it under the load,
and the load generator reading the store itself — no model server. Short windows at a small rate: these
tests check what was answered and what was metered, never how fast (they pass on a busy machine)."""

from __future__ import annotations

import numpy as np
import polars as pl
import psutil
import pytest
from helpers import assert_valid_or_busy, busy

from bench.app import cli
from bench.core.errors import BenchError
from bench.data import workload
from bench.model import make_predictor
from bench.patterns.base import RunContext
from bench.patterns.hybrid import PATTERN, HybridParams, hybrid_label, run
from bench.views.hybrid import hybrid_card, hybrid_summary


def _small(**overrides) -> HybridParams:
    values = dict(
        rows=2_000,
        store="valkey",
        lookup="direct",
        rate=150.0,
        duration_s=3.0,
        min_requests=200,
        warmup_s=0.5,
        capacity=True,
        capacity_window_s=1.0,
        capacity_max_rate=300.0,  # the search's windows stay few: 150, then 300 req/s
        refresh_interval_s=1.0,
        hit_ratio=0.8,
        train_rows=5_000,
        trees=10,
        leaves=7,
    )
    return HybridParams(**(values | overrides))


def _children(name: str) -> list[psutil.Process]:
    return [c for c in psutil.Process().children(recursive=True) if name in " ".join(c.cmdline())]


@pytest.fixture(scope="module")
def direct(small_dataset, small_model, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("hy-direct")
    result = run(small_dataset, small_model, _small(), RunContext("hy-direct", run_dir))
    return result, run_dir


def test_every_lookup_reads_predict_scores_bit_for_bit_and_unknown_customers_are_not_found(
    direct, small_dataset, small_model
):
    r, _ = direct
    assert_valid_or_busy(r, lag_ok=True)  # the refresh job shares the 2 cores with the generator by design
    m = r.metrics
    assert m["lookup"] == "direct" and r.backend.startswith("lookup[valkey,80%,direct]")
    assert m["score_mismatches"] == 0 and m["lookup_mismatches"] == 0
    if not busy(r):  # a starved machine can time a request out: only then may one fail
        assert sum(m["errors"].values()) == 0
    look, miss = m["lookup_latency_s"], m["not_found_latency_s"]
    assert m["fallback_latency_s"] is None  # nothing is scored live: there is no server
    assert look["count"] > 0 and miss["count"] > 0 and look["count"] + miss["count"] == m["latency_s"]["count"]
    assert 0.7 < m["hit_ratio"] < 0.9 and m["store"]["rows"] == 1_600

    # the harness compared with != (bit for bit); check it again here, from the raw samples
    frame = pl.read_parquet(small_dataset.path).head(2_000)
    expected = make_predictor(small_model, "lightgbm", 1).predict(workload.feature_matrix(frame))
    main = r.samples.filter(pl.col("window") == "main")
    i = np.arange(main.height)
    found = (main["status"].to_numpy() == 200) & (main["from_store"].to_numpy() == 1)
    assert found.sum() > 0
    np.testing.assert_array_equal(main["score"].to_numpy()[found], expected[i[found] % 2_000])
    assert np.isnan(main["score"].to_numpy()[(main["status"].to_numpy() == 200) & ~found]).all()


def test_the_store_is_the_metered_serving_path_and_no_model_server_ran(direct):
    r, run_dir = direct
    m = r.metrics
    assert "server" not in m["cpu"]["by_label"] and "server_start" not in m["fixed_costs_s"]
    assert not (run_dir / "server.log").exists()  # a model server writes its log there
    assert m["store"]["cpu_seconds"] > 0 and m["store"]["peak_rss_bytes"] > 0 and not m["store"]["external"]
    assert m["cpu_seconds"] == m["store"]["cpu_seconds"] and m["generator_cpu_seconds"] > 0
    assert m["memory"]["peak_rss_bytes"] == m["store"]["peak_rss_bytes"]  # the replica's memory is the store's
    assert not PATTERN.has_service(r.params)  # the bill holds no model-server replicas
    assert m["capacity"] is not None and m["capacity"]["curve"]
    assert not _children("valkey-server") and "Ready to accept connections" in (run_dir / "valkey.log").read_text()


def test_refreshes_published_during_the_window_are_followed(direct):
    r, _ = direct
    m = r.metrics
    # a refresh that published with lookups still to come (the last one may finish after the window)
    published = [
        j
        for j in m["jobs"]
        if j["kind"] != "initial"
        and j["ok"]
        and j["published"]
        and j["started_s"] + j["wall_s"] < m["wall_seconds"] - 0.2
    ]
    if busy(r) and not published:  # the job runs niced: a machine other work took may starve it
        return
    assert published and m["generations_followed"] >= 1
    assert m["staleness_steady_state"] and m["staleness_s"]["count"] > 0 and m["staleness_s"]["min"] > 0


def test_the_views_show_a_direct_run_beside_a_server_run(direct):
    r, _ = direct
    card = dict(zip(*hybrid_card(r).get_columns(), strict=True))
    assert card["who reads the store"].startswith("the client itself") and "not found p50 / p99 (ms), n" in card
    table = hybrid_summary([r])
    assert table["lookup by"].to_list() == ["direct"] and table["store CPU µs/answer"][0] != "n/a"


def test_every_customer_known_means_every_answer_is_a_lookup(small_dataset, small_model, tmp_path):
    params = _small(hit_ratio=1.0, refresh_interval_s=0.0, capacity=False, duration_s=2.0, isolate_generator=False)
    r = run(small_dataset, small_model, params, RunContext("hy-direct-all", tmp_path))
    assert_valid_or_busy(r, lag_ok=True)
    m = r.metrics
    assert m["hit_ratio"] == 1.0 and m["not_found_latency_s"] is None and m["lookup_mismatches"] == 0
    assert m["generations_followed"] == 0 and not m["isolation"]["isolated"]
    assert hybrid_label(params) == "lookup[valkey,100%,direct]"


def test_an_unreachable_store_url_is_named_and_nothing_is_left_running(small_dataset, small_model, tmp_path):
    params = _small(store_url="valkey://127.0.0.1:1", capacity=False)
    with pytest.raises(BenchError, match=r"valkey://127\.0\.0\.1:1"):
        run(small_dataset, small_model, params, RunContext("hy-direct-url", tmp_path))
    assert not _children("valkey-server") and not _children("refresh_job")


# --------------------------------------------------------------------------------------------
# Bad input: refused by name, before any work (the parameters alone: tests/unit/patterns/test_hybrid_params.py)
# --------------------------------------------------------------------------------------------


def test_the_cli_refuses_direct_without_valkey_before_a_run_directory(tmp_path, capsys):
    code = cli.main(["run", "hybrid", "--param", "lookup=direct", "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and "'lookup'" in err and "store='valkey'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results" / "runs").exists() or not any((tmp_path / "results" / "runs").iterdir())
