"""Per-request pattern: schedules, window statistics, the HTTP server's behaviour, scores equal predict()."""

from __future__ import annotations

import http.client
import json
import os

import numpy as np
import pytest
from helpers import assert_valid_or_busy, busy

from bench.core.errors import BenchError
from bench.data import workload
from bench.measure import load, metrics
from bench.model import make_predictor
from bench.patterns.base import RunContext
from bench.patterns.request import RequestParams, run
from bench.systems.http_app import APPS
from bench.systems.process import ServerProcess
from bench.systems.server_config import ServerConfig

# ---------------------------------------------------------------------------------- schedules


def test_constant_schedule_is_evenly_spaced():
    s = load.constant(100, 2)
    assert s.size == 200 and np.allclose(np.diff(s), 0.01)


def test_poisson_schedule_is_seeded_and_has_the_rate():
    a, b = load.poisson(500, 20, seed=1), load.poisson(500, 20, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, load.poisson(500, 20, seed=2))
    assert abs(a.size / 20 - 500) < 500 * 0.05
    assert np.all(np.diff(a) >= 0) and a.max() < 20


def test_step_and_diurnal_schedules():
    s = load.step([10, 100], 1.0)
    assert (s < 1).sum() == 10 and (s >= 1).sum() == 100
    d = load.diurnal(200, 1.5, period_s=10, duration_s=10, seed=0)
    first, second = (d < 5).sum(), (d >= 5).sum()  # sine above the mean, then below
    assert first > 1.3 * second
    with pytest.raises(BenchError, match="peak_to_mean"):
        load.diurnal(10, 3.0, 10, 10)


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_schedules_refuse_bad_rates(bad):
    with pytest.raises(BenchError, match="rate"):
        load.constant(bad, 1)


# ---------------------------------------------------------------------------------- window statistics


def _obs(n=1000, rate=100.0, latency=0.002, lag=0.0001, status=200):
    intended = np.arange(n) / rate
    issued = intended + lag
    done = issued + latency
    return load.Observations(intended, issued, issued.copy(), done, np.full(n, status, np.int32), np.zeros(n), n / rate)


def test_window_summary_healthy():
    s = metrics.window_summary(_obs(), warmup_s=1.0, slo_s=0.05, lag_bound_s=0.001)
    assert s["valid"] and s["sustainable"]
    assert s["latency_s"]["count"] == 900  # warm-up excluded
    assert s["latency_s"]["p50"] == pytest.approx(0.0021)


def test_window_summary_flags_a_lagging_generator_as_invalid():
    s = metrics.window_summary(_obs(lag=0.005), warmup_s=1.0, slo_s=0.05, lag_bound_s=0.001)
    assert not s["valid"] and not s["sustainable"]
    assert "fell behind its schedule" in s["invalid_reasons"][0]


def test_a_queue_that_grows_within_the_slo_is_not_sustainable():
    o = _obs(n=1000, rate=100.0)
    o.done = o.issued + np.linspace(0.001, 0.040, 1000)  # latency climbs towards, never past, the SLO
    s = metrics.window_summary(o, warmup_s=1.0, slo_s=0.05, lag_bound_s=0.001)
    assert s["latency_s"]["p99"] < 0.05 and s["falling_behind"] and not s["sustainable"]
    steady = metrics.window_summary(_obs(), warmup_s=1.0, slo_s=0.05, lag_bound_s=0.001)
    assert not steady["falling_behind"] and steady["latency_trend_s"]["count_per_third"] == 300


def test_window_summary_rejected_requests_make_it_invalid():
    s = metrics.window_summary(_obs(status=422), warmup_s=1.0, slo_s=0.05, lag_bound_s=0.001)
    assert not s["valid"] and "rejected with 4xx" in s["invalid_reasons"][0]


def test_window_summary_slo_and_errors_make_it_unsustainable_but_valid():
    slow = metrics.window_summary(_obs(latency=0.2), warmup_s=1.0, slo_s=0.05, lag_bound_s=0.001)
    assert slow["valid"] and not slow["sustainable"]
    failed = metrics.window_summary(_obs(status=500), warmup_s=1.0, slo_s=0.05, lag_bound_s=0.001)
    assert failed["errors"]["http_5xx"] == 900 and failed["latency_s"] is None and not failed["sustainable"]


