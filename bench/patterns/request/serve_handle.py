"""Ray Serve through a deployment handle: the ``ray_serve`` deployment called with no HTTP proxy.

The same Serve app as ``ray_serve`` (its HTTP proxy still runs, idle, and is metered with Ray's
other processes); each request is ``await handle.score_row.remote(body)`` from the generator's event
loop instead of a POST through the proxy. The body is the same JSON bytes ``/predict`` reads, so the
replica's work is the same on both paths and the difference between the two backends at one rate is
the proxy's share of a request (its hop, its HTTP parsing and its own routing).

From this process Serve's router runs on a thread of its own (``RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP``,
on by default in Ray 2.60) and a ``DeploymentResponse`` is awaited from any loop through
``asyncio.wrap_future``: the routing, the actor-call submission and the reply's deserialization are
done in the generator's process, so its CPU (``generator``) carries what the proxy's did on the
HTTP path. Only ``/predict`` is served (no no-op floor, no ``/score``).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import orjson

from bench.core.errors import BenchError
from bench.measure import load
from bench.patterns.request import _SCHEDULE_LEAD_S, ServerTimes, _RayServe


class ServeHandleBackend(_RayServe):
    """Ray Serve's deployment called through its ``DeploymentHandle`` (``score_row``), open loop."""

    def start(self) -> None:
        if self.params.rows_per_request > 1:
            raise BenchError("backend 'ray_serve_handle' sends one row per call (rows_per_request 1)")
        super().start()  # Ray, Serve and the deployment; the HTTP bodies too (unused, cheap)
        self.handle = self.server.handle().options(method_name="score_row")

    def _encode_bodies(self) -> None:
        """The same JSON bodies ``/predict`` gets, built once before any window (not the HTTP requests)."""
        rows = [[None if np.isnan(v) else float(v) for v in row] for row in self.X]
        self.payloads = [orjson.dumps({"features": r}) for r in rows]

    def window(self, schedule: np.ndarray, path: str = "/predict") -> load.Observations:
        if path != "/predict":
            raise BenchError(f"backend 'ray_serve_handle' calls score_row (/predict) only, not {path!r}")
        # Lazy: Ray is imported by ``start`` already; the error classes are only needed here.
        from ray.exceptions import RayActorError

        p = self.params
        handle, payloads, n = self.handle, self.payloads, len(self.payloads)
        times = self.server_times = ServerTimes(schedule.size)
        loop_of: dict = {}

        async def call(i: int, on_send) -> tuple[int, float]:
            on_send()
            response = handle.remote(payloads[i % n])
            try:
                async with asyncio.timeout(p.timeout_s):
                    doc = await response
            except TimeoutError:
                # ``cancel`` waits for the router's assignment on this thread: off the loop.
                loop_of["loop"].run_in_executor(None, response.cancel)
                raise
            except RayActorError:  # the replica died or is unreachable: no answer, as a refused connection
                return load.CONN_ERROR, float("nan")
            status = doc.get("status", 200)
            if status != 200:
                return status, float("nan")
            times.record(i, doc)
            return 200, doc["score"]

        async def setup() -> None:
            loop_of["loop"] = asyncio.get_running_loop()
            # One call before the clock starts: the router's first call waits for the replica list.
            warm = handle.remote(payloads[0])
            async with asyncio.timeout(max(p.timeout_s, 30.0)):
                await warm
            self.window_t0 = time.perf_counter() + _SCHEDULE_LEAD_S

        return load.drive_async(schedule, call, deadline_s=float(schedule[-1]) + p.timeout_s + 1.0, setup=setup)
