"""The per-request model server as a Ray Serve deployment: same routes and answers as ``http_app``.

Ray is started for the run by ``bench.systems.raysession`` (local, loopback-only, dashboard off) unless
``ray_address`` points at a cluster.
"""

# No `from __future__ import annotations`: Serve wraps the handlers, and FastAPI must see `Request`
# as a real class, not a string, or it reads `request` as a query parameter.

import time
from pathlib import Path

from fastapi import FastAPI, Request  # module level: FastAPI resolves the handlers' annotations here
from fastapi.responses import Response

from bench.core.errors import BenchError
from bench.systems.raysession import RaySession


def _deployment(replicas: int, num_threads: int, predictor: str):
    from ray import serve

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": 0})
    @serve.ingress(app)
    class Scorer:
        """Loads the model once per replica; scoring is the same code as the uvicorn server's."""

        def __init__(self, model_path: str) -> None:
            from bench.systems.http_app import Scorer

            self.scorer = Scorer(model_path, num_threads, predictor=predictor)

        @app.get("/noop")
        async def noop(self):
            return Response(self.scorer.noop_body, media_type="application/json")

        @app.get("/health")
        async def health(self):
            return Response(self.scorer.health_body, media_type="application/json")

        @app.post("/predict")
        async def predict(self, request: Request):
            status, body = self.scorer.predict(await request.body())
            return Response(body, status_code=status, media_type="application/json")

    return Scorer


class RayServeServer:
    """Start Ray (or join ``address``), deploy the scorer behind Serve's HTTP proxy on ``host:port``."""

    def __init__(
        self,
        model_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        replicas: int = 1,
        num_threads: int = 1,
        predictor: str = "lightgbm",
        address: str = "",
    ) -> None:
        from bench.systems.process import free_port

        self.model_path, self.host, self.port = Path(model_path), host, port or free_port(host)
        self.replicas, self.num_threads, self.address = replicas, num_threads, address
        self.predictor = predictor
        self.fixed_costs_s: dict[str, float] = {}
        self.session = RaySession(address=address)

    def start(self, timeout_s: float = 180.0) -> "RayServeServer":
        from ray import serve

        from bench.systems.process import wait_healthy

        self.session.start()
        self.fixed_costs_s["ray_start"] = self.session.start_s
        t1 = time.perf_counter()
        serve.start(http_options={"host": self.host, "port": self.port})
        serve.run(
            _deployment(self.replicas, self.num_threads, self.predictor).bind(str(self.model_path)),
            name="bench",
            route_prefix="/",
        )
        if not wait_healthy(self.host, self.port, timeout_s):
            self.stop()
            raise BenchError(f"Ray Serve did not answer /health on {self.host}:{self.port} within {timeout_s} s")
        self.fixed_costs_s["serve_deploy"] = time.perf_counter() - t1
        return self

    def ray_roots(self) -> dict[str, int]:
        """Ray's processes (raylet, GCS, workers, proxy) as CPU-meter roots, each labelled ``ray:<name>``."""
        return self.session.roots()

    def stop(self) -> None:
        from ray import serve

        try:
            serve.shutdown()
        except Exception:  # noqa: BLE001 - shutting down after a failure must not mask it
            pass
        self.session.stop()
