"""Measured components in the bill: a store or broker the run metered is sized on its line item's nodes
(more nodes at a higher rate or a higher CPU per prediction), the flat line item stays where nothing was
measured, a run with no service of its own holds no replicas, and C3 / C7 say which of them they used."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from helpers import PRICES, batch_run, service_run

from bench.analysis import catalogue, cost, verdicts
from bench.analysis.bill import NODE_MEMORY_SHARE
from bench.patterns import registry
from bench.results import RunResult

CATALOGUE = cost.load_prices()  # the repo's: online_store and broker sell cache.t4g.small nodes
NODE_DAY = 23.36 / catalogue.DAYS_PER_MONTH  # one cache.t4g.small a day ($0.032/h × 730 h a month)
MIB = 2**20


def _hybrid(
    run_id: str = "hy",
    store: str = "valkey",
    store_cpu: float = 0.2,
    external: bool = False,
    lookup: str = "server",
    backend: str | None = None,
    lookup_p99: float = 0.002,
) -> RunResult:
    """A hybrid run of 2,000 lookups whose store (valkey: a metered server) used ``store_cpu`` CPU-s of
    the run's 1.0 (100 µs per prediction at 0.2), with 30 MiB peak RSS for 95,000 rows."""
    served = store == "valkey" and not external
    m = {
        "predictions": 2_000,
        "cpu_seconds": 1.0,
        "wall_seconds": 10.0,
        "provisioned_core_seconds": 10.0,
        "capacity": {"rate_per_s": 3_000.0, "slo_ms": 50.0},
        "latency_s": {"p99": lookup_p99},
        "lookup_latency_s": {"p99": lookup_p99, "count": 2_000},
        "fallback_latency_s": {"p99": 0.004},
        "hit_ratio": 0.95,
        "offered_rate_per_s": 200.0,
        "cpu": {
            "by_label": {"generator": 0.5, "server": 1.0 - store_cpu, **({"store": store_cpu} if served else {})},
            "peak_rss_by_label": {
                "generator": 200 * MIB,
                "server": 300 * MIB,
                **({"store": 30 * MIB} if served else {}),
            },
        },
        "job": {"rows_per_s": 200_000.0, "fixed_s": 1.5, "cores": 1, "cpu_s": 2.0, "rows": 95_000},
        "store": {
            "kind": store,
            "bytes": 10 * MIB,
            "rows": 95_000,
            "cpu_seconds": store_cpu if served else None,
            "peak_rss_bytes": 30 * MIB if served else None,
            "external": external,
        },
    }
    label = backend or f"lookup[{store},95%]/lightgbm"
    params = {"server_app": "fastapi", "store": store, "lookup": lookup}
    return RunResult(run_id, "hybrid", label, "test", params, m, {})


def _broker_run(run_id: str = "sb", per_event: float | None = 50e-6, external: bool = False) -> RunResult:
    """A streaming run through a Valkey broker at 1,000 events/s offered, 64 MiB broker peak RSS."""
    r = service_run(run_id, capacity=40_000.0, backend="ray/b1000-w50ms/broker", pattern="microbatch", cores=2)
    r.metrics |= {
        "latency_s": {"p99": 0.08},
        "offered_rate_per_s": 1_000.0,
        "source": "broker",
        "broker": {
            "kind": "valkey",
            "cpu_seconds": None if external else 0.1,
            "cpu_seconds_per_event": None if external else per_event,
            "peak_rss_bytes": None if external else 64 * MIB,
            "appendfsync": "everysec",
            "external": external,
        },
    }
    return r


@pytest.fixture
def direct_lookup(monkeypatch):
    """The hybrid pattern with its no-model-server mode (``lookup="direct"``) declared serviceless."""
    spec = registry.PATTERNS["hybrid"]
    monkeypatch.setitem(registry.PATTERNS, "hybrid", replace(spec, serviceless={"lookup": "direct"}))


def _option(runs) -> cost.Option:
    found, _ = cost.options(runs)
    assert len(found) == 1, [o.label for o in found]
    return found[0]


