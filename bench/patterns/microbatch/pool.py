"""The scoring actors of a micro-batch run on Ray: the batcher's ``Pool`` over Ray actors.

Each actor loads the model once, maps the event table, and scores a batch per call: the driver sends
only the batch's range of events (two integers), not its rows. With the rows sent inline (256 KiB a
1,000-event batch) the driver's serialisation was its largest share of a saturation window. An actor whose process dies is
restarted by Ray (``max_restarts=-1``); the pool takes it out of rotation until it answers again.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.measure import metrics
from bench.model import Model
from bench.patterns.microbatch.batcher import BatchFailed

START_TIMEOUT_S = 120.0  #: how long the actors may take to start and load the model


def _scorer_class():
    import ray

    @ray.remote(max_restarts=-1, max_task_retries=0)
    class Scorer:
        """One scoring actor: loads the model once, scores a batch of rows per call."""

        def __init__(self, model_path: str, predictor: str, num_threads: int, rows_path: str) -> None:
            # In the actor's worker process: Ray pickles this class by value, so the model code is
            # imported where the actor runs, not captured from the driver.
            from bench import model as model_mod

            # the batcher's own slicing of a window's range of events, in the actor's process
            from bench.patterns.microbatch.batcher import rows

            self.predictor = model_mod.make_predictor(model_mod.load(model_path), predictor, num_threads)
            self.rows = rows
            # The event table, mapped (its pages shared with the other actors through the page cache):
            # a batch is sent as the range of its events, the rows are read here.
            self.X = np.load(rows_path, mmap_mode="r")

        def ready(self) -> tuple[int, str]:
            import ray as _ray

            return os.getpid(), _ray.get_runtime_context().get_node_id()

        def score(self, lo: int, hi: int, crash: bool = False) -> np.ndarray:
            """Scores of the window's events ``[lo, hi)`` (rows of the table, cycling through it)."""
            if crash:  # fault injection: the process dies mid-batch, as under the OOM killer
                os.kill(os.getpid(), signal.SIGKILL)
            return self.predictor.predict(self.rows(self.X, lo, hi))

    return Scorer


