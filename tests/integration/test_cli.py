"""The ``bench`` command: bad input is refused before any work, with the thing named; a real smoke run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.app import cli, profiles


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
            "bench.app.cli",
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


def test_the_pipeline_goes_on_past_a_failed_run_and_fails_at_the_end(tmp_path, monkeypatch):
    """One failed run must not throw away the others: every run is attempted, the report is built,
    and the command still fails naming what failed."""
    from papermill.exceptions import PapermillExecutionError

    from bench.app import pipeline
    from bench.core.errors import BenchError

    attempted, reported = [], []

    def fake_run(name, values, profile, results_dir):
        attempted.append(name)
        if name == "hybrid" and "predictor" not in values:
            raise PapermillExecutionError(0, 1, "boom", "BenchError", "store broke", [])
        return tmp_path / name

    monkeypatch.setattr(pipeline, "setup_notebooks", lambda *a, **kw: None)
    monkeypatch.setattr(pipeline, "run_pattern", fake_run)
    monkeypatch.setattr(pipeline, "report", lambda results_dir, profile: reported.append(1) or tmp_path / "r.html")
    lines: list[str] = []
    with pytest.raises(BenchError, match=r"1 run\(s\) failed.*\n.*hybrid 1/2"):
        pipeline.full("smoke", tmp_path, log=lines.append)
    assert {"batch", "hybrid", "microbatch", "request"} <= set(attempted) and reported == [1]
    assert any("FAILED, going on" in line for line in lines)


def test_the_pipeline_skips_a_predictor_this_machine_cannot_run_and_says_so(tmp_path, monkeypatch):
    from bench import model
    from bench.app import pipeline

    attempted: list[dict] = []
    monkeypatch.setattr(pipeline, "setup_notebooks", lambda *a, **kw: None)
    monkeypatch.setattr(pipeline, "run_pattern", lambda name, values, *a: attempted.append(values) or tmp_path)
    monkeypatch.setattr(pipeline, "report", lambda results_dir, profile: tmp_path / "r.html")
    monkeypatch.setattr(model, "predictor_unavailable", lambda name: "no lleaves here" if name == "lleaves" else None)
    lines: list[str] = []
    pipeline.full("smoke", tmp_path, log=lines.append)  # does not fail: the native runs all ran
    assert attempted and all(v.get("predictor", "lightgbm") == "lightgbm" for v in attempted)
    skipped = [line for line in lines if "SKIPPED: no lleaves here" in line]
    assert len(skipped) == sum(
        v.get("predictor") == "lleaves"
        for p in ("batch", "request", "microbatch", "hybrid", "predictor")
        for v in profiles.get("smoke").sweep(p)
    )
