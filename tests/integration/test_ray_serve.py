"""The Ray Serve server answers as the uvicorn one does, with and without ``@serve.batch``, bad
bodies included: a score equal to ``predict()``, a 413 for a body over ``max_body_bytes`` (Serve's proxy has no limit of its own)."""

from __future__ import annotations

import socket

import numpy as np
import orjson
import polars as pl
import pytest

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