def _sums(c: dict) -> None:
    assert math.fsum(c["breakdown"].values()) == pytest.approx(c["cost_per_day"], rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# Sizing from the measurement
# --------------------------------------------------------------------------------------------------


def test_the_repo_catalogue_sells_store_and_broker_nodes():
    for name in ("online_store", "broker"):
        item = CATALOGUE.line_items[name]
        assert (item.node, item.vcpu, item.gib, item.per_month) == ("cache.t4g.small", 2, 1.37, 23.36) and item.sized
        assert item.command_vcpu == 1  # Valkey runs its commands on one thread of the two vCPUs
    assert CATALOGUE.line_items["load_balancer"].fronts_service and CATALOGUE.line_items["api_gateway"].fronts_service


def test_a_measured_store_is_sized_by_its_cpu_per_prediction_more_nodes_at_a_higher_rate():
    o = _option([_hybrid()])
    m = o.point()
    assert m.component == "online_store" and m.component_cpu_s_per_prediction == pytest.approx(100e-6)
    # the replica's own figures no longer hold the store's CPU and memory (it is billed on its own nodes)
    assert m.cpu_s_per_prediction == pytest.approx(0.8 / 2_000) and m.memory_gib == pytest.approx(300 / 1024)
    base = cost.Workload(1e5, min_replicas=1, customers=95_000)
    nodes = {}
    for volume in (1e5, 1e9, 3e9):
        c = o.cost(replace(base, predictions_per_day=volume), CATALOGUE)
        _sums(c)
        store = c["components"]["online_store"]
        peak = volume / 86_400 * 3
        assert store["by_cpu"] == math.ceil(peak * 100e-6 / (1 * 0.6) - 1e-9)  # one engine vCPU of 2
        assert store["nodes"] == max(1, store["by_cpu"], store["by_memory"])
        assert c["breakdown"]["components"] == pytest.approx(store["nodes"] * NODE_DAY)
        assert "online_store" not in c["line_items"]  # measured: no flat line item beside it
        assert c["line_item_basis"]["online_store"].startswith(
            f"sized by the measured CPU per prediction (100 µs) → {store['nodes']} node(s) of cache.t4g.small"
        )
        nodes[volume] = store["nodes"]
    assert nodes[1e5] == 1 < nodes[1e9] < nodes[3e9]


def test_more_cpu_per_prediction_needs_more_store_nodes_and_the_floor_is_min_replicas():
    w = cost.Workload(1e9, min_replicas=1, customers=95_000)
    cheap = _option([_hybrid(store_cpu=0.2)]).cost(w, CATALOGUE)["components"]["online_store"]
    dear = _option([_hybrid(store_cpu=0.6)]).cost(w, CATALOGUE)["components"]["online_store"]
    assert dear["nodes"] > cheap["nodes"] and dear["cpu_us_per_prediction"] == pytest.approx(300)
    quiet = _option([_hybrid()]).cost(cost.Workload(1e4, min_replicas=2, customers=95_000), CATALOGUE)
    store = quiet["components"]["online_store"]
    assert (store["needed"], store["nodes"]) == (1, 2)  # one node does the work, two are held for availability
    assert quiet["breakdown"]["components"] == pytest.approx(NODE_DAY)
    assert quiet["breakdown"]["availability_floor"] >= NODE_DAY
    _sums(quiet)


def test_store_memory_scales_with_the_customers_it_holds():
    o = _option([_hybrid()])
    few = o.cost(cost.Workload(1e5, min_replicas=1, customers=95_000), CATALOGUE)["components"]["online_store"]
    many = o.cost(cost.Workload(1e5, min_replicas=1, customers=95e6), CATALOGUE)["components"]["online_store"]
    assert few["memory_gib"] == pytest.approx(30 / 1024) and few["by_memory"] == 1
    assert many["memory_gib"] == pytest.approx(30 / 1024 * 1000)  # 1,000× the rows the run's store held
    assert many["by_memory"] == math.ceil(many["memory_gib"] / (1.37 * NODE_MEMORY_SHARE)) > few["by_memory"]


def test_a_measured_broker_is_sized_per_event_and_its_cost_depends_on_the_measurement():
    o = _option([_broker_run()])
    assert o.point().component == "broker" and o.point().component_scales_with == "rate"
    w = cost.Workload(2e9, min_replicas=1)
    c = o.cost(w, CATALOGUE)
    _sums(c)
    broker = c["components"]["broker"]
    peak = 2e9 / 86_400 * 3
    assert broker["by_cpu"] == math.ceil(peak * 50e-6 / 0.6 - 1e-9) > 1
    assert broker["memory_gib"] == pytest.approx(64 / 1024 * peak / 1_000)  # in flight grows with the rate
    assert c["measured"] and "sized by the measured CPU per prediction (50 µs)" in c["line_item_basis"]["broker"]
    assert c["line_item_basis"]["monitoring"].startswith("priced, not measured")
    dearer = _option([_broker_run(per_event=200e-6)]).cost(w, CATALOGUE)["components"]["broker"]
    assert dearer["nodes"] > broker["nodes"]


# --------------------------------------------------------------------------------------------------
# Falling back to the flat line item
# --------------------------------------------------------------------------------------------------


def test_without_a_measured_server_the_flat_line_item_stays_priced_not_measured():
    w = cost.Workload(1e9, min_replicas=1)
    sqlite = _option([_hybrid(store="sqlite")]).cost(w, CATALOGUE)
    assert sqlite["components"] == {} and sqlite["line_items"]["online_store"] == pytest.approx(NODE_DAY)
    assert sqlite["line_item_basis"]["online_store"].startswith("priced, not measured (")
    assert sqlite["breakdown"]["components"] == 0
    _sums(sqlite)
    table = service_run("st", capacity=40_000.0, backend="ray/b1000-w50ms", pattern="microbatch", cores=2)
    t = _option([table]).cost(w, CATALOGUE)
    assert t["line_items"]["broker"] == pytest.approx(NODE_DAY) and t["line_item_basis"]["broker"].startswith(
        "priced, not measured ("
    )


def test_an_external_server_is_priced_not_measured_and_says_so():
    w = cost.Workload(1e9, min_replicas=1)
    for run, name in ((_hybrid(external=True), "online_store"), (_broker_run(external=True), "broker")):
        c = _option([run]).cost(w, CATALOGUE)
        _sums(c)
        assert c["components"] == {} and c["line_items"][name] == pytest.approx(NODE_DAY)
        assert c["line_item_basis"][name].startswith("priced, not measured: an external server")
        assert any("external server" in n for n in c["notes"])


def _old_file(tmp_path: Path) -> Path:
    """The repo's catalogue as a price file written before the node sizes: no vcpu/gib on any item."""
    table = yaml.safe_load(catalogue.PRICES_FILE.read_text())
    for item in table["line_items"].values():
        for key in ("node", "vcpu", "gib", "fronts_service"):
            item.pop(key, None)
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(table))
    return path


