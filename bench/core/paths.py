"""Where data, models and results live; environment variables let tests and users redirect them."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout holding pyproject.toml (editable install), else the current directory."""
    env = os.environ.get("BENCH_HOME")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd().resolve()


def data_dir() -> Path:
    """Generated datasets and trained models (``BENCH_DATA_DIR`` overrides)."""
    return Path(os.environ.get("BENCH_DATA_DIR") or project_root() / "data")


def results_dir() -> Path:
    """Run outputs: ``runs/<run_id>/`` and the report (``BENCH_RESULTS_DIR`` overrides)."""
    return Path(os.environ.get("BENCH_RESULTS_DIR") or project_root() / "results")


def notebooks_dir() -> Path:
    """The committed, output-free notebooks."""
    return project_root() / "notebooks"
