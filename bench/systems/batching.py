"""Dynamic batching on the server's event loop, as Triton's dynamic batcher or Ray Serve's
``@serve.batch`` do it: requests join a queue, a batch closes at ``batch_max`` rows or
``batch_wait_s`` after its first row, is scored with one ``predict`` call, and each request gets its
own score back with what it waited.

One batcher per worker process, on its one event loop; no lock. The predict call runs on the loop:
while it runs, new requests wait in the socket buffers, as they would behind a single-threaded
model. With ``batch_wait_s`` 0 a batch is what has queued by the next loop pass (requests that
arrived together), never a wait for more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scored:
    """One request's answer from a batch: its score, the batch's size, and where its time went."""

    score: float
    batch: int  #: rows in the batch this request was scored in
    queue_s: float  #: from joining the queue to its batch's predict call starting
    predict_s: float  #: the batch's predict call


class DynamicBatcher:
    """Queue rows, score them in batches of at most ``batch_max``, closing a batch ``batch_wait_s``
    after its first row at the latest."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], batch_max: int, batch_wait_s: float) -> None:
        if batch_max < 1 or not batch_wait_s >= 0:
            raise ValueError(f"batch_max must be >= 1 and batch_wait_s >= 0, got {batch_max}, {batch_wait_s}")
        self.predict, self.batch_max, self.batch_wait_s = predict, batch_max, batch_wait_s
        self._rows: list[np.ndarray] = []
        self._waiters: list[tuple[asyncio.Future, float]] = []
        self._timer: asyncio.Handle | None = None

    async def score(self, row: np.ndarray) -> Scored:
        """``row``'s score, once its batch has been scored; raises what the batch's predict raised."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._rows.append(row)
        self._waiters.append((future, time.perf_counter()))
        if len(self._rows) >= self.batch_max:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.batch_wait_s, self.flush)
        return await future

    def flush(self) -> None:
        """Score what is queued now (at most ``batch_max`` rows) and answer each waiter."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rows, waiters = self._rows[: self.batch_max], self._waiters[: self.batch_max]
        del self._rows[: self.batch_max], self._waiters[: self.batch_max]
        if self._rows:  # more than a batch queued while the loop was busy: the rest goes next pass
            self._timer = asyncio.get_running_loop().call_soon(self.flush)
        if not rows:
            return
        t0 = time.perf_counter()
        try:
            scores = self.predict(np.stack(rows))
        except Exception as exc:  # every request of the batch gets the error; the server keeps serving
            for future, _ in waiters:
                if not future.done():
                    future.set_exception(exc)
            return
        took = time.perf_counter() - t0
        n = len(rows)
        for (future, joined), s in zip(waiters, scores.tolist(), strict=True):
            if not future.done():  # a client that went away has had its future cancelled
                future.set_result(Scored(s, n, t0 - joined, took))
