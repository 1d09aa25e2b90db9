"""Cost model: prices, workloads, the cost of a day per pattern from measured results, crossovers, intervals."""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import pytest
from helpers import PRICES, as_compiled, batch_run, service_run

from bench.analysis import cost
from bench.core.errors import BenchError


def test_the_repo_catalogue_loads_and_overrides_apply():
    p = cost.load_prices()
    assert p.name == "aws-on-demand" and p.as_of and not p.flat
    assert p.platform("batch", "job").name == "aws-batch-fargate"
    assert p.platform("real-time", "service").name == "ec2-on-demand"
    spot = cost.load_prices(preset="aws-spot").platform("batch", "job")
    assert spot.fit(2, 1, "intel")[0].hour < p.platform("real-time", "service").fit(2, 1, "intel")[0].hour
    assert cost.load_prices(batch="fargate-spot").platform("batch", "job").name == "fargate-spot"
    assert cost.load_prices(preset="aws-serverless").platform("real-time", "service").kind == "function"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "azure"}, "price preset 'azure' is not in"),
        ({"cpu_hour": 1.0}, "unknown field"),
        ({"job": "azure-batch"}, "job='azure-batch' is not a platform of"),
        ({"target_utilisation": 1.5}, r"'target_utilisation' must be in \(0, 1\]"),
    ],
)
def test_bad_prices_are_refused_with_the_field_named(kwargs, message):
    with pytest.raises(BenchError, match=message):
        cost.load_prices(**kwargs)


def test_a_flat_preset_refuses_a_negative_price():
    with pytest.raises(BenchError, match="'vcpu_hour' must be > 0"):
        cost.Prices("flat", vcpu_hour=-1.0)


def test_a_price_file_that_is_not_a_table(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(BenchError, match="has no 'presets'"):
        cost.load_prices(bad)


def test_billing_rounds_up_to_granularity_and_minimum():
    p = cost.Prices("g", vcpu_hour=1.0, gib_hour=0.0, granularity_s=60, minimum_s=600)
    assert p.billed_seconds(1) == 600 and p.billed_seconds(601) == 660


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("predictions_per_day", 0, "must be > 0"),
        ("peak_to_mean", 0.5, "'peak_to_mean' must be >= 1"),
        ("target_utilisation", 0.0, r"'target_utilisation' must be in \(0, 1\]"),
        ("target_utilisation", 1.2, r"'target_utilisation' must be in \(0, 1\]"),
    ],
)
def test_bad_workloads_are_refused(field, value, message):
    with pytest.raises(BenchError, match=message):
        cost.Workload(**{"predictions_per_day": 1e6, field: value})


def test_batch_cost_is_the_jobs_billed_time():
    m = cost.batch_measures([batch_run("b1")])[0]
    w = cost.Workload(1e6, batch_every_h=24)
    c = cost.batch_cost(m, w, PRICES)
    assert c["job_wall_s"] == pytest.approx(12.0)  # 1M rows at 100k/s + 2 s fixed
    assert c["cost_per_day"] == pytest.approx(60 / 3600 * 2 * 0.04)  # billed the 60 s minimum on 2 cores
    hourly = cost.batch_cost(m, replace(w, batch_every_h=1), PRICES)
    assert hourly["units"] == 24 and hourly["cost_per_day"] == pytest.approx(24 * c["cost_per_day"])
    assert c["consumed_core_s"] == pytest.approx(1e6 * 20.0 / 1e6 + 2.0)


def test_service_replicas_cover_the_peak_at_the_target_utilisation_and_the_availability_minimum():
    m = cost.service_measures([service_run("s1", capacity=50.0)], "request", "http/lightgbm")[0]
    busy = cost.service_cost(m, cost.Workload(100 * 86_400, peak_to_mean=3.0), PRICES)
    assert busy["units"] == 10  # 300/s peak over 50/s per replica run at 60% (was 6 before the target)
    assert busy["cost_per_day"] == pytest.approx(10 * 24 * 0.04)
    assert busy["utilisation"] == pytest.approx(300 / 500) and busy["breakdown"]["availability_floor"] == 0
    full = cost.service_cost(m, cost.Workload(100 * 86_400, target_utilisation=1.0), PRICES)
    assert full["units"] == 6
    quiet = cost.service_cost(m, cost.Workload(1_000, min_replicas=2), PRICES)
    assert quiet["units"] == 2 and quiet["breakdown"]["availability_floor"] == pytest.approx(24 * 0.04)


