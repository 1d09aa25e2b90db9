"""The micro-batcher: source, batcher and sink of one streaming window, over any pool of scorers.

Events arrive at the intended times of a schedule (open loop: the source never waits for scoring);
a batch closes at ``max_batch`` events or ``max_wait_s`` after its first event, whichever comes
first, and goes to the least-busy live scorer, at most ``inflight_limit`` batches in flight in all;
closed batches beyond that wait in a backlog whose depth is recorded over time. The sink keeps each
event's first score (a retried batch can deliver twice: duplicates are removed by event id and
counted) and its end-to-end latency from the intended arrival time.

Every wait is bounded: a batch not answered within ``batch_timeout_s`` is sent again to another
scorer, a failed batch is retried (up to ``max_attempts``, then its events are lost), and the window
ends by its deadline whatever is still queued. The pool is a small interface (``Pool``): the Ray
actor pool (``pool.RayPool``) is one implementation, an in-memory fake in the unit tests another.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bench.measure import load, metrics

#: status of events whose batch failed on every attempt (lost, unless the sink has them)
FAILED = load.CONN_ERROR


class BatchFailed(Exception):
    """A batch's attempt got no scores; ``actor_down`` if its scorer died (or is restarting)."""

    def __init__(self, message: str, actor_down: bool) -> None:
        super().__init__(message)
        self.actor_down = actor_down


class Pool(Protocol):
    """What the batcher needs of the scorers: pick, submit, wait, fetch, mark down, cancel."""

    pids: list[int]  #: each scorer's process (for fault events)
    events: list[dict]  #: faults and what followed, appended by the pool and the batcher

    def pick(self, avoid: int | None = None) -> int | None:
        """The live scorer with the fewest batches in flight, other than ``avoid`` if another is live
        (None while every one is down)."""

    def submit(self, actor: int, lo: int, hi: int, crash: bool = False) -> Hashable:
        """Send the window's events ``[lo, hi)`` to scorer ``actor`` (counted in flight there): the
        scorer reads their rows from the event table it holds; ``crash``: it dies mid-batch."""

    def release(self, actor: int) -> None:
        """One batch of ``actor``'s is no longer in flight (answered, failed or given up on)."""

    def reset(self) -> None:
        """Nothing is in flight any more (the window ended)."""

    def wait(self, handles: Sequence[Hashable], timeout_s: float) -> list[Hashable]:
        """Every handle answered by now, waiting up to ``timeout_s`` for the first (maybe none)."""

    def fetch(self, handle: Hashable, timeout_s: float) -> np.ndarray:
        """The scores of an answered handle; raises ``BatchFailed``."""

    def mark_down(self, actor: int, meter: metrics.CpuMeter | None) -> None:
        """Take a failed scorer out of rotation until it answers again."""

    def cancel(self, handles: Sequence[Hashable]) -> None:
        """Give up on handles still running (best effort)."""


@dataclass(frozen=True)
class Policy:
    """How the batcher closes, dispatches and retries batches (from ``MicrobatchParams``)."""

    max_batch: int
    max_wait_s: float
    inflight_limit: int
    batch_timeout_s: float
    max_attempts: int
    drain_timeout_s: float  #: after the last arrival, how long the window waits for the backlog
    warmup_s: float = 0.0  #: events intended before this are left out of the hop breakdown


@dataclass
class Batch:
    lo: int  #: events [lo, hi) of the window: events arrive in order, so a batch is a range
    hi: int
    closed_by: str  #: "size", "wait" or "end"
    attempt: int = 1
    actor: int = 0
    sent_s: float = 0.0