def test_an_old_prices_file_without_node_sizes_keeps_the_flat_item_with_a_note(tmp_path):
    old = cost.load_prices(_old_file(tmp_path))
    c = _option([_hybrid()]).cost(cost.Workload(1e9, min_replicas=1), old)
    _sums(c)
    assert c["components"] == {} and c["line_items"]["online_store"] == pytest.approx(NODE_DAY)
    basis = c["line_item_basis"]["online_store"]
    assert basis.startswith("priced, not measured") and "gives no vcpu/gib" in basis and "100 µs" in basis


def test_a_file_extending_the_catalogue_keeps_the_sizes_and_changes_the_price(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"extends": "bench", "line_items": {"online_store": {"per_month": 46.72}}}))
    mine = cost.load_prices(path)
    c = _option([_hybrid()]).cost(cost.Workload(1e5, min_replicas=1, customers=95_000), mine)
    assert c["components"]["online_store"]["nodes"] == 1
    assert c["breakdown"]["components"] == pytest.approx(2 * NODE_DAY)


def test_a_node_needs_both_its_vcpu_and_its_memory(tmp_path):
    table = yaml.safe_load(catalogue.PRICES_FILE.read_text())
    del table["line_items"]["broker"]["gib"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(table))
    with pytest.raises(catalogue.BenchError, match=r"line_items.broker needs both 'vcpu' and 'gib'"):
        cost.load_prices(path)


