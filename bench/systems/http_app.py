"""The per-request model server, model loaded once at start, one row per request, on uvicorn.

``POST /predict`` takes ``{"features": [32 numbers or null]}`` in the model's feature order (nulls are
missing values, categoricals their integer codes) and answers ``{"score": s, "server_us": t}``, where
``s`` equals the predictor's score of that row (``ServerConfig.predictor``: lightgbm or lleaves; JSON
floats round-trip exactly) and ``t`` the handler's own time. ``{"rows": [[...], ...]}`` (a caller's
own batch) is scored in one predict call and answered ``{"scores": [...]}``. With dynamic batching
(``ServerConfig.batch_max`` > 1, :mod:`bench.systems.batching`) single rows are queued and scored
together, and the answer adds ``batch``, ``queue_us`` and ``predict_us``. ``GET /noop`` answers through the same stack without touching the model: the
floor the load generator reports beside every result.
Bad bodies get a 4xx with a message and the server keeps serving.

The server defends itself (both apps, one code path: :func:`read_body` and :class:`FeatureCheck`):

* a body longer than ``ServerConfig.max_body_bytes`` (declared by Content-Length, or counted as a
  chunked body streams in) is answered 413 without reading the rest, and the connection is closed;
* a body that has not fully arrived ``ServerConfig.body_timeout_s`` after the headers is answered
  408 and the connection closed (a client that sends half a request and stalls);
* a feature value the model's schema (``Model.schema``: the synthetic workload's
  ``bench.data.workload.FEATURE_COLUMNS``, or any number or null for another model) does not allow —
  below a column's minimum, above its maximum, a fraction in an integer column, an unknown
  categorical code, a null where the column has no missing values — is answered 422 naming the
  feature and what it allows. Nulls stay allowed where the schema allows them.

* request headers that have not arrived ``ServerConfig.header_timeout_s`` after the connection's
  start or the request's first byte (a client that connects and sends nothing, or stalls mid-headers)
  are answered 408 and the connection closed, by the protocol (``bench.systems.http_protocol``):
  uvicorn itself arms no timer there. Header *size* is bounded by the parser (llhttp's limits).

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
import asyncio
import gc
import inspect
import os
import time

import numpy as np
import orjson
import polars as pl  # imported by the schema anyway: its categoricals are polars Enums

from bench import model as model_mod
from bench.data import store
from bench.data.workload import FEATURE_COLUMNS, FEATURES, Column
from bench.systems.batching import DynamicBatcher
from bench.systems.server_config import AGGREGATES, APPS, ServerConfig

#: the synthetic model's feature count (a server of another model checks its own: ``Scorer.n_features``)
N_FEATURES = len(FEATURES)
__all__ = [
    "AGGREGATES",
    "APPS",
    "FEATURE_COLUMNS",
    "N_FEATURES",
    "ServerConfig",
    "FeatureCheck",
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
        self.check = FeatureCheck(self.model.schema.features)  # the model's own features (any model)
        self.n_features = len(self.model.schema.features)
        #: dynamic batching of ``/predict`` (``ServerConfig.batch_max`` > 1), else None
        self.batcher = (
            DynamicBatcher(self.predictor.predict, config.batch_max, config.batch_wait_ms / 1e3)
            if config.batch_max > 1
            else None
        )
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

    def checked_row(self, body: bytes) -> tuple[np.ndarray | None, tuple[int, bytes] | None]:
        """The body's row, checked against the schema, or the (status, body) to answer instead."""
        payload, error = _parse(body)
        if error:
            return None, error
        return self._checked(payload)

    def _checked(self, payload: dict) -> tuple[np.ndarray | None, tuple[int, bytes] | None]:
        status, row = _row(payload, self.n_features)
        if status != 200:
            return None, (status, row)
        refused = self.check(row)
        if refused is not None:
            return None, (422, refused)
        return row, None

    def predict(self, body: bytes) -> tuple[int, bytes]:
        """``/predict`` unbatched: the row scored at once, or a request's several rows in one predict
        call (``{"rows": [[...], ...]}`` -> ``{"scores": [...]}``: batching by the caller).
        ``server_us``: this call's time, parse to score (the server's share of the request)."""
        t0 = time.perf_counter()
        payload, error = _parse(body)
        if error:
            return error
        if "rows" in payload:
            return self._predict_rows(payload, t0)
        row, refused = self._checked(payload)
        if refused is not None:
            return refused
        score = self.score_row(row)
        return 200, orjson.dumps({"score": score, "server_us": (time.perf_counter() - t0) * 1e6})

    def _predict_rows(self, payload: dict, t0: float) -> tuple[int, bytes]:
        rows = payload["rows"]
        if type(rows) is not list or not rows:
            return 422, orjson.dumps({"error": 'expected a JSON object {"rows": [[...], ...]} with at least one row'})
        X = np.empty((len(rows), self.n_features))
        for i, features in enumerate(rows):
            status, row = _row({"features": features}, self.n_features)
            if status != 200:
                return status, _prefixed(row, i)
            refused = self.check(row)
            if refused is not None:
                return 422, _prefixed(refused, i)
            X[i] = row
        scores = self.predictor.predict(X).tolist()
        return 200, orjson.dumps({"scores": scores, "server_us": (time.perf_counter() - t0) * 1e6})

    async def predict_batched(self, body: bytes) -> tuple[int, bytes]:
        """``/predict`` with dynamic batching: the row joins the batcher's queue. The answer says the
        batch's size and the request's queue wait and predict time; a batch whose predict raised is a
        500 for each of its requests."""
        t0 = time.perf_counter()
        payload, error = _parse(body)
        if error:
            return error
        if "rows" in payload:  # the caller batched already: its rows are one predict call
            return self._predict_rows(payload, t0)
        row, refused = self._checked(payload)
        if refused is not None:
            return refused
        try:
            got = await self.batcher.score(row)
        except Exception as exc:  # noqa: BLE001 - answered, and the server keeps serving
            return 500, orjson.dumps({"error": f"batch predict failed: {type(exc).__name__}: {exc}"})
        return 200, orjson.dumps(
            {
                "score": got.score,
                "server_us": (time.perf_counter() - t0) * 1e6,
                "batch": got.batch,
                "queue_us": got.queue_s * 1e6,
                "predict_us": got.predict_s * 1e6,
            }
        )

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
            status, row = _row(payload, self.n_features)
            if status != 200:
                return status, row
            refused = self.check(row)
            if refused is not None:
                return 422, refused
            out = {"score": self.score_row(row), "source": "live", "as_of": time.time()}
        if self.aggregate is not None:
            out["events_90d"], out["amount_90d"] = self.aggregate(customer)
        return 200, orjson.dumps(out)


