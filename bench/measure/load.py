"""Arrival schedules: precomputed arrays of intended send times (seconds from the run's start).

The load generator owns time (as MLPerf LoadGen does): a schedule is fixed before the run, requests
go out at their intended times whether or not earlier ones returned (open loop), and latency is
measured from the intended time, so a slow server can never slow the schedule and hide its own
queueing (coordinated omission).
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from dataclasses import dataclass

import numpy as np

from bench.core.errors import BenchError
from bench.core.params import require_positive
from bench.measure.httpclient import HttpError

SCHEDULES = ("constant", "poisson", "step", "diurnal")


def constant(rate: float, duration_s: float) -> np.ndarray:
    """Evenly spaced arrivals at ``rate`` per second for ``duration_s``."""
    require_positive("schedule", rate=rate, duration_s=duration_s)
    return np.arange(int(rate * duration_s)) / rate


def poisson(rate: float, duration_s: float, seed: int = 0) -> np.ndarray:
    """Poisson arrivals (exponential gaps) at mean ``rate``; seeded, so repeat runs offer the same load."""
    require_positive("schedule", rate=rate, duration_s=duration_s)
    rng = np.random.default_rng(seed)
    n = int(rate * duration_s * 1.2 + 10 * np.sqrt(rate * duration_s) + 10)
    times = np.cumsum(rng.exponential(1.0 / rate, n))
    while times[-1] < duration_s:  # vanishingly rare: extend rather than truncate the tail
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / rate, n))])
    return times[times < duration_s] - 0.0


def step(rates: list[float] | tuple[float, ...], step_s: float) -> np.ndarray:
    """Constant arrivals at each rate in turn, ``step_s`` seconds each (a staircase of load)."""
    if not rates:
        raise BenchError("schedule parameter 'rates' must list at least one rate")
    require_positive("schedule", step_s=step_s, **{f"rates[{i}]": r for i, r in enumerate(rates)})
    return np.concatenate([i * step_s + constant(r, step_s) for i, r in enumerate(rates)])


def diurnal(mean_rate: float, peak_to_mean: float, period_s: float, duration_s: float, seed: int = 0) -> np.ndarray:
    """Poisson arrivals whose rate follows a daily-like sine: mean ``mean_rate``, peak ``peak_to_mean`` × mean.

    Drawn by thinning a Poisson process at the peak rate (Lewis–Shedler), so it is exact and seeded.
    """
    require_positive("schedule", mean_rate=mean_rate, period_s=period_s, duration_s=duration_s)
    if not 1.0 <= peak_to_mean <= 2.0:
        raise BenchError(f"schedule parameter 'peak_to_mean' must be in [1, 2] for a sine profile, got {peak_to_mean}")
    peak = mean_rate * peak_to_mean
    candidates = poisson(peak, duration_s, seed)
    amplitude = peak_to_mean - 1.0
    rate_at = mean_rate * (1.0 + amplitude * np.sin(2 * np.pi * candidates / period_s))
    keep = np.random.default_rng(seed + 1).random(candidates.size) < rate_at / peak
    return candidates[keep]


def schedule(kind: str, rate: float, total_s: float, seed: int, peak_to_mean: float = 1.5) -> np.ndarray:
    """The intended send times of one window of ``kind`` around ``rate``: constant, poisson, step (a
    staircase of 0.5×, 1×, 1.5× the rate) or diurnal (one sine period of ``peak_to_mean`` over the window)."""
    if kind == "constant":
        return constant(rate, total_s)
    if kind == "step":
        return step([0.5 * rate, rate, 1.5 * rate], total_s / 3)
    if kind == "diurnal":
        return diurnal(rate, peak_to_mean, period_s=total_s, duration_s=total_s, seed=seed)
    if kind == "poisson":
        return poisson(rate, total_s, seed)
    raise BenchError(f"unknown schedule {kind!r}; expected one of: {', '.join(SCHEDULES)}")


# --------------------------------------------------------------------------------------------
# Open-loop driver
# --------------------------------------------------------------------------------------------

#: status codes for requests that got no HTTP answer: timed out, the connection failed (refused,
#: reset, lost, a malformed response), or the call raised anything else, an exception in the backend
#: or the harness (an in-process predictor raising IndexError on an empty table was once booked as a
#: "connection" error, hundreds of them in a run marked valid).
TIMEOUT, CONN_ERROR, BACKEND_ERROR = 0, -1, -2
#: What each code is counted as in a window's ``errors`` (``bench.measure.metrics.window_summary``).
ERROR_NAMES = {TIMEOUT: "timeout", CONN_ERROR: "connection", BACKEND_ERROR: "backend_exception"}
#: What a failed connection raises: the HTTP client's own error, or the socket's.
CONNECTION_FAILURES = (HttpError, OSError)


@dataclass
class Observations:
    """Raw per-request observations of one open-loop window (seconds from the window's start).

    ``intended`` is the schedule; ``issued`` when the generator actually started the request (its
    lateness is the generator's own lag); ``sent`` when the request was written (later than issued
    only if every connection was busy); ``done`` when the answer (or the failure) arrived.
    """

    intended: np.ndarray
    issued: np.ndarray
    sent: np.ndarray
    done: np.ndarray
    status: np.ndarray
    scores: np.ndarray
    duration_s: float

    def frame(self, **extra: object):
        import polars as pl

        return pl.DataFrame(
            {
                "intended_s": self.intended,
                "issued_s": self.issued,
                "sent_s": self.sent,
                "done_s": self.done,
                "status": self.status,
                "score": self.scores,
            }
        ).with_columns([pl.lit(v).alias(k) for k, v in extra.items()])


class Recorder:
    """Per-request arrays of one window, filled in as requests are issued, sent and answered."""

    def __init__(self, schedule: np.ndarray) -> None:
        n = schedule.size
        self.intended = schedule
        self.issued = np.full(n, np.nan)
        self.sent = np.full(n, np.nan)
        self.done = np.full(n, np.nan)
        self.status = np.full(n, TIMEOUT, dtype=np.int32)
        self.scores = np.full(n, np.nan)

    def result(self, duration_s: float) -> Observations:
        return Observations(self.intended, self.issued, self.sent, self.done, self.status, self.scores, duration_s)


def drive_async(
    schedule: np.ndarray,
    call,
    *,
    deadline_s: float,
    setup=None,
    teardown=None,
) -> Observations:
    """Run ``schedule`` open-loop on an asyncio (uvloop) loop; ``call(i)`` is a coroutine returning (status, score).

    A timer thread sleeps to each intended time (``time.sleep`` is accurate to tens of µs, the
    event loop's timers only to a millisecond) and hands the request to the loop, which keeps every
    connection's I/O going meanwhile: nothing waits for an earlier answer. Requests still running at
    ``deadline_s`` (from the start) are left as timeouts and the window ends on time.
    """
    import asyncio
    import threading

    try:
        import uvloop

        new_loop = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        new_loop = asyncio.new_event_loop

    rec = Recorder(schedule)
    loop = new_loop()
    pending: set = set()
    stop = threading.Event()

    async def one(i: int, t0: float) -> None:
        try:
            status, score = await call(i, lambda: rec.sent.__setitem__(i, time.perf_counter() - t0))
            rec.status[i] = status
            rec.scores[i] = score
        except TimeoutError:
            rec.status[i] = TIMEOUT
        except CONNECTION_FAILURES:  # connection refused / reset / lost: counted, never dropped
            rec.status[i] = CONN_ERROR
        except Exception:  # the call itself failed (a bad answer, a bug): counted as what it is
            rec.status[i] = BACKEND_ERROR
        rec.done[i] = time.perf_counter() - t0

    def start(i: int, t0: float) -> None:
        task = loop.create_task(one(i, t0))
        pending.add(task)
        task.add_done_callback(pending.discard)

    def pacer(t0: float) -> None:
        for i, t in enumerate(schedule):
            while True:
                remaining = t - (time.perf_counter() - t0)
                if remaining <= 0 or stop.is_set():
                    break
                time.sleep(remaining if remaining < 0.002 else remaining - 0.001)
            if stop.is_set():
                return
            rec.issued[i] = time.perf_counter() - t0
            loop.call_soon_threadsafe(start, i, t0)

    async def main() -> float:
        if setup is not None:
            await setup()
        t0 = time.perf_counter() + 0.01
        thread = threading.Thread(target=pacer, args=(t0,), name="load-pacer", daemon=True)
        thread.start()
        end = t0 + deadline_s
        last = t0 + (schedule[-1] if schedule.size else 0.0)
        while time.perf_counter() < last and time.perf_counter() < end:
            await asyncio.sleep(0.05)
        while pending and time.perf_counter() < end:
            await asyncio.sleep(0.005)
        stop.set()
        thread.join(timeout=5.0)
        for task in list(pending):
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        duration = time.perf_counter() - t0
        if teardown is not None:
            await teardown()
        return duration

    # The loop runs on its own thread, so this works where a loop is already running (a notebook kernel).
    outcome: dict = {}

    def runner() -> None:
        try:
            outcome["duration"] = loop.run_until_complete(main())
        except BaseException as exc:  # re-raised on the caller's thread
            outcome["error"] = exc
        finally:
            loop.close()

    # A short GIL switch interval lets the pacer thread take the GIL within ~0.2 ms of waking.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    thread = threading.Thread(target=runner, name="load-loop", daemon=True)
    try:
        with quiet_gc():
            thread.start()
            thread.join(timeout=deadline_s + 60.0)
    finally:
        sys.setswitchinterval(switch)
    if thread.is_alive():
        stop.set()
        raise BenchError(f"load generator did not finish within its deadline ({deadline_s:.0f} s + 60 s)")
    if "error" in outcome:
        raise outcome["error"]
    return rec.result(outcome["duration"])


@contextlib.contextmanager
def quiet_gc():
    """No cyclic garbage collection inside a timed window (as ``timeit`` does): a full collection of
    a notebook kernel's heap takes milliseconds and would show up as generator lag. Everything alive
    before the window is frozen out of the collector; collection resumes after it."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def drive_sync(schedule: np.ndarray, call, *, deadline_s: float) -> Observations:
    """Open loop for an in-process server of one thread: call ``call(i)`` at each intended time.

    The caller is the server, so a call that starts late because the previous one ran long is
    queueing (inside the latency), not generator lag; ``issued`` records the start either way.
    """
    rec = Recorder(schedule)
    with quiet_gc():
        t0 = time.perf_counter() + 0.01
        for i, t in enumerate(schedule):
            now = time.perf_counter() - t0
            if now > deadline_s:
                break
            while now < t:
                remaining = t - now
                time.sleep(remaining if remaining < 0.002 else remaining - 0.001)
                now = time.perf_counter() - t0
            rec.issued[i] = rec.sent[i] = now
            try:
                rec.status[i], rec.scores[i] = call(i)
            except Exception:  # in process there is no connection: whatever it raised is the backend's
                rec.status[i] = BACKEND_ERROR
            rec.done[i] = time.perf_counter() - t0
        return rec.result(time.perf_counter() - t0)


def generator_lag(obs: Observations, in_process: bool = False) -> np.ndarray:
    """How late the generator itself started each request (s).

    Over the network, ``issued - intended``. In process, a call started late only because the
    previous call was still running is queueing, so only requests whose predecessor had finished
    before their intended time count.
    """
    lag = obs.issued - obs.intended
    ok = ~np.isnan(lag)
    if in_process:
        prev_done = np.concatenate([[-np.inf], obs.done[:-1]])
        ok &= prev_done <= obs.intended
    return lag[ok]