def test_a_server_that_falls_behind_shows_queueing_in_latency_and_throughput():
    o = _obs(n=1000, rate=100.0)
    o.done = o.intended + 0.001 + np.arange(1000) * 0.002  # serves at 1 per 12 ms against 1 per 10 ms offered
    s = metrics.window_summary(o, warmup_s=1.0, slo_s=0.05, lag_bound_s=0.001)
    assert s["throughput_per_s"] < 0.9 * s["offered_rate_per_s"]
    assert s["latency_s"]["p99"] > 1.0 and not s["sustainable"]


def _small(**overrides) -> RequestParams:
    """A short run on the session's small model (5k training rows, 10 trees, 7 leaves)."""
    return RequestParams(**{"rows": 500, "capacity": False, "train_rows": 5_000, "trees": 10, "leaves": 7, **overrides})


# ---------------------------------------------------------------------------------- the HTTP server


@pytest.fixture(scope="module", params=APPS)
def server(tmp_path_factory, request):
    small_model = request.getfixturevalue("small_model")
    log = tmp_path_factory.mktemp("srv") / "server.log"
    srv = ServerProcess(ServerConfig(str(small_model.path), app=request.param), log).start(timeout_s=60)
    yield srv, small_model
    srv.stop()


def _post(port, body: bytes):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.status, json.loads(resp.read())
    conn.close()
    return out


def test_server_scores_equal_predict_and_bad_bodies_get_4xx(server, small_dataset):
    srv, model = server
    import polars as pl

    X = workload.feature_matrix(pl.read_parquet(small_dataset.path).head(20))
    expected = make_predictor(model).predict(X)
    for row, want in zip(X, expected, strict=True):
        status, body = _post(srv.port, json.dumps({"features": [None if np.isnan(v) else v for v in row]}).encode())
        assert status == 200 and body["score"] == want
    assert _post(srv.port, b"{not json")[0] == 400
    status, body = _post(srv.port, json.dumps({"features": [1.0, 2.0]}).encode())
    assert status == 422 and "expected 32 features" in body["error"]
    assert _post(srv.port, json.dumps({"features": ["a"] * 32}).encode())[0] == 422
    assert _post(srv.port, json.dumps([1.0] * 32).encode())[0] == 422  # a list, not an object
    assert srv.healthy()  # still serving


def test_server_noop_and_unknown_routes(server):
    srv, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/noop")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read()) == {"score": 0.0}
    assert resp.getheader("content-length")  # the load generator's client needs it
    conn.request("GET", "/nowhere")
    resp = conn.getresponse()
    assert resp.status == 404
    resp.read()
    conn.close()


