"""Seldon's MLServer (1.7.1, LightGBM runtime) as an off-the-shelf anchor beside our own server.

It pins FastAPI < 0.116, so it lives in its own virtual environment (``make setup-mlserver``) and runs
as a separate process, started, health-checked and stopped here as :class:`~bench.systems.process.ServerProcess`
does ours. Requests use the V2 inference protocol (:func:`v2_body`, :func:`parse_score`).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import orjson

from bench.core.errors import BenchError
from bench.systems.process import free_port
from bench.systems.reaper import REAPER, dying_with_parent

#: MLServer's own virtual environment, at the repository root (never the harness's ``.venv``).
MLSERVER_VENV = Path(__file__).resolve().parents[2] / ".venv-mlserver"

#: The name the model is served under: requests go to ``/v2/models/<MODEL_NAME>/infer``.
MODEL_NAME = "churn"


def available() -> bool:
    """Whether MLServer is installed in :data:`MLSERVER_VENV` (``make setup-mlserver``)."""
    return (MLSERVER_VENV / "bin" / "mlserver").exists()


def infer_path(model_name: str = MODEL_NAME) -> str:
    """The V2 inference endpoint of ``model_name``."""
    return f"/v2/models/{model_name}/infer"


def v2_body(row: np.ndarray) -> bytes:
    """The V2 inference request for one row of float64 features: one FP64 input of shape [1, n].

    JSON has no NaN: a missing value goes as ``null`` (orjson writes NaN as null), which MLServer's
    NumPy codec turns back into NaN (``np.array([..., None], float64)``). Floats are written
    shortest-round-trip, so the server reads the very float64 the client had."""
    values = np.asarray(row, dtype=np.float64).ravel()
    doc = {"inputs": [{"name": "features", "shape": [1, values.size], "datatype": "FP64", "data": values.tolist()}]}
    return orjson.dumps(doc)


def parse_score(body: bytes) -> float:
    """The one score of a V2 response to :func:`v2_body` (LightGBM's ``predict()``: the probability
    for a binary objective), or BenchError naming what came back instead."""
    try:
        output = orjson.loads(body)["outputs"][0]
        data = output["data"]
        if len(data) != 1:
            raise BenchError(f"MLServer answered {len(data)} scores for one row: {body[:200]!r}")
        return float(data[0])
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise BenchError(f"MLServer's answer is not a V2 inference response: {body[:200]!r}") from exc


class MLServerProcess:
    """``mlserver start`` on a folder holding its settings and one LightGBM text model, in one process.

    ``batch_max`` > 1 turns on MLServer's adaptive batching: requests are queued and scored together,
    up to ``batch_max`` rows or ``batch_wait_ms`` after the first. ``num_threads`` is the OpenMP thread
    count LightGBM scores with (``OMP_NUM_THREADS``: the runtime passes none of its own), 1 as our
    server's. gRPC cannot be switched off in MLServer, so it listens on a free port; metrics are off.
    """

    def __init__(
        self,
        model_path: str,
        work_dir: Path,
        *,
        batch_max: int = 1,
        batch_wait_ms: float = 0.0,
        host: str = "127.0.0.1",
        num_threads: int = 1,
    ) -> None:
        if batch_max < 1 or batch_wait_ms < 0 or num_threads < 1:
            raise BenchError(
                f"MLServerProcess needs batch_max >= 1, batch_wait_ms >= 0 and num_threads >= 1, got "
                f"{batch_max}, {batch_wait_ms} and {num_threads}"
            )
        self.model_path = Path(model_path)
        self.work_dir = Path(work_dir)
        self.batch_max = batch_max
        self.batch_wait_ms = batch_wait_ms
        self.host = host
        self.num_threads = num_threads
        self.port = free_port(host)  #: HTTP (V2 REST)
        self.grpc_port = free_port(host)
        self.log_path = self.work_dir / "mlserver.log"
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None  #: launch to both readiness probes answering 200
        self._tracked: int | None = None  #: this server's entry in the process's reaper

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("MLServer is not running")
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _write_settings(self) -> None:
        """settings.json (one process, no metrics, no extra endpoints) and model-settings.json."""
        if not self.model_path.is_file():
            raise BenchError(f"model file {str(self.model_path)!r} does not exist")
        model_dir = self.work_dir / MODEL_NAME  # MLServer warns when the folder and model names differ
        model_dir.mkdir(parents=True, exist_ok=True)
        model_file = model_dir / "model.txt"
        model_file.unlink(missing_ok=True)
        model_file.symlink_to(self.model_path.resolve())
        settings = {
            "debug": False,  # True logs every request (uvicorn's access log)
            "host": self.host,
            "http_port": self.port,
            "grpc_port": self.grpc_port,
            "parallel_workers": 0,  # score in the server's own process, no inference pool
            "metrics_endpoint": None,
            "metrics_dir": str(self.work_dir / ".metrics"),
            "environments_dir": str(self.work_dir / ".envs"),
            "load_models_at_startup": True,
            "gzip_enabled": False,
        }
        model_settings: dict = {
            "name": MODEL_NAME,
            "implementation": "mlserver_lightgbm.LightGBMModel",
            "parameters": {"uri": str(model_file)},
        }
        if self.batch_max > 1:
            model_settings["max_batch_size"] = self.batch_max
            model_settings["max_batch_time"] = self.batch_wait_ms / 1000.0
        (self.work_dir / "settings.json").write_text(json.dumps(settings, indent=2))
        (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))

    def _ready(self, path: str, timeout_s: float = 1.0) -> bool:
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            return resp.status == 200
        except OSError:
            return False

    def ready(self) -> bool:
        """Server and model both ready (V2 ``/v2/health/ready`` and ``/v2/models/<name>/ready``)."""
        return self._ready("/v2/health/ready") and self._ready(f"/v2/models/{MODEL_NAME}/ready")

    def start(self, timeout_s: float = 120.0) -> MLServerProcess:
        """Write the settings, launch, and wait (bounded) for server and model to answer ready."""
        if not available():
            raise BenchError(f"MLServer is not installed in {MLSERVER_VENV}; run `make setup-mlserver`")
        self._write_settings()
        cmd = [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(self.work_dir)]
        env = os.environ | {"OMP_NUM_THREADS": str(self.num_threads)}
        for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):  # the harness's, not MLServer's
            env.pop(name, None)
        t0 = time.perf_counter()
        # Its own session, tracked, and dying with this process even on SIGKILL (bench.systems.reaper).
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                dying_with_parent(cmd),
                cwd=self.work_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self._tracked is None:
            self._tracked = REAPER.track(f"MLServer pid {self.proc.pid}", self.stop)
        deadline = t0 + timeout_s
        try:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise BenchError(
                        f"MLServer exited with code {self.proc.returncode} before it was ready; "
                        f"log tail:\n{self.log_tail()}"
                    )
                if self.ready():
                    self.start_seconds = time.perf_counter() - t0
                    return self
                time.sleep(0.1)
        except BaseException:  # a signal or an error mid-start: the caller has no server to stop
            self.stop()
            raise
        self.stop()
        raise BenchError(f"MLServer was not ready within {timeout_s} s; log tail:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the server's process group, SIGKILL it if it has not gone within ``timeout_s``."""
        try:
            if self.proc is None or self.proc.poll() is not None:
                return
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout_s)
            except ProcessLookupError:  # the group has gone already: reap the process
                self.proc.wait(timeout=timeout_s)
        finally:  # untracked once gone, not before (see ServerProcess.stop)
            if self._tracked is not None:
                REAPER.untrack(self._tracked)
                self._tracked = None
