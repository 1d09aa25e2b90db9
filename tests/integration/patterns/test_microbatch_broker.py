"""Streaming through a real broker (a valkey-server from the installed wheel) on a real local Ray: every
accepted event scored once, a dead consumer's entries claimed, a killed broker restarted on its AOF."""

from __future__ import annotations

import threading
import time

import numpy as np
import polars as pl
import psutil
import pytest

from bench.core.errors import BenchError
from bench.data import events
from bench.model import make_predictor
from bench.patterns.base import RunContext
from bench.patterns.microbatch import MicrobatchParams, run, wire
from bench.patterns.microbatch.consumer import StreamConsumer
from bench.systems.valkey import ValkeyServer

SMALL = {"rows": 5_000, "train_rows": 5_000, "trees": 10, "leaves": 7}
N_FEATURES = 3


@pytest.fixture(scope="module")
def server():
    with ValkeyServer() as s:
        yield s


def _client(server):
    import valkey

    return valkey.Valkey.from_url(server.url)


def _publish(client, stream: str, X: np.ndarray, extra: list[bytes] = ()) -> None:
    client.xgroup_create(stream, wire.GROUP, id="0", mkstream=True)
    cmds, width = wire.encode_xadd(stream, X, np.zeros(len(X)))
    for k in range(len(X)):
        client.xadd(stream, {"e": cmds[k].tobytes()[-(8 * (2 + X.shape[1]) + 2) : -2]})
    for junk in extra:
        client.xadd(stream, {"e": junk})


def _consume(server, stream, out, claim_idle_ms=1_000.0, name="c0", until=lambda: False) -> dict:
    consumer = StreamConsumer(
        server.url,
        lambda X: X.sum(axis=1),
        N_FEATURES,
        name=name,
        max_batch=50,
        max_wait_ms=5,
        claim_idle_ms=claim_idle_ms,
    )
    stop = threading.Event()
    deadline = time.monotonic() + 10.0

    def watch():
        while not until() and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    return consumer.run(stream, out, stop, deadline)


def _scored(client, out) -> dict[int, float]:
    got = {}
    for _, fields in client.xrange(out):
        idx, s, _, _ = wire.decode_scores(fields)
        got.update(zip(idx.tolist(), s.tolist(), strict=True))
    return got


def test_a_consumer_scores_acknowledges_and_skips_malformed_entries(server):
    client = _client(server)
    X = np.arange(120, dtype=np.float64).reshape(40, N_FEATURES)
    _publish(client, "t1:in", X, extra=[b"short", b""])
    counts = _consume(server, "t1:in", "t1:out", until=lambda: len(_scored(client, "t1:out")) >= 40)
    assert _scored(client, "t1:out") == {k: float(X[k].sum()) for k in range(40)}
    assert counts["malformed"] == 2 and counts["events"] == 40
    assert client.xpending("t1:in", wire.GROUP)["pending"] == 0  # every entry acknowledged, the bad ones too


def test_entries_a_dead_consumer_held_are_claimed_by_another(server):
    client = _client(server)
    X = np.ones((30, N_FEATURES))
    _publish(client, "t2:in", X)
    client.xreadgroup(wire.GROUP, "dead", {"t2:in": ">"}, count=30)  # read, never acknowledged: it died
    assert client.xpending("t2:in", wire.GROUP)["pending"] == 30
    counts = _consume(
        server, "t2:in", "t2:out", claim_idle_ms=200.0, until=lambda: len(_scored(client, "t2:out")) >= 30
    )
    assert counts["claimed"] == 30 and len(_scored(client, "t2:out")) == 30
    assert client.xpending("t2:in", wire.GROUP)["pending"] == 0


