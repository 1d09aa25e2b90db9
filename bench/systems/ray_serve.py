"""The per-request model server as a Ray Serve deployment: same routes and answers as ``http_app``.

Ray is started for the run by ``bench.systems.raysession`` (local, every process bound to 127.0.0.1,
dashboard off) unless ``ray_address`` points at a cluster (probed first, bounded). The deployment reads the same :class:`ServerConfig` as the uvicorn
server (its JSON is what each replica is bound to); ``replicas`` stands in for uvicorn's workers.
Besides the HTTP routes, ``score_row`` answers ``/predict``'s body through a deployment handle
(:meth:`RayServeServer.handle`), so the HTTP proxy's share of a request can be measured beside it.
"""

# No `from __future__ import annotations`: Serve wraps the handlers, and FastAPI must see `Request`
# as a real class, not a string, or it reads `request` as a query parameter.

import dataclasses
import time

import numpy as np
import orjson
from fastapi import FastAPI, Request  # module level: FastAPI resolves the handlers' annotations here
from fastapi.responses import Response
from ray import serve  # module level: this module is the Ray Serve backend, imported only when it runs

from bench.core.errors import BenchError
from bench.systems import http_app
from bench.systems.process import free_port, wait_healthy
from bench.systems.raysession import RaySession
from bench.systems.server_config import ServerConfig


def _deployment(replicas: int, batch_max: int = 1, batch_wait_s: float = 0.0):
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": 0})
    @serve.ingress(app)
    class Scorer:
        """Loads the model once per replica; scoring is the same code as the uvicorn server's. With
        ``batch_max`` > 1, ``/predict`` rows are batched by Ray Serve's own ``@serve.batch``."""

        def __init__(self, config_json: str) -> None:
            self.config = ServerConfig.from_json(config_json)
            self.scorer = http_app.Scorer(self.config)

        @app.get("/noop")
        async def noop(self):
            return Response(self.scorer.noop_body, media_type="application/json")

        @app.get("/health")
        async def health(self):
            return Response(self.scorer.health_body, media_type="application/json")

        @serve.batch(max_batch_size=batch_max, batch_wait_timeout_s=batch_wait_s)
        async def score_batch(self, items: list[tuple[np.ndarray, float]]) -> list[dict]:
            """One predict call for the rows Serve has batched; each with its queue wait (as ours)."""
            t0 = time.perf_counter()
            scores = self.scorer.predictor.predict(np.stack([row for row, _ in items])).tolist()
            took = time.perf_counter() - t0
            n = len(items)
            return [
                {"score": s, "batch": n, "queue_us": (t0 - joined) * 1e6, "predict_us": took * 1e6}
                for s, (_, joined) in zip(scores, items, strict=True)
            ]

        @app.post("/predict")
        async def predict(self, request: Request):
            # The same body bounds as the uvicorn server (413 too large, 408 too slow), in the replica:
            # Serve's proxy sets no limit of its own.
            c = self.config
            body, refused = await http_app.read_body(request.scope, request.receive, c.max_body_bytes, c.body_timeout_s)
            if refused is not None:
                return Response(refused[1], refused[0], {"connection": "close"}, "application/json")
            if batch_max == 1:
                status, body = self.scorer.predict(body)
                return Response(body, status_code=status, media_type="application/json")
            t0 = time.perf_counter()
            row, refused = self.scorer.checked_row(body)
            if refused is not None:
                return Response(refused[1], status_code=refused[0], media_type="application/json")
            try:
                out = await self.score_batch((row, time.perf_counter()))
            except Exception as exc:  # noqa: BLE001 - answered, and the replica keeps serving
                err = orjson.dumps({"error": f"batch predict failed: {type(exc).__name__}: {exc}"})
                return Response(err, status_code=500, media_type="application/json")
            out["server_us"] = (time.perf_counter() - t0) * 1e6
            return Response(orjson.dumps(out), media_type="application/json")

        async def score_row(self, body: bytes) -> dict:
            """``/predict`` through a deployment handle, no HTTP proxy: the same JSON body, bound,
            checks and batching (``score_batch``), the same fields as ``/predict``'s answer, as a dict.
            A refused row is ``{"status": 4xx, "error": ...}`` (a failed batch 500), as ``/predict``
            answers it; an answered row has no ``status``. The body stays the JSON bytes ``/predict``
            reads so the replica does the same work on both paths: bytes cross Ray's serializer as
            cheaply as a list of floats (both a few µs; see ``ServeHandleBackend``)."""
            t0 = time.perf_counter()
            if len(body) > self.config.max_body_bytes:
                return _refusal(http_app._too_large(self.config.max_body_bytes))
            row, refused = self.scorer.checked_row(body)
            if refused is not None:
                return _refusal(refused)
            if batch_max == 1:
                score = self.scorer.score_row(row)
                return {"score": score, "server_us": (time.perf_counter() - t0) * 1e6}
            try:
                out = await self.score_batch((row, time.perf_counter()))
            except Exception as exc:  # noqa: BLE001 - answered, and the replica keeps serving
                return {"status": 500, "error": f"batch predict failed: {type(exc).__name__}: {exc}"}
            out["server_us"] = (time.perf_counter() - t0) * 1e6
            return out

    return Scorer


