"""One model server's configuration, frozen: built once by the pattern, sent to the server as one JSON
value, parsed once there.

A setting travels ``RequestParams`` -> :class:`ServerConfig` -> the server process's environment as
``BENCH_SERVER_CONFIG`` (one JSON object) -> :meth:`ServerConfig.from_env` in the app -> ``Scorer``.
The uvicorn process (``process.ServerProcess``) and the Ray Serve deployment (``ray_serve``) read the
same object; a restart re-starts the same object on the same port.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from bench.core.errors import BenchError
from bench.core.params import require_choice, require_positive
from bench.data import store
from bench.model import PREDICTORS

#: the environment variable that carries the configuration to the server process
ENV_VAR = "BENCH_SERVER_CONFIG"
APPS = ("fastapi", "asgi")
AGGREGATES = ("", "onthefly", "precomputed")
STORE_KINDS = ("", *store.KINDS)


@dataclass(frozen=True)
class ServerConfig:
    """What a model server is: its model and predictor, its app and processes, where it listens, and
    what ``/score`` reads besides the model (a store of pre-computed scores, an aggregate)."""

    model_path: str
    predictor: str = "lightgbm"
    num_threads: int = 1  #: OpenMP threads per worker (1: single rows with more threads only spin)
    app: str = "fastapi"  #: "fastapi", or "asgi" (a bare ASGI callable: the framework's cost removed)
    workers: int = 1  #: uvicorn worker processes (one event loop and one GIL each)
    gc_freeze: bool = True  #: freeze the start-up heap out of the cyclic GC
    host: str = "127.0.0.1"
    port: int = 0  #: 0: the process picks a free port once, and a restart keeps it
    store_kind: str = ""  #: "" no store; else ``bench.data.store``'s kind (the hybrid pattern's lookups)
    store_path: str = ""
    aggregate: str = ""  #: "" none; "onthefly" from the activity log, "precomputed" from a store (C10)
    aggregate_path: str = ""
    #: a request body longer than this is answered 413 without reading the rest (a scoring body is
    #: ~0.9 KB: 32 features as JSON floats; 64 KiB leaves room for a client that pretty-prints)
    max_body_bytes: int = 65_536
    #: seconds a request's body may take to arrive once its headers have: a client that stalls
    #: mid-body is answered 408 and disconnected (a whole scoring body arrives in one TCP segment)
    body_timeout_s: float = 5.0
    #: seconds a request's headers may take, from the connection's start or the request's first
    #: byte: a client that connects and sends nothing, or stalls mid-headers, is answered 408 and
    #: disconnected (``bench.systems.http_protocol``); above uvicorn's 5 s keep-alive, so an idle
    #: kept-alive connection is closed by that first, as before
    header_timeout_s: float = 10.0
    #: dynamic batching (``bench.systems.batching``): ``/predict`` requests join a queue and are scored
    #: together, a batch closing at ``batch_max`` rows or ``batch_wait_ms`` after its first row; 1 = off
    batch_max: int = 1
    batch_wait_ms: float = 0.0

    def __post_init__(self) -> None:
        owner = "ServerConfig"
        for f in dataclasses.fields(self):
            want, value = _TYPES[f.name], getattr(self, f.name)
            if type(value) is not want:  # exact: a bool is not an int here, nor "2" an int
                raise BenchError(
                    f"{owner} field {f.name!r} must be a {want.__name__}, got {value!r} ({type(value).__name__})"
                )
        if not self.model_path:
            raise BenchError(f"{owner} field 'model_path' must not be empty")
        require_choice(owner, "predictor", self.predictor, PREDICTORS)
        require_choice(owner, "app", self.app, APPS)
        require_choice(owner, "store_kind", self.store_kind, STORE_KINDS)
        require_choice(owner, "aggregate", self.aggregate, AGGREGATES)
        require_positive(
            owner,
            num_threads=self.num_threads,
            workers=self.workers,
            max_body_bytes=self.max_body_bytes,
            body_timeout_s=self.body_timeout_s,
            header_timeout_s=self.header_timeout_s,
            batch_max=self.batch_max,
        )
        if not self.batch_wait_ms >= 0:
            raise BenchError(f"{owner} field 'batch_wait_ms' must be >= 0, got {self.batch_wait_ms}")
        if not 0 <= self.port <= 65535:
            raise BenchError(f"{owner} field 'port' must be in 0–65535, got {self.port}")
        for kind, path in (("store_kind", "store_path"), ("aggregate", "aggregate_path")):
            if bool(getattr(self, kind)) != bool(getattr(self, path)):
                raise BenchError(f"{owner} fields {kind!r} and {path!r} must be set together")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        """The configuration :meth:`to_json` wrote; refuses bad JSON, unknown or missing fields by name."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BenchError(f"{ENV_VAR} is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise BenchError(f"{ENV_VAR} must be a JSON object, got {type(doc).__name__}")
        unknown = sorted(set(doc) - set(_TYPES))
        if unknown:
            raise BenchError(f"ServerConfig has no field(s) {unknown}")
        if "model_path" not in doc:
            raise BenchError("ServerConfig field 'model_path' is missing")
        return cls(**doc)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServerConfig:
        if ENV_VAR not in environ:
            raise BenchError(f"{ENV_VAR} is not set: start the server with bench.systems.process.ServerProcess")
        return cls.from_json(environ[ENV_VAR])

    def env(self) -> dict[str, str]:
        """The server process's environment additions: the configuration, and its OpenMP threads."""
        return {ENV_VAR: self.to_json(), "OMP_NUM_THREADS": str(self.num_threads)}


_TYPES: dict[str, type] = typing.get_type_hints(ServerConfig)