def _params(**overrides) -> MicrobatchParams:
    base = {
        **SMALL,
        "source": "broker",
        "events": 4_000,
        "rate": 400.0,
        "duration_s": 3.0,
        "min_events": 200,
        "warmup_s": 0.3,
        "max_batch": 100,
        "max_wait_ms": 20.0,
        "capacity": False,
        "saturation_events": 3_000,
        "drain_timeout_s": 10.0,
        "claim_idle_ms": 300.0,
    }
    return MicrobatchParams(**{**base, **overrides})


@pytest.fixture(scope="module")
def faulted(small_dataset, small_model, tmp_path_factory):
    """One run whose main window loses an actor mid-batch, then the broker (appendfsync always)."""
    params = _params(fault_kill_at_s=0.6, fault_broker_kill_at_s=1.6, broker_appendfsync="always")
    d = tmp_path_factory.mktemp("mbb")
    t0 = time.monotonic()
    result = run(small_dataset, small_model, params, RunContext("mbb", d))
    return result, params, time.monotonic() - t0


def test_every_accepted_event_is_scored_once_and_correctly_through_both_faults(faulted, small_dataset, small_model):
    result, params, _ = faulted
    m = result.metrics
    d = m["delivery"]
    assert d["accepted_events"] == d["offered_events"] > 500 and d["lost_events"] == 0
    assert d["delivered_events"] == d["offered_events"] and d["mismatches"] == 0
    assert d["claimed_entries"] >= 1  # what the killed actor held
    kinds = [e["kind"] for e in m["fault_events"]]
    assert {"actor_crash_armed", "actor_died", "broker_killed"} <= set(kinds)
    f = m["broker_fault"]
    assert f["appendfsync"] == "always" and f["lost_events"] == 0 and f["down_s"] > 0
    main = result.samples.filter(pl.col("window") == "main")
    assert (main["status"] == 200).all()
    _, X = events.read(events.ensure_events(small_dataset, params.events, params.event_seed))
    expected = make_predictor(small_model).predict(X)
    assert np.array_equal(main["score"].to_numpy(), expected[np.arange(main.height) % len(X)])


def test_the_broker_and_producer_are_metered_and_nothing_is_left_running(faulted):
    result, _, _ = faulted
    m = result.metrics
    b = m["broker"]
    assert m["source"] == "broker" and b["kind"] == "valkey" and not b["external"]
    assert b["cpu_seconds"] > 0 and b["cpu_seconds_per_event"] > 0 and b["peak_rss_bytes"] > 0
    roles = m["cpu_seconds_by_role"]
    assert roles["producer"] > 0 and roles["broker"] > 0 and roles["actors"] > 0
    assert set(m["hops"]) >= {"to_broker_s", "in_stream_s", "scoring_s", "to_sink_s", "latency_s"}
    assert m["consumer_lag"]["t_s"] and len(m["consumer_lag"]["lag_entries"]) == len(m["consumer_lag"]["t_s"])
    assert m["saturation"]["delivered_events"] == 3_000
    assert result.backend.endswith("/broker[always]")
    for pid in [e["new_pid"] for e in m["fault_events"] if e["kind"] == "broker_killed"]:  # the restarted broker
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_an_unreachable_broker_url_is_refused_before_ray_starts(small_dataset, small_model, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(BenchError, match="does not answer PING"):
        run(small_dataset, small_model, _params(broker_url="valkey://127.0.0.1:9"), RunContext("bad", tmp_path))
    assert time.monotonic() - t0 < 30


def test_an_external_broker_is_joined_and_its_cpu_left_unmeasured(server, small_dataset, small_model, tmp_path):
    params = _params(broker_url=server.url, saturation_events=0, duration_s=1.0)
    result = run(small_dataset, small_model, params, RunContext("ext", tmp_path))
    b, d = result.metrics["broker"], result.metrics["delivery"]
    assert b["external"] and b["cpu_seconds"] is None and b["url"] == server.url
    assert d["lost_events"] == 0 and d["delivered_events"] == d["offered_events"] > 100
    assert server.pid is not None and psutil.pid_exists(server.pid)  # not ours to stop
