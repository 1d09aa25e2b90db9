"""The per-request model server as a Ray Serve deployment: same routes and answers as ``http_app``.

Ray is started locally for the run (dashboard off: it doubles Ray's memory) unless ``ray_address``
points at a cluster; its temp dir is per run, so nothing lands in $HOME.
"""

# No `from __future__ import annotations`: Serve wraps the handlers, and FastAPI must see `Request`
# as a real class, not a string, or it reads `request` as a query parameter.

import os
import tempfile
import time
from pathlib import Path

import psutil
from fastapi import FastAPI, Request  # module level: FastAPI resolves the handlers' annotations here

from bench.errors import BenchError


def _deployment(replicas: int, num_threads: int):
    from ray import serve

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": 0})
    @serve.ingress(app)
    class Scorer:
        """Loads the model once per replica; scoring is the same code as the uvicorn server's."""

        def __init__(self, model_path: str) -> None:
            from bench.serve import http_app

            self.inner = http_app.create_app(model_path, num_threads)
            self.routes = {r.path: r.endpoint for r in self.inner.routes if hasattr(r, "endpoint")}

        @app.get("/noop")
        async def noop(self):
            return await self.routes["/noop"]()

        @app.get("/health")
        async def health(self):
            return await self.routes["/health"]()

        @app.post("/predict")
        async def predict(self, request: Request):
            return await self.routes["/predict"](request)

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
        address: str = "",
    ) -> None:
        from bench.serve.process import free_port

        self.model_path, self.host, self.port = Path(model_path), host, port or free_port(host)
        self.replicas, self.num_threads, self.address = replicas, num_threads, address
        self.fixed_costs_s: dict[str, float] = {}
        self.temp_dir = ""

    def start(self, timeout_s: float = 180.0) -> "RayServeServer":
        import ray
        from ray import serve

        from bench.serve.process import wait_healthy

        t0 = time.perf_counter()
        if self.address:
            ray.init(address=self.address, log_to_driver=False)
        else:
            # short path: Ray's unix sockets must fit in 107 bytes
            self.temp_dir = tempfile.mkdtemp(prefix="bray-", dir="/tmp")
            # A local, loopback-only instance for one run: without this Ray writes a token to ~/.ray.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(include_dashboard=False, num_cpus=os.cpu_count(), _temp_dir=self.temp_dir, log_to_driver=False)
        self.fixed_costs_s["ray_start"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        serve.start(http_options={"host": self.host, "port": self.port})
        serve.run(
            _deployment(self.replicas, self.num_threads).bind(str(self.model_path)), name="bench", route_prefix="/"
        )
        if not wait_healthy(self.host, self.port, timeout_s):
            self.stop()
            raise BenchError(f"Ray Serve did not answer /health on {self.host}:{self.port} within {timeout_s} s")
        self.fixed_costs_s["serve_deploy"] = time.perf_counter() - t1
        return self

    def ray_roots(self) -> dict[str, int]:
        """Ray's processes (raylet, GCS, workers, proxy) as CPU-meter roots, each labelled ``ray:<name>``."""
        me = psutil.Process()
        roots = {}
        for child in me.children(recursive=False):
            try:
                roots[f"ray:{child.name()}:{child.pid}"] = child.pid
            except psutil.Error:
                continue
        return roots

    def stop(self) -> None:
        import ray
        from ray import serve

        try:
            serve.shutdown()
        except Exception:  # noqa: BLE001 - shutting down after a failure must not mask it
            pass
        ray.shutdown()
