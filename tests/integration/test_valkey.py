"""The Valkey server component and the store on it: a real valkey-server from the installed wheel."""

from __future__ import annotations

import re
import struct
import threading

import numpy as np
import psutil
import pytest

from bench.core.errors import BenchError
from bench.data import store
from bench.systems.reaper import REAPER
from bench.systems.valkey import ValkeyServer


@pytest.fixture(scope="module")
def server():
    with ValkeyServer() as s:
        yield s


def _flush(url: str) -> None:
    import valkey

    valkey.Valkey.from_url(url).flushall()


def test_the_server_runs_on_localhost_and_stops_with_nothing_left(tmp_path):
    s = ValkeyServer(tmp_path / "v.log").start()
    pid, data_dir = s.pid, s.data_dir
    assert s.url.startswith("valkey://127.0.0.1:") and psutil.pid_exists(pid) and data_dir.is_dir()
    assert any(t.startswith("Valkey server") and t.endswith(f" pid {pid}") for t in REAPER.tracked())
    s.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not data_dir.exists() and not any(str(pid) in t for t in REAPER.tracked())


def test_a_port_in_use_fails_with_the_log_tail(server, tmp_path):
    with pytest.raises(BenchError, match=r"exited with code .* log tail:\n.*"):
        ValkeyServer(tmp_path / "v.log", port=server.port).start(timeout_s=5.0)


def test_bad_urls_are_named(tmp_path):
    for bad in ("valkey://127.0.0.1:1", "redis://127.0.0.1:1/0"):
        with pytest.raises(BenchError, match=bad):
            store.open_store("valkey", bad)
        with pytest.raises(BenchError, match=bad):
            store.publish(bad, np.arange(3), {"score": np.zeros(3)}, {})
        with pytest.raises(BenchError, match=bad):
            ValkeyServer(url=bad).start()
    with pytest.raises(BenchError, match="http://x"):
        ValkeyServer(url="http://x")


def test_scores_round_trip_bit_for_bit_as_the_sqlite_reader_returns_them(server, tmp_path):
    _flush(server.url)
    rng = np.random.default_rng(1)
    n = 3_000
    keys = rng.permutation(np.unique(rng.integers(0, 2**62, 2 * n))[:n])
    scores = rng.random(n) * 10.0 ** rng.integers(-300, 300, n)  # every exponent range
    scores[:3] = [0.1 + 0.2, 5e-324, -0.0]
    counts = rng.integers(-(2**62), 2**62, n)
    values = {"score": scores, "count": counts}
    store.publish(server.url, keys, values, {"as_of": 1.5})
    store.publish(tmp_path / "s.sqlite", keys, values, {"as_of": 1.5})
    kv, sql = store.open_store("valkey", server.url), store.open_store("sqlite", tmp_path / "s.sqlite")
    assert kv.meta == sql.meta == {"as_of": 1.5} and len(kv) == len(sql) == n
    for i in range(n):
        got = kv.get(int(keys[i]))
        assert got == sql.get(int(keys[i])) == (scores[i], counts[i])
        assert struct.pack("<d", got[0]) == struct.pack("<d", scores[i]) and type(got[1]) is int
    assert kv.get(-5) is None
    kv.close(), sql.close()


def test_a_reader_during_publishes_sees_one_generation_or_the_next_never_a_mix(server):
    _flush(server.url)
    n = 20_000
    keys = np.arange(n, dtype=np.int64)
    base = np.random.default_rng(2).random(n)
    store.publish(server.url, keys, {"score": base + 0}, {"as_of": 0.0})
    reader = store.open_store("valkey", server.url, check_s=0.0)
    done, publishes = threading.Event(), 4

    def publisher() -> None:
        try:
            for g in range(1, publishes + 1):
                store.publish(server.url, keys, {"score": base + g}, {"as_of": float(g)})
        finally:
            done.set()

    thread = threading.Thread(target=publisher)
    thread.start()
    rng, seen, reads = np.random.default_rng(3), set(), 0
    while not done.is_set() or reads < 500:
        reader.refresh()
        k = int(rng.integers(n))
        got = reader.get(k)
        g = reader.meta["as_of"]  # the generation the value was read from
        assert got is not None and got[0] == base[k] + g, (k, got, g)
        seen.add(g)
        reads += 1
    thread.join(timeout=60)
    assert reader.meta["as_of"] == publishes or reader.refresh() and reader.meta["as_of"] == publishes
    assert len(seen) >= 2 and len(reader) == n  # the old generations were deleted after each switch
    reader.close()


def test_a_half_written_generation_is_never_read_and_is_swept_by_the_next_publish(server):
    import valkey

    _flush(server.url)
    keys = np.arange(100, dtype=np.int64)
    store.publish(server.url, keys, {"score": np.ones(100)}, {"as_of": 1.0})
    c = valkey.Valkey.from_url(server.url)
    # what a publisher SIGKILLed mid-write leaves: a generation number, some rows, no meta, no switch
    g = c.incr(store.COUNTER)
    c.sadd(store.GENERATIONS, g)
    c.mset({f"g{g}:{i}": struct.pack("<d", 9.0) for i in range(50)})
    reader = store.open_store("valkey", server.url, check_s=0.0)
    assert not reader.refresh() and reader.get(3) == (1.0,) and reader.meta["as_of"] == 1.0
    store.publish(server.url, keys, {"score": np.full(100, 2.0)}, {"as_of": 2.0})
    assert reader.get(3) == (2.0,) and reader.meta["as_of"] == 2.0  # a miss re-reads the pointer
    assert sorted(c.keys("g[0-9]*")) == sorted(
        [f"g{g + 1}:{i}".encode() for i in range(100)] + [f"g{g + 1}:meta".encode()]
    )
    reader.close()


