"""MLServer (the off-the-shelf anchor) serves the small model with predict()'s scores bit for bit, with
adaptive batching off and on, rows with missing values included, and stop() leaves no process behind."""

from __future__ import annotations

import http.client
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import psutil
import pytest

from bench import model
from bench.data import workload
from bench.systems import mlserver
from bench.systems.reaper import REAPER

pytestmark = pytest.mark.skipif(
    not mlserver.available(), reason=f"MLServer is not installed in {mlserver.MLSERVER_VENV}: make setup-mlserver"
)


def _score(server: mlserver.MLServerProcess, rows: np.ndarray) -> np.ndarray:
    """Each row as its own V2 request, one after another on one keep-alive connection."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10.0)
    scores = []
    try:
        for row in rows:
            conn.request("POST", mlserver.infer_path(), mlserver.v2_body(row), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body
            scores.append(mlserver.parse_score(body))
    finally:
        conn.close()
    return np.array(scores)


@pytest.mark.parametrize(("batch_max", "batch_wait_ms"), [(1, 0.0), (8, 2.0)], ids=["batching-off", "batching-on"])
def test_scores_equal_predict_and_stop_leaves_nothing(
    small_model, small_dataset, tmp_path: Path, batch_max, batch_wait_ms
):
    X = workload.feature_matrix(pl.read_parquet(small_dataset.path).head(20))
    assert np.isnan(X).any(), "the rows must include missing values"
    want = model.make_predictor(small_model).predict(X)
    server = mlserver.MLServerProcess(
        str(small_model.path), tmp_path / "mlserver", batch_max=batch_max, batch_wait_ms=batch_wait_ms
    )
    server.start()
    try:
        tree = [server.pid, *(p.pid for p in psutil.Process(server.pid).children(recursive=True))]
        assert np.array_equal(_score(server, X), want)
        # concurrent requests: with batching on these are scored together, and split back per request
        with ThreadPoolExecutor(max_workers=4) as pool:
            parts = list(pool.map(lambda rows: _score(server, rows), np.array_split(X, 4)))
        assert np.array_equal(np.concatenate(parts), want)
    finally:
        server.stop()
    assert server.proc is not None and server.proc.poll() is not None
    assert not [pid for pid in tree if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not [name for name in REAPER.tracked() if name.startswith("MLServer")]
