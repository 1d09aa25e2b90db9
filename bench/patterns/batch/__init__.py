"""Bulk batch: a parquet table scored by polars in-process (``local``) or on Ray Data (``ray_data``).

Both engines share the input checks, the output file, the raw-predict baseline and the verification
(``local``); ``engine`` chooses one.
"""

from __future__ import annotations

from bench.data import workload
from bench.model import Model
from bench.patterns.base import Pattern, RunContext, Sweep
from bench.patterns.batch import ray_data
from bench.patterns.batch.local import PHASES, BatchParams, run_local
from bench.results import RunResult

__all__ = ["PATTERN", "PHASES", "BatchParams", "run"]


def run(data: workload.Dataset, model: Model, params: BatchParams, context: RunContext) -> RunResult:
    """Score every row of ``data`` with the chosen engine and write ``predictions.parquet``."""
    if params.engine == "ray":
        return ray_data.run(data, model, params, context)
    return run_local(data, model, params, context)


def batch_label(values: dict) -> str:
    """A sweep point in a progress line: the job's size."""
    return f"{values.get('rows')} rows"


PATTERN = Pattern(
    name="batch",
    params=BatchParams,
    run=run,
    notebook="10_batch.ipynb",
    family="batch",
    cost_kind="job",
    label=batch_label,
    sweep=Sweep(base="batch", repeats="repeats", sizes="batch_rows", compiled="batch_compiled"),
    view="bench.views.batch",
    limits="phases",
)