def _prefixed(error_body: bytes, i: int) -> bytes:
    """A refusal of one row of a multi-row request, saying which row."""
    doc = orjson.loads(error_body)
    doc["error"] = f"row {i}: {doc['error']}"
    doc["row"] = i
    return orjson.dumps(doc)


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


def _row(payload: dict, n_features: int = N_FEATURES) -> tuple[int, np.ndarray | bytes]:
    """The request's features as one row (1-D float64, nulls as NaN), or a 422 saying what is wrong.

    One ``np.array`` call over the parsed list (NumPy reads None as NaN in a float64 array) after a
    check of the values' types, so a numeric string or a boolean is a 422 rather than a number NumPy
    converted. ~2.5 µs for 32 features, as the NaN-substituting comprehension it replaces: building
    the row is ~0.3% of a request's server time, parsing the body (orjson) ~0.1%.
    """
    features = payload.get("features")
    if type(features) is not list:
        return 422, orjson.dumps({"error": 'expected a JSON object {"features": [...]}'})
    if len(features) != n_features:
        return 422, orjson.dumps({"error": f"expected {n_features} features, got {len(features)}"})
    if not _FEATURE_TYPES.issuperset(map(type, features)):
        return 422, orjson.dumps({"error": "features must be numbers or null"})
    try:
        return 200, np.array(features, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # not reachable from orjson's types; kept as a guard
        return 422, orjson.dumps({"error": "features must be numbers or null"})


class FeatureCheck:
    """Whether one row (1-D float64, nulls as NaN) is what the schema allows; if not, a 422 body saying
    which feature and what it allows, as the batch pattern's :func:`~bench.data.workload.validate`.

    The valid path is a few vectorised comparisons against bounds precomputed from the columns, one
    ufunc each (~0.25 µs each on 32 values here; a Python loop over the columns would be ~30x more):
    measured in process, 10k calls of ``Scorer.predict`` on the small test model, see the tests' notes.
    Only a refused row walks the columns to name the first offending one.
    """

    def __init__(self, columns: tuple[Column, ...]) -> None:
        unbounded = [c.name for c in columns if not isinstance(c.dtype, pl.Enum) and (c.lo is None or c.hi is None)]
        if unbounded:
            raise ValueError(f"the server's feature check needs both bounds of every numeric column: {unbounded}")
        self.columns = columns
        self.lo = _frozen([_bounds(c)[0] for c in columns])
        self.hi = _frozen([_bounds(c)[1] for c in columns])
        #: NaN where a null is allowed, a number below the minimum where not: ``np.fmax(row, fill)``
        #: leaves every number as it is and turns a forbidden null into a value the range check
        #: refuses (finite, so the fraction check raises no floating-point warning)
        self.fill = _frozen([np.nan if c.nullable else _bounds(c)[0] - 1 for c in columns])
        #: 0 for an integer column (a fractional part above 0 is refused), 1 for a float column
        #: (a fractional part is always below 1): one comparison checks integrality where it applies
        self.fraction = _frozen([0.0 if _integral(c) else 1.0 for c in columns])

    def __call__(self, row: np.ndarray) -> bytes | None:
        """None if the schema allows ``row`` (finite numbers and NaN, what a JSON body can carry), else
        the 422 body."""
        x = np.fmax(row, self.fill)
        bad = (x < self.lo) | (x > self.hi) | ((x - np.floor(x)) > self.fraction)
        if not np.count_nonzero(bad):
            return None
        return self.refusal(row)

    def refusal(self, row: np.ndarray) -> bytes:
        """The 422 body for a row :meth:`__call__` refused: the first feature it does not allow."""
        for i, (col, value) in enumerate(zip(self.columns, row.tolist(), strict=True)):
            allowed = self.allowed(col)
            if value != value:  # NaN: a null
                if col.nullable:
                    continue
                what = "null, and it has no missing values"
            else:
                lo, hi = _bounds(col)
                if lo <= value <= hi and (not _integral(col) or value == int(value)):
                    continue
                what = f"{value!r}" + (", not a known code" if isinstance(col.dtype, pl.Enum) else "")
            return orjson.dumps(
                {
                    "error": f"feature {col.name!r} (index {i}) is {what}; allowed: {allowed}",
                    "feature": col.name,
                    "index": i,
                    "value": None if value != value else value,
                    "allowed": allowed,
                }
            )
        raise AssertionError("FeatureCheck.refusal called for a row every column allows")

    @staticmethod
    def allowed(col: Column) -> str:
        """What ``col`` allows, in words: its range (or its codes and levels), integers, nulls."""
        if isinstance(col.dtype, pl.Enum):
            levels = ", ".join(f"{i}={name}" for i, name in enumerate(col.dtype.categories))
            return f"a code of {levels}"
        lo, hi = _bounds(col)
        kind = "integers" if _integral(col) else "numbers"
        return f"{kind} in [{_number(lo)}, {_number(hi)}]" + (" or null" if col.nullable else "")


def _bounds(col: Column) -> tuple[float, float]:
    """A numeric column's closed range; a categorical's is its codes, 0 … levels − 1."""
    if isinstance(col.dtype, pl.Enum):
        return 0.0, float(len(col.dtype.categories) - 1)
    return float(col.lo), float(col.hi)


def _integral(col: Column) -> bool:
    return isinstance(col.dtype, pl.Enum) or col.dtype.is_integer()


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _frozen(values: list[float]) -> np.ndarray:
    out = np.array(values, dtype=np.float64)
    out.flags.writeable = False
    return out


async def read_body(scope: dict, receive, max_bytes: int, timeout_s: float) -> tuple[bytes, tuple[int, bytes] | None]:
    """The request's whole body, or the (status, body) to answer instead: 413 when it is (declared or
    turns out) longer than ``max_bytes`` — answered without reading the rest —, 408 when it has not
    all arrived ``timeout_s`` after the headers. Both refusals are sent with ``Connection: close``.

    A scoring body comes in one ``http.request`` message, usually already buffered when the app is
    called, so the timer is armed and cancelled without ever firing.
    """
    for name, value in scope["headers"]:
        if name == b"content-length":
            # uvicorn's parser has refused a malformed Content-Length (400) before the app is called
            if int(value) > max_bytes:
                return b"", _too_large(max_bytes)
            break
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":  # nothing to answer: the reply is dropped
                    return b"", (400, orjson.dumps({"error": "client disconnected"}))
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_bytes:
                    return b"", _too_large(max_bytes)
                chunks.append(chunk)
                if not message.get("more_body"):
                    break
    except TimeoutError:
        return b"", (408, orjson.dumps({"error": f"request body not received within {timeout_s} s"}))
    return chunks[0] if len(chunks) == 1 else b"".join(chunks), None


def _too_large(max_bytes: int) -> tuple[int, bytes]:
    return 413, orjson.dumps({"error": f"request body is larger than {max_bytes} bytes", "max_body_bytes": max_bytes})


#: response headers of a refused body: the connection is closed after the answer, so the unread
#: rest of the body (or the stalled client) is not kept
CLOSE = (b"connection", b"close")


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

    async def answer(request: Request, handle) -> Response:
        body, refused = await read_body(request.scope, request.receive, config.max_body_bytes, config.body_timeout_s)
        if refused is not None:
            return Response(refused[1], refused[0], {"connection": "close"}, "application/json")
        if handle is None:  # /predict with dynamic batching
            return respond(*await scorer.predict_batched(body))
        return respond(*handle(body))

    @app.get("/health")
    async def health() -> Response:
        return respond(200, scorer.health_body)

    @app.get("/noop")
    async def noop() -> Response:
        return respond(200, scorer.noop_body)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        return await answer(request, None if scorer.batcher else scorer.predict)

    @app.post("/score")
    async def score(request: Request) -> Response:
        return await answer(request, scorer.score)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:  # never drop the connection silently
        return respond(500, orjson.dumps({"error": f"{type(exc).__name__}: {exc}"}))

    scorer = Scorer(config)  # last: gc.freeze() covers the app
    return app


def create_asgi_app(config: ServerConfig):
    """The same routes as a bare ASGI callable: what the server costs without a framework."""
    scorer = Scorer(config)
    handlers = {"/predict": scorer.predict, "/score": scorer.score}
    batched = scorer.batcher is not None
    json_type = (b"content-type", b"application/json")

    async def send_json(send, status: int, body: bytes, *extra: tuple[bytes, bytes]) -> None:
        headers = [json_type, (b"content-length", str(len(body)).encode()), *extra]
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
            request_body, refused = await read_body(scope, receive, config.max_body_bytes, config.body_timeout_s)
            if refused is not None:
                await send_json(send, *refused, CLOSE)
                return
            try:
                if batched and scope["path"] == "/predict":
                    status, body = await scorer.predict_batched(request_body)
                else:
                    status, body = handlers[scope["path"]](request_body)
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
