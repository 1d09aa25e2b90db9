"""The hybrid pattern's store: atomic generations, real reads, reload on replace, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from bench.core.errors import BenchError
from bench.data import store

#: the kinds that read a file (valkey, a server, is tested in test_store_valkey.py)
FILE_KINDS = ("sqlite", "dict")


def _publish(path, n=100, offset=0.0, as_of=1.0):
    keys = np.arange(10, 10 + n, dtype=np.int64)
    scores = np.linspace(0, 1, n) + offset
    store.publish(path, keys, {"score": scores, "count": np.arange(n)}, {"as_of": as_of})
    return keys, scores


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_generation_reads_back_exactly_and_misses_are_none(kind, tmp_path):
    path = tmp_path / "s.sqlite"
    keys, scores = _publish(path)
    reader = store.open_store(kind, path)
    assert reader.meta == {"as_of": 1.0} and len(reader) == 100
    for i in (0, 17, 99):
        assert reader.get(int(keys[i])) == (scores[i], i)  # floats round-trip bit for bit
    assert reader.get(5) is None and reader.get(10_000) is None
    reader.close()


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_readers_switch_to_a_new_generation_and_ignore_a_half_written_one(kind, tmp_path):
    path = tmp_path / "s.sqlite"
    keys, _ = _publish(path, as_of=1.0)
    reader = store.open_store(kind, path, check_s=0.0)
    # A writer killed mid-way leaves only its temporary file: readers keep the published generation.
    (tmp_path / f".{path.name}.999.tmp").write_bytes(b"partial")
    assert not reader.refresh() and reader.meta["as_of"] == 1.0
    _, scores = _publish(path, offset=1.0, as_of=2.0)
    assert reader.refresh() and reader.meta["as_of"] == 2.0 and reader.generations == 2
    assert reader.get(int(keys[3]))[0] == scores[3]


def test_bad_input_is_refused_before_writing(tmp_path):
    path = tmp_path / "s.sqlite"
    with pytest.raises(BenchError, match="column 'score' has 2 values for 3 keys"):
        store.publish(path, np.arange(3), {"score": np.zeros(2)}, {})
    with pytest.raises(BenchError, match="column name 'Score;DROP'"):
        store.publish(path, np.arange(3), {"Score;DROP": np.zeros(3)}, {})
    assert not path.exists()
    with pytest.raises(BenchError, match="store kind must be one of"):
        store.open_store("redis", path)
    with pytest.raises(BenchError, match="s.sqlite' is not a readable store generation"):
        store.open_store("sqlite", path)
    (tmp_path / "junk.sqlite").write_text("not sqlite")
    with pytest.raises(BenchError, match="junk.sqlite' is not a readable store generation"):
        store.open_store("dict", tmp_path / "junk.sqlite")
