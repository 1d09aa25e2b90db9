"""A bounded three-stage pipeline: a reader thread, scoring on the caller's thread, a writer thread.

``produce`` (on the reader thread) yields items; ``score`` (on the caller's thread, so a predictor
that spreads its own work over threads keeps them) turns each into a scored item; ``consume`` (on the
writer thread) takes the scored items in order. Two queues of ``depth`` items join the stages, so the
slowest one sets the pace and memory stays bounded (2 × ``depth`` + 3 items in flight at most).

Every stage is timed from the scoring thread's side, which is where the pace shows: how long it waited
for an input (``wait_input_s``; the first such wait is the pipeline's fill), how long it scored
(``score_s``), how long it waited to hand a scored item on because the writer was behind
(``wait_output_s``), and how long the writer took to finish after the last item was scored
(``drain_s``). Those four add up to the pipeline's wall time but for a few queue operations; the stage
that holds the largest share is what bounds it (:func:`bound_by`).

Failure: an exception in any stage stops the others (a shared event, checked between items and in
every wait) and is raised on the caller's thread as a ``BenchError`` naming the stage, with the
original as its cause; every wait is bounded by ``timeout_s`` (a stage that makes no progress for that
long fails the run) and the threads are joined within a bound too. The caller owns the output file and
its atomic rename: it renames only after :func:`run` returned.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.core.errors import BenchError
from bench.measure import metrics

#: How often a blocked stage looks at the stop flag: a failure elsewhere is seen within this.
POLL_S = 0.05
#: How much longer than ``timeout_s`` the writer waits for a scored chunk: when the reader stalls,
#: scoring (which has waited longer) reports it, rather than the writer's wait it causes.
WRITER_GRACE_S = 1.0
_DONE = object()  #: end of a stream of items


class _Stopped(Exception):
    """Raised in a stage thread that was told to stop (another stage failed)."""


@dataclass
class PipelineTimes:
    """The scoring thread's view of a pipeline run, in seconds (see the module docstring)."""

    fill_s: float = 0.0  #: waiting for the first input: read + validate + prepare of chunk 0
    wait_input_s: float = 0.0  #: waiting for inputs after the first (the reader was behind)
    score_s: float = 0.0  #: inside ``score``
    wait_output_s: float = 0.0  #: waiting to hand a scored item on (the writer was behind)
    drain_s: float = 0.0  #: after the last item was scored, until the writer was done
    wall_s: float = 0.0  #: the whole :func:`run`, thread start and join included
    items: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return dict(vars(self))


@dataclass
class _Shared:
    stop: threading.Event = field(default_factory=threading.Event)
    failures: list[tuple[str, BaseException]] = field(default_factory=list)

    def fail(self, stage: str, exc: BaseException) -> None:
        if not isinstance(exc, _Stopped):
            self.failures.append((stage, exc))
        self.stop.set()


def _put(q: queue.Queue, item: Any, shared: _Shared, timeout_s: float, what: str) -> None:
    """Put ``item`` on ``q``, waiting at most ``timeout_s`` and never past a stop."""
    waited = 0.0
    while True:
        if shared.stop.is_set():
            raise _Stopped
        try:
            q.put(item, timeout=POLL_S)
            return
        except queue.Full:
            waited += POLL_S
            if waited >= timeout_s:
                raise TimeoutError(f"{what} for longer than timeout_s={timeout_s} s") from None


def _get(q: queue.Queue, shared: _Shared, timeout_s: float, what: str) -> Any:
    """The next item of ``q``, waiting at most ``timeout_s`` and never past a stop."""
    waited = 0.0
    while True:
        if shared.stop.is_set():
            raise _Stopped
        try:
            return q.get(timeout=POLL_S)
        except queue.Empty:
            waited += POLL_S
            if waited >= timeout_s:
                raise TimeoutError(f"{what} for longer than timeout_s={timeout_s} s") from None


def _reader(produce: Callable[[], Iterable], q: queue.Queue, shared: _Shared, timeout_s: float) -> None:
    try:
        for item in produce():
            if shared.stop.is_set():
                raise _Stopped
            _put(q, item, shared, timeout_s, "the reader waited for scoring to take a chunk")
        _put(q, _DONE, shared, timeout_s, "the reader waited for scoring to take a chunk")
    except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
        shared.fail("reader", exc)


def _writer(
    consume: Callable[[Any], Any],
    q: queue.Queue,
    out: list,
    shared: _Shared,
    timeout_s: float,
    start: Callable[[], None] | None,
) -> None:
    try:
        if start is not None:
            start()
        while True:
            item = _get(q, shared, timeout_s + WRITER_GRACE_S, "the writer waited for a scored chunk")
            if item is _DONE:
                return
            out.append(consume(item))
    except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
        shared.fail("writer", exc)


