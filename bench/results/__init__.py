"""RunResult: one JSON per run with a schema version and provenance, raw samples beside it, a strict loader.

Layout: ``results/runs/<run_id>/result.json``, ``samples.parquet`` (raw observations, so every
statistic can be recomputed) and the executed notebook. The modules: ``schema`` (typed blocks,
``SCHEMA_VERSION``, ``check``), ``migrate`` (``update_to_2``…), ``provenance``, ``io`` (write and
load), ``selection`` (one machine's valid runs).
"""

from bench.core import paths
from bench.results.io import (
    RESULT_FILE,
    SAMPLES_FILE,
    Loaded,
    ensure_writable,
    load,
    load_all,
    load_samples,
    run_dir_for,
    write,
)
from bench.results.migrate import MIGRATIONS, SUPPORTED_VERSIONS, migrate, update_to_2
from bench.results.provenance import machine, machine_key, new_run_id, provenance
from bench.results.schema import REQUIRED_METRICS, SCHEMA_VERSION, Latency, Memory, Metrics, RunResult, check

__all__ = [
    "MIGRATIONS",
    "REQUIRED_METRICS",
    "RESULT_FILE",
    "SAMPLES_FILE",
    "SCHEMA_VERSION",
    "SUPPORTED_VERSIONS",
    "Latency",
    "Loaded",
    "Memory",
    "Metrics",
    "RunResult",
    "check",
    "ensure_writable",
    "load",
    "load_all",
    "load_samples",
    "machine",
    "machine_key",
    "migrate",
    "new_run_id",
    "paths",
    "provenance",
    "run_dir_for",
    "update_to_2",
    "write",
]
