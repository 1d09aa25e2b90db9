"""Shared fixtures: every artifact goes to temporary directories, never into the checkout.

* ``BENCH_DATA_DIR`` and ``BENCH_RESULTS_DIR`` point into one session temp dir for the whole test
  session (set before any test or fixture runs, inherited by subprocesses such as papermill kernels),
  so code that uses the default locations (``bench.core.paths``) cannot write into ``data/`` or ``results/``.
* ``data_dir`` (session): the generated-data directory; datasets and models are generated there once
  per session and reused by every test.
* ``results_dir`` (function): a fresh, empty results directory per test; ``BENCH_RESULTS_DIR`` points
  at it for the duration of the test. For a results directory shared by a whole module, make one with
  ``tmp_path_factory`` and pass it explicitly.
* ``small_dataset`` / ``small_model`` (session): a 5k-row dataset and a 10-tree model for tests that
  need real files but not a good model. Treat them as read-only; tests that corrupt or rewrite files
  use their own ``tmp_path``.

Helpers that are not fixtures (result builders, the busy-machine rule) are in ``tests/helpers.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import model
from bench.data import workload
from bench.model import ModelParams

SMALL_DATASET_ROWS = 5_000
SMALL_DATASET_SEED = 3
SMALL_MODEL_PARAMS = ModelParams(train_rows=5_000, trees=10, leaves=7, num_threads=1)


@pytest.fixture(scope="session", autouse=True)
def bench_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point BENCH_DATA_DIR / BENCH_RESULTS_DIR into a session temp dir for the whole session."""
    root = tmp_path_factory.mktemp("bench")
    (root / "data").mkdir()
    (root / "results").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_DATA_DIR", str(root / "data"))
        mp.setenv("BENCH_RESULTS_DIR", str(root / "results"))
        yield root


@pytest.fixture(scope="session")
def data_dir(bench_env: Path) -> Path:
    """The session's data directory (what ``bench.core.paths.data_dir()`` returns during the tests)."""
    path = Path(os.environ["BENCH_DATA_DIR"])
    assert path.is_relative_to(bench_env)
    return path


@pytest.fixture
def results_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty results directory; ``bench.core.paths.results_dir()`` returns it during the test."""
    path = tmp_path_factory.mktemp("results")
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def small_dataset(data_dir: Path) -> workload.Dataset:
    """A 5,000-row generated dataset (seed 3), written once per session. Read-only."""
    return workload.ensure_dataset(rows=SMALL_DATASET_ROWS, seed=SMALL_DATASET_SEED, directory=data_dir)


@pytest.fixture(scope="session")
def small_model(data_dir: Path) -> model.Model:
    """A 10-tree, 7-leaf model trained on 5,000 rows (data seed 1), trained once per session. Read-only."""
    return model.ensure_model(SMALL_MODEL_PARAMS, directory=data_dir)