def test_options_use_valid_runs_at_the_largest_size_and_say_what_is_missing():
    runs = [
        batch_run("small", rows=10_000, rows_per_s=10.0),
        batch_run("big1"),
        batch_run("big2"),
        batch_run("bad", valid=False, rows_per_s=1.0),
        service_run("s1"),
        service_run("inproc", backend="inprocess/lightgbm"),
        service_run("nocap", backend="ray_serve/lightgbm", capacity=0.0),
        # a caller's own batch of 10 rows a request: shown, never costed (a per-event consumer would
        # first wait to fill it); a batched *server* is an option like any other
        service_run("rows", backend="http[10rows]/lightgbm"),
        service_run("dyn", backend="http[b32/2ms]/lightgbm"),
    ]
    runs[-2].params = {"rows_per_request": 10}
    runs[-1].params = {"batch_max": 32, "batch_wait_ms": 2.0}
    found, missing = cost.options(runs)
    labels = {o.label: o for o in found}
    assert set(labels) == {"batch (local)", "real-time http/lightgbm", "real-time http[b32/2ms]/lightgbm"}
    assert {m.run_id for m in labels["batch (local)"].measures} == {"big1", "big2"}
    reasons = {m["option"]: m["reason"] for m in missing}
    assert "real-time ray_serve/lightgbm" in reasons and "hybrid" in reasons


def test_sweep_and_crossover_follow_the_measurements():
    # batch: 1 CPU-ms per prediction, 1 row/ms; always-on: 2 replicas of 1 core, 10k/s each
    runs = [batch_run("b", rows_per_s=1_000.0, cpu_s=1_000.0, fixed=0.0), service_run("s", capacity=10_000.0)]
    w = cost.Workload(1e3, peak_to_mean=1.0, min_replicas=2)
    table = cost.sweep(runs, PRICES, w, volumes=[1e3, 1e6, 1e8, 1e9])
    assert set(table["option"]) == {"batch (local)", "real-time http/lightgbm"}
    cross = cost.crossovers(table)
    assert cross.height == 1 and cross["cheaper_above"][0] == "real-time http/lightgbm"
    # batch costs 2 cores × rows/1000 s; always-on 2 cores × 86,400 s: equal at 86.4M predictions/day
    assert cross["crosses_at_per_day"][0] == pytest.approx(86.4e6, rel=0.6)
    faster = cost.sweep([batch_run("b", rows_per_s=2_000.0, cpu_s=1_000.0, fixed=0.0), runs[1]], PRICES, w, [1e8])
    before = table.filter((pl.col("predictions_per_day") == 1e8) & (pl.col("option") == "batch (local)"))
    after = faster.filter(pl.col("option") == "batch (local)")
    assert after["cost_per_day"][0] == pytest.approx(before["cost_per_day"][0] / 2, rel=0.01)


def test_a_crossing_on_an_exact_tie_is_found():
    """Costs of whole replicas tie exactly on a swept volume; the crossing there was lost."""
    v = [1e6, 1e7, 1e8, 1e9]
    table = pl.DataFrame(
        {
            "predictions_per_day": v * 2,
            "option": ["a"] * 4 + ["b"] * 4,
            "cost_per_day": [1.0, 2.0, 4.0, 8.0] + [2.0, 2.0, 2.0, 2.0],
        }
    )
    cross = cost.crossovers(table, reference="b")
    assert cross.to_dicts() == [{"option": "a", "reference": "b", "crosses_at_per_day": 1e7, "cheaper_above": "b"}]
    apart = table.with_columns(pl.Series("cost_per_day", [1.0, 3.0, 4.0, 8.0] + [2.0] * 4))
    (row,) = cost.crossovers(apart, reference="b").to_dicts()  # no tie: interpolated between the points
    assert 1e6 < row["crosses_at_per_day"] < 1e7 and row["cheaper_above"] == "b"