def rows(table: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Events ``[lo, hi)`` of a window that cycles through ``table``: a view (no copy) unless the
    range wraps past the table's end."""
    m = len(table)
    start = lo % m
    if start + (hi - lo) <= m:
        return table[start : start + (hi - lo)]
    return table[np.arange(lo, hi) % m]


class MicroBatcher:
    """One window: replay ``schedule`` through the batcher and ``pool`` (which holds the event table);
    ``run()`` returns per-event observations and the stream's own record (deliveries, batches, backlog
    depth over time). ``expected``: each table row's ``predict()`` score, every delivery checked against it.

    ``clock`` and ``sleep`` are the window's time (``time.perf_counter``/``time.sleep``; a fake in
    tests). ``fault_at_s``: the first batch sent after this time crashes its scorer.
    """

    def __init__(
        self,
        pool: Pool,
        expected: np.ndarray,
        schedule: np.ndarray,
        policy: Policy,
        *,
        fault_at_s: float | None = None,
        meter: metrics.CpuMeter | None = None,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.pool, self.expected, self.schedule, self.policy = pool, expected, schedule, policy
        self.fault_at_s, self.meter, self.clock, self.sleep = fault_at_s, meter, clock, sleep
        n = self.n = schedule.size
        self.rec = load.Recorder(schedule)
        self.delivered = np.zeros(n, np.int32)
        self.inflight: dict[Hashable, Batch] = {}  # the live attempt of each batch
        self.stale: dict[Hashable, Batch] = {}  # attempts superseded by a retry (a late answer is a duplicate)
        self.backlog: deque[Batch] = deque()
        self.batches: list[Batch] = []
        self.closed = np.full(n, np.nan)  #: when each event's batch closed (window clock)
        self.depth: list[tuple[float, int, int]] = []
        self.counts = {"retries": 0, "timeouts": 0, "failed_batches": 0, "duplicates_removed": 0, "mismatches": 0}
        self.arrived = self.opened = 0  # events arrived so far; first event of the open batch
        self.waiting = self.peak = 0  # events in closed batches not yet sent; most events queued at once
        self.fault_done, self.crash_next = fault_at_s is None, False
        self.deadline = float(schedule[-1]) + policy.drain_timeout_s if n else 0.0

    # -- dispatch and answers ---------------------------------------------------------------

    def _submit(self, b: Batch, now: float, avoid: int | None = None) -> bool:
        pool = self.pool
        actor = pool.pick(avoid)
        if actor is None:
            return False
        b.actor = actor
        crash = self.crash_next
        if crash and self.meter is not None:
            self.meter.sample()  # the actor about to die: its CPU up to now still counts
        handle = pool.submit(actor, b.lo, b.hi, crash)
        if crash:
            pool.events.append({"kind": "actor_crashed", "actor": actor, "pid": pool.pids[actor], "at_s": now})
            self.crash_next = False
        if b.attempt == 1:
            self.rec.sent[b.lo : b.hi] = now
        b.sent_s = now
        self.inflight[handle] = b
        return True

    def _retry(self, b: Batch, now: float) -> None:
        self.counts["retries"] += 1
        if b.attempt >= self.policy.max_attempts:
            self.counts["failed_batches"] += 1
            undelivered = self.delivered[b.lo : b.hi] == 0
            self.rec.status[b.lo : b.hi][undelivered] = FAILED
            self.rec.done[b.lo : b.hi][undelivered] = now
            return
        again = Batch(b.lo, b.hi, b.closed_by, b.attempt + 1)
        # Another actor if there is one: the one that failed or did not answer may do so again.
        if not self._submit(again, now, avoid=b.actor):
            self.backlog.appendleft(again)  # every actor is down: first in line when one is back
            self.waiting += again.hi - again.lo

    def _deliver(self, handle: Hashable, b: Batch, now: float, superseded: bool) -> None:
        try:
            scores = self.pool.fetch(handle, self.policy.batch_timeout_s)
        except BatchFailed as exc:
            if exc.actor_down:
                self.pool.mark_down(b.actor, self.meter)
            if superseded:
                return  # a superseded attempt failed: its retry is already out
            self._retry(b, now)
            return
        rec, lo, hi = self.rec, b.lo, b.hi
        got = self.delivered[lo:hi]
        if not got.any():  # the usual case: no event of the batch delivered before (slices, no index arrays)
            got += 1
            rec.done[lo:hi] = now
            rec.scores[lo:hi] = scores
            rec.status[lo:hi] = 200
            self.counts["mismatches"] += int(np.count_nonzero(scores != rows(self.expected, lo, hi)))
            return
        first = got == 0
        self.counts["duplicates_removed"] += int((~first).sum())
        got += 1
        new = np.arange(lo, hi)[first]
        rec.done[new] = now
        rec.scores[new] = scores[first]
        rec.status[new] = 200
        self.counts["mismatches"] += int(np.sum(scores[first] != self.expected[new % len(self.expected)]))

    # -- one turn of the loop ---------------------------------------------------------------

    def _close(self, b: Batch, now: float) -> None:
        self.closed[b.lo : b.hi] = now
        self.backlog.append(b)
        self.batches.append(b)
        self.waiting += b.hi - b.lo
        self.opened = b.hi

    def _arrive_and_close(self, now: float) -> None:
        """The source: events whose time has come join the open batch; full or old batches close."""
        k = int(np.searchsorted(self.schedule, now, side="right"))
        if k > self.arrived:
            self.rec.issued[self.arrived : k] = now
            self.arrived = k
        max_batch = self.policy.max_batch
        while self.arrived - self.opened >= max_batch:
            self._close(Batch(self.opened, self.opened + max_batch, "size"), now)
        arrived, opened = self.arrived, self.opened
        if arrived > opened and (arrived == self.n or now - self.rec.issued[opened] >= self.policy.max_wait_s):
            self._close(Batch(opened, arrived, "end" if arrived == self.n else "wait"), now)
        self.peak = max(self.peak, (self.arrived - self.opened) + self.waiting)  # a burst's whole size counts

    def _dispatch(self, now: float) -> None:
        backlog = self.backlog
        while backlog and len(self.inflight) < self.policy.inflight_limit and self._submit(backlog[0], now):
            b = backlog.popleft()
            self.waiting -= b.hi - b.lo

    def _resend_unanswered(self, now: float) -> None:
        """An actor that does not answer: send the batch again (its late answer is a duplicate)."""
        for handle, b in list(self.inflight.items()):
            if now - b.sent_s > self.policy.batch_timeout_s:
                self.counts["timeouts"] += 1
                self.stale[handle] = self.inflight.pop(handle)
                self.pool.release(b.actor)
                self._retry(b, now)

    def _collect(self, wake: float, t0: float) -> None:
        """Wait up to ``wake`` for answers and take in every one that came."""
        handles = list(self.inflight) + list(self.stale)
        if not handles:
            if wake > 0:
                self.sleep(wake)
            return
        ready = self.pool.wait(handles, wake)
        now = self.clock() - t0
        for handle in ready:
            if handle in self.stale:
                self._deliver(handle, self.stale.pop(handle), now, superseded=True)
            else:
                b = self.inflight.pop(handle)
                self.pool.release(b.actor)
                self._deliver(handle, b, now, superseded=False)

    def run(self) -> tuple[load.Observations, dict]:
        n, schedule, rec = self.n, self.schedule, self.rec
        max_wait = self.policy.max_wait_s
        next_depth = 0.0
        # The caller pauses the cyclic GC (``load.quiet_gc``) around the window: its full collection of the
        # driver's heap (~0.3 s with Ray loaded) must be in neither the window's time nor its CPU.
        t0 = self.clock() + 0.01
        while True:
            now = self.clock() - t0
            self._arrive_and_close(now)
            self._dispatch(now)
            if not self.fault_done and now >= self.fault_at_s:
                self.crash_next, self.fault_done = True, True
            self._resend_unanswered(now)
            if now >= next_depth:
                queued = (self.arrived - self.opened) + self.waiting
                self.depth.append((now, queued, sum(b.hi - b.lo for b in self.inflight.values())))
                next_depth = now + 0.05
            arrived, opened = self.arrived, self.opened
            if arrived == n and opened == n and not self.backlog and not self.inflight:
                break
            if now > self.deadline:
                break
            # Sleep until the next arrival, the open batch's deadline or an answer, at most 5 ms.
            wake = float(schedule[arrived]) - now if arrived < n else 0.005
            if arrived > opened:
                wake = min(wake, float(rec.issued[opened]) + max_wait - now)
            wake = min(max(wake, 0.0), 0.005)
            self._collect(wake, t0)
        duration = self.clock() - t0
        self.pool.cancel(list(self.inflight) + list(self.stale))  # the deadline passed: leave nothing running
        self.pool.reset()
        return rec.result(duration), self._record()

    def _hops(self) -> dict | None:
        """Where a delivered event's time went (measured events, after the warm-up): the source's lag
        (arrival − intended), the wait for its batch to close, the wait in the backlog for a free
        actor, and the round trip (to the actor, its scoring, the answer back into the sink)."""
        r = self.rec
        ok = (r.status == 200) & (r.intended >= self.policy.warmup_s) & ~np.isnan(self.closed)
        if not ok.any():
            return None
        parts = {
            "source_lag_s": r.issued - r.intended,
            "batch_wait_s": self.closed - r.issued,
            "backlog_wait_s": r.sent - self.closed,
            "round_trip_s": r.done - r.sent,
            "latency_s": r.done - r.intended,
        }
        return {k: metrics.latency_summary(np.clip(v[ok], 0, None)) for k, v in parts.items()}

    def _record(self) -> dict:
        batches, rec, delivered = self.batches, self.rec, self.delivered
        sizes = np.array([b.hi - b.lo for b in batches], dtype=np.float64)
        unfinished = int(((delivered == 0) & (rec.status != FAILED)).sum())
        depth = self.depth
        return {
            "offered_events": int(self.n),
            "delivered_events": int((delivered > 0).sum()),
            "lost_events": int((rec.status == FAILED).sum()),
            "unfinished_at_deadline": unfinished,
            **self.counts,
            "batches": len(batches),
            "batch_size": metrics.latency_summary(sizes) if sizes.size else None,
            "batches_closed_by": {r: sum(1 for b in batches if b.closed_by == r) for r in ("size", "wait", "end")},
            "hops": self._hops(),
            "backlog": {
                "t_s": [round(t, 3) for t, _, _ in depth],
                "queued_events": [q for _, q, _ in depth],
                "inflight_events": [f for _, _, f in depth],
                "max_queued_events": self.peak,
            },
        }
