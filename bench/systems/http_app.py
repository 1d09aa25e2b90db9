"""The per-request model server, model loaded once at start, one row per request, on uvicorn.

``POST /predict`` takes ``{"features": [32 numbers or null]}`` in the model's feature order (nulls are
missing values, categoricals their integer codes) and answers ``{"score": s}``, where ``s`` equals
the predictor's score of that row (``ServerConfig.predictor``: lightgbm or lleaves; JSON floats
round-trip exactly). ``GET /noop`` answers through the same stack without touching the model: the
floor the load generator reports beside every result.
Bad bodies get a 4xx with a message and the server keeps serving.

``POST /score`` takes ``{"customer_id": id, "features": [...]}``. With a store (the hybrid pattern)
it answers the pre-computed score by lookup and falls back to live scoring for a customer the store
does not have (cold start); ``source`` says which, ``as_of`` when the score's inputs were read (the
batch job's snapshot time, or now). With an aggregate (claim C10) it also answers the customer's
90-day activity, computed on the fly from the activity log or read pre-computed from a store.

The server's whole configuration is one :class:`~bench.systems.server_config.ServerConfig`, read
once from the environment by :func:`app_from_env` (uvicorn's factory).

Two apps share one scorer: ``fastapi`` (the stack most teams deploy) and ``asgi`` (a bare ASGI
callable on the same uvicorn, no routing or middleware layers), so the framework's own cost per
request is measured rather than guessed. Handlers read the raw body and score on the event loop:
one row takes ~100 µs, less than a thread-pool hop would cost.

Where a request's server time goes (py-spy and in-situ timers, ``results/perf/README.md``): at
200 req/s on a 2-core VM a row is scored "cold" (caches, TLB and branch predictors cleared by the 5
ms between requests), so ``Booster.predict`` of one row costs ~400 µs of CPU in the server against
~90 µs in a hot loop, and is most of the handler; parsing the body and building the row cost ~2 µs.
A predictor's ``predict_row`` (one row, no per-call set-up) is used when it has one.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations (``Request``,
# imported inside ``create_app``) as live objects.
import gc
import inspect
import os
import time

import numpy as np
import orjson

from bench import model as model_mod
from bench.data import store
from bench.data.workload import FEATURES
from bench.systems.server_config import AGGREGATES, APPS, ServerConfig

N_FEATURES = len(FEATURES)
__all__ = [
    "AGGREGATES",
    "APPS",
    "N_FEATURES",
    "ServerConfig",
    "Scorer",
    "app_from_env",
    "create_app",
    "create_asgi_app",
]


class Scorer:
    """The model and the request logic both apps share: body bytes in, (status, JSON bytes) out."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.model = model_mod.load(config.model_path)
        self.predictor = model_mod.make_predictor(self.model, config.predictor, config.num_threads)
        #: one row (1-D float64, the model's feature order) -> its score: the predictor's single-row
        #: entry point where it has one (no per-call set-up), else ``predict`` on a 1-row matrix
        self.score_row = getattr(self.predictor, "predict_row", None) or self._predict_one
        self.store = store.open_store(config.store_kind, config.store_path) if config.store_kind else None
        self.aggregate = _aggregator(config.aggregate, config.aggregate_path)
        self.health_body = orjson.dumps({"status": "ok", "model_sha256": self.model.sha256, "pid": os.getpid()})
        self.noop_body = orjson.dumps({"score": 0.0})
        # The model and the app are built once and live for the whole process: move them out of the
        # cyclic GC's generations so a full collection does not walk them in the middle of a request
        # (measured: HTTP p99 at 200 req/s fell from ~45 ms to ~3 ms).
        if config.gc_freeze:
            gc.collect()
            gc.freeze()

    def predict(self, body: bytes) -> tuple[int, bytes]:
        payload, error = _parse(body)
        if error:
            return error
        status, row = _row(payload)
        if status != 200:
            return status, row
        return 200, orjson.dumps({"score": self.score_row(row)})

    def _predict_one(self, row: np.ndarray) -> float:
        return float(self.predictor.predict(row.reshape(1, -1))[0])

    def score(self, body: bytes) -> tuple[int, bytes]:
        """``/score``: the stored score if the store has this customer, else a live one; plus the aggregate."""
        payload, error = _parse(body)
        if error:
            return error
        customer = payload.get("customer_id")
        if not isinstance(customer, int):
            return 422, orjson.dumps({"error": 'expected an integer "customer_id"'})
        out = None
        if self.store is not None:
            self.store.refresh()
            hit = self.store.get(customer)
            if hit is not None:
                out = {"score": hit[0], "source": "store", "as_of": self.store.meta["as_of"]}
        if out is None:
            status, row = _row(payload)
            if status != 200:
                return status, row
            out = {"score": self.score_row(row), "source": "live", "as_of": time.time()}
        if self.aggregate is not None:
            out["events_90d"], out["amount_90d"] = self.aggregate(customer)
        return 200, orjson.dumps(out)


def _parse(body: bytes) -> tuple[dict, tuple[int, bytes] | None]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return {}, (400, orjson.dumps({"error": f"body is not valid JSON: {exc}"}))
    if not isinstance(payload, dict):
        return {}, (422, orjson.dumps({"error": 'expected a JSON object {"features": [...]}'}))
    return payload, None


