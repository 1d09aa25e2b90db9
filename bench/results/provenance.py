"""Provenance of a run: where (machine), with what (git commit, packages, model and data hashes) and when."""

from __future__ import annotations

import os
import platform
import secrets
import subprocess
import sys
import time
from importlib import metadata
from typing import Any

import psutil

from bench.core import paths

_PACKAGES = ("lightgbm", "polars", "ray", "papermill", "numpy", "pyarrow")


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
