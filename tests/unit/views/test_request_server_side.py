"""The per-request views of the server's side: batching and hop tables, the hop waterfall; old results
(no ``server_side`` block, no batch parameters) are left out, never shown as zeros."""

from __future__ import annotations

import matplotlib
import pytest
from helpers import run_result, service_run

from bench.measure.metrics import latency_summary
from bench.views import request as request_view

matplotlib.use("Agg")


def _summary(ms: float, n: int = 100) -> dict:
    """A latency summary of ``n`` samples around ``ms`` milliseconds."""
    return latency_summary([ms / 1e3 * (0.5 + i / n) for i in range(n)])


def _request_run(run_id: str, backend: str, *, batch_max: int = 1, wait_ms: float = 0.0, server_side=True):
    """A per-request run at 500 req/s, with the server_side block a batched or unbatched server gives."""
    r = service_run(run_id, backend=backend)
    r.metrics["offered_rate_per_s"] = 500.0
    r.metrics["latency_s"] = _summary(2.0)
    r.metrics["cpu_seconds_per_prediction"] = 120e-6
    r.metrics["capacity"] = {**r.metrics["capacity"], "limited_by": "slo"}
    if batch_max > 1:
        r.params = {"batch_max": batch_max, "batch_wait_ms": wait_ms}
    if not server_side:
        return r
    hops = {"latency_s": _summary(2.0), "server_s": _summary(0.5), "outside_server_s": _summary(1.5)}
    batching = None
    if batch_max > 1:
        hops |= {"queue_s": _summary(0.3), "predict_s": _summary(0.1)}
        batching = {
            "batch_max": batch_max,
            "batch_wait_ms": wait_ms,
            "requests": 100,
            "batch_size_mean": 5.4,
            "batch_size_p50": 5,
            "batch_size_max": 12,
            "batch_size_requests": [[1, 10], [5, 60], [12, 30]],
            "batches": 25,
        }
    r.metrics["server_side"] = {"requests": 100, "hops": hops, "batching": batching}
    return r


@pytest.fixture
def runs():
    return [
        _request_run("batched", "http[asgi,b32/2ms]/lightgbm", batch_max=32, wait_ms=2.0),
        _request_run("plain", "http[asgi]/lightgbm"),
        _request_run("old", "http/lightgbm", server_side=False),  # made before the block existed
        run_result("batch", "batch", "local/lightgbm", {"predictions": 1}),  # another pattern
    ]


def test_batching_table_sets_batched_and_unbatched_servers_side_by_side(runs):
    t = request_view.batching_table(runs)
    assert t["run_id"].to_list() == ["plain", "batched"]  # the same server, unbatched first; no old run
    plain, batched = t.rows(named=True)
    assert (plain["batch_max"], plain["batch_wait_ms"]) == (1, 0.0)  # absent parameters: unbatched
    assert plain["batch_size_mean"] is None and plain["queue_p99_ms"] is None  # not measured, not zero
    assert (batched["batch_max"], batched["batch_wait_ms"], batched["batch_size_max"]) == (32, 2.0, 12)
    assert batched["queue_p50_ms"] == pytest.approx(0.3, abs=0.01)
    assert batched["predict_per_batch_p50_us"] == pytest.approx(100, abs=2)
    assert batched["server_cpu_us_per_pred"] == 120.0 and batched["capacity_per_s"] == 2000.0
    assert batched["samples"] == batched["requests"] == 100 and batched["p99_ms"] > batched["queue_p99_ms"]


def test_hops_table_gives_each_measured_hop_with_its_n(runs):
    t = request_view.hops_table(runs)
    hops = {rid: t.filter(t["run_id"] == rid)["hop"].to_list() for rid in ("plain", "batched")}
    assert len(hops["plain"]) == 3 and len(hops["batched"]) == 5  # queue and predict only when batching
    assert set(t["samples"]) == {100} and (t["p99_ms"] >= t["p50_ms"]).all()
    assert "old" not in t["run_id"].to_list()


def test_old_results_without_the_block_give_empty_tables():
    old = [_request_run("old", "http/lightgbm", server_side=False)]
    old[0].metrics["server_side"] = None  # in-process, MLServer and /score runs say so explicitly
    old.append(_request_run("older", "http/lightgbm", server_side=False))
    assert request_view.batching_table(old).is_empty()
    assert request_view.hops_table(old).is_empty()


def test_hop_medians_clip_the_handler_rest_at_zero(runs):
    r = runs[0]
    r.metrics["server_side"]["hops"]["server_s"] = _summary(0.2)  # medians need not add: less than queue + predict
    seg = request_view.hop_medians(r)
    assert seg["rest of server handler"] == 0.0 and seg["queue wait"] > 0


def test_plot_hops_draws_a_bar_per_configuration_and_says_when_empty(runs):
    import matplotlib.pyplot as plt

    ax = request_view.plot_hops(runs)
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "http[asgi]/lightgbm @ 500/s",
        "http[asgi,b32/2ms]/lightgbm @ 500/s",
    ]
    assert sum(1 for t in ax.texts if t.get_text() == "n=100") == 2
    empty = request_view.plot_hops(runs[2:])
    assert "no per-request runs with server timings" in empty.texts[0].get_text()
    plt.close("all")