#: what a feature value may be after JSON parsing: a number, or null for a missing value (bool is
#: not a number here, nor is a numeric string)
_FEATURE_TYPES = frozenset({float, int, type(None)})


def _row(payload: dict) -> tuple[int, np.ndarray | bytes]:
    """The request's features as one row (1-D float64, nulls as NaN), or a 422 saying what is wrong.

    One ``np.array`` call over the parsed list (NumPy reads None as NaN in a float64 array) after a
    check of the values' types, so a numeric string or a boolean is a 422 rather than a number NumPy
    converted. ~2.5 µs for 32 features, as the NaN-substituting comprehension it replaces: building
    the row is ~0.3% of a request's server time, parsing the body (orjson) ~0.1%.
    """
    features = payload.get("features")
    if type(features) is not list:
        return 422, orjson.dumps({"error": 'expected a JSON object {"features": [...]}'})
    if len(features) != N_FEATURES:
        return 422, orjson.dumps({"error": f"expected {N_FEATURES} features, got {len(features)}"})
    if not _FEATURE_TYPES.issuperset(map(type, features)):
        return 422, orjson.dumps({"error": "features must be numbers or null"})
    try:
        return 200, np.array(features, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # not reachable from orjson's types; kept as a guard
        return 422, orjson.dumps({"error": "features must be numbers or null"})


def _aggregator(kind: str, path: str):
    """``customer_id -> (events_90d, amount_90d)``: on the fly from the activity log, or read pre-computed."""
    if not kind:
        return None
    if kind == "onthefly":
        # Lazy: only this branch reads the activity log (with polars); a server without an
        # aggregate does not import the feature code.
        from bench.data.features import OnTheFly

        return OnTheFly(path).get
    if kind == "precomputed":
        reader = store.SqliteStore(path)

        def read(customer: int) -> tuple[int, float]:
            row = reader.get(customer)
            return (int(row[0]), float(row[1])) if row is not None else (0, 0.0)

        return read
    raise ValueError(f"aggregate must be one of {AGGREGATES}, got {kind!r}")


def _no_telemetry(fastapi_cls) -> dict:
    """FastAPI's own OpenTelemetry off, where the installed FastAPI has it (``telemetry=``, 0.16x).

    This server exports no telemetry; with it on (the default) every request still asks the
    OpenTelemetry API whether a tracer, meter or logger provider has been configured (an environment
    lookup each): measured in process, 130 -> 52-85 µs of CPU per ``/noop`` call in a hot loop,
    ~545 -> ~460-500 µs when calls are 5 ms apart.
    """
    return (
        {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
        if "telemetry" in inspect.signature(fastapi_cls.__init__).parameters
        else {}
    )


def create_app(config: ServerConfig):
    """The FastAPI app, with the model loaded and the predictor built before the first request."""
    # Lazy: only this app uses FastAPI (~230 ms to import on this VM, after the model code); the
    # bare ASGI app never imports it.
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    app = FastAPI(title="bench model server", docs_url=None, redoc_url=None, openapi_url=None, **_no_telemetry(FastAPI))

    def respond(status: int, body: bytes) -> Response:
        return Response(body, status_code=status, media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        return respond(200, scorer.health_body)

    @app.get("/noop")
    async def noop() -> Response:
        return respond(200, scorer.noop_body)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        return respond(*scorer.predict(await request.body()))

    @app.post("/score")
    async def score(request: Request) -> Response:
        return respond(*scorer.score(await request.body()))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:  # never drop the connection silently
        return respond(500, orjson.dumps({"error": f"{type(exc).__name__}: {exc}"}))

    scorer = Scorer(config)  # last: gc.freeze() covers the app
    return app


def create_asgi_app(config: ServerConfig):
    """The same routes as a bare ASGI callable: what the server costs without a framework."""
    scorer = Scorer(config)
    handlers = {"/predict": scorer.predict, "/score": scorer.score}
    json_type = (b"content-type", b"application/json")

    async def send_json(send, status: int, body: bytes) -> None:
        headers = [json_type, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        route = (scope["method"], scope["path"])
        if scope["method"] == "POST" and scope["path"] in handlers:
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            try:
                status, body = handlers[scope["path"]](b"".join(chunks))
            except Exception as exc:  # never drop the connection silently
                status, body = 500, orjson.dumps({"error": f"{type(exc).__name__}: {exc}"})
            await send_json(send, status, body)
        elif route == ("GET", "/noop"):
            await send_json(send, 200, scorer.noop_body)
        elif route == ("GET", "/health"):
            await send_json(send, 200, scorer.health_body)
        else:
            await send_json(send, 404, orjson.dumps({"error": f"no route {scope['method']} {scope['path']}"}))

    return app


#: ``ServerConfig.app`` -> the factory that builds that app
APP_FACTORIES = {"fastapi": create_app, "asgi": create_asgi_app}


def app_from_env():
    """Factory for ``uvicorn --factory``: the app the ``BENCH_SERVER_CONFIG`` configuration describes."""
    config = ServerConfig.from_env()
    return APP_FACTORIES[config.app](config)
