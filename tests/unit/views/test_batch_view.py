"""The batch views' bound and pipeline split: shown where a run recorded them, left out (never zeros) where
it did not (Ray Data runs, older results), and the limits table's batch rows saying which stage bounds."""

from __future__ import annotations

import pytest
from helpers import run_result

from bench.views import batch as batch_view
from bench.views import limits


def _local(run_id: str, *, bound: str | None = "score", rows: int = 1_000_000) -> object:
    m = {
        "predictions": rows,
        "throughput_per_s": 500_000.0,
        "raw_predict_rows_per_s": 600_000.0,
        "raw_predict_seconds": 1.6,
        "raw_predict_cpu_seconds": 3.0,
        "e2e_to_raw_ratio": 0.833,
        "cpu_seconds": 3.6,
        "wall_seconds": 2.0,
        "phases_s": {"read": 0.3, "validate": 0.05, "prepare": 0.2, "score": 1.8, "write": 0.05},
        "phases_overlap": True,
    }
    if bound is not None:
        m["bound_by"] = bound
        m["pipeline"] = {
            "fill_s": 0.1,
            "wait_input_s": 0.04,
            "score_s": 1.8,
            "wait_output_s": 0.02,
            "drain_s": 0.02,
            "other_s": 0.02,
        }
    r = run_result(run_id, "batch", "local/lleaves", m)
    r.params = {"num_threads": 2, "predictor": "lleaves", "trees": 200, "leaves": 63}
    return r


def test_phase_table_marks_the_bound() -> None:
    t = batch_view.phase_table(_local("a", bound="read"))
    assert t.filter(t["bounds_the_run"] == "yes")["phase"].to_list() == ["read"]
    assert batch_view.phase_table(_local("b", bound=None))["bounds_the_run"].to_list() == [""] * 5


def test_pipeline_table_splits_the_wall_and_shows_predict_alone() -> None:
    t = batch_view.pipeline_table(_local("a"))
    assert t.height == len(batch_view.PIPELINE_SPLIT) + 1
    assert t["share_of_wall_pct"][:-1].sum() == pytest.approx(100.0)
    assert t["seconds"][-1] == 1.6  # predict() alone
    assert batch_view.pipeline_table(_local("old", bound=None)).is_empty()


def test_summary_carries_the_bound_and_the_slowdown() -> None:
    s = batch_view.batch_summary([_local("a"), _local("b", bound="read"), _local("c", bound=None)])
    row = s.row(0, named=True)
    assert row["runs"] == 3 and row["bound_by"] == "read, score"
    assert row["predict_in_job_vs_alone"] == pytest.approx(1.8 / 1.6)
    ray = _local("r", bound=None)
    ray.metrics |= {"bound_by": None, "pipeline": None}  # what a Ray Data run records
    for runs in ([_local("c", bound=None)], [ray]):
        none = batch_view.batch_summary(runs).row(0, named=True)
        assert none["bound_by"] is None and none["predict_in_job_vs_alone"] is None
        assert batch_view.pipeline_table(runs[0]).is_empty()
        assert limits.limits_table(runs).row(0, named=True)["where_the_rest_goes"].startswith("phase time: ")


def test_limits_row_says_which_stage_bounds() -> None:
    row = limits.limits_table([_local("a"), _local("b")]).row(0, named=True)
    text = row["where_the_rest_goes"]
    assert text.startswith("bound by score; predict() 1.12× its time alone; the job's other CPU 20% of predict()'s")
    assert "first chunk 5%" in text and "phase time: score" in text
    mixed = limits.limits_table([_local("a"), _local("b", bound="read")]).row(0, named=True)
    assert "bound by " in mixed["where_the_rest_goes"] and "(1/2)" in mixed["where_the_rest_goes"]
    old = limits.limits_table([_local("c", bound=None)]).row(0, named=True)
    assert old["where_the_rest_goes"].startswith("phase time: ")
