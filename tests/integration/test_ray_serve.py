"""The Ray Serve server answers as the uvicorn one does, with and without ``@serve.batch``, bad
bodies included: a score equal to ``predict()``, a 413 for a body over ``max_body_bytes`` (Serve's proxy has no limit of its own);
and through a deployment handle (``score_row``, no HTTP proxy), a window and refusals alike."""

from __future__ import annotations

import socket

import numpy as np
import orjson
import polars as pl
import pytest

from bench.core.errors import BenchError
from bench.data import workload
from bench.model import make_predictor
from bench.systems.server_config import ServerConfig


@pytest.fixture(scope="module", params=[1, 8], ids=["unbatched", "serve.batch-8"])
def serve_server(small_model, request):
    from bench.systems.ray_serve import RayServeServer  # imports Ray Serve: only where it runs

    config = ServerConfig(str(small_model.path), max_body_bytes=4096, batch_max=request.param, batch_wait_ms=5.0)
    srv = RayServeServer(config).start(timeout_s=180)
    yield srv
    srv.stop()


def _post(port: int, body: bytes, declared: int | None = None) -> bytes:
    length = len(body) if declared is None else declared
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode() + body)
        out = b""
        while b"\r\n\r\n" not in out or not out.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def test_ray_serve_scores_like_predict_and_refuses_an_oversized_body(serve_server, small_model, small_dataset):
    X = workload.feature_matrix(pl.read_parquet(small_dataset.path).head(5))
    for row, want in zip(X, make_predictor(small_model).predict(X), strict=True):
        out = _post(serve_server.port, orjson.dumps({"features": [None if np.isnan(v) else float(v) for v in row]}))
        assert out.startswith(b"HTTP/1.1 200"), out[:300]
        doc = orjson.loads(out.split(b"\r\n\r\n", 1)[1])
        assert doc["score"] == want and doc["server_us"] > 0
        assert ("batch" in doc) == (serve_server.config.batch_max > 1)
    too_big = _post(serve_server.port, b"{", declared=10_000_000)  # 10 MB declared, 1 byte sent
    assert too_big.startswith(b"HTTP/1.1 413") and b"4096 bytes" in too_big
    assert serve_server.session.info["auth"] == "token"


class _Running:
    """The module's running server as ``RayServeServer(...)`` hands it to the backend: already
    started, never stopped by the backend (one Ray per process; the fixture owns it)."""

    def __init__(self, srv) -> None:
        self.srv, self.fixed_costs_s = srv, {}

    def __getattr__(self, name: str):
        return getattr(self.srv, name)

    def start(self) -> _Running:
        return self

    def stop(self) -> None:
        pass


def test_a_window_through_the_deployment_handle_scores_like_predict(
    serve_server, small_model, small_dataset, tmp_path, monkeypatch
):
    """The handle path (no HTTP proxy), unbatched and with ``@serve.batch`` (8, 5 ms): every answer
    equals ``predict()``, each with the replica's timings; Ray's processes are metered."""
    import bench.systems.ray_serve as ray_serve
    from bench.patterns.request import RequestParams, make_backend, run_windows
    from bench.patterns.request.serve_handle import ServeHandleBackend

    batch_max = serve_server.config.batch_max
    params = RequestParams(
        backend="ray_serve",  # for the params' checks; the backend class is given directly
        rows=500,
        rate=50.0,
        duration_s=1.0,
        min_requests=50,
        warmup_s=0.2,
        capacity=False,
        floor=False,
        timeout_s=10.0,  # a busy 2-core machine: a slow answer is not what this checks
        batch_max=batch_max,
        batch_wait_ms=serve_server.config.batch_wait_ms if batch_max > 1 else 0.0,
    )

    def running(config, **_):
        assert (config.batch_max, config.batch_wait_ms) == (params.batch_max, params.batch_wait_ms)
        return _Running(serve_server)

    monkeypatch.setattr(ray_serve, "RayServeServer", running)
    backend = make_backend(ServeHandleBackend, small_dataset, small_model, params, tmp_path)
    main, floor, cap, windows = run_windows(backend, floor=False)
    obs, times = main.obs, main.times
    assert floor is None and cap is None and windows == [main]
    assert obs.intended.size >= 50 and (obs.status == 200).all(), np.unique(obs.status, return_counts=True)
    assert main.mismatches == 0 and not np.isnan(obs.scores).any()
    assert times is not None and (times.server_s > 0).all()
    if batch_max > 1:
        assert ((times.batch >= 1) & (times.batch <= batch_max)).all()
        assert (times.queue_s >= 0).all() and (times.predict_s > 0).all()
    else:
        assert (times.batch == 0).all()
    assert main.cpu.by_label.get("generator", 0) > 0 and any(k.startswith("ray:") for k in main.cpu.by_label)
    with pytest.raises(BenchError, match="score_row"):
        backend.window(obs.intended[:1], "/noop")


def test_score_row_refuses_what_predict_refuses(serve_server):
    """Through the handle, a bad body gets /predict's status and message; a good one its fields."""
    import asyncio

    handle = serve_server.handle().options(method_name="score_row")

    async def ask(body: bytes) -> dict:
        return await handle.remote(body)

    bad = asyncio.run(ask(b'{"features": [1, 2]}'))
    assert bad["status"] == 422 and "features" in bad["error"]
    assert asyncio.run(ask(b"not json"))["status"] == 400
    big = asyncio.run(ask(b" " * 5000))  # over max_body_bytes (4096)
    assert big["status"] == 413 and big["max_body_bytes"] == 4096
