"""The streaming hop table: one row per hop of each run that has the breakdown; older runs left out."""

from __future__ import annotations

from helpers import run_result

from bench.measure.metrics import latency_summary
from bench.views import microbatch as microbatch_view


def test_stream_hops_table_lists_each_hop_with_its_count_and_skips_runs_without_it():
    hops = {k: latency_summary([0.001, 0.002, 0.003]) for k in microbatch_view.STREAM_HOPS}
    with_hops = run_result("mb1", pattern="microbatch", backend="b1000/50ms", metrics={"hops": hops})
    old = run_result("mb0", pattern="microbatch", backend="b100/10ms", metrics={})
    table = microbatch_view.stream_hops_table([with_hops, old])
    assert table["run_id"].unique().to_list() == ["mb1"]
    assert table["hop"].to_list() == list(microbatch_view.STREAM_HOPS.values())
    assert set(table["n"].to_list()) == {3} and table["p50_ms"][0] == 2.0
    assert microbatch_view.stream_hops_table([old]).is_empty()
