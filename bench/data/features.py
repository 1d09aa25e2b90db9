"""The activity log and its 90-day aggregate (claim C10): computed per request, or pre-computed in batch.

Claim C10 says real-time features must be computed in milliseconds and heavy aggregations belong in
batch or a feature store. The aggregate here is a customer's activity over the ``WINDOW_DAYS`` before
``AS_OF`` (the "now" of the benchmark's requests): the number of events and the amount spent, over
``as_of - window <= event_time < as_of``. It is obtained two ways:

* :func:`aggregate_all`: the batch job, one polars ``group_by`` over the whole log for every customer;
  a server then answers by lookup (a dict, or a store such as ``bench.data.store``).
* :class:`OnTheFly`: what a server does without a batch job: the log in memory, and a polars filter +
  aggregation over it at request time. Its cost per request grows with the log's size (every request
  scans every row), not with the customer's own activity.

The log (:func:`generate_activity`) is stored as a log is: ordered by event time, not by customer, so
the on-the-fly path gets no index for free. :func:`expected` is an independent numpy reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from bench.core import paths
from bench.core.errors import BenchError
from bench.core.params import require_positive
from bench.data import workload

#: Bump when the generator changes: cached activity files of another version are regenerated.
ACTIVITY_VERSION = 1
#: The "now" of the benchmark's requests: the log ends just before it, the window ends at it (excluded).
AS_OF = datetime(2026, 10, 1)
WINDOW_DAYS = 90

ID = workload.ID_COLUMN.name
#: The log's schema, in column order.
ACTIVITY_SCHEMA: dict[str, pl.DataType] = {
    ID: workload.ID_COLUMN.dtype,
    "event_time": pl.Datetime("us"),
    "amount": pl.Float64(),
}
#: The aggregate's columns besides the customer id.
AGGREGATE_COLUMNS = ("events_90d", "amount_90d")

_US_PER_DAY = 86_400 * 1_000_000


@dataclass(frozen=True)
class Activity:
    """An activity log on disk and what identifies it."""

    path: Path
    rows: int
    per_customer: float
    days: int
    seed: int
    dataset_sha256: str
    sha256: str


def _check_generation(per_customer: float, days: int, seed: int) -> None:
    require_positive("activity", per_customer=per_customer)
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < WINDOW_DAYS:
        raise BenchError(
            f"activity parameter 'days' must be an integer >= {WINDOW_DAYS} (the aggregate's window), got {days!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BenchError(f"activity parameter 'seed' must be an integer >= 0, got {seed!r}")


def _check_window(window_days: float) -> None:
    require_positive("aggregate", window_days=window_days)


def generate_activity(
    data: workload.Dataset, per_customer: float = 50.0, days: int = 365, seed: int = 0
) -> pl.DataFrame:
    """An activity log of the customers of ``data``: Poisson(``per_customer``) events per customer
    (so some have none), at uniform times over the ``days`` before ``AS_OF`` (``AS_OF`` excluded),
    each with a lognormal amount (median about 20, rounded to cents). Ordered by event time."""
    _check_generation(per_customer, days, seed)
    try:
        ids = data.scan().select(ID).collect()[ID].to_numpy()  # the table's id column, as every pattern reads it
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BenchError(f"data file {str(data.path)!r} is not a readable parquet file with {ID!r}: {exc}") from exc
    rng = np.random.default_rng(seed)
    counts = rng.poisson(per_customer, size=ids.size)
    customer = np.repeat(ids.astype(np.int64), counts)
    n = customer.size
    offset_us = rng.integers(0, int(days) * _US_PER_DAY, size=n, dtype=np.int64)  # [0, days) before AS_OF
    amount = np.round(rng.lognormal(3.0, 1.0, size=n), 2)
    order = np.argsort(offset_us, kind="stable")
    start = AS_OF - timedelta(days=int(days))
    times = pl.Series("event_time", offset_us[order]).cast(pl.Duration("us")) + start
    return pl.DataFrame(
        [pl.Series(ID, customer[order], dtype=ACTIVITY_SCHEMA[ID]), times, pl.Series("amount", amount[order])]
    )


def activity_path(
    data: workload.Dataset, per_customer: float = 50.0, days: int = 365, seed: int = 0, directory: Path | None = None
) -> Path:
    """Where the activity log of these parameters lives."""
    directory = directory or paths.data_dir()
    return directory / f"activity-{data.sha256[:12]}-c{per_customer:g}-d{days}-s{seed}-v{ACTIVITY_VERSION}.parquet"


def ensure_activity(
    data: workload.Dataset, per_customer: float = 50.0, days: int = 365, seed: int = 0, directory: Path | None = None
) -> Activity:
    """The activity log for (dataset, per_customer, days, seed), generated only if absent or changed."""
    _check_generation(per_customer, days, seed)
    path = activity_path(data, per_customer, days, seed, directory)
    identity = {
        "per_customer": float(per_customer),
        "days": int(days),
        "seed": int(seed),
        "as_of": AS_OF.isoformat(),
        "dataset_sha256": data.sha256,
        "activity_version": ACTIVITY_VERSION,
    }
    meta = workload.cached_parquet(path, lambda: generate_activity(data, per_customer, days, seed), identity)
    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    return Activity(path, rows, float(per_customer), int(days), int(seed), data.sha256, meta["sha256"])


def read_activity(path: str | Path) -> pl.DataFrame:
    """The activity log at ``path``, with a BenchError naming the file if it is missing, unreadable or
    not of the log's schema."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(
            f"activity file {str(path)!r} does not exist; generate it with bench.data.features.ensure_activity"
        )
    try:
        df = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BenchError(f"activity file {str(path)!r} is not a readable parquet file: {exc}") from exc
    for name, dtype in ACTIVITY_SCHEMA.items():
        if name not in df.columns:
            raise BenchError(f"activity file {str(path)!r} has no {name!r} column; expected {list(ACTIVITY_SCHEMA)}")
        if df.schema[name] != dtype:
            raise BenchError(
                f"activity file {str(path)!r}: column {name!r} has dtype {df.schema[name]}, expected {dtype}"
            )
    return df.select(list(ACTIVITY_SCHEMA))


