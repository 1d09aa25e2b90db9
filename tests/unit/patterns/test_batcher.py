"""The micro-batcher over an in-memory pool on a fake clock: closing, dispatch, retries, timeouts, duplicates.

No Ray, no sleeping: the fake clock moves only when the batcher sleeps or waits on the pool, so each
test replays a window deterministically in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from bench.patterns.microbatch.batcher import FAILED, BatchFailed, MicroBatcher, Policy
from bench.patterns.microbatch.batcher import rows as batch_rows


class Clock:
    """Fake time: moves when the batcher sleeps or waits, and a microsecond per reading (a loop's
    turn costs time; a clock that never moved could spin on a rounding error)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1e-6
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sent:
    actor: int
    lo: float  #: first row's value (rows are their own event index, see ``_table``)
    size: int
    at: float  #: clock time of the send
    answer_at: float  #: clock time the answer is ready (inf: never)
    fails: BatchFailed | None


@dataclass
class FakePool:
    """``batcher.Pool`` in memory: scorer ``i`` answers after ``service_s[i]`` seconds (inf: never),
    with ``predict(rows) = rows[:, 0]``; ``failures[i]`` lists how its next batches fail (None: ok),
    ``delays[i]`` how long its next batches take instead."""

    clock: Clock
    service_s: list[float]
    failures: dict[int, list[BatchFailed | None]] = field(default_factory=dict)
    delays: dict[int, list[float]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    down: set[int] = field(default_factory=set)
    cancelled: list[int] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    table: np.ndarray | None = None  #: the event table the scorers read a batch's rows from

    def __post_init__(self) -> None:
        self.pids = [1000 + i for i in range(len(self.service_s))]
        self.inflight = [0] * len(self.service_s)
        self._rows: dict[int, np.ndarray] = {}

    def pick(self, avoid: int | None = None) -> int | None:
        up = [i for i in range(len(self.service_s)) if i not in self.down]
        if avoid is not None and len(up) > 1:
            up = [i for i in up if i != avoid]
        return min(up, key=self.inflight.__getitem__) if up else None

    def submit(self, actor: int, lo: int, hi: int, crash: bool = False) -> int:
        rows = batch_rows(self.table, lo, hi)
        script = self.failures.get(actor, [])
        fails = script.pop(0) if script else None
        delays = self.delays.get(actor, [])
        service = delays.pop(0) if delays else self.service_s[actor]
        handle = len(self.sent)
        self.sent.append(Sent(actor, rows[0, 0], len(rows), self.clock.now, self.clock.now + service, fails))
        self._rows[handle] = rows.copy()
        self.inflight[actor] += 1
        return handle

    def release(self, actor: int) -> None:
        self.inflight[actor] -= 1

    def reset(self) -> None:
        self.inflight = [0] * len(self.service_s)

    def wait(self, handles, timeout_s: float) -> list[int]:
        first = min(self.sent[h].answer_at for h in handles)
        if first > self.clock.now + timeout_s:
            self.clock.now += timeout_s
            return []
        self.clock.now = max(self.clock.now, first)
        return [h for h in handles if self.sent[h].answer_at <= self.clock.now]

    def fetch(self, handle: int, timeout_s: float) -> np.ndarray:
        if self.sent[handle].fails is not None:
            raise self.sent[handle].fails
        return self._rows[handle][:, 0]

    def mark_down(self, actor: int, meter) -> None:
        self.down.add(actor)

    def cancel(self, handles) -> None:
        self.cancelled.extend(handles)


def _table(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose first column is the event index: a delivered score names its event."""
    X = np.stack([np.arange(n, dtype=np.float64), np.ones(n)], axis=1)
    return X, X[:, 0].copy()


def _policy(**kw) -> Policy:
    base = {
        "max_batch": 4,
        "max_wait_s": 0.010,
        "inflight_limit": 4,
        "batch_timeout_s": 1.0,
        "max_attempts": 3,
        "drain_timeout_s": 2.0,
    }
    return Policy(**{**base, **kw})


def _run(schedule, service_s, policy=None, failures=None, delays=None, n_table=None):
    clock = Clock()
    pool = FakePool(clock, list(service_s), failures or {}, delays or {})
    X, expected = _table(n_table or len(schedule))
    pool.table = X
    batcher = MicroBatcher(
        pool, expected, np.asarray(schedule, dtype=np.float64), policy or _policy(), clock=clock, sleep=clock.sleep
    )
    obs, stream = batcher.run()
    return obs, stream, pool


def test_a_batch_closes_at_max_batch_events():
    obs, stream, pool = _run(np.zeros(10), [0.001])
    assert [s.size for s in pool.sent] == [4, 4, 2]
    assert stream["batches_closed_by"] == {"size": 2, "wait": 0, "end": 1}
    assert stream["delivered_events"] == 10 and stream["mismatches"] == 0
    assert np.array_equal(obs.scores, np.arange(10.0)) and (obs.status == 200).all()


def test_a_batch_closes_max_wait_after_its_first_event():
    obs, stream, pool = _run([0.0, 0.002, 0.004, 0.5], [0.001], _policy(max_batch=100, max_wait_s=0.010))
    first = pool.sent[0]
    assert first.size == 3
    assert stream["batches_closed_by"] == {"size": 0, "wait": 1, "end": 1}
    # sent when the first event is 10 ms old, within the loop's 5 ms nap: not at the third event's arrival
    assert 0.010 <= obs.sent[0] - obs.issued[0] < 0.016
    assert np.all(obs.sent[:3] == obs.sent[0]) and obs.sent[3] > 0.5


def test_batches_go_to_the_least_busy_live_actor():
    # actor 0 holds its first batch for a long time; the others go to actor 1, which answers at once
    _, stream, pool = _run(np.repeat([0.0, 0.1, 0.2, 0.3], 4), [1.0, 0.001])
    assert [s.actor for s in pool.sent] == [0, 1, 1, 1]
    assert stream["delivered_events"] == 16


def test_a_failed_batch_is_retried_on_another_actor():
    dead = BatchFailed("actor died", actor_down=True)
    obs, stream, pool = _run(np.zeros(4), [0.001, 0.001], failures={0: [dead]})
    assert [s.actor for s in pool.sent] == [0, 1] and pool.down == {0}
    assert stream["retries"] == 1 and stream["lost_events"] == 0 and stream["delivered_events"] == 4
    assert (obs.status == 200).all() and np.array_equal(obs.scores, np.arange(4.0))


def test_a_batch_failing_every_attempt_loses_its_events():
    err = BatchFailed("task error", actor_down=False)  # the actors live: they stay in rotation
    obs, stream, pool = _run(np.zeros(4), [0.001, 0.001], _policy(max_attempts=3), failures={0: [err] * 2, 1: [err]})
    assert [s.actor for s in pool.sent] == [0, 1, 0]  # each retry on the other actor
    assert stream["failed_batches"] == 1 and stream["retries"] == 3  # the last "retry" gives up
    assert stream["lost_events"] == 4 and stream["delivered_events"] == 0
    assert (obs.status == FAILED).all() and not pool.down


def test_a_batch_lost_on_some_attempts_is_delivered_by_a_later_one():
    err = BatchFailed("task error", actor_down=False)
    obs, stream, _ = _run(np.zeros(4), [0.001, 0.001], _policy(max_attempts=3), failures={0: [err], 1: [err]})
    assert stream["retries"] == 2 and stream["failed_batches"] == 0 and stream["lost_events"] == 0
    assert (obs.status == 200).all()


def test_an_unanswered_batch_is_sent_again_after_batch_timeout():
    obs, stream, pool = _run(np.zeros(4), [float("inf"), 0.001], _policy(batch_timeout_s=0.05))
    assert [s.actor for s in pool.sent] == [0, 1]
    assert pool.sent[1].at - pool.sent[0].at == pytest.approx(0.05, abs=0.006)
    assert stream["timeouts"] == 1 and stream["retries"] == 1 and stream["delivered_events"] == 4
    assert stream["duplicates_removed"] == 0
    assert pool.cancelled == [0]  # the window ended: the superseded attempt is given up on
    # latency still counts from the intended time: the timeout is in it
    assert (obs.done - obs.intended).min() >= 0.05


def test_a_late_duplicate_answer_is_removed_by_event_id_and_counted():
    # actor 0 answers after 0.2 s, past the 0.05 s timeout: the retry on actor 1 answers first; a later
    # event keeps the window open until the late answer arrives
    obs, stream, pool = _run(
        [0.0, 0.0, 0.0, 0.0, 0.5], [0.001, 0.001], _policy(batch_timeout_s=0.05), delays={0: [0.2]}
    )
    assert stream["timeouts"] == 1 and stream["duplicates_removed"] == 4
    assert stream["delivered_events"] == 5 and stream["mismatches"] == 0
    assert np.array_equal(obs.scores, np.arange(5.0))
    # the first answer (actor 1's) is the one kept
    assert obs.done[:4].max() < 0.2


def test_a_superseded_attempt_that_fails_is_not_retried_again():
    dead = BatchFailed("actor died", actor_down=True)
    _, stream, pool = _run(
        [0.0, 0.0, 0.0, 0.0, 0.5],
        [0.001, 0.001],
        _policy(batch_timeout_s=0.05),
        failures={0: [dead]},
        delays={0: [0.2]},
    )
    # the timeout re-send, then the last event's batch (actor 0 is down)
    assert [s.actor for s in pool.sent] == [0, 1, 1]
    assert stream["retries"] == 1 and stream["delivered_events"] == 5 and pool.down == {0}


def test_the_window_ends_by_its_deadline_when_every_actor_is_down():
    dead = BatchFailed("actor died", actor_down=True)
    obs, stream, pool = _run(np.zeros(4), [0.001], _policy(drain_timeout_s=0.5), failures={0: [dead]})
    assert stream["unfinished_at_deadline"] == 4 and stream["lost_events"] == 0
    assert obs.duration_s == pytest.approx(0.5, abs=0.02)
    assert stream["backlog"]["max_queued_events"] == 4


def test_the_fault_crashes_the_first_batch_sent_after_it():
    clock = Clock()
    pool = FakePool(clock, [0.001, 0.001])
    X, expected = _table(8)
    pool.table = X
    crashes = []
    submit = pool.submit
    pool.submit = lambda actor, lo, hi, crash=False: (crashes.append(crash), submit(actor, lo, hi, crash))[1]
    MicroBatcher(
        pool, expected, np.array([0.0] * 4 + [0.3] * 4), _policy(), fault_at_s=0.1, clock=clock, sleep=clock.sleep
    ).run()
    assert crashes == [False, True]
    assert pool.events == [{"kind": "actor_crashed", "actor": 0, "pid": 1000, "at_s": pytest.approx(0.3, abs=0.006)}]


def test_a_batch_is_a_view_of_the_table_unless_it_wraps():
    X = np.arange(50, dtype=np.float64).reshape(10, 5)
    assert np.shares_memory(batch_rows(X, 12, 17), X)
    assert np.array_equal(batch_rows(X, 8, 13), X[[8, 9, 0, 1, 2]])


def test_the_hops_of_an_event_add_up_to_its_latency_and_skip_the_warm_up():
    # batches of up to 100 events closed 10 ms after their first; an actor answers after 3 ms
    schedule = np.arange(0.0, 0.5, 0.001)
    obs, stream, _ = _run(schedule, [0.003], _policy(max_batch=100, max_wait_s=0.010, warmup_s=0.1))
    hops = stream["hops"]
    assert hops["latency_s"]["count"] == int((schedule >= 0.1).sum())
    means = {k: v["mean"] for k, v in hops.items()}
    parts = means["source_lag_s"] + means["batch_wait_s"] + means["backlog_wait_s"] + means["round_trip_s"]
    assert parts == pytest.approx(means["latency_s"], abs=1e-6)
    assert 0.0 < means["batch_wait_s"] <= 0.0155 and means["round_trip_s"] >= 0.003