def test_client_refuses_a_response_without_content_length():
    import asyncio

    from bench.measure.httpclient import HttpError, HttpPool

    async def handler(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        await writer.drain()

    async def main():
        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        pool = HttpPool("127.0.0.1", port, 1)
        try:
            with pytest.raises(HttpError, match="without Content-Length"):
                await pool.request(pool.encode("GET", "/"), 5.0)
        finally:
            pool.close()
            srv.close()

    asyncio.run(main())


def test_quiet_gc_pauses_collection_only_inside_the_window():
    import gc

    assert gc.isenabled()
    with load.quiet_gc():
        assert not gc.isenabled() and gc.get_freeze_count() > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_server_that_cannot_start_reports_its_log(tmp_path):
    bad = tmp_path / "model.txt"
    bad.write_text("not a model")
    with pytest.raises(BenchError, match="log tail"):
        ServerProcess(ServerConfig(str(bad)), tmp_path / "server.log").start(timeout_s=30)


@pytest.mark.parametrize(("backend", "app"), [("inprocess", "fastapi"), ("http", "fastapi"), ("http", "asgi")])
def test_run_answers_every_request_with_predict_scores(backend, app, small_dataset, small_model, tmp_path):
    params = _small(
        backend=backend,
        server_app=app,
        rate=100.0,
        duration_s=1.5,
        min_requests=100,
        warmup_s=0.3,
    )
    result = run(small_dataset, small_model, params, RunContext("t", tmp_path))
    m = result.metrics
    assert m["errors"]["timeout"] == m["errors"]["connection"] == 0
    assert m["score_mismatches"] == 0 and m["predictions"] == m["latency_s"]["count"] > 100
    assert m["cpu_seconds"] > 0 and m["offered_rate_per_s"] == pytest.approx(100, rel=0.3)
    if backend == "http":
        assert m["floor_latency_s"]["count"] > 0 and "server_start" in m["fixed_costs_s"]


@pytest.mark.parametrize("aggregate", ["onthefly", "precomputed"])
def test_the_aggregate_feature_is_answered_and_checked_against_the_batch_aggregation(
    aggregate, small_dataset, small_model, tmp_path
):
    """C10: the server answers each customer's 90-day activity, computed per request or read pre-computed;
    every answer is compared with polars' group-by over the whole log (a wrong one invalidates the run)."""
    params = _small(aggregate=aggregate, rate=100.0, duration_s=1.5, min_requests=100, warmup_s=0.3, floor=False)
    result = run(small_dataset, small_model, params, RunContext("t", tmp_path))
    m = result.metrics
    assert m["score_mismatches"] == 0 and m["predictions"] > 100 and m["errors"]["http_4xx"] == 0
    assert m["aggregate"]["kind"] == aggregate and m["aggregate"]["log_rows"] > 0
    assert result.backend.startswith(f"http[agg={aggregate}]")
    assert ("aggregate_batch" in m["fixed_costs_s"]) == (aggregate == "precomputed")
    with pytest.raises(BenchError, match="'aggregate' needs backend 'http'"):
        RequestParams(backend="inprocess", aggregate=aggregate)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("backend", "grpc", "'backend' must be one of"),
        ("rate", 0.0, "'rate' must be > 0"),
        ("schedule", "bursty", "'schedule' must be one of"),
        ("warmup_s", -1.0, "'warmup_s' must be >= 0"),
        ("server_app", "flask", "'server_app' must be one of"),
        ("knee_factor", 1.0, "'knee_factor' must be > 1"),
        ("aggregate", "sql", "'aggregate' must be one of"),
        ("activity_per_customer", 0.0, "'activity_per_customer' must be > 0"),
        ("fault_target", "node", "'fault_target' must be one of"),
    ],
)
def test_bad_request_params(field, value, message):
    with pytest.raises(BenchError, match=message):
        RequestParams(**{field: value})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"server_workers": 1}, "'fault_target' 'replica' needs server_workers >= 2"),
        ({"fault_kill_at_s": 0.0}, "'fault_target' 'replica' needs fault_kill_at_s > 0"),
        ({"fault_restart": False}, "'fault_restart' False applies to fault_target 'server' only"),
        ({"backend": "inprocess"}, "'fault_kill_at_s' needs backend 'http'"),
    ],
)
def test_a_replica_fault_needs_replicas_and_says_which_parameter(overrides, message):
    """Refused when the parameters are built, before any server starts."""
    good = {"backend": "http", "fault_kill_at_s": 1.0, "fault_target": "replica", "server_workers": 2}
    RequestParams(**good)
    with pytest.raises(BenchError, match=message):
        RequestParams(**(good | overrides))


def test_fault_runs_are_known_by_the_pattern_hook_not_by_name():
    from bench.patterns import registry

    request = registry.get("request")
    assert request.is_fault_run({"fault_kill_at_s": 4.0}) and request.is_fault_run(
        RequestParams(fault_kill_at_s=1.0, fault_target="replica", server_workers=2)
    )
    assert not request.is_fault_run({"backend": "http"}) and not request.is_fault_run(RequestParams())
    assert registry.get("hybrid").is_fault_run({"fault_batch_kill_at_s": 11.0})
    assert not registry.get("hybrid").is_fault_run({"refresh_interval_s": 5.0})
    assert registry.get("microbatch").is_fault_run({"fault_kill_at_s": 1.0})
    for name in ("batch", "predictor"):
        assert not registry.get(name).is_fault_run({"rows": 10})