def _window(as_of: datetime, window_days: float) -> tuple[datetime, datetime]:
    _check_window(window_days)
    return as_of - timedelta(days=window_days), as_of


def aggregate_all(
    df: pl.DataFrame, as_of: datetime = AS_OF, window_days: float = WINDOW_DAYS, customers: np.ndarray | None = None
) -> pl.DataFrame:
    """The batch pre-computation: ``customer_id``, ``events_90d`` (Int64) and ``amount_90d`` (Float64)
    over ``as_of - window_days <= event_time < as_of``, by one polars ``group_by``.

    Without ``customers``: one row per customer in the log (0 / 0.0 for those whose events are all
    outside the window), sorted by id. With ``customers`` (unique ids): exactly one row per given
    customer in the given order, 0 / 0.0 for those without events in the window.
    """
    lo, hi = _window(as_of, window_days)
    inside = (pl.col("event_time") >= lo) & (pl.col("event_time") < hi)
    if customers is None:
        grouped = df.group_by(ID).agg(
            inside.sum().cast(pl.Int64).alias("events_90d"), pl.col("amount").filter(inside).sum().alias("amount_90d")
        )
        return grouped.sort(ID)
    ids = pl.Series(ID, np.asarray(customers), dtype=ACTIVITY_SCHEMA[ID])
    if ids.n_unique() != ids.len():
        raise BenchError("aggregate parameter 'customers' has duplicate ids; give each customer once")
    grouped = (
        df.filter(inside)
        .group_by(ID)
        .agg(pl.len().cast(pl.Int64).alias("events_90d"), pl.col("amount").sum().alias("amount_90d"))
    )
    return (
        ids.to_frame()
        .join(grouped, on=ID, how="left", maintain_order="left")
        .with_columns(pl.col("events_90d").fill_null(0), pl.col("amount_90d").fill_null(0.0))
    )


def lookup(table: pl.DataFrame) -> dict[int, tuple[int, float]]:
    """``customer_id -> (events_90d, amount_90d)`` from :func:`aggregate_all`'s table (the in-process
    form of reading a pre-computed feature)."""
    return {
        int(c): (int(e), float(a))
        for c, e, a in zip(
            table[ID].to_list(), table["events_90d"].to_list(), table["amount_90d"].to_list(), strict=True
        )
    }


def expected(
    df: pl.DataFrame, customers, as_of: datetime = AS_OF, window_days: float = WINDOW_DAYS
) -> dict[int, tuple[int, float]]:
    """A reference for checking answers, in numpy (independent of the polars paths):
    ``customer_id -> (events_90d, amount_90d)`` for every id of ``customers``."""
    lo, hi = _window(as_of, window_days)
    t = df["event_time"].cast(pl.Datetime("us")).to_numpy()
    inside = (t >= np.datetime64(lo, "us")) & (t < np.datetime64(hi, "us"))
    ids = df[ID].to_numpy()[inside]
    amounts = df["amount"].to_numpy()[inside]
    order = np.argsort(ids, kind="stable")
    ids, amounts = ids[order], amounts[order]
    uniq, start, counts = np.unique(ids, return_index=True, return_counts=True)
    sums = np.add.reduceat(amounts, start) if uniq.size else np.zeros(0)
    found = {int(c): (int(n), float(s)) for c, n, s in zip(uniq, counts, sums, strict=True)}
    return {int(c): found.get(int(c), (0, 0.0)) for c in np.asarray(customers).tolist()}


class OnTheFly:
    """The aggregate computed at request time with polars over the whole log held in memory.

    The log is read once at construction (as a server does at start-up); each :meth:`get` filters
    every row of it (customer and window) and aggregates what is left, so its cost grows linearly with
    the log's size (``rows``), whatever the customer's own activity. No index, no sort, no cache.
    """

    def __init__(self, path: str | Path, as_of: datetime = AS_OF, window_days: float = WINDOW_DAYS) -> None:
        self.lo, self.hi = _window(as_of, window_days)
        self.path = Path(path)
        self.frame = read_activity(self.path)
        self.rows = self.frame.height

    def get(self, customer_id: int) -> tuple[int, float]:
        """(events_90d, amount_90d) of ``customer_id``, computed now; (0, 0.0) for a customer with none."""
        events, amount = (
            self.frame.filter(
                pl.col(ID) == int(customer_id), pl.col("event_time") >= self.lo, pl.col("event_time") < self.hi
            )
            .select(pl.len(), pl.col("amount").sum())
            .row(0)
        )
        return int(events), float(amount)
