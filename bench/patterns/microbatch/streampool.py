"""The scoring actors of ``source=broker``: each runs a :class:`~.consumer.StreamConsumer` on the
window's stream until told to stop; the driver only starts, stops and watches them.

An actor is restarted by Ray when its process dies (``max_restarts=-1``); the driver then starts its
consumer again under the same name (it first re-reads what it still holds, if a peer has not claimed
it). Control calls (stop, arm a crash, ready) run in their own concurrency group, beside ``consume``.
"""

from __future__ import annotations

import os
import time

from bench.core.errors import BenchError
from bench.model import Model
from bench.patterns.microbatch.pool import START_TIMEOUT_S, place_actors


def _actor_class():
    import ray

    @ray.remote(max_restarts=-1, max_task_retries=0, concurrency_groups={"control": 2})
    class StreamScorer:
        """One scoring actor consuming the broker's stream."""

        def __init__(self, model_path: str, predictor: str, num_threads: int) -> None:
            import threading

            # In the actor's worker process: Ray pickles this class by value, so the model is
            # imported where the actor runs, not captured from the driver.
            from bench import model as model_mod

            self.predictor = model_mod.make_predictor(model_mod.load(model_path), predictor, num_threads)
            self.stop_event = threading.Event()
            self.consumer = None

        @ray.method(concurrency_group="control")
        def ready(self) -> tuple[int, str]:
            import ray as _ray

            return os.getpid(), _ray.get_runtime_context().get_node_id()

        def consume(self, spec: dict) -> dict:
            # imported in the actor's process, as the model is (the class is pickled by value)
            from bench.patterns.microbatch.consumer import StreamConsumer

            self.stop_event.clear()
            self.consumer = StreamConsumer(
                spec["url"],
                self.predictor.predict,
                spec["n_features"],
                name=spec["name"],
                max_batch=spec["max_batch"],
                max_wait_ms=spec["max_wait_ms"],
                claim_idle_ms=spec["claim_idle_ms"],
            )
            return self.consumer.run(spec["stream"], spec["out"], self.stop_event, spec["deadline"])

        @ray.method(concurrency_group="control")
        def stop(self) -> None:
            self.stop_event.set()

        @ray.method(concurrency_group="control")
        def arm_crash(self) -> bool:
            """Fault injection: the next batch this actor reads kills its process before scoring."""
            if self.consumer is None:
                return False
            self.consumer.crash_next = True
            return True

    return StreamScorer


class RayStreamPool:
    """The run's stream-consuming actors, and the faults that happened to them."""

    def __init__(self, model: Model, *, n_actors: int, num_threads: int, predictor: str, spread: bool = True) -> None:
        import ray

        self._ray = ray
        placed = place_actors(_actor_class(), model, n_actors, num_threads, predictor, spread)
        self.actors, self.start_s, self.pids, self.nodes = placed
        self.events: list[dict] = []

    def consume(self, index: int, spec: dict):
        """Start actor ``index``'s consumer on a window's stream; the ref of its final counts."""
        return self.actors[index].consume.remote({**spec, "name": f"c{index}"})

    def arm_crash(self, index: int, timeout_s: float = 10.0) -> bool:
        return bool(self._ray.get(self.actors[index].arm_crash.remote(), timeout=timeout_s))

    def stop_consuming(self, timeout_s: float = 10.0) -> None:
        ray = self._ray
        refs = [a.stop.remote() for a in self.actors]
        ray.wait(refs, num_returns=len(refs), timeout=timeout_s)

    def wait_restarted(self, index: int, old_pid: int, deadline: float) -> int | None:
        """The new pid once Ray's restart of actor ``index`` answers (None by ``deadline``, monotonic)."""
        ray = self._ray
        while time.monotonic() < deadline:
            try:
                pid, _ = ray.get(
                    self.actors[index].ready.remote(), timeout=min(5.0, max(deadline - time.monotonic(), 0.1))
                )
            except Exception:  # noqa: BLE001 - unavailable while restarting: ask again
                time.sleep(0.05)
                continue
            if pid != old_pid:
                self.pids[index] = pid
                return pid
            time.sleep(0.05)
        return None

    def wait_up(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait (bounded) until every actor answers: the next window must not start a peer short."""
        ray = self._ray
        try:
            placed = ray.get([a.ready.remote() for a in self.actors], timeout=timeout_s)
        except ray.exceptions.RayError as exc:
            raise BenchError(f"stream-scoring actors did not all answer within {timeout_s:.0f} s: {exc}") from exc
        self.pids = [pid for pid, _ in placed]

    def stop(self) -> None:
        ray = self._ray
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - best effort; ray.shutdown follows
                pass