def test_ratio_interval_reflects_the_spread_of_repeats():
    w = cost.Workload(1e8, peak_to_mean=1.0)
    same = cost.Option("batch", "job", tuple(cost.batch_measures([batch_run("a"), batch_run("b")])))
    service = cost.Option(
        "rt", "always-on", tuple(cost.service_measures([service_run("s")], "request", "http/lightgbm"))
    )
    flat = cost.ratio_interval(service, same, w, PRICES, draws=200)
    assert flat["ci95_low"] == pytest.approx(flat["ratio"]) == pytest.approx(flat["ci95_high"])
    spread = cost.Option(
        "batch",
        "job",
        tuple(
            cost.batch_measures(
                [batch_run("a", rows_per_s=50_000.0), batch_run("b"), batch_run("c", rows_per_s=200_000.0)]
            )
        ),
    )
    wide = cost.ratio_interval(service, spread, w, PRICES, draws=500)
    assert wide["ci95_low"] < wide["ratio"] < wide["ci95_high"] and wide["runs"] == (1, 3)


def test_the_predictor_is_a_cost_dimension_and_its_build_is_paid_once_per_release():
    runs = [batch_run("b"), as_compiled(batch_run("bc", rows_per_s=300_000.0, cpu_s=5.0)), service_run("rt")]
    runs.append(as_compiled(service_run("rtc", capacity=4_000.0)))
    opts = {o.label: o for o in cost.options(runs)[0]}
    assert {"batch (local)", "batch (local, lleaves)", "real-time http/lightgbm", "real-time http/lleaves"} <= set(opts)
    assert [m.run_id for m in opts["batch (local)"].measures] == ["b"]  # never pooled across predictors
    compiled = opts["batch (local, lleaves)"].measures[0]
    assert compiled.fixed_s == 2.0 and compiled.build_s == 40.0  # the compile is not a per-job cost
    w = cost.Workload(1e6, batch_every_h=1)  # 24 jobs a day: still one build per release
    c = opts["batch (local, lleaves)"].cost(w, PRICES)
    assert c["build_cost_per_day"] == pytest.approx(PRICES.billed_seconds(40.0) / 3600 * PRICES.vcpu_hour)
    none = opts["batch (local, lleaves)"].cost(replace(w, releases_per_day=0.0), PRICES)
    assert c["cost_per_day"] - none["cost_per_day"] == pytest.approx(c["build_cost_per_day"])
    assert c["consumed_core_s"] - none["consumed_core_s"] == pytest.approx(40.0)
    assert opts["real-time http/lleaves"].cost(w, PRICES)["build_cost_per_day"] > 0
    assert opts["real-time http/lightgbm"].cost(w, PRICES)["build_cost_per_day"] == 0


def _service(**kw):
    r = service_run("s", **kw)
    r.metrics["service_s"] = {"count": 100, "mean": 0.0004, "p50": 0.0003, "p99": 0.001}
    r.metrics["fixed_costs_s"] = {"server_start": 0.8, "backend_start": 0.85}
    return r


def test_a_catalogue_bill_at_the_articles_volume_is_floors_and_minimums():
    p, w = cost.load_prices(), cost.Workload(100_000)
    opts = {o.label: o for o in cost.options([batch_run("b"), _service()])[0]}
    b = opts["batch (local)"].cost(w, p)
    assert b["job_seconds"]["billed"] == 60 and b["job_seconds"]["platform_startup"] == 30
    assert b["job_wall_s"] == pytest.approx(1.0 + 2.0)  # 100k rows at 100k/s + the measured start
    assert sum(b["breakdown"].values()) == pytest.approx(b["cost_per_day"])
    assert set(b["line_items"]) == {"scheduler", "results_store"} and not b["measured"]
    assert any("process start not measured" in n for n in b["notes"])
    assert b["sold_units"]["job"].startswith("2 vCPU / 4 GiB task")  # 2 cores and 1 GiB, rounded up to a size
    rt = opts["real-time http/lightgbm"].cost(w, p)
    assert rt["units"] == 2 and rt["breakdown"]["availability_floor"] > 0 and not rt["measured"]
    assert set(rt["line_items"]) == {"load_balancer", "monitoring"}
    assert sum(rt["breakdown"].values()) == pytest.approx(rt["cost_per_day"])
    assert rt["utilisation"] < 0.01
    busy = opts["real-time http/lightgbm"].cost(replace(w, predictions_per_day=1e9), p)
    assert busy["measured"]  # the replicas now follow the measured capacity