def run(
    produce: Callable[[], Iterable],
    score: Callable[[Any], Any],
    consume: Callable[[Any], Any],
    *,
    depth: int = 2,
    timeout_s: float = 600.0,
    start_writer: Callable[[], None] | None = None,
) -> tuple[list, PipelineTimes]:
    """Run the three stages to the end; returns what ``consume`` returned per item, in order, and the
    scoring thread's timings. ``start_writer`` runs first on the writer thread (e.g. to open the
    output while the first item is read). Raises ``BenchError`` naming the stage that failed or stalled."""
    if depth < 1:
        raise BenchError(f"pipeline depth must be >= 1, got {depth}")
    shared = _Shared()
    inputs: queue.Queue = queue.Queue(maxsize=depth)
    outputs: queue.Queue = queue.Queue(maxsize=depth)
    consumed: list = []
    times = PipelineTimes()
    threads = [
        threading.Thread(target=_reader, args=(produce, inputs, shared, timeout_s), name="batch-reader", daemon=True),
        threading.Thread(
            target=_writer,
            args=(consume, outputs, consumed, shared, timeout_s, start_writer),
            name="batch-writer",
            daemon=True,
        ),
    ]
    with metrics.stopwatch() as wall:
        for t in threads:
            t.start()
        try:
            while True:
                with metrics.stopwatch() as waited:
                    item = _get(inputs, shared, timeout_s, "scoring waited for the reader")
                if times.items == 0:
                    times.fill_s = waited[0]
                else:
                    times.wait_input_s += waited[0]
                if item is _DONE:
                    break
                with metrics.stopwatch() as scored:
                    result = score(item)
                times.score_s += scored[0]
                times.items += 1
                with metrics.stopwatch() as waited:
                    _put(outputs, result, shared, timeout_s, "scoring waited for the writer")
                times.wait_output_s += waited[0]
            with metrics.stopwatch() as drained:
                _put(outputs, _DONE, shared, timeout_s, "scoring waited for the writer")
                _join(threads[1], shared, timeout_s)
            times.drain_s = drained[0]
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other stages stopped
            shared.fail("score", exc)
        finally:
            for t in threads:  # a stage stops within POLL_S of a failure; one stuck in a native call is bounded
                t.join(timeout=timeout_s)
    times.wall_s = wall[0]
    alive = [t.name for t in threads if t.is_alive()]
    if shared.failures:
        stage, exc = shared.failures[0]
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not the pipeline's to rename
            raise exc
        if isinstance(exc, TimeoutError):
            raise BenchError(f"batch pipeline stalled in the {stage} stage: {exc}") from exc
        if isinstance(exc, BenchError):
            raise exc
        raise BenchError(f"the batch {stage} stage failed: {type(exc).__name__}: {exc}") from exc
    if alive:
        raise BenchError(f"batch pipeline thread(s) {alive} did not stop within {timeout_s} s")
    return consumed, times


def _join(thread: threading.Thread, shared: _Shared, timeout_s: float) -> None:
    """Wait for ``thread`` to end (at most ``timeout_s``), stopping early if a stage failed."""
    waited = 0.0
    while thread.is_alive():
        if shared.stop.is_set():
            raise _Stopped
        thread.join(timeout=POLL_S)
        waited += POLL_S
        if waited >= timeout_s:
            raise TimeoutError(f"the writer took longer than timeout_s={timeout_s} s to finish")


def bound_by(times: PipelineTimes, input_phases: dict[str, float]) -> str:
    """The stage that set a pipeline run's pace, from the scoring thread's timings: ``score`` when
    scoring took the largest share of the wall time; the slowest input phase (``read``, ``validate``
    or ``prepare``, by its summed seconds) when waiting for inputs did (the fill included); ``write``
    when waiting for the writer and its drain did."""
    shares = {
        "score": times.score_s,
        "input": times.fill_s + times.wait_input_s,
        "write": times.wait_output_s + times.drain_s,
    }
    stage = max(shares, key=lambda k: shares[k])
    if stage == "input":
        return max(input_phases, key=lambda k: input_phases[k]) if input_phases else "read"
    return stage


def run_sequential(
    produce: Callable[[], Iterable], score: Callable[[Any], Any], consume: Callable[[Any], Any]
) -> tuple[list, PipelineTimes]:
    """The same stages one after another on the caller's thread, timed as :func:`run` times them:
    producing an item counts as waiting for input, consuming it as waiting for the writer."""
    consumed: list = []
    times = PipelineTimes()
    with metrics.stopwatch() as wall:
        items = iter(produce())
        while True:
            with metrics.stopwatch() as waited:
                item = next(items, _DONE)
            if times.items == 0:
                times.fill_s = waited[0]
            else:
                times.wait_input_s += waited[0]
            if item is _DONE:
                break
            with metrics.stopwatch() as scored:
                result = score(item)
            times.score_s += scored[0]
            times.items += 1
            with metrics.stopwatch() as waited:
                consumed.append(consume(result))
            times.wait_output_s += waited[0]
    times.wall_s = wall[0]
    return consumed, times
