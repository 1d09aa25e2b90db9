"""The hybrid pattern's batch job, run as its own process as in production: load the model, read the
known customers' parquet, score them, publish a new store generation atomically.

``python -m bench.systems.refresh_job --model M --customers C --store S``: it imports only what it
uses (its start-up is measured and billed as the job's fixed cost): the model code (LightGBM, ~0.4 s
of its ~0.6 s of imports on this VM, most of it pandas and scipy that LightGBM itself imports),
polars, the store, the phase timer; no pattern, report, Ray or web framework.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.data import store
from bench.data.schema import ID
from bench.measure import metrics
from bench.model import load, make_predictor


def job(
    model_path: str, customers_path: str, store_path: str, num_threads: int = 1, predictor: str = "lightgbm"
) -> dict:
    """Score every customer in ``customers_path`` and publish the scores as a new store generation."""
    as_of = time.time()  # the scores describe the customers as read now: staleness counts from here
    phases = metrics.Phases()
    with phases("load_model"):
        model = load(model_path)
        predictor = make_predictor(model, predictor, num_threads)
    with phases("read"):
        frame = model.schema.scan(customers_path).collect()
        model.schema.validate(frame, source=customers_path)
        X = model.schema.matrix(frame)
    with phases("score"):
        scores = predictor.predict(X)
    with phases("publish"):
        ids = frame[ID].to_numpy()
        # a file path, or a Valkey server's URL (store=valkey): the same publish, atomic either way
        target = store_path if store.is_url(store_path) else Path(store_path)
        store.publish(target, ids, {"score": scores}, {"as_of": as_of, "rows": len(ids)})
    return {"as_of": as_of, "rows": len(ids), "phases_s": phases.seconds(), "cpu_s": time.process_time()}


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the hybrid pattern's batch job")
    for name in ("--model", "--customers", "--store"):
        parser.add_argument(name, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--predictor", default="lightgbm")
    a = parser.parse_args(argv)
    print(json.dumps(job(a.model, a.customers, a.store, a.threads, a.predictor)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
