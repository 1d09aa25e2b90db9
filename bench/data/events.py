"""The event table the streaming pattern replays: customers' activity events carrying feature values.

Each event belongs to a customer of the scoring dataset (drawn with replacement, seeded) and carries
that customer's feature values, so its correct score is known: ``predict`` on the customer's row.
``event_time`` is the event's notional time (a Poisson process from a fixed epoch); the replay
assigns its own arrival times from ``bench.measure.load`` schedules and stamps them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from bench.core import paths
from bench.core.errors import BenchError
from bench.core.params import require_positive
from bench.data import workload
from bench.data.schema import ID, FeatureSchema

EVENTS_VERSION = 1
EPOCH = datetime(2026, 1, 1)


@dataclass(frozen=True)
class Events:
    """An event table on disk and what identifies it."""

    path: Path
    count: int
    seed: int
    dataset_sha256: str
    sha256: str


def generate(data: workload.Dataset, count: int, seed: int = 0, mean_gap_s: float = 1.0) -> pl.DataFrame:
    """``count`` events over the customers of ``data``, in event-time order."""
    require_positive("events", count=count, mean_gap_s=mean_gap_s)
    customers = data.scan().collect()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, customers.height, size=count)
    gaps_us = np.rint(rng.exponential(mean_gap_s * 1e6, size=count)).astype(np.int64)
    times = pl.Series("event_time", np.cumsum(gaps_us)).cast(pl.Duration("us")) + EPOCH
    features = data.schema.names
    rows = customers[pick].select([ID, *features])
    return pl.concat(
        [pl.DataFrame({"event_id": np.arange(count, dtype=np.int64)}), rows, times.to_frame()], how="horizontal"
    ).select(["event_id", ID, "event_time", *features])


def ensure_events(data: workload.Dataset, count: int, seed: int = 0, directory: Path | None = None) -> Events:
    """The event table for (dataset, count, seed), generated only if absent or changed."""
    require_positive("events", count=count)
    directory = directory or paths.data_dir()
    identity = {"count": count, "seed": seed, "dataset_sha256": data.sha256, "events_version": EVENTS_VERSION}
    ident = ""
    if not data.schema.strict:  # a user's table: which column is the id changes the events
        identity["id_column"] = data.schema.id_column
        ident = "-" + hashlib.sha256(data.schema.id_column.encode()).hexdigest()[:8]
    path = directory / f"events-{data.sha256[:12]}{ident}-n{count}-s{seed}-v{EVENTS_VERSION}.parquet"
    meta = workload.cached_parquet(path, lambda: generate(data, count, seed), identity)
    return Events(path, count, seed, data.sha256, meta["sha256"])


def read(events: Events, schema: FeatureSchema = workload.SYNTHETIC) -> tuple[np.ndarray, np.ndarray]:
    """(event ids, feature matrix in the model's order) of an event table, checked like any input."""
    try:
        df = pl.read_parquet(events.path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BenchError(f"event file {str(events.path)!r} is not a readable parquet file: {exc}") from exc
    if "event_id" not in df.columns:
        raise BenchError(f"event file {str(events.path)!r} has no 'event_id' column")
    schema.validate(df, source=str(events.path))
    return df["event_id"].to_numpy(), np.ascontiguousarray(schema.matrix(df))