def test_server_killed_mid_run_is_counted_and_the_run_ends_on_time(small_dataset, small_model, tmp_path):
    import time

    params = _small(
        backend="http",
        rate=100.0,
        duration_s=4.0,
        min_requests=100,
        warmup_s=0.5,
        floor=False,
        fault_kill_at_s=1.0,
        timeout_s=1.0,
    )
    t0 = time.monotonic()
    result = run(small_dataset, small_model, params, RunContext("fault", tmp_path))
    elapsed = time.monotonic() - t0
    m = result.metrics
    assert m["errors"]["connection"] + m["errors"]["timeout"] > 0
    assert not m["sustainable"]
    out = m["unavailability"]
    assert out["failed_requests"] > 0 and out["unavailable_s"] > 0
    if not busy(result):  # on a machine other work took, a request may time out before the kill
        assert out["first_failure_s"] == pytest.approx(1.0, abs=0.5)
    assert m["fault_events"][0]["kind"] == "server_killed" and m["fault_events"][0]["restarted"]
    assert out["recovered"]
    assert elapsed < 60
    f = m["fault"]
    assert (f["target"], f["replicas"], f["killed_gone"], f["error"]) == ("server", 1, True, "")
    assert f["failed"] == out["failed_requests"] and f["recovered_s"] == m["fault_events"][0]["restart_s"]
    assert f["replacement_pid"] != f["killed_pid"] and f["live_workers_after"] == 1
    assert f["at_s"] == pytest.approx(1.0, abs=0.5) and f["served_during"] < f["offered_during"]
    assert f["max_answer_gap_s"] >= out["unavailable_s"] * 0.5  # the consumer saw the outage


def test_one_of_two_replicas_killed_mid_run_the_service_answers_throughout(small_dataset, small_model, tmp_path):
    """C8 as a cost model with two replicas assumes it: one of two uvicorn workers behind one address is
    SIGKILLed under load; uvicorn's supervisor replaces it while the other worker keeps serving."""
    import time

    import psutil

    params = _small(
        backend="http",
        server_workers=2,
        fault_target="replica",
        rate=100.0,
        duration_s=4.0,
        min_requests=100,
        warmup_s=0.5,
        floor=False,
        fault_kill_at_s=1.0,
        timeout_s=1.0,
    )
    t0 = time.monotonic()
    result = run(small_dataset, small_model, params, RunContext("replica", tmp_path))
    elapsed = time.monotonic() - t0
    m, f = result.metrics, result.metrics["fault"]
    assert elapsed < 60  # the run ends on time
    assert (f["target"], f["replicas"], f["error"]) == ("replica", 2, "")
    assert m["fault_events"][0]["kind"] == "replica_killed" and m["fault_events"][0]["pid"] == f["killed_pid"]
    # the killed pid is gone, replaced by a new worker: the pool is back at two
    assert f["killed_gone"] and not (psutil.pid_exists(f["killed_pid"]) and _is_worker(f["killed_pid"]))
    assert f["replacement_pid"] not in (None, f["killed_pid"]) and f["live_workers_after"] == 2
    assert 0 < f["replaced_s"] <= f["recovered_s"] < 60
    # failures are counted (0 is the point of redundancy: only requests in flight on the killed worker fail)
    assert f["failed"] == sum(m["errors"].values()) >= 0 and f["failed"] <= 0.05 * f["requests"]
    assert (m["unavailability"] is None) == (f["failed"] == 0)
    # the service answered throughout: requests sent while the worker was being replaced were served
    assert f["served_during"] >= f["offered_during"] - f["failed"] > 0
    assert m["score_mismatches"] == 0
    if assert_valid_or_busy(result):
        assert f["max_answer_gap_s"] < 0.5  # no outage a consumer would see (the whole-server kill: ~1 s)


def _is_worker(pid: int) -> bool:
    import psutil

    try:
        return "multiprocessing.spawn" in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def test_overload_ends_on_time_and_shows_queueing(small_dataset, small_model, tmp_path):
    import time

    # far above what one thread can score one row at a time
    params = _small(
        backend="inprocess",
        schedule="constant",
        rate=2_000_000.0,
        duration_s=1.0,
        min_requests=100,
        warmup_s=0.0,
        timeout_s=0.5,
    )
    t0 = time.monotonic()
    result = run(small_dataset, small_model, params, RunContext("overload", tmp_path))
    elapsed = time.monotonic() - t0
    m = result.metrics
    assert not m["sustainable"]
    assert m["throughput_per_s"] < 0.5 * m["offered_rate_per_s"]
    assert m["errors"]["not_sent"] > 0  # the deadline cut the backlog off; counted, not dropped
    assert m["latency_s"]["p99"] > 0.1  # queueing is in the latency
    assert elapsed < 30


