"""The per-request model server: FastAPI on uvicorn, model loaded once at start, one row per request.

``POST /predict`` takes ``{"features": [32 numbers or null]}`` in the model's feature order (nulls are
missing values, categoricals their integer codes) and answers ``{"score": s}``, where ``s`` equals
``Booster.predict`` on that row (JSON floats round-trip exactly). ``GET /noop`` answers through the
same stack without touching the model: the floor the load generator reports beside every result.
Bad bodies get a 4xx with a message and the server keeps serving.

Handlers are plain ``async`` functions reading the raw body: scoring one row takes ~100 µs, less than
a thread-pool hop would cost, and skipping pydantic validation keeps the path to what is inherent.
"""

from __future__ import annotations

import math
import os

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bench import model as model_mod
from bench.workload import FEATURES

N_FEATURES = len(FEATURES)


def _json(data: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def create_app(model_path: str, num_threads: int = 1) -> FastAPI:
    """The app, with the model loaded and the predictor built before the first request."""
    model = model_mod.load(model_path)
    predictor = model_mod.make_predictor(model, "lightgbm", num_threads)
    app = FastAPI(title="bench model server", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> Response:
        return _json({"status": "ok", "model_sha256": model.sha256, "pid": os.getpid()})

    @app.get("/noop")
    async def noop() -> Response:
        return _json({"score": 0.0})

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        body = await request.body()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _json({"error": f"body is not valid JSON: {exc}"}, 400)
        features = payload.get("features") if isinstance(payload, dict) else None
        if not isinstance(features, list):
            return _json({"error": 'expected a JSON object {"features": [...]}'}, 422)
        if len(features) != N_FEATURES:
            return _json({"error": f"expected {N_FEATURES} features, got {len(features)}"}, 422)
        try:
            row = np.array([[math.nan if v is None else v for v in features]], dtype=np.float64)
        except (TypeError, ValueError):
            return _json({"error": "features must be numbers or null"}, 422)
        return _json({"score": float(predictor.predict(row)[0])})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:  # never drop the connection silently
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: model path and threads come from the environment."""
    return create_app(os.environ["BENCH_MODEL_PATH"], int(os.environ.get("BENCH_NUM_THREADS", "1")))