def test_the_process_start_replaces_the_model_load_when_measured():
    r = batch_run("b", fixed=2.0)
    r.metrics["fixed_costs_s"]["process_start"] = 3.0
    m = cost.batch_measures([r])[0]
    assert m.process_start_s == 3.0 and m.fixed_s == 3.0  # model_load is inside the process start
    c = cost.batch_cost(m, cost.Workload(1e6), cost.load_prices())
    assert not any("process start not measured" in n for n in c["notes"])


def test_the_cpu_family_measured_is_named_and_preferred():
    r = _service(cores=1)
    r.provenance = {"machine": {"cpu_model": "AMD EPYC 7B13"}}
    o = cost.options([r])[0][0]
    c = o.cost(cost.Workload(100_000), cost.load_prices())
    assert c["sold_units"]["service"].startswith(("m7a", "c7a"))
    assert "measured on AMD EPYC 7B13 (amd)" in c["priced_as"][0]


def test_autoscaling_follows_the_diurnal_profile():
    from bench.analysis import bill

    prof = bill.diurnal_profile(3.0)
    assert prof.mean() == pytest.approx(1.0) and prof.max() == pytest.approx(3.0, rel=1e-6)
    m = cost.service_measures([service_run("s1", capacity=50.0)], "request", "http/lightgbm")[0]
    w = cost.Workload(100 * 86_400, peak_to_mean=3.0, min_replicas=1)
    fixed, scaled = cost.service_cost(m, w, PRICES), cost.service_cost(m, replace(w, autoscale=True), PRICES)
    assert scaled["units"] == fixed["units"] == 10 and scaled["replica_hours"] < fixed["replica_hours"]


def test_serverless_real_time_is_priced_per_request_and_its_cold_start_reported():
    p, w = cost.load_prices(preset="aws-serverless"), cost.Workload(1e6)
    o = cost.options([_service()])[0][0]
    c = o.cost(w, p)
    assert c["unit"] == "requests/day" and c["units"] == 1e6 and c["cold_start_s"] == 0.85
    assert c["breakdown"]["requests"] == pytest.approx(0.2) and c["breakdown"]["availability_floor"] == 0
    assert "api_gateway" in c["line_items"] and "load_balancer" not in c["line_items"]
    with pytest.raises(BenchError, match="measured no service time"):
        cost.options([service_run("bare")])[0][0].cost(w, p)


def test_a_sustained_run_without_a_capacity_search_is_a_lower_bound():
    r = service_run("s", capacity=0.0)
    r.metrics["capacity"] = None
    r.params = {"slo_ms": 50.0}
    r.metrics |= {"sustainable": True, "offered_rate_per_s": 90.0, "errors": {"timeout": 0}}
    r.metrics["latency_s"] = {"count": 100, "p99": 0.002}
    (o,), _ = cost.options([r])
    assert o.measures[0].capacity_lower_bound and o.measures[0].capacity_per_s == 90.0
    assert any("lower bound" in n for n in o.cost(cost.Workload(1e6), PRICES)["notes"])
    r.metrics["latency_s"] = {"count": 100, "p99": 0.2}  # over the SLO: no capacity at all
    assert cost.options([r])[0] == []


def test_no_measured_quantity_gives_no_interval():
    p, w = cost.load_prices(), cost.Workload(100_000)
    opts = {o.label: o for o in cost.options([batch_run("a"), batch_run("b"), _service()])[0]}
    ci = cost.ratio_interval(opts["real-time http/lightgbm"], opts["batch (local)"], w, p, draws=50)
    assert ci["interval"] == "no measured quantity" and ci["ci95_low"] is None and ci["runs"] == (1, 2)