def place_actors(cls, model: Model, n_actors: int, num_threads: int, predictor: str, spread: bool, *args):
    """Start ``n_actors`` of actor class ``cls`` (each loads the model, and gets ``args``; ``num_threads``
    CPUs each, spread over nodes if asked) and wait (bounded) until each answers ``ready``: the actors,
    the seconds that took, their pids and nodes."""
    import ray

    scheduling = {"scheduling_strategy": "SPREAD"} if spread else {}
    actors = [
        cls.options(num_cpus=num_threads, **scheduling).remote(str(model.path), predictor, num_threads, *args)
        for _ in range(n_actors)
    ]
    t0 = time.perf_counter()
    try:
        placed = ray.get([a.ready.remote() for a in actors], timeout=START_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError as exc:
        raise BenchError(
            f"{n_actors} scoring actors did not start within {START_TIMEOUT_S:.0f} s "
            f"(each asks for {num_threads} CPU; the cluster has {ray.cluster_resources().get('CPU', 0)})"
        ) from exc
    return actors, time.perf_counter() - t0, [pid for pid, _ in placed], [node for _, node in placed]


class RayPool:
    """The scoring actors of a run and what happened to them (``batcher.Pool`` on Ray)."""

    def __init__(
        self, model: Model, rows_path: Path, *, n_actors: int, num_threads: int, predictor: str, spread: bool = True
    ) -> None:
        import ray

        self._ray = ray
        placed = place_actors(_scorer_class(), model, n_actors, num_threads, predictor, spread, str(rows_path))
        self.actors, self.start_s, self.pids, self.nodes = placed
        self.inflight = [0] * len(self.actors)
        self.down: set[int] = set()  #: actors that failed and have not answered since
        self._stopping = threading.Event()
        self._watchers: list[threading.Thread] = []
        self.events: list[dict] = []

    # -- the batcher's Pool -----------------------------------------------------------------

    def pick(self, avoid: int | None = None) -> int | None:
        """The live actor with the fewest batches in flight, other than ``avoid`` if another is live
        (None while every actor is down)."""
        up = [i for i in range(len(self.actors)) if i not in self.down]
        if avoid is not None and len(up) > 1:
            up = [i for i in up if i != avoid]
        return min(up, key=self.inflight.__getitem__) if up else None

    def submit(self, actor: int, lo: int, hi: int, crash: bool = False):
        ref = self.actors[actor].score.remote(lo, hi, crash)
        self.inflight[actor] += 1
        return ref

    def release(self, actor: int) -> None:
        self.inflight[actor] -= 1

    def reset(self) -> None:
        self.inflight = [0] * len(self.actors)

    def wait(self, handles: Sequence, timeout_s: float) -> list:
        ray = self._ray
        ready, rest = ray.wait(list(handles), num_returns=1, timeout=timeout_s)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        return ready

    def fetch(self, handle, timeout_s: float) -> np.ndarray:
        ray = self._ray
        try:
            return ray.get(handle, timeout=timeout_s)
        except ray.exceptions.RayError as exc:
            down = isinstance(exc, ray.exceptions.RayActorError | ray.exceptions.ActorUnavailableError)
            raise BatchFailed(f"{type(exc).__name__}: {exc}", actor_down=down) from exc

    def cancel(self, handles: Sequence) -> None:
        for ref in handles:
            self._ray.cancel(ref, force=False)

    def mark_down(self, index: int, meter: metrics.CpuMeter | None, event: dict | None = None) -> None:
        """Take a failed actor out of rotation; a thread puts it back once Ray's restart answers."""
        ray = self._ray
        if index in self.down:
            return
        self.down.add(index)
        t_kill = time.perf_counter()
        event = event or {"kind": "actor_failed", "actor": index, "pid": self.pids[index]}
        self.events.append(event)

        def wait_restart() -> None:
            deadline, error = t_kill + 120.0, "no answer within 120 s"
            # "temporarily unavailable" until the restart is done; never touch Ray once the pool stops
            while time.perf_counter() < deadline and not self._stopping.is_set():
                try:
                    pid, _ = ray.get(self.actors[index].ready.remote(), timeout=5.0)
                except Exception as exc:  # noqa: BLE001 - recorded, never raised from a thread
                    error = f"{type(exc).__name__}: {exc}"
                    time.sleep(0.05)
                    continue
                if pid == event["pid"]:  # answered before the kill took effect: not restarted yet
                    time.sleep(0.05)
                    continue
                event.update(restarted=True, restart_s=time.perf_counter() - t_kill, new_pid=pid)
                self.pids[index] = pid
                if meter is not None:
                    meter.add_root(f"actor{index}:restarted", pid)
                self.down.discard(index)
                return
            if self._stopping.is_set():
                error = "the run ended before the actor answered again"
            event.update(restarted=False, restart_error=error)

        watcher = threading.Thread(target=wait_restart, name="actor-restart", daemon=True)
        self._watchers.append(watcher)
        watcher.start()

    # -- the run's ------------------------------------------------------------------------------

    def wait_up(self, timeout_s: float = 120.0) -> None:
        """Wait (bounded) until every failed actor is back: a window measured with an actor missing
        would measure a smaller pool than the run's."""
        deadline = time.perf_counter() + timeout_s
        while self.down and time.perf_counter() < deadline:
            time.sleep(0.05)
        if self.down:
            raise BenchError(f"scoring actor(s) {sorted(self.down)} did not come back within {timeout_s:.0f} s")

    def stop(self) -> None:
        """Stop the restart watchers (before Ray shuts down: a Ray call after that kills the process),
        then the actors."""
        ray = self._ray
        self._stopping.set()
        for watcher in self._watchers:
            watcher.join(timeout=10.0)
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - best effort; ray.shutdown follows
                pass
