"""Seldon's MLServer (1.7.1, LightGBM runtime) as an off-the-shelf anchor beside our own server.

It pins FastAPI < 0.116, so it lives in its own virtual environment (``make setup-mlserver``) and runs
as a separate process, started, health-checked and stopped here as :class:`~bench.systems.process.ServerProcess`
does ours. Requests use the V2 inference protocol (:func:`v2_body`, :func:`parse_score`).
"""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path

import numpy as np
import orjson

from bench.core.errors import BenchError
from bench.systems.owned import OwnedProcess
from bench.systems.process import free_port

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


class MLServerProcess(OwnedProcess):
    """``mlserver start`` on a folder holding its settings and one LightGBM text model, in one process.

    ``batch_max`` > 1 turns on MLServer's adaptive batching: requests are queued and scored together,
    up to ``batch_max`` rows or ``batch_wait_ms`` after the first. ``num_threads`` is the OpenMP thread
    count LightGBM scores with (``OMP_NUM_THREADS``: the runtime passes none of its own), 1 as our
    server's. gRPC cannot be switched off in MLServer, so it listens on a free port; metrics are off.
    """

    what = "MLServer"

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
        super().__init__(self.work_dir / "mlserver.log")

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
        # Its own session, tracked, and dying with this process even on SIGKILL (bench.systems.owned).
        t0 = self._launch(cmd, env=env, cwd=self.work_dir)
        return self._wait_ready(self.ready, t0, timeout_s, "answering ready for its model")