def _refusal(refused: tuple[int, bytes]) -> dict:
    """A refused row's (status, JSON body) as ``score_row`` answers it: the body's fields plus ``status``."""
    status, body = refused
    return {**orjson.loads(body), "status": status}


class RayServeServer:
    """Start Ray (or join ``address``), deploy the scorer behind Serve's HTTP proxy on ``host:port``."""

    def __init__(self, config: ServerConfig, *, replicas: int = 1, address: str = "") -> None:
        if config.workers != 1 or config.app != "fastapi" or config.store_kind or config.aggregate:
            raise BenchError(
                "Ray Serve runs the FastAPI /predict routes only: workers must be 1 (use replicas), app "
                f"'fastapi', no store or aggregate; got {config}"
            )
        self.config = config if config.port else dataclasses.replace(config, port=free_port(config.host))
        self.host, self.port = self.config.host, self.config.port
        self.replicas, self.address = replicas, address
        self.fixed_costs_s: dict[str, float] = {}
        self.session = RaySession(address=address)

    def start(self, timeout_s: float = 180.0) -> "RayServeServer":
        self.session.start()  # tracked by the process's reaper until stopped (bench.systems.reaper)
        self.fixed_costs_s["ray_start"] = self.session.start_s
        t1 = time.perf_counter()
        try:
            serve.start(http_options={"host": self.host, "port": self.port})
            serve.run(
                _deployment(self.replicas, self.config.batch_max, self.config.batch_wait_ms / 1e3).bind(
                    self.config.to_json()
                ),
                name="bench",
                route_prefix="/",
            )
            healthy = wait_healthy(self.host, self.port, timeout_s)
        except BaseException:  # a signal or an error mid-deploy: the caller has no server to stop
            self.stop()
            raise
        if not healthy:
            self.stop()
            raise BenchError(f"Ray Serve did not answer /health on {self.host}:{self.port} within {timeout_s} s")
        self.fixed_costs_s["serve_deploy"] = time.perf_counter() - t1
        return self

    def handle(self):
        """The deployed app's ``DeploymentHandle`` (calls go to a replica directly, not through the
        HTTP proxy; from this process, Serve's router runs on a thread of its own)."""
        return serve.get_app_handle("bench")

    def ray_roots(self) -> dict[str, int]:
        """Ray's processes (raylet, GCS, workers, proxy) as CPU-meter roots, each labelled ``ray:<name>``."""
        return self.session.roots()

    def stop(self) -> None:
        try:
            serve.shutdown()
        except Exception:  # noqa: BLE001 - shutting down after a failure must not mask it
            pass
        self.session.stop()