# --------------------------------------------------------------------------------------------
# The load generator's own client (bench.measure.kvclient) and the direct reader on it
# --------------------------------------------------------------------------------------------


def _on_loop(coro_fn):
    """Run ``coro_fn()`` on a fresh event loop (the client's connections belong to one loop)."""
    import asyncio

    return asyncio.run(coro_fn())


def test_the_resp_client_gets_values_nils_and_errors_and_times_out_on_its_own(server):
    import asyncio

    from bench.measure import kvclient

    _flush(server.url)
    store.publish(server.url, np.arange(3), {"score": np.array([0.1 + 0.2, 5e-324, -0.0])}, {"as_of": 1.0})
    pool = kvclient.RespPool(kvclient.Endpoint.from_url(server.url), max_connections=2)
    sent = []

    async def go():
        await pool.warm(2)
        assert await pool.command(kvclient.encode("PING"), 1.0) == b"PONG"
        g = int(await pool.command(kvclient.encode("GET", store.POINTER), 1.0, lambda: sent.append(1)))
        raw = await pool.command(kvclient.encode("GET", f"g{g}:0"), 1.0)
        assert struct.unpack("<d", raw)[0] == 0.1 + 0.2
        assert await pool.command(kvclient.encode("GET", "no-such-key"), 1.0) is None
        with pytest.raises(kvclient.RespError, match="unknown command"):
            await pool.command(kvclient.encode("NOSUCHCOMMAND"), 1.0)
        # three commands on two connections: one waits for a free connection, none fails
        replies = await asyncio.gather(*(pool.command(kvclient.encode("ECHO", i), 1.0) for i in range(3)))
        assert replies == [b"0", b"1", b"2"] and pool.open == 2
        with pytest.raises(TimeoutError):  # the server blocks this connection for 1 s; the client waits 0.1
            await pool.command(kvclient.encode("BLPOP", "empty-list", 1), 0.1)
        assert pool.open == 1  # the timed-out connection was closed (its late reply is void)
        assert await pool.command(kvclient.encode("PING"), 1.0) == b"PONG"
        pool.close()

    _on_loop(go)
    assert sent == [1]


def test_the_resp_client_fails_a_refused_connection_as_a_connection_error():
    from bench.measure import kvclient

    pool = kvclient.RespPool(kvclient.Endpoint.from_url("valkey://127.0.0.1:1"))

    async def go():
        with pytest.raises(ConnectionError, match="127.0.0.1:1"):  # an OSError: counted as "connection"
            await pool.command(kvclient.encode("PING"), 1.0)

    _on_loop(go)
    assert pool.open == 0


def test_server_urls_are_parsed_or_refused_by_name():
    from bench.measure.kvclient import Endpoint

    e = Endpoint.from_url("redis://user:p%40ss@10.0.0.5:6380/2")
    assert (e.host, e.port, e.username, e.password, e.db) == ("10.0.0.5", 6380, "user", "p@ss", 2)
    assert len(e.handshake()) == 2 and Endpoint.from_url("valkey://127.0.0.1:7000").handshake() == []
    assert Endpoint.from_url("unix:///tmp/v.sock?db=1").path == "/tmp/v.sock"
    for bad in ("http://127.0.0.1:1", "valkey://127.0.0.1:1/notadb"):
        with pytest.raises(BenchError, match=re.escape(bad)):
            Endpoint.from_url(bad)


def test_the_direct_reader_follows_each_published_generation_and_tells_a_miss_from_a_deleted_one(server):
    """A refresh publishes a new generation and deletes the old one: a reader that has not re-read the
    pointer yet (check_s far away) misses, re-reads it and answers from the new generation; a customer in
    neither is "not found"."""
    from bench.measure import kvclient
    from bench.patterns.hybrid.direct import DirectReader

    _flush(server.url)
    keys = np.arange(100, dtype=np.int64) * 3
    store.publish(server.url, keys, {"score": keys / 7.0}, {"as_of": 1.0})
    pool = kvclient.RespPool(kvclient.Endpoint.from_url(server.url), max_connections=4)
    reader = DirectReader(pool, check_s=3600.0)

    async def go():
        await reader.open(1.0)
        assert await reader.lookup(9, 1.0) == (9 / 7.0, 1.0)
        assert await reader.lookup(10, 1.0) is None  # not a key of any generation
        store.publish(server.url, keys, {"score": keys / 11.0}, {"as_of": 2.0})  # deletes generation 1
        assert await reader.lookup(9, 1.0) == (9 / 11.0, 2.0)  # the miss re-read the pointer
        assert reader.switches == 1
        pool.close()

    _on_loop(go)


def test_the_direct_reader_refuses_a_store_with_nothing_published(server):
    from bench.measure import kvclient
    from bench.patterns.hybrid.direct import DirectReader

    _flush(server.url)
    pool = kvclient.RespPool(kvclient.Endpoint.from_url(server.url))

    async def go():
        with pytest.raises(BenchError, match="no published generation"):
            await DirectReader(pool).open(1.0)
        pool.close()

    _on_loop(go)
