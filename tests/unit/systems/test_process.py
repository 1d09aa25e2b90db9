"""The model server process's worker bookkeeping, without a server: what a fault relies on."""

from __future__ import annotations

import pytest

from bench.core.errors import BenchError
from bench.systems.process import ServerProcess, free_port
from bench.systems.server_config import ServerConfig


def _server(tmp_path, workers: int = 2) -> ServerProcess:
    return ServerProcess(ServerConfig("/models/m.txt", workers=workers), tmp_path / "server.log")


def test_a_server_not_started_has_no_workers_and_no_answer(tmp_path):
    srv = _server(tmp_path)
    assert srv.port > 0  # fixed once, so a restart listens where clients connect
    assert srv.worker_pids() == []
    assert ServerProcess(ServerConfig("/m.txt", port=free_port()), tmp_path / "s.log").answering_pid(0.2) is None
    assert srv.wait_serving(set(), timeout_s=0.0)  # nothing to wait for
    assert not srv.wait_serving({123}, timeout_s=0.1)  # bounded: no answer is a False, never a hang


def test_kill_worker_refuses_a_single_worker_server_and_a_pid_that_is_not_a_worker(tmp_path):
    with pytest.raises(BenchError, match=">= 2 workers"):
        _server(tmp_path, workers=1).kill_worker(1)
    with pytest.raises(BenchError, match="not a live worker"):
        _server(tmp_path).kill_worker(1)


class _Pool(ServerProcess):
    """A server whose workers are scripted: each look at the pool returns the next list."""

    def __init__(self, tmp_path, looks: list[list[int]], answers: set[int]) -> None:
        super().__init__(ServerConfig("/models/m.txt", workers=2), tmp_path / "server.log")
        self.looks, self.answers = looks, answers

    def worker_pids(self) -> list[int]:
        return self.looks.pop(0) if len(self.looks) > 1 else self.looks[0]

    def wait_serving(self, pids: set[int], timeout_s: float, interval_s: float = 0.05) -> bool:
        return pids <= self.answers


def test_await_replacement_waits_for_a_new_worker_to_answer(tmp_path):
    pool = _Pool(tmp_path, [[2], [2], [2, 3]], answers={2, 3})
    back = pool.await_replacement({1, 2}, timeout_s=5.0)
    assert back["replacement_pid"] == 3 and back["live_workers"] == 2
    assert 0 < back["replaced_s"] <= back["ready_s"] < 5.0


def test_await_replacement_is_bounded_when_no_worker_comes_back(tmp_path):
    back = _Pool(tmp_path, [[2]], answers={2}).await_replacement({1, 2}, timeout_s=0.2)
    assert back == {"replaced_s": None, "ready_s": None, "replacement_pid": None, "live_workers": 1}
    spawned = _Pool(tmp_path, [[2, 3]], answers={2}).await_replacement({1, 2}, timeout_s=0.2)
    assert spawned["replacement_pid"] == 3 and spawned["ready_s"] is None  # spawned, never answered
