"""Verdicts are computed from results: every figure moves when a result moves."""

from __future__ import annotations

from dataclasses import replace

from helpers import PRICES, as_compiled, batch_run, service_run

from bench.analysis import cost, verdicts
from bench.results import RunResult


def _inprocess(run_id: str, cpu_s: float = 1.0) -> RunResult:
    m = {"predictions": 2_000, "cpu_seconds": cpu_s, "wall_seconds": 10.0, "provisioned_core_seconds": 10.0}
    return RunResult(run_id, "request", "inprocess/lightgbm", "test", {}, m, {})


def _stream(run_id: str, capacity: float = 40_000.0) -> RunResult:
    r = service_run(run_id, capacity=capacity, backend="ray/b1000-w50ms", pattern="microbatch", cores=2)
    r.metrics["latency_s"] = {"p99": 0.06}
    return r


def _runs(batch_rows_per_s: float = 100_000.0, rt_capacity: float = 2_000.0):
    rt = service_run("rt", capacity=rt_capacity)
    rt.metrics["latency_s"] = {"p99": 0.004}
    return [batch_run("b", rows_per_s=batch_rows_per_s, fixed=0.02), rt, _inprocess("ip"), _stream("st")]


def test_every_claim_has_a_row_and_unmeasured_ones_say_what_they_need():
    t = verdicts.table(_runs(), PRICES, cost.Workload(1e5))
    assert t["claim"].to_list() == [f"C{i}" for i in range(1, 11)]
    v = dict(zip(t["claim"], t["verdict"], strict=True))
    assert v["C7"].startswith("pending") and v["C4"] == "holds" and v["C5"] == "holds"
    assert all(t.filter(~t["verdict"].str.starts_with("pending"))["runs"].str.len_chars() > 0)


def test_changing_a_result_changes_the_table():
    w = cost.Workload(1e5)
    before = verdicts.table(_runs(), PRICES, w)
    after = verdicts.table(_runs(rt_capacity=0.5), PRICES, w)
    assert before.row(1, named=True)["measured"] != after.row(1, named=True)["measured"]  # C2: replicas
    cheap = verdicts.table(_runs(), replace(PRICES, minimum_s=0.0), w)
    assert cheap.filter(cheap["claim"] == "C6")["measured"][0] != before.filter(before["claim"] == "C6")["measured"][0]


def test_missing_patterns_leave_verdicts_pending_not_guessed():
    t = verdicts.table([batch_run("b")], PRICES, cost.Workload(1e5))
    assert all(v.startswith("pending") for v in t.filter(t["claim"] != "C4")["verdict"])
    invalid = _runs()
    for r in invalid:
        r.valid = False
    assert all(v.startswith("pending") for v in verdicts.table(invalid, PRICES, cost.Workload(1e5))["verdict"])


def _live(run_id: str, p99: float = 0.003, **params) -> RunResult:
    r = service_run(run_id)
    r.params = {"backend": "http", "server_app": "fastapi", **params}
    r.metrics |= {"latency_s": {"p50": p99 / 2, "p99": p99, "count": 2_000}, "cpu_seconds_per_prediction": 0.001}
    return r


def _hybrid(run_id: str = "hy", lookup_p99: float = 0.002, errors: int = 0) -> RunResult:
    m = {
        "predictions": 2_000,
        "cpu_seconds": 1.0,
        "wall_seconds": 10.0,
        "provisioned_core_seconds": 10.0,
        "capacity": {"rate_per_s": 3_000.0, "slo_ms": 50.0},
        "latency_s": {"p99": lookup_p99},
        "lookup_latency_s": {"p99": lookup_p99},
        "fallback_latency_s": {"p99": 0.004},
        "hit_ratio": 0.95,
        "job": {"rows_per_s": 200_000.0, "fixed_s": 1.5, "cores": 1, "cpu_s": 2.0, "rows": 95_000},
        "batch_fault": {
            "errors": errors,
            "killed_before_publish": True,
            "rerun_ok": True,
            "staleness_max_before_s": 9.0,
            "staleness_max_after_s": 14.0,
        },
    }
    return RunResult(run_id, "hybrid", "lookup[sqlite,95%]/lightgbm", "test", {"server_app": "fastapi"}, m, {})


def _claims_runs(lookup_p99=0.002, batch_errors=0, fly_cpu=0.005):
    down = _live("down")
    down.metrics |= {
        "capacity": None,
        "fault_events": [{"restarted": True, "restart_s": 1.4}],
        "unavailability": {"failed_requests": 37, "unavailable_s": 1.5},
    }
    down.params["fault_kill_at_s"] = 4.0
    fly, pre = _live("fly", 0.004, aggregate="onthefly"), _live("pre", 0.002, aggregate="precomputed")
    fly.metrics["cpu_seconds_per_prediction"] = fly_cpu
    fly.metrics["aggregate"] = {"log_rows": 500_000}
    return [*_runs(), _live("live"), _hybrid(lookup_p99=lookup_p99, errors=batch_errors), down, fly, pre]


