"""Reading and writing results: ``results/runs/<run_id>/result.json`` beside ``samples.parquet``.

Writes are atomic (temp file + rename) and always of the current schema version; loads migrate older
versions (``bench.results.migrate``) and refuse what they cannot read, naming the file and the reason.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from bench.core import paths
from bench.core.errors import BenchError
from bench.core.files import atomic_write_bytes
from bench.core.params import nonfinite_keys
from bench.results.migrate import migrate
from bench.results.schema import RunResult, check

RESULT_FILE = "result.json"
SAMPLES_FILE = "samples.parquet"


def _json_default(value: Any) -> Any:
    """numpy scalars become numbers (not strings that then fail the number check); anything else str."""
    return value.item() if hasattr(value, "item") else str(value)


def ensure_writable(directory: Path) -> None:
    """Fail before any work if results cannot be written to ``directory``."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"results directory {str(directory)!r} is not writable: {exc.strerror or exc}") from exc


def run_dir_for(run_id: str, results: Path | None = None) -> Path:
    """Where run ``run_id``'s files go under a results directory (default: the project's)."""
    return (results or paths.results_dir()) / "runs" / run_id


def write(result: RunResult, run_dir: Path) -> Path:
    """Write the samples (if any) then result.json, each atomically; the result is checked first."""
    check(json.loads(json.dumps(result.to_dict(), default=_json_default)), source=f"run {result.run_id}")
    ensure_writable(run_dir)
    if result.samples is not None:
        samples = result.samples
        atomic_write_bytes(run_dir / SAMPLES_FILE, lambda tmp: samples.write_parquet(tmp))
    path = run_dir / RESULT_FILE
    try:  # NaN/Infinity is not JSON: no other reader could load the file
        text = json.dumps(result.to_dict(), indent=2, default=_json_default, allow_nan=False)
    except ValueError as exc:
        where = ", ".join(nonfinite_keys(result.to_dict())) or str(exc)
        raise BenchError(f"run {result.run_id}: not written: NaN or infinity (not JSON) at {where}") from exc
    atomic_write_bytes(path, lambda tmp: tmp.write_text(text))
    return path


def load(path: str | Path) -> RunResult:
    """Load one result.json (or a run directory holding one), migrated to the current schema and validated."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
    if not path.is_file():
        raise BenchError(f"result file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"result file {str(path)!r} is not valid JSON: {exc}") from exc
    return check(migrate(data, source=str(path)), source=str(path))


def load_samples(run_dir: str | Path) -> pl.DataFrame | None:
    """The raw samples of a run, or None if it kept none."""
    path = Path(run_dir) / SAMPLES_FILE
    return pl.read_parquet(path) if path.exists() else None


@dataclass
class Loaded:
    """Every result under a results directory: the good ones, and the ones refused with the reason."""

    results: list[RunResult]
    refused: dict[str, str]  #: run directory -> why it was not loaded
    incomplete: list[str]  #: run directories without result.json (a run that failed or is running)


def load_all(results: Path | None = None) -> Loaded:
    """Load every ``runs/*/result.json``; malformed files are refused with a reason, never silently."""
    runs = Path(results or paths.results_dir()) / "runs"
    out = Loaded([], {}, [])
    if not runs.is_dir():
        return out
    for d in sorted(p for p in runs.iterdir() if p.is_dir()):
        if not (d / RESULT_FILE).exists():
            out.incomplete.append(d.name)
            continue
        try:
            out.results.append(load(d))
        except BenchError as exc:
            out.refused[d.name] = str(exc)
    return out
