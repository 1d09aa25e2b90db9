"""The batch pipeline (reader thread → scoring on the caller's thread → writer thread) on plain items.

No data, no model: stages are small functions, so each test checks one property (order, bounded
memory, a failing or stalled stage, the wall-time split, the bound) in milliseconds. Sleeps are used
only where a stage must be slow; no test asserts a speed, and every wait the tests make is bounded.
"""

from __future__ import annotations

import threading
import time

import pytest

from bench.core.errors import BenchError
from bench.patterns.batch import pipeline
from bench.patterns.batch.pipeline import PipelineTimes, bound_by


def _items(n: int):
    return lambda: iter(range(n))


def test_every_item_is_scored_and_consumed_in_order() -> None:
    consumed, times = pipeline.run(_items(50), lambda x: x * 2, lambda y: y + 1, depth=2, timeout_s=10)
    assert consumed == [2 * i + 1 for i in range(50)]
    assert times.items == 50
    parts = times.fill_s + times.wait_input_s + times.score_s + times.wait_output_s + times.drain_s
    assert 0 <= parts <= times.wall_s


def test_sequential_gives_the_same_items_and_split() -> None:
    consumed, times = pipeline.run_sequential(_items(7), lambda x: x * 2, lambda y: y + 1)
    assert consumed == [2 * i + 1 for i in range(7)]
    assert times.items == 7 and times.drain_s == 0.0


def test_no_items() -> None:
    consumed, times = pipeline.run(_items(0), lambda x: x, lambda y: y, depth=1, timeout_s=10)
    assert consumed == [] and times.items == 0


def test_items_in_flight_stay_bounded_behind_a_slow_writer() -> None:
    depth = 2
    lock = threading.Lock()
    state = {"produced": 0, "consumed": 0, "most": 0}

    def produce():
        for i in range(30):
            with lock:
                state["produced"] += 1
                state["most"] = max(state["most"], state["produced"] - state["consumed"])
            yield i

    def consume(y):
        time.sleep(0.002)
        with lock:
            state["consumed"] += 1
        return y

    consumed, _ = pipeline.run(produce, lambda x: x, consume, depth=depth, timeout_s=10)
    assert consumed == list(range(30))
    assert state["most"] <= 2 * depth + 3


@pytest.mark.parametrize("stage", ["reader", "score", "writer"])
def test_a_failing_stage_fails_the_run_naming_it(stage: str) -> None:
    def produce():
        for i in range(100):
            if stage == "reader" and i == 5:
                raise ValueError("bad chunk")
            yield i

    def score(x):
        if stage == "score" and x == 5:
            raise ValueError("bad chunk")
        return x

    seen = []

    def consume(y):
        if stage == "writer" and y == 5:
            raise ValueError("bad chunk")
        seen.append(y)
        return y

    t0 = time.monotonic()
    with pytest.raises(BenchError, match=f"the batch {stage} stage failed: ValueError: bad chunk") as info:
        pipeline.run(produce, score, consume, depth=2, timeout_s=30)
    assert time.monotonic() - t0 < 10  # the others stopped on the failure, not on the 30 s bound
    assert isinstance(info.value.__cause__, ValueError)
    assert 5 not in seen and len(seen) < 100
    assert not [t for t in threading.enumerate() if t.name in ("batch-reader", "batch-writer")]


def test_a_bench_error_in_a_stage_keeps_its_message() -> None:
    def produce():
        yield 1
        raise BenchError("data.parquet rows 1..2: column 'age' has 1 null(s)")

    with pytest.raises(BenchError, match=r"^data.parquet rows 1..2: column 'age' has 1 null\(s\)$"):
        pipeline.run(produce, lambda x: x, lambda y: y, depth=1, timeout_s=10)


def test_a_stalled_reader_fails_the_run_within_the_bound() -> None:
    release = threading.Event()

    def produce():
        yield 0
        release.wait(20)  # stuck, as a read that never returns
        yield 1

    t0 = time.monotonic()
    try:
        with pytest.raises(BenchError, match="stalled in the score stage: scoring waited for the reader"):
            pipeline.run(produce, lambda x: x, lambda y: y, depth=1, timeout_s=0.3)
        assert time.monotonic() - t0 < 5
    finally:
        release.set()


def test_a_slow_writer_is_what_bounds() -> None:
    def consume(y):
        time.sleep(0.03)
        return y

    _, times = pipeline.run(_items(8), lambda x: x, consume, depth=1, timeout_s=10)
    assert bound_by(times, {"read": 0.0}) == "write"
    assert times.wait_output_s + times.drain_s > times.score_s


@pytest.mark.parametrize(
    ("times", "inputs", "expected"),
    [
        (PipelineTimes(fill_s=0.1, wait_input_s=0.0, score_s=2.0, wait_output_s=0.1, drain_s=0.1), {}, "score"),
        (
            PipelineTimes(fill_s=0.5, wait_input_s=1.0, score_s=1.0),
            {"read": 1.2, "validate": 0.1, "prepare": 0.4},
            "read",
        ),
        (PipelineTimes(fill_s=0.1, wait_input_s=2.0, score_s=1.0), {"read": 0.2, "prepare": 1.9}, "prepare"),
        (PipelineTimes(score_s=1.0, wait_output_s=0.9, drain_s=0.2), {"read": 5.0}, "write"),
    ],
)
def test_bound_by(times: PipelineTimes, inputs: dict, expected: str) -> None:
    assert bound_by(times, inputs) == expected


def test_depth_must_be_positive() -> None:
    with pytest.raises(BenchError, match="depth"):
        pipeline.run(_items(1), lambda x: x, lambda y: y, depth=0)