def test_small_generator_lag_invalidates_the_window_but_not_the_slo_verdict():
    s = metrics.window_summary(_obs(lag=0.002), warmup_s=1.0, slo_s=0.05, lag_bound_s=0.001)
    assert not s["valid"] and s["slo_decidable"] and s["sustainable"]


@pytest.mark.parametrize("schedule", ["constant", "poisson", "step", "diurnal"])
def test_every_schedule_drives_a_run(schedule, small_dataset, small_model, tmp_path):
    params = _small(
        rows=200,
        backend="inprocess",
        schedule=schedule,
        rate=100.0,
        duration_s=1.0,
        min_requests=50,
        warmup_s=0.0,
    )
    m = run(small_dataset, small_model, params, RunContext(schedule, tmp_path)).metrics
    assert m["latency_s"]["count"] == m["predictions"] > 50 and m["score_mismatches"] == 0


def test_request_labels_name_the_server_configuration():
    from bench.patterns.request import request_label

    assert request_label(RequestParams(backend="http")) == "http"
    assert request_label({"backend": "http", "server_app": "asgi", "server_workers": 2}) == "http[asgi,2w]"
    assert request_label({"backend": "http", "num_threads": 2}) == "http[2t]"
    assert request_label({"backend": "ray_serve", "server_app": "asgi"}) == "ray_serve"


def test_schedule_builder_covers_every_kind_and_names_a_bad_one():
    for kind in load.SCHEDULES:
        s = load.schedule(kind, 100.0, 3.0, seed=1)
        assert s.size > 100 and np.all(np.diff(s) >= 0) and s.max() < 3.0
    with pytest.raises(BenchError, match="unknown schedule 'bursty'"):
        load.schedule("bursty", 100.0, 3.0, seed=1)


# ---------------------------------------------------------------------------------- the request's row and the client


def _old_row(features):
    """The row builder the server had before: a NaN-substituting comprehension into a 1-row matrix."""
    import math

    return np.array([[math.nan if v is None else v for v in features]], dtype=np.float64)


def test_row_builder_equals_the_old_one_with_nulls_and_refuses_what_is_not_a_number(small_dataset):
    import orjson
    import polars as pl

    from bench.systems.http_app import N_FEATURES, _row

    X = workload.feature_matrix(pl.read_parquet(small_dataset.path).head(200))
    assert np.isnan(X).any()  # the rows carry missing values
    for row in X:
        features = orjson.loads(orjson.dumps([None if np.isnan(v) else float(v) for v in row]))
        status, built = _row({"features": features})
        assert status == 200 and built.dtype == np.float64 and built.shape == (N_FEATURES,)
        assert np.array_equal(built, _old_row(features)[0], equal_nan=True)
    ints = [1] * N_FEATURES  # JSON integers are numbers too
    assert np.array_equal(_row({"features": ints})[1], np.ones(N_FEATURES))
    good = [0.5] * N_FEATURES
    for bad in ("1.5", True, [1.0], {"v": 1}):
        status, body = _row({"features": [*good[:-1], bad]})
        assert status == 422 and b"numbers or null" in body, bad
    assert _row({"features": good[:-1]})[0] == 422
    assert _row({"features": "x" * N_FEATURES})[0] == 422
    assert _row({})[0] == 422


def test_scorer_uses_a_predictors_single_row_entry_when_it_has_one(small_model, monkeypatch):
    from bench.systems import http_app

    plain = http_app.Scorer(ServerConfig(str(small_model.path), gc_freeze=False))
    row = http_app.FeatureCheck(http_app.FEATURE_COLUMNS).lo.tolist()  # schema-valid; 0.5s are refused
    status, body = plain.predict(json.dumps({"features": row}).encode())
    want = float(make_predictor(small_model).predict(np.array([row]))[0])
    assert status == 200 and json.loads(body)["score"] == want

    class WithRow:
        def __init__(self, inner):
            self.inner, self.rows = inner, 0

        def predict(self, X):
            raise AssertionError("predict() called for one row although predict_row exists")

        def predict_row(self, r):
            self.rows += 1
            return float(self.inner.predict(r.reshape(1, -1))[0])

    made = []
    real = http_app.model_mod.make_predictor
    monkeypatch.setattr(
        http_app.model_mod, "make_predictor", lambda *a, **k: made.append(WithRow(real(*a, **k))) or made[-1]
    )
    scorer = http_app.Scorer(ServerConfig(str(small_model.path), gc_freeze=False))
    status, body = scorer.predict(json.dumps({"features": row}).encode())
    assert status == 200 and json.loads(body)["score"] == want and made[0].rows == 1


