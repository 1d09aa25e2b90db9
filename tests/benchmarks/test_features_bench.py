"""pytest-benchmark measurements for claim C10: a 90-day aggregate computed per request vs read pre-computed.

The log has the default shape the request pattern uses: 10,000 customers × 50 events on average
(about 500k rows, a year of activity), generated once per session in a temp dir. ``OnTheFly.get``
filters and aggregates the whole in-memory log with polars on every call; the pre-computed side is a
dict lookup of :func:`bench.data.features.aggregate_all`'s table (the in-process floor of a feature store).
Customers rotate from call to call. They measure and never assert speed; each checks that what was
timed gave the batch answer. With ``--benchmark-disable`` each runs its function once.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
import pytest

from bench.data import features, workload

pytestmark = pytest.mark.benchmark

CUSTOMERS = 10_000
PER_CUSTOMER = 50.0
DATA_SEED = 12
#: On the fly costs about a millisecond per call on this log: ~0.5 s of timed calls.
ONTHEFLY_ROUNDS = 500
LOOKUP_ROUNDS, LOOKUP_ITERATIONS = 200, 100


@pytest.fixture(scope="module")
def activity(tmp_path_factory: pytest.TempPathFactory) -> features.Activity:
    directory: Path = tmp_path_factory.mktemp("features-bench")
    data = workload.ensure_dataset(CUSTOMERS, DATA_SEED, directory=directory)
    return features.ensure_activity(data, PER_CUSTOMER, directory=directory)


@pytest.fixture(scope="module")
def precomputed(activity: features.Activity) -> dict[int, tuple[int, float]]:
    return features.lookup(features.aggregate_all(pl.read_parquet(activity.path), customers=range(CUSTOMERS)))


def _info(benchmark, activity: features.Activity, rounds: int) -> None:
    benchmark.group = f"C10 90-day aggregate, {activity.rows:,}-event log"
    benchmark.extra_info.update({"log_rows": activity.rows, "customers": CUSTOMERS, "rounds": rounds})


def test_aggregate_on_the_fly(benchmark, activity, precomputed) -> None:
    fly = features.OnTheFly(activity.path)
    ids = itertools.cycle(range(0, CUSTOMERS, 7))
    answers: list[tuple[int, tuple[int, float]]] = []

    def call() -> None:
        c = next(ids)
        answers.append((c, fly.get(c)))

    _info(benchmark, activity, ONTHEFLY_ROUNDS)
    benchmark.pedantic(call, rounds=ONTHEFLY_ROUNDS, iterations=1, warmup_rounds=5)
    for c, (n, amount) in answers:
        assert n == precomputed[c][0] and amount == pytest.approx(precomputed[c][1], rel=1e-12, abs=1e-9)


def test_aggregate_precomputed_lookup(benchmark, activity, precomputed) -> None:
    ids = itertools.cycle(range(0, CUSTOMERS, 7))
    get = precomputed.get

    def call() -> tuple[int, float] | None:
        return get(next(ids))

    _info(benchmark, activity, LOOKUP_ROUNDS * LOOKUP_ITERATIONS)
    got = benchmark.pedantic(call, rounds=LOOKUP_ROUNDS, iterations=LOOKUP_ITERATIONS, warmup_rounds=1)
    assert got is not None and got[0] >= 0
