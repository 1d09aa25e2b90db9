"""The Valkey server component and the store on it: a real valkey-server from the installed wheel."""

from __future__ import annotations

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