def test_fastapi_telemetry_is_off_where_fastapi_has_it():
    import inspect

    from fastapi import FastAPI

    from bench.systems.http_app import _no_telemetry

    options = _no_telemetry(FastAPI)
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        assert options == {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
        FastAPI(**options)  # accepted
    else:
        assert options == {}


def test_http_pool_times_out_waits_for_a_free_connection_and_keeps_answers_apart():
    """Two connections, requests faster than answers: some wait for a connection, slow ones time out
    (their connection is closed and replaced), every answer goes to the request that asked for it."""
    import asyncio
    import threading

    from bench.measure.httpclient import HttpPool

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        v
                        for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
                        if k.lower() == b"content-length"
                    )
                )
                body = await reader.readexactly(length)
                await asyncio.sleep(float(body))
                out = b'{"score": %s}' % body
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(out) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    ready, box = threading.Event(), {}

    def serve():
        loop = asyncio.new_event_loop()
        box["server"] = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
        box["loop"] = loop
        ready.set()
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    assert ready.wait(10)
    port = box["server"].sockets[0].getsockname()[1]
    pool = HttpPool("127.0.0.1", port, max_connections=2)
    delays = [b"0", b"0.05", b"0.5", b"0", b"0", b"0.01"]  # 0.5 s > the 0.2 s timeout
    raws = [pool.encode("POST", "/x", d) for d in delays]

    async def call(i, on_send):
        status, body = await pool.request(raws[i % len(raws)], 0.2, on_send)
        return status, json.loads(body)["score"]

    try:
        obs = load.drive_async(np.arange(60) / 100.0, call, deadline_s=3.0, setup=lambda: pool.warm(2))
    finally:

        async def shutdown():
            box["server"].close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), box["loop"]).result(10)
        box["loop"].call_soon_threadsafe(box["loop"].stop)
    slow = np.arange(60) % len(raws) == 2
    assert (obs.status[slow] == load.TIMEOUT).all() and (obs.status[~slow] == 200).all()
    assert np.array_equal(obs.scores[~slow], [float(delays[i % len(raws)]) for i in np.arange(60)[~slow]])
    assert (obs.sent[~slow] >= obs.issued[~slow]).all() and pool.open <= 2 and not pool._waiting


# ---------------------------------------------------------------------------------- the server defends itself


@pytest.fixture(scope="module", params=APPS)
def guarded(tmp_path_factory, request):
    """A real server with small limits: 4 KiB bodies, 0.5 s for a body to arrive, 1 s for headers."""
    small_model = request.getfixturevalue("small_model")
    log = tmp_path_factory.mktemp("guarded") / "server.log"
    config = ServerConfig(str(small_model.path), app=request.param, max_body_bytes=4096, body_timeout_s=0.5,
                          header_timeout_s=1.0)
    srv = ServerProcess(config, log).start(timeout_s=60)
    yield srv
    srv.stop()


def _raw(port: int, data: bytes, wait_s: float = 5.0) -> tuple[bytes, float]:
    """Send ``data`` on a raw connection, read until the server closes it: (what it answered, seconds)."""
    import socket
    import time

    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        s.sendall(data)
        t0, out = time.perf_counter(), b""
        while chunk := s.recv(65536):
            out += chunk
        return out, time.perf_counter() - t0


def _valid_features() -> list:
    return [None if np.isnan(v) else v for v in _valid_row()]


def _valid_row() -> np.ndarray:
    from bench.systems.http_app import FeatureCheck

    return FeatureCheck(workload.FEATURE_COLUMNS).lo.copy()


def test_an_oversized_body_is_refused_413_without_reading_it(guarded):
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    out, _ = _raw(guarded.port, head + b"{")  # 10 MB declared, 1 byte sent: answered, then closed
    assert out.startswith(b"HTTP/1.1 413") and b"4096 bytes" in out
    chunked = b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    out, _ = _raw(guarded.port, chunked + (b"1000\r\n" + b" " * 4096 + b"\r\n") * 2)
    assert out.startswith(b"HTTP/1.1 413")
    assert guarded.healthy()


