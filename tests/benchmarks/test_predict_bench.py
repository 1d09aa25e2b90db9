"""pytest-benchmark measurements of ``predict`` on one thread at batch sizes 1 … 100,000, per backend
(LightGBM, and the same trees compiled by lleaves when it is installed), and of the single-row entry
point a server calls (``predict_row``).

They measure and never assert speed. The model has the article's default shape (200 trees, 63
leaves), trained once per session on 20k generated rows in a temp dir; inputs are feature matrices
built the way the batch pattern builds them (``workload.feature_matrix``, column-major float64).

Rounds are chosen per size from a quick calibration so each size costs about a second of timed
calls (at least 3 rounds); ``extra_info`` records the rows per call and the median seconds per row.
With ``--benchmark-disable`` each benchmark still calls ``predict`` once.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bench.data import workload
from bench.model import Model, ModelParams, ensure_model, make_predictor, predictor_unavailable

pytestmark = pytest.mark.benchmark

SIZES = (1, 10, 100, 1_000, 10_000, 100_000)
#: The default model shape (bench.model.ModelParams), trained on fewer rows to keep the session short.
MODEL_PARAMS = ModelParams(train_rows=20_000, trees=200, leaves=63)
DATA_SEED = 11
#: Target timed seconds per size; rounds are clamped to [MIN_ROUNDS, MAX_ROUNDS].
BUDGET_S = 1.0
MIN_ROUNDS, MAX_ROUNDS = 3, 200


@pytest.fixture(scope="session")
def predict_bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("predict-bench")


@pytest.fixture(scope="session")
def predict_bench_model(predict_bench_dir: Path) -> Model:
    return ensure_model(MODEL_PARAMS, directory=predict_bench_dir)


@pytest.fixture(scope="session")
def predict_bench_frame(predict_bench_dir: Path) -> pl.DataFrame:
    ds = workload.ensure_dataset(max(SIZES), DATA_SEED, directory=predict_bench_dir)
    return pl.read_parquet(ds.path)


BACKENDS = ("lightgbm", "lleaves")


@pytest.fixture(scope="session", params=BACKENDS)
def predict_bench_predictor(request, predict_bench_model: Model):
    """Each backend on one thread (lleaves compiles the model once, ~40 s, then loads it from its cache)."""
    if predictor_unavailable(request.param):
        pytest.skip(predictor_unavailable(request.param))
    return make_predictor(predict_bench_model, request.param, num_threads=1)


@pytest.fixture(scope="session")
def predict_bench_cost(predict_bench_predictor, predict_bench_frame: pl.DataFrame) -> tuple[float, float]:
    """(seconds per call, seconds per row) from a short calibration, to size the rounds."""

    def best(n: int, repeats: int) -> float:
        X = workload.feature_matrix(predict_bench_frame.head(n))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            predict_bench_predictor.predict(X)
            times.append(time.perf_counter() - t0)
        return min(times)

    per_call = best(1, 20)
    per_row = max(0.0, (best(2_000, 3) - per_call) / 2_000)
    return per_call, per_row


def _rounds(n: int, cost: tuple[float, float]) -> int:
    per_call, per_row = cost
    estimate = per_call + per_row * n
    return max(MIN_ROUNDS, min(MAX_ROUNDS, int(BUDGET_S / max(estimate, 1e-9))))


@pytest.mark.parametrize("n", SIZES, ids=[f"rows={n}" for n in SIZES])
def test_predict(
    benchmark,
    n: int,
    predict_bench_predictor,
    predict_bench_frame: pl.DataFrame,
    predict_bench_cost: tuple[float, float],
) -> None:
    X = workload.feature_matrix(predict_bench_frame.head(n))
    assert X.shape == (n, len(workload.FEATURES))
    rounds = _rounds(n, predict_bench_cost)
    # a warm-up call only where it is cheap: large batches have no first-call effect worth its time
    warmup = 1 if predict_bench_cost[0] + predict_bench_cost[1] * n < 0.1 else 0

    benchmark.group = f"{predict_bench_predictor.name} predict, 1 thread"
    benchmark.extra_info.update(
        {
            "rows": n,
            "trees": MODEL_PARAMS.trees,
            "leaves": MODEL_PARAMS.leaves,
            "num_threads": predict_bench_predictor.num_threads,
            "rounds": rounds,
        }
    )
    scores = benchmark.pedantic(
        predict_bench_predictor.predict, args=(X,), rounds=rounds, iterations=1, warmup_rounds=warmup
    )

    if benchmark.stats is not None:  # None under --benchmark-disable
        median = benchmark.stats.stats.median
        benchmark.extra_info["seconds_per_row"] = median / n
        benchmark.extra_info["rows_per_second"] = n / median if median > 0 else None
    # what was timed did the work: one finite probability per row
    assert isinstance(scores, np.ndarray) and scores.shape == (n,)
    assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))


def test_predict_row(benchmark, predict_bench_predictor, predict_bench_frame: pl.DataFrame) -> None:
    """The single-row entry point (one C call into preallocated buffers), on rows taken in turn."""
    X = workload.feature_matrix(predict_bench_frame.head(1_000))
    rows = iter(range(10**9))

    def one() -> float:
        return predict_bench_predictor.predict_row(X[next(rows) % len(X)])

    benchmark.group = "single row, 1 thread"
    benchmark.extra_info.update({"backend": predict_bench_predictor.name, "rows": 1})
    score = benchmark.pedantic(one, rounds=2_000, iterations=1, warmup_rounds=10)
    assert 0 <= score <= 1
    # the same row through predict() and predict_row() scores the same
    assert predict_bench_predictor.predict_row(X[5]) == pytest.approx(
        predict_bench_predictor.predict(X[5:6])[0], abs=1e-12
    )
