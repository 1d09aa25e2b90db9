"""The dynamic batcher: batches close at batch_max or after batch_wait_s, each request gets its own
row's score, a failing predict fails its batch only."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bench.systems.batching import DynamicBatcher


def _sum_rows(calls: list[int]):
    def predict(X: np.ndarray) -> np.ndarray:
        calls.append(len(X))
        return X.sum(axis=1)

    return predict


def test_requests_arriving_together_share_a_batch_of_at_most_batch_max():
    calls: list[int] = []
    b = DynamicBatcher(_sum_rows(calls), batch_max=4, batch_wait_s=0.05)

    async def main():
        return await asyncio.gather(*(b.score(np.array([float(i), 1.0])) for i in range(10)))

    got = asyncio.run(main())
    assert [g.score for g in got] == [i + 1.0 for i in range(10)]
    assert calls == [4, 4, 2]  # two full batches at once, the rest when its wait ran out
    assert [g.batch for g in got] == [4] * 8 + [2] * 2
    assert all(g.queue_s >= 0 and g.predict_s >= 0 for g in got)
    assert got[-1].queue_s >= 0.04  # the last two waited for batch_wait_s (50 ms)


def test_a_lone_request_waits_at_most_batch_wait_and_zero_wait_batches_what_has_queued():
    calls: list[int] = []

    async def lone():
        b = DynamicBatcher(_sum_rows(calls), batch_max=8, batch_wait_s=0.01)
        return await b.score(np.array([2.0]))

    got = asyncio.run(lone())
    assert got.batch == 1 and got.score == 2.0 and 0.005 < got.queue_s < 1.0

    async def together():
        b = DynamicBatcher(_sum_rows(calls), batch_max=8, batch_wait_s=0.0)
        return await asyncio.gather(*(b.score(np.array([1.0])) for _ in range(3)))

    assert [g.batch for g in asyncio.run(together())] == [3, 3, 3]


def test_a_failing_predict_fails_its_batch_and_the_next_batch_is_scored():
    state = {"fail": True}

    def predict(X: np.ndarray) -> np.ndarray:
        if state["fail"]:
            state["fail"] = False
            raise RuntimeError("boom")
        return X[:, 0]

    b = DynamicBatcher(predict, batch_max=2, batch_wait_s=0.01)

    async def main():
        first = await asyncio.gather(*(b.score(np.array([1.0])) for _ in range(2)), return_exceptions=True)
        second = await b.score(np.array([5.0]))
        return first, second

    first, second = asyncio.run(main())
    assert all(isinstance(e, RuntimeError) for e in first)
    assert second.score == 5.0


@pytest.mark.parametrize(("batch_max", "wait"), [(0, 0.0), (2, -1.0), (2, float("nan"))])
def test_bad_settings_are_refused(batch_max, wait):
    with pytest.raises(ValueError, match="batch_max must be >= 1"):
        DynamicBatcher(lambda X: X, batch_max, wait)
