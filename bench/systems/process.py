"""Start, health-check and stop a model server in its own process (never a hang: every wait is bounded)."""

from __future__ import annotations

import dataclasses
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.core.errors import BenchError
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


class ServerProcess:
    """uvicorn serving ``bench.systems.http_app`` with the model loaded once at start, as ``config`` says.

    ``config.workers`` is uvicorn's process count (one event loop and one GIL each); each scores with
    ``config.num_threads`` OpenMP threads — 1, since single-row calls with more threads only spin
    (checked: a server's process has one Python thread with CPU time and no OpenMP workers). The app
    reads the whole configuration from one environment variable (``server_config.ENV_VAR``).
    """

    def __init__(self, config: ServerConfig, log_path: Path) -> None:
        # The port is fixed here, once, so that a restart listens where clients already connect.
        self.config = config if config.port else dataclasses.replace(config, port=free_port(config.host))
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None  #: launch to first healthy answer, of the last start

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        return self.config.port

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("server is not running")
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

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
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=os.environ | c.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = t0 + timeout_s
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"model server exited with code {self.proc.returncode} before answering /health; "
                    f"log tail:\n{self.log_tail()}"
                )
            if self.healthy():
                self.start_seconds = time.perf_counter() - t0
                return self
            time.sleep(0.1)
        self.stop()
        raise BenchError(f"model server did not answer /health within {timeout_s} s; log tail:\n{self.log_tail()}")

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

    def kill(self) -> None:
        """SIGKILL the whole server (fault injection)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the server's process group, SIGKILL it if it has not gone within ``timeout_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout_s)
        except ProcessLookupError:  # the group has gone already (a kill): reap the process
            self.proc.wait(timeout=timeout_s)
