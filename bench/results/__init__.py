"""RunResult: one JSON per run with a schema version and provenance, raw samples beside it, a strict loader.

Layout: ``results/runs/<run_id>/result.json``, ``samples.parquet`` (raw observations, so every
statistic can be recomputed) and the executed notebook. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import json
import math
import os
import platform
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl
import psutil

from bench.core import paths
from bench.core.errors import BenchError
from bench.data.workload import atomic_write_bytes

SCHEMA_VERSION = 1
RESULT_FILE = "result.json"
SAMPLES_FILE = "samples.parquet"

#: Metrics every result carries; patterns add their own keys beside these.
REQUIRED_METRICS = (
    "predictions",
    "wall_seconds",
    "throughput_per_s",
    "cpu_seconds",
    "provisioned_core_seconds",
    "latency_s",
)
_PACKAGES = ("lightgbm", "polars", "ray", "papermill", "numpy", "pyarrow")


def _json_default(value: Any) -> Any:
    """numpy scalars become numbers (not strings that then fail the number check); anything else str."""
    return value.item() if hasattr(value, "item") else str(value)


def new_run_id(pattern: str) -> str:
    """Sortable, unique: UTC time, pattern, random suffix."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{pattern}-{secrets.token_hex(3)}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git() -> dict[str, Any]:
    root = paths.project_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """What identifies the hardware a run was measured on; runs are compared only within one machine."""
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
    }


def machine_key(prov: dict[str, Any]) -> str:
    """A short label of the machine in a provenance block (CPU model, cores, memory)."""
    m = prov["machine"]
    return f"{m['cpu_model']} · {m['logical_cores']} cores · {m['memory_gib']} GiB"


def provenance(*, model_sha256: str | None, data_sha256: str | None) -> dict[str, Any]:
    """Everything needed to tell where and with what a number was measured."""
    return {
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": _git(),
        "python": sys.version.split()[0],
        "machine": machine(),
        "hostname": platform.node(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "model_sha256": model_sha256,
        "data_sha256": data_sha256,
    }


@dataclass
class RunResult:
    """One run of one pattern. ``valid`` is False with reasons whenever a number must not be trusted."""

    run_id: str
    pattern: str
    backend: str
    profile: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    valid: bool = True
    invalid_reasons: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    #: raw observations, written beside result.json as samples.parquet (not part of the JSON)
    samples: pl.DataFrame | None = field(default=None, repr=False, compare=False)

    def invalidate(self, reason: str) -> None:
        self.valid = False
        self.invalid_reasons.append(reason)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"}


def check(data: Any, source: str = "result") -> RunResult:
    """Validate a decoded result.json and build the RunResult, or raise BenchError saying what is wrong."""
    if not isinstance(data, dict):
        raise BenchError(f"{source}: expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BenchError(f"{source}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
    types = {
        "run_id": str,
        "pattern": str,
        "backend": str,
        "profile": str,
        "params": dict,
        "metrics": dict,
        "provenance": dict,
        "valid": bool,
        "invalid_reasons": list,
    }
    for key, tp in types.items():
        if key not in data:
            raise BenchError(f"{source}: missing field {key!r}")
        if not isinstance(data[key], tp):
            raise BenchError(f"{source}: field {key!r} must be {tp.__name__}, got {type(data[key]).__name__}")
    missing = [k for k in REQUIRED_METRICS if k not in data["metrics"]]
    if missing:
        raise BenchError(f"{source}: metrics lack {missing}")
    for key in REQUIRED_METRICS:
        value = data["metrics"][key]
        if key == "latency_s":
            if value is not None and not (isinstance(value, dict) and "count" in value and "p99" in value):
                raise BenchError(f"{source}: metrics.latency_s must be null or a latency summary with count and p99")
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or not (0 <= value < math.inf):
            raise BenchError(f"{source}: metrics.{key} must be a number, finite and >= 0, got {value!r}")
    for key in ("utc", "git", "machine", "packages", "model_sha256", "data_sha256"):
        if key not in data["provenance"]:
            raise BenchError(f"{source}: provenance lacks {key!r}")
    if not data["valid"] and not data["invalid_reasons"]:
        raise BenchError(f"{source}: an invalid result must say why (invalid_reasons is empty)")
    fields = set(types) | {"schema_version"}
    return RunResult(**{k: data[k] for k in fields})


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
    return (results or paths.results_dir()) / "runs" / run_id


def write(result: RunResult, run_dir: Path) -> Path:
    """Write the samples (if any) then result.json, each atomically; the result is checked first."""
    check(json.loads(json.dumps(result.to_dict(), default=_json_default)), source=f"run {result.run_id}")
    ensure_writable(run_dir)
    if result.samples is not None:
        samples = result.samples
        atomic_write_bytes(run_dir / SAMPLES_FILE, lambda tmp: samples.write_parquet(tmp))
    path = run_dir / RESULT_FILE
    text = json.dumps(result.to_dict(), indent=2, default=_json_default)
    atomic_write_bytes(path, lambda tmp: tmp.write_text(text))
    return path


def load(path: str | Path) -> RunResult:
    """Load and validate one result.json (or a run directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
    if not path.is_file():
        raise BenchError(f"result file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"result file {str(path)!r} is not valid JSON: {exc}") from exc
    return check(data, source=str(path))


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
