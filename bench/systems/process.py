"""Start, health-check and stop a model server in its own process (never a hang: every wait is bounded)."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench.core.errors import BenchError
from bench.systems.owned import OwnedProcess
from bench.systems.server_config import ServerConfig


def wait_healthy(host: str, port: int, timeout_s: float, proc: subprocess.Popen | None = None) -> bool:
    """Poll ``GET /health`` until it answers 200 (True) or ``timeout_s`` passes or ``proc`` exits (False)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            conn = http.client.HTTPConnection(host, port, timeout=1.0)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            if ok:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess(OwnedProcess):
    """uvicorn serving ``bench.systems.http_app`` with the model loaded once at start, as ``config`` says.

    ``config.workers`` is uvicorn's process count (one event loop and one GIL each); each scores with
    ``config.num_threads`` OpenMP threads — 1, since single-row calls with more threads only spin
    (checked: a server's process has one Python thread with CPU time and no OpenMP workers). The app
    reads the whole configuration from one environment variable (``server_config.ENV_VAR``).

    With ``workers`` ≥ 2 the process is uvicorn's supervisor: it binds the socket and spawns that
    many worker processes (``multiprocessing`` spawn children, beside a resource tracker that serves
    nothing) which accept on the one shared socket — replicas behind one address. uvicorn 0.54's
    supervisor checks its workers every 0.5 s and starts a new one in place of a dead one (measured
    on the 2-core VM, small model, idle: a SIGKILLed worker's replacement was spawned 0.24–0.30 s and
    answering 0.97–1.05 s after the kill; the article's model at 200 req/s on a busy machine: spawned
    0.33–0.50 s, answering 2.85–2.91 s after). :meth:`start` returns once every worker has answered.
    """

    what = "model server"

    def __init__(self, config: ServerConfig, log_path: Path) -> None:
        # The port is fixed here, once, so that a restart listens where clients already connect.
        super().__init__(log_path)
        self.config = config if config.port else dataclasses.replace(config, port=free_port(config.host))

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        return self.config.port

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        """Launch and wait (bounded) for ``GET /health`` to answer 200."""
        c = self.config
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "bench.systems.http_app:app_from_env",
            "--host",
            c.host,
            "--port",
            str(c.port),
            "--workers",
            str(c.workers),
            "--loop",
            "uvloop",
            "--http",
            "bench.systems.http_protocol:BoundedHeadersProtocol",  # httptools, headers bounded
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        # Its own session (a signal to the run's group must not reach it mid-measurement), so it is
        # tracked, and dies with this process even on SIGKILL (bench.systems.owned).
        t0 = self._launch(cmd, env=os.environ | c.env())
        deadline = t0 + timeout_s

        def ready() -> bool:
            return self.healthy() and self._all_workers_serving(deadline)

        return self._wait_ready(ready, t0, timeout_s, f"answering /health from all {c.workers} worker(s)")

    def _all_workers_serving(self, deadline: float) -> bool:
        """With several workers, whether each has answered /health by ``deadline``: one answering is
        not the pool up (the second can still be importing), and a run must not start half-served."""
        if self.config.workers == 1:
            return True
        while time.perf_counter() < deadline and self.proc is not None and self.proc.poll() is None:
            pids = set(self.worker_pids())
            if len(pids) >= self.config.workers:
                return self.wait_serving(pids, deadline - time.perf_counter())
            time.sleep(0.05)
        return False

    def worker_pids(self) -> list[int]:
        """The live processes that serve requests: the server itself with one worker; with more, the
        supervisor's worker children (a killed one, reaped or a zombie, is not counted)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        if self.config.workers == 1:
            return [self.proc.pid]
        pids = []
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.Error:
            return []
        for child in children:
            try:
                if child.status() != psutil.STATUS_ZOMBIE and "multiprocessing.spawn" in " ".join(child.cmdline()):
                    pids.append(child.pid)
            except psutil.Error:  # gone between the listing and the look
                continue
        return sorted(pids)

    def answering_pid(self, timeout_s: float = 1.0) -> int | None:
        """The pid of the worker that answered one ``GET /health`` on a new connection (None: no answer).
        Which worker accepts a new connection on the shared socket is the kernel's choice."""
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
            conn.request("GET", "/health")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            return int(json.loads(body)["pid"]) if resp.status == 200 else None
        except (OSError, ValueError, KeyError):
            return None

    def wait_serving(self, pids: set[int], timeout_s: float, interval_s: float = 0.05) -> bool:
        """Probe ``/health`` on new connections until each of ``pids`` has answered once (True), or
        ``timeout_s`` passes (False). 0.05 s apart: ~20 probes a second, nothing beside the load."""
        deadline = time.perf_counter() + timeout_s
        missing = set(pids)
        while missing and time.perf_counter() < deadline:
            missing.discard(self.answering_pid(timeout_s=min(1.0, max(deadline - time.perf_counter(), 0.01))))
            if missing:
                time.sleep(interval_s)
        return not missing

    def await_replacement(self, before: set[int], timeout_s: float = 60.0) -> dict:
        """After a worker of ``before`` died: wait (bounded) for the supervisor to bring the pool back to
        ``workers`` live workers and for the new one to answer. Returns seconds from the call to each
        step (None: not within ``timeout_s``) and the replacement's pid."""
        t0 = time.perf_counter()
        deadline = t0 + timeout_s
        out: dict = {"replaced_s": None, "ready_s": None, "replacement_pid": None, "live_workers": None}
        while time.perf_counter() < deadline:
            live = set(self.worker_pids())
            new = live - before
            if new and len(live) >= self.config.workers:
                if out["replaced_s"] is None:
                    out["replaced_s"], out["replacement_pid"] = time.perf_counter() - t0, min(new)
                if self.wait_serving(new, deadline - time.perf_counter()):
                    out["ready_s"] = time.perf_counter() - t0
                    break
            time.sleep(0.02)
        out["live_workers"] = len(self.worker_pids())
        return out

    def restart(self, timeout_s: float = 60.0) -> ServerProcess:
        """Stop the server if it still runs (a killed one is only reaped), and start the same
        configuration on the same port: what a process supervisor does after a crash."""
        self.stop()
        return self.start(timeout_s)

    def healthy(self, timeout_s: float = 1.0) -> bool:
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def kill_worker(self, pid: int) -> None:
        """SIGKILL one worker of a multi-worker server (fault injection: one replica dies, as under
        the OOM killer); the supervisor and the other workers keep running."""
        if self.config.workers < 2:
            raise BenchError(f"kill_worker needs a server with >= 2 workers, this one has {self.config.workers}")
        if pid not in self.worker_pids():
            raise BenchError(f"pid {pid} is not a live worker of this server (workers: {self.worker_pids()})")
        os.kill(pid, signal.SIGKILL)