def test_a_stalled_half_request_is_dropped_within_the_bound(guarded):
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n"
    out, waited = _raw(guarded.port, head + b'{"features": [')
    assert out.startswith(b"HTTP/1.1 408") and b"connection: close" in out.lower()
    assert 0.4 < waited < 3.0  # the 0.5 s bound, on a busy machine
    assert guarded.healthy()


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le"],
    ids=["connects-and-sends-nothing", "stalls-mid-headers"],
)
def test_a_client_that_stalls_before_its_headers_end_is_dropped_within_the_bound(guarded, sent):
    out, waited = _raw(guarded.port, sent)
    assert out.startswith(b"HTTP/1.1 408") and b"headers did not arrive within 1 s" in out
    assert 0.9 < waited < 4.0  # the 1 s bound, on a busy machine
    # a kept-alive connection that has answered is not cut by the bound mid-use
    keep = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    import socket
    import time

    with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as s:
        for _ in range(3):
            s.sendall(keep)
            answer = b""
            while not answer.endswith(b"}"):  # the head and the JSON body may come in two segments
                answer += s.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(0.6)  # 1.8 s in all on one connection, each request's headers on time
    assert guarded.healthy()


def test_values_outside_the_schema_are_422_naming_the_feature_and_nulls_score(guarded):
    features = _valid_features()
    i = workload.FEATURES.index("tenure_months")
    status, body = _post(guarded.port, json.dumps({"features": [*features[:i], 500, *features[i + 1 :]]}).encode())
    assert status == 422 and body["feature"] == "tenure_months" and "[0, 120]" in body["error"]
    i = workload.FEATURES.index("plan")
    status, body = _post(guarded.port, json.dumps({"features": [*features[:i], 9, *features[i + 1 :]]}).encode())
    assert status == 422 and body["feature"] == "plan" and "not a known code" in body["error"]
    assert "3=unlimited" in body["allowed"]
    i = workload.FEATURES.index("nps_score")  # the schema allows a missing NPS: scored as NaN
    status, body = _post(guarded.port, json.dumps({"features": [*features[:i], None, *features[i + 1 :]]}).encode())
    assert status == 200 and 0 < body["score"] < 1
    assert guarded.healthy()


# ---------------------------------------------------------------------------------- dynamic batching


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_max": 0}, "'batch_max' must be > 0"),
        ({"batch_max": 8, "batch_wait_ms": -1.0}, "'batch_wait_ms' must be >= 0"),
        ({"batch_max": 8, "batch_wait_ms": float("nan")}, "batch_wait_ms"),
        ({"batch_max": 8, "batch_wait_ms": 60.0}, "'batch_wait_ms' 60.0 is above the SLO"),
        ({"batch_max": 8, "backend": "inprocess"}, "need a server that batches"),
        ({"batch_max": 1, "batch_wait_ms": 2.0}, "'batch_wait_ms' needs batch_max > 1"),
        ({"batch_max": 8, "aggregate": "onthefly"}, "'aggregate' runs use /score"),
    ],
)
def test_bad_batching_params_are_refused_naming_the_parameter(overrides, message):
    with pytest.raises(BenchError, match=message):
        RequestParams(**({"backend": "http", "batch_max": 8, "batch_wait_ms": 2.0} | overrides))


@pytest.mark.parametrize("app", APPS)
def test_a_batching_server_scores_requests_together_and_equal_to_predict(app, small_dataset, small_model, tmp_path):
    params = _small(
        backend="http", server_app=app, batch_max=16, batch_wait_ms=2.0, rate=1_000.0, duration_s=1.0,
        min_requests=600, warmup_s=0.2,
    )
    result = run(small_dataset, small_model, params, RunContext("batched", tmp_path))
    m = result.metrics
    assert m["score_mismatches"] == 0 and m["predictions"] > 600
    side = m["server_side"]
    b = side["batching"]
    assert b["requests"] == side["requests"] == m["predictions"]
    assert sum(c for _, c in b["batch_size_requests"]) == b["requests"]
    assert 1 <= b["batch_size_p50"] <= b["batch_size_max"] <= 16 and b["batch_size_max"] > 1
    hops = side["hops"]
    assert hops["queue_s"]["count"] == hops["server_s"]["count"] == b["requests"]
    assert hops["server_s"]["p50"] <= hops["latency_s"]["p50"]
    assert result.backend.startswith(f"http[{'asgi,' if app == 'asgi' else ''}b16/2ms]")


