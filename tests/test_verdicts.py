"""Verdicts are computed from results: every figure moves when a result moves."""

from __future__ import annotations

from dataclasses import replace

from test_cost import PRICES, _batch, _service

from bench import cost, verdicts
from bench.results import RunResult


def _inprocess(run_id: str, cpu_s: float = 1.0) -> RunResult:
    m = {"predictions": 2_000, "cpu_seconds": cpu_s, "wall_seconds": 10.0, "provisioned_core_seconds": 10.0}
    return RunResult(run_id, "request", "inprocess/lightgbm", "test", {}, m, {})


def _stream(run_id: str, capacity: float = 40_000.0) -> RunResult:
    r = _service(run_id, capacity=capacity, backend="ray/b1000-w50ms", pattern="microbatch", cores=2)
    r.metrics["latency_s"] = {"p99": 0.06}
    return r


def _runs(batch_rows_per_s: float = 100_000.0, rt_capacity: float = 2_000.0):
    rt = _service("rt", capacity=rt_capacity)
    rt.metrics["latency_s"] = {"p99": 0.004}
    return [_batch("b", rows_per_s=batch_rows_per_s, fixed=0.02), rt, _inprocess("ip"), _stream("st")]


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
    t = verdicts.table([_batch("b")], PRICES, cost.Workload(1e5))
    assert all(v.startswith("pending") for v in t.filter(t["claim"] != "C4")["verdict"])
    invalid = _runs()
    for r in invalid:
        r.valid = False
    assert all(v.startswith("pending") for v in verdicts.table(invalid, PRICES, cost.Workload(1e5))["verdict"])