def test_switching_line_items_off_keeps_a_measured_component():
    off = replace(CATALOGUE, line_items_on=False)
    c = _option([_hybrid()]).cost(cost.Workload(1e5, min_replicas=1, customers=95_000), off)
    assert c["line_items"] == {} and c["breakdown"]["components"] == pytest.approx(NODE_DAY)
    _sums(c)


# --------------------------------------------------------------------------------------------------
# A run with no service of its own
# --------------------------------------------------------------------------------------------------


def test_a_serviceless_run_holds_no_replicas_and_no_load_balancer(direct_lookup):
    direct = _hybrid("dir", lookup="direct", lookup_p99=0.0005)
    del direct.metrics["capacity"]  # clients read the store: no lookup server whose capacity was searched
    server = _hybrid("srv")
    found, _ = cost.options([direct, server])
    by = {o.label: o for o in found}
    # the same configuration label, two ways of serving: never pooled into one option
    assert set(by) == {"hybrid lookup[valkey,95%]/lightgbm", "hybrid lookup[valkey,95%]/lightgbm (no service)"}
    w = cost.Workload(1e5, min_replicas=2, customers=95_000)
    d = by["hybrid lookup[valkey,95%]/lightgbm (no service)"].cost(w, CATALOGUE)
    s = by["hybrid lookup[valkey,95%]/lightgbm"].cost(w, CATALOGUE)
    _sums(d)
    _sums(s)
    assert d["replicas_by_hour"] == [0] * 24 and d["replica_hours"] == 0
    assert (d["units"], d["unit"]) == (2, "online store nodes")
    assert "load_balancer" not in d["line_items"] and "load_balancer" in s["line_items"]
    assert "scheduler" in d["line_items"]  # the refresh jobs still run on a schedule
    job_parts = ("compute", "memory", "billing_minimum", "platform_startup")
    assert sum(d["breakdown"][k] for k in job_parts) == pytest.approx(d["batch_cost_per_day"])  # only the refreshes
    assert d["cost_per_day"] < s["cost_per_day"] and s["units"] == 2 and s["unit"] == "replicas"
    # what stays on: the store's nodes (1 needed, 1 more for availability) + the refresh jobs + scheduler
    always_on = d["breakdown"]["components"] + d["breakdown"]["availability_floor"]
    assert always_on == pytest.approx(2 * NODE_DAY)
    assert any("no always-on service of its own" in n for n in d["notes"])


def test_has_service_asks_the_pattern_hook(direct_lookup):
    assert not cost.has_service(_hybrid(lookup="direct")) and cost.has_service(_hybrid())
    assert cost.has_service(_broker_run())


# --------------------------------------------------------------------------------------------------
# C3 and C7 with them
# --------------------------------------------------------------------------------------------------


def _rt() -> list[RunResult]:
    rt = service_run("rt", capacity=2_000.0)
    rt.params = {"backend": "http", "server_app": "fastapi"}
    rt.metrics |= {"latency_s": {"p99": 0.003, "count": 2_000}}
    return [batch_run("b", fixed=0.02), rt]


def _table_stream() -> RunResult:
    r = service_run("st", capacity=40_000.0, backend="ray/b1000-w50ms", pattern="microbatch", cores=2)
    r.metrics["latency_s"] = {"p99": 0.06}
    return r


def _rows(runs, prices=PRICES) -> dict[str, dict]:
    t = verdicts.table(runs, prices, cost.Workload(1e5))
    return {r["claim"]: r for r in t.iter_rows(named=True)}