def test_a_batch_whose_predict_raises_answers_500_to_each_request_and_the_server_keeps_serving(small_model):
    import asyncio

    from bench.systems.http_app import Scorer

    scorer = Scorer(ServerConfig(str(small_model.path), batch_max=4, batch_wait_ms=1.0, gc_freeze=False))
    body = json.dumps({"features": _valid_features()}).encode()
    good = scorer.predictor.predict

    def broken(X):
        raise RuntimeError("model unavailable")

    async def answers():
        return await asyncio.gather(*(scorer.predict_batched(body) for _ in range(3)))

    scorer.batcher.predict = broken  # a failure injected into the real batcher of a real scorer
    failed = asyncio.run(answers())
    assert all(s == 500 and b"model unavailable" in b for s, b in failed)
    scorer.batcher.predict = good
    assert all(s == 200 and json.loads(b)["batch"] == 3 for s, b in asyncio.run(answers()))


# ---------------------------------------------------------------------------------- batching by the caller


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rows_per_request": 0}, "'rows_per_request' must be > 0"),
        ({"rows_per_request": 4, "backend": "inprocess"}, "'rows_per_request' > 1 needs backend 'http'"),
        ({"rows_per_request": 4, "batch_max": 8}, "with batch_max 1"),
        ({"rows_per_request": 20_000, "rows": 10_000}, "'rows_per_request' 20000 is more than 'rows'"),
    ],
)
def test_bad_rows_per_request_is_refused_naming_the_parameter(overrides, message):
    with pytest.raises(BenchError, match=message):
        RequestParams(**({"backend": "http"} | overrides))


def test_several_rows_per_request_are_scored_in_one_call_and_counted_as_rows(small_dataset, small_model, tmp_path):
    params = _small(backend="http", rows_per_request=50, rate=100.0, duration_s=1.0, min_requests=100, warmup_s=0.2)
    result = run(small_dataset, small_model, params, RunContext("rows", tmp_path))
    m = result.metrics
    assert m["score_mismatches"] == 0 and m["rows_per_request"] == 50
    assert m["predictions"] == 50 * m["requests"] == 50 * m["latency_s"]["count"]
    assert m["throughput_per_s"] == pytest.approx(50 * 100, rel=0.3)
    assert result.backend.startswith("http[50rows]")


def test_a_multi_row_body_with_one_bad_row_is_refused_naming_the_row(small_model):
    from bench.systems.http_app import Scorer

    scorer = Scorer(ServerConfig(str(small_model.path), gc_freeze=False))
    good = _valid_features()
    status, body = scorer.predict(json.dumps({"rows": [good, good]}).encode())
    assert status == 200 and len(json.loads(body)["scores"]) == 2
    bad = list(good)
    bad[workload.FEATURES.index("tenure_months")] = -5
    status, body = scorer.predict(json.dumps({"rows": [good, bad]}).encode())
    assert status == 422 and json.loads(body)["row"] == 1 and "row 1: feature 'tenure_months'" in json.loads(body)["error"]
    assert scorer.predict(json.dumps({"rows": []}).encode())[0] == 422


# ---------------------------------------------------------------------------------- the generator apart


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to separate the generator")
def test_the_generator_and_the_server_run_on_separate_cpus_and_the_generator_gets_its_back(
    small_dataset, small_model, tmp_path
):
    import psutil

    from bench.patterns.request import HttpBackend, make_backend

    before = os.sched_getaffinity(0)
    backend = make_backend(HttpBackend, small_dataset, small_model, _small(backend="http"), tmp_path)
    backend.start()
    try:
        iso = backend.isolation
        assert iso.isolated and not set(iso.generator_cpus) & set(iso.server_cpus)
        assert os.sched_getaffinity(0) == set(iso.generator_cpus)
        assert set(psutil.Process(backend.server.pid).cpu_affinity()) == set(iso.server_cpus)
    finally:
        backend.stop()
    assert os.sched_getaffinity(0) == before
    off = make_backend(HttpBackend, small_dataset, small_model, _small(backend="http", isolate_generator=False), tmp_path)
    off.start()
    try:
        assert off.isolation.reason == "isolate_generator is off" and os.sched_getaffinity(0) == before
    finally:
        off.stop()
