"""The ``bench`` command: bad input is refused before any work, with the thing named; a real smoke run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "nope"], "unknown pattern 'nope'"),
        (["run", "batch", "--profile", "huge"], "unknown profile 'huge'"),
        (["run", "batch", "--param", "rows=0"], "'rows' must be > 0"),
        (["run", "batch", "--param", "rows=ten"], "'rows' must be int"),
        (["run", "batch", "--param", "chunk_rows=-5"], "'chunk_rows' must be > 0"),
        (["run", "batch", "--param", "num_threads=0"], "'num_threads' must be > 0"),
        (["run", "batch", "--param", "trees=0"], "'trees' must be > 0"),
        (["run", "batch", "--param", "colour=blue"], "unknown batch parameter 'colour'"),
        (["run", "batch", "--param", "rows"], "--param expects key=value"),
        (["run", "batch", "--param", "predictor=xgboost"], "'predictor' must be one of"),
        (["run", "batch", "--param", "data_path=/no/such.parquet"], "does not exist"),
    ],
)
def test_bad_input_is_refused_naming_it(argv, message, tmp_path, capsys):
    results = tmp_path / "results"
    assert cli.main([*argv, "--results", str(results)]) == 2
    assert message in capsys.readouterr().err
    assert not any(results.glob("runs/*/result.json"))


def test_unwritable_results_dir_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["run", "batch", "--results", str(blocker / "results")]) == 2
    assert "not writable" in capsys.readouterr().err


@pytest.mark.notebook
def test_bench_run_prints_the_run_directory(tmp_path):
    results = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.cli",
            "run",
            "batch",
            "--profile",
            "smoke",
            "--param",
            "rows=1500",
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert run_dir.parent == results / "runs"
    assert (run_dir / "result.json").exists() and (run_dir / "10_batch.ipynb").exists()