def test_c3_tests_the_broker_source_and_shows_the_table_source_beside_it():
    v = _rows([*_rt(), _table_stream(), _broker_run()])["C3"]
    assert "ray/b1000-w50ms/broker (through a Valkey broker) p99 80 ms" in v["measured"]
    assert (
        "shown beside it, not tested: ray/b1000-w50ms (from a table in the driver, no broker) p99 60 ms"
        in (v["measured"])
    )
    assert "streaming leg tested the broker source" in v["assumptions"]
    assert "streaming: sb" in v["runs"] and "table source (shown): st" in v["runs"]
    alone = _rows([*_rt(), _table_stream()])["C3"]
    assert "streaming leg tested the table source" in alone["assumptions"] and "/broker" not in alone["measured"]


def test_c7_uses_the_direct_lookup_priced_on_the_stores_nodes_and_shows_the_server(direct_lookup):
    direct = _hybrid("dir", lookup="direct", backend="lookup[valkey,95%,direct]/lightgbm", lookup_p99=0.0005)
    del direct.metrics["capacity"]
    direct.metrics.pop("fallback_latency_s")
    direct.metrics["not_found_latency_s"] = {"p99": 0.0004, "count": 100}
    server = _hybrid("srv")
    v = _rows([*_rt(), direct, server], CATALOGUE)["C7"]
    assert v["measured"].startswith(
        "hybrid lookup[valkey,95%,direct]/lightgbm: response time: direct lookup p99 0.50 ms"
    )
    assert "(clients read the store, no model server) vs live scoring p99 3.00 ms (http/lightgbm)" in v["measured"]
    assert (
        "with no model server there is no live fallback (they are answered 'not found', p99 0.40 ms)" in (v["measured"])
    )
    assert (
        "on 2 node(s) of cache.t4g.small (2 vCPU, 1.37 GiB), sized by the measured CPU per prediction (100 µs): 1 for the load, 1 more for availability"
        in (v["measured"])
    )
    assert "priced with no model-server replicas and its online store on 2 node(s)" in v["measured"]
    assert "shown beside it, not used: hybrid lookup[valkey,95%]/lightgbm (through a lookup server)" in v["measured"]
    assert "the verdict used the direct lookup hybrid lookup[valkey,95%,direct]/lightgbm" in v["assumptions"]
    assert "hybrid: dir" in v["runs"] and "lookup server (shown): srv" in v["runs"]
    server_only = _rows([*_rt(), server], CATALOGUE)["C7"]
    assert "lookup p99 2.00 ms vs live scoring p99 3.00 ms (same server)" in server_only["measured"]
    assert "no direct-lookup hybrid run was measured" in server_only["assumptions"]
    assert "2 lookup-server replicas and its online store on 2 node(s)" in server_only["measured"]


def test_c7_stays_pending_with_a_clear_message_when_runs_are_missing(direct_lookup):
    direct = _hybrid("dir", lookup="direct", lookup_p99=0.0005)
    assert _rows([*_rt()])["C7"]["verdict"].startswith("pending: needs a valid hybrid run with its refresh job")
    no_live = _rows([batch_run("b"), direct])["C7"]["verdict"]
    assert no_live.startswith("pending: needs live http runs, and batch and real-time options")


def test_the_report_cost_table_shows_what_each_line_item_rests_on(direct_lookup):
    from bench.analysis.answers import fmt_money
    from bench.views import report

    direct = _hybrid("dir", lookup="direct", backend="lookup[valkey,95%,direct]/lightgbm")
    t = report.cost_table([direct, _hybrid("sq", store="sqlite")], CATALOGUE, cost.Workload(1e5)).df
    cells = dict(zip(t["option"], t["line items at 100k/day ($/month)"], strict=True))
    month = report.DAYS_PER_MONTH * NODE_DAY  # one node, in the report's months
    sized = cells["hybrid lookup[valkey,95%,direct]/lightgbm"]
    assert (
        f"online store {fmt_money(2 * month)}: sized by the measured CPU per prediction (100 µs) → 2 node(s)" in sized
    )
    assert "load balancer" not in sized and "scheduler" in sized
    flat = cells["hybrid lookup[sqlite,95%]/lightgbm"]
    assert f"online store {fmt_money(month)}: priced, not measured (" in flat and "load balancer" in flat