def _verdicts(runs) -> dict[str, tuple[str, str]]:
    t = verdicts.table(runs, PRICES, cost.Workload(1e5))
    return {c: (m, v) for c, m, v in zip(t["claim"], t["measured"], t["verdict"], strict=True)}


def test_hybrid_fault_and_feature_claims_follow_their_runs():
    v = _verdicts(_claims_runs())
    # hybrid costs what real time costs: never read as a cost win, whatever the responsiveness
    assert (
        v["C7"][1].startswith("holds only for response time, when scores up to 24.")
        and "lookup p99 2.00 ms" in v["C7"][0]
    )
    assert "costs more than claimed: the same as real time" in v["C7"][1]
    assert v["C8"][1].startswith("holds only when the endpoint has one replica") and "37 failed requests" in v["C8"][0]
    assert v["C10"][1] == "holds" and "500,000-event log" in v["C10"][0]
    assert not v["C9"][1].startswith("pending") and "of 7 use cases" in v["C9"][0]
    slow = _verdicts(_claims_runs(lookup_p99=0.02, batch_errors=5, fly_cpu=0.0012))
    assert slow["C7"][1].startswith("does not hold") and "lookups are slower than live scoring" in slow["C7"][1]
    assert slow["C8"][1].startswith("holds only for down endpoint")
    assert slow["C10"][1] == "does not hold at this log size"


def test_verdicts_per_predictor_never_mix_backends_and_say_what_changed():
    w = cost.Workload(1e5)
    native = _runs()
    compiled = [as_compiled(r) for r in _runs(batch_rows_per_s=400_000.0, rt_capacity=8_000.0)]
    for r, suffix in zip(compiled, "1234", strict=True):
        r.run_id += f"-c{suffix}"
    t = verdicts.table(native + compiled, PRICES, w)
    assert not any("-c" in ids for ids in t["runs"])  # the default table is the native backend's
    alone = verdicts.table(compiled, PRICES, w, predictor="lleaves")
    assert all(("-c" in ids) for ids in alone.filter(alone["runs"] != "")["runs"])
    both = verdicts.by_predictor(native + compiled, PRICES, w)
    assert both.columns[:3] == ["claim", "verdict (lightgbm)", "verdict (lleaves)"]
    row = dict(zip(both["claim"], both["changed with lleaves"], strict=True))
    assert row["C4"] in ("yes", "no") and row["C7"] == "not measured"  # no hybrid run with either backend
    assert verdicts.by_predictor(native, PRICES, w).columns == ["claim", "verdict (lightgbm)"]


def _rows(runs, prices=PRICES, w=None) -> dict[str, dict]:
    t = verdicts.table(runs, prices, w or cost.Workload(1e5))
    return {r["claim"]: r for r in t.iter_rows(named=True)}


def test_cost_verdicts_say_which_way_they_miss_and_when_no_measurement_moves_them():
    v = _rows(_runs())
    assert v["C1"]["verdict"] == "does not hold: real time costs more relative to batch than claimed"
    assert v["C1"]["direction"] == "real time costs more relative to batch than claimed"
    assert "no measurement moves the ratio (replica floor over billing minimum)" in v["C1"]["measured"]
    assert v["C6"]["verdict"].startswith("does not hold: real time costs more relative to batch than claimed")
    assert "people and on-call are not measured" in v["C6"]["verdict"] and "to operate: not measured" in v["C6"]["legs"]
    assert "no measurement moves this figure" in v["C6"]["measured"]
    assert v["C2"]["verdict"].startswith("does not hold: both are far cheaper than claimed")
    assert all(f"{leg}:" in v["C2"]["legs"] for leg in ("job time", "batch cost", "real-time cost"))


def test_every_leg_is_evaluated_c3_batch_included():
    v = _rows(_runs())
    assert "batch: holds" in v["C3"]["legs"] and "24 h old" in v["C3"]["measured"]
    assert "streaming: does not hold: faster than claimed" in v["C3"]["legs"]
    assert v["C3"]["verdict"] == "holds only for batch, real time; streaming: faster than claimed"
    assert "batch: b" in v["C3"]["runs"] and "streaming: st" in v["C3"]["runs"]
    # C4 names the one path its one-row-per-call figure comes from
    assert "one row per call through an HTTP server (http/lightgbm)" in v["C4"]["measured"]


def _curve(*points):
    return [
        {"offered_rate_per_s": r, "throughput_per_s": r, "p99_s": p, "valid": True, "errors": 0, "sustainable": ok}
        for r, p, ok in points
    ]


def test_c5_compares_at_an_equal_slo_from_the_curves():
    rt = service_run("rt", capacity=2_000.0)  # 1 core, SLO 50 ms
    rt.metrics["capacity"] = {
        "rate_per_s": 2_000.0,
        "slo_ms": 50.0,
        "limited_by": "slo",
        "curve": _curve((1_000, 0.005, True), (2_000, 0.02, True), (2_200, 0.4, False), (4_000, 3.0, False)),
    }
    st = service_run("st", capacity=8_000.0, backend="ray/b1000-w50ms", pattern="microbatch", cores=2)
    st.metrics["capacity"] = {
        "rate_per_s": 8_000.0,
        "slo_ms": 1000.0,
        "limited_by": "slo",
        "curve": _curve((1_000, 0.09, True), (4_000, 0.3, True), (8_000, 0.8, True), (9_000, 2.0, False)),
    }
    for r in (rt, st):
        r.metrics["latency_s"] = {"p99": 0.01}
    v = _rows([batch_run("b"), rt, st])["C5"]
    # at 50 ms streaming sustains nothing; at 1 s real time is read from its curve (2,200/s at 0.4 s)
    assert "at p99 ≤ 50 ms: ray/b1000-w50ms 0/s per core vs http/lightgbm 2,000/s per core" in v["measured"]
    assert "at p99 ≤ 1 s: ray/b1000-w50ms 4,000/s per core vs http/lightgbm 2,200/s per core (1.8×)" in v["measured"]
    assert v["verdict"].startswith("holds only at p99 ≤ 1 s")
    # a capped capacity is a lower bound, never a measured figure
    rt.metrics["capacity"] = {"rate_per_s": 5_000.0, "slo_ms": 1000.0, "limited_by": "max_rate"}
    st.metrics["capacity"] = {"rate_per_s": 8_000.0, "slo_ms": 1000.0, "limited_by": "slo"}
    capped = _rows([batch_run("b"), rt, st])["C5"]
    assert "≥ 5,000/s per core (search cap)" in capped["measured"] and "4,000/s per core" in capped["measured"]
    assert capped["verdict"] == "does not hold: streaming sustains less per core than real time at an equal SLO"
    rt.metrics["capacity"]["rate_per_s"] = 3_000.0  # a lower bound below streaming's figure decides nothing
    assert _rows([batch_run("b"), rt, st])["C5"]["verdict"].startswith("pending: cannot compare")
    # different SLOs and no curve: it says it cannot compare, and why
    rt.metrics["capacity"] = {"rate_per_s": 2_000.0, "slo_ms": 50.0, "limited_by": "slo"}
    apart = _rows([batch_run("b"), rt, st])["C5"]
    assert apart["verdict"].startswith("pending: cannot compare at an equal SLO")


def test_runs_from_different_code_versions_are_said():
    runs = _runs()
    for r, commit, dirty in zip(runs, ("aaa", "bbb", "aaa", "aaa"), (False, True, False, False), strict=True):
        r.provenance = {"git": {"commit": commit, "dirty": dirty}}
    v = _rows(runs)
    assert v["C4"]["code versions"] == "2 versions: aaa (b), bbb+dirty (rt)"
    assert v["C10"]["code versions"] == ""  # pending: no runs
    mixed = [r for r in v.values() if r["code versions"].startswith("2 versions")]
    assert mixed and all(r["verdict"].endswith("; runs from 2 code versions") for r in mixed)


def test_c8_names_the_replica_count_and_uses_a_redundant_fault_run():
    runs = _claims_runs()
    v = _rows(runs)["C8"]
    assert v["verdict"].startswith("holds only when the endpoint has one replica") and "prices ≥2" in v["verdict"]
    two = _live("two")
    two.params |= {"fault_kill_at_s": 4.0, "server_workers": 2}
    two.metrics |= {
        "capacity": None,
        "fault_events": [{"restarted": True, "restart_s": 1.2}],
        "unavailability": {"failed_requests": 0, "unavailable_s": 0.0},
    }
    v2 = _rows([*runs, two])["C8"]
    assert v2["verdict"].startswith("holds only for a single-replica endpoint; with 2 replicas")
    assert "killed server, redundant: two" in v2["runs"]


def test_c9_says_which_part_is_by_construction():
    v = _rows(_claims_runs())["C9"]
    assert "partly by construction" in v["verdict"] and "by construction: not measured" in v["legs"]
