"""Every notebook executed for real with papermill on smoke-sized parameters, nbval on the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import polars as pl
import pytest
from helpers import assert_valid_or_busy
from papermill.exceptions import PapermillExecutionError

from bench import results
from bench.app import pipeline, profiles
from bench.core import paths
from bench.tools import publish

pytestmark = pytest.mark.notebook

SMOKE = profiles.get("smoke")
NOTEBOOKS = sorted(p.name for p in paths.notebooks_dir().glob("*.ipynb"))


@pytest.fixture
def nb_results(tmp_path, monkeypatch) -> Path:
    out = tmp_path / "results"
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(out))
    return out


def _outputs_text(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") + json.dumps(out.get("data", {})))
    return "\n".join(parts)


def test_committed_notebooks_are_clean_and_parameterized():
    assert NOTEBOOKS == [
        "00_data.ipynb",
        "01_model.ipynb",
        "05_predictor.ipynb",
        "10_batch.ipynb",
        "20_microbatch.ipynb",
        "30_request.ipynb",
        "40_hybrid.ipynb",
        "90_report.ipynb",
        "95_recommend.ipynb",
    ]
    for name in NOTEBOOKS:
        nb = nbformat.read(paths.notebooks_dir() / name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name} has outputs"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{name} needs exactly one cell tagged 'parameters'"
        assert nb.metadata["kernelspec"]["name"] and nb.metadata["language_info"]["name"] == "python"


def test_data_and_model_notebooks(nb_results):
    pipeline.setup_notebooks("smoke", nb_results)
    text = _outputs_text(nb_results / "notebooks" / "01_model.ipynb")
    assert "holdout AUC" in text
    assert "churned" in _outputs_text(nb_results / "notebooks" / "00_data.ipynb")


def test_batch_notebook_writes_a_valid_result_beside_the_executed_copy(nb_results):
    values = pipeline.pattern_parameters("batch", "smoke", {"rows": "3000"})
    run_dir = pipeline.run_pattern("batch", values, "smoke", nb_results)
    result = results.load(run_dir)
    assert_valid_or_busy(result)
    assert result.profile == "smoke" and result.metrics["predictions"] == 3000
    assert (run_dir / "10_batch.ipynb").exists() and (run_dir / "samples.parquet").exists()
    assert result.run_id == run_dir.name


def test_report_notebook_exports_html_without_code(nb_results):
    run_dir = pipeline.run_pattern("batch", pipeline.pattern_parameters("batch", "smoke"), "smoke", nb_results)
    result = results.load(run_dir)
    if not assert_valid_or_busy(result):
        # The report compares valid runs only, and this test checks its shape, not a number: a run a busy
        # machine voided is marked valid here (only here) so that the sections it fills are built.
        result.valid, result.invalid_reasons = True, []
        results.write(result, run_dir)
    html = pipeline.report(nb_results).read_text()
    assert "Bulk batch" in html and "predictions/s" in html
    assert "report.select(" not in html  # code cells are not exported
    assert "<img" in html  # the plots are there
    # the session's runs come from this working tree, clean or not: the copying is what is tested here
    out = publish.publish(nb_results, nb_results / "published", one_commit=False)
    assert {p.name for p in out.glob("*.png")} == set(publish.PLOTS.values())
    assert "| C1 |" in (out / "verdicts.md").read_text() and (out / "95_recommend.ipynb").exists()
    assert json.loads((out / "provenance.json").read_text())["runs"][0]["pattern"] == "batch"


@pytest.mark.parametrize(
    ("params", "message"),
    [({"rows": "ten"}, "'rows' must be int"), ({"rowz": 10}, "unknown notebook 10_batch.ipynb parameter")],
)
def test_bad_notebook_parameter_fails_at_once_naming_it(nb_results, params, message):
    out = nb_results / "bad.ipynb"
    with pytest.raises(PapermillExecutionError) as err:
        pipeline.execute("10_batch.ipynb", out, {**SMOKE.pattern_params("batch"), **params})
    assert message in str(err.value)
    assert not (nb_results / "runs").exists()  # failed before any work


def test_report_notebook_passes_nbval(tmp_path):
    """nbval --nbval-lax: every cell of the committed report runs without error (here on an empty results dir)."""
    env = {**os.environ, "BENCH_RESULTS_DIR": str(tmp_path / "empty")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-current-env",
            "-p",
            "no:cacheprovider",
            "-q",
            str(paths.notebooks_dir() / "90_report.ipynb"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=paths.project_root(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


@pytest.mark.parametrize(("backend", "rate"), [("inprocess", "100"), ("http", "100"), ("ray_serve", "20")])
def test_request_notebook_runs_every_backend(nb_results, backend, rate):
    """A real in-process run, a real uvicorn server and a real Ray Serve on loopback, small and short."""
    values = pipeline.pattern_parameters("request", "smoke", {"backend": backend, "rate": rate})
    run_dir = pipeline.run_pattern("request", values, "smoke", nb_results)
    result = results.load(run_dir)
    assert result.pattern == "request" and result.backend.startswith(backend)
    assert result.metrics["latency_s"]["count"] > 0
    assert result.metrics["score_mismatches"] == 0
    assert (run_dir / "30_request.ipynb").exists() and (run_dir / "samples.parquet").exists()


def test_microbatch_notebook_runs_on_a_real_local_ray(nb_results):
    values = pipeline.pattern_parameters("microbatch", "smoke")
    run_dir = pipeline.run_pattern("microbatch", values, "smoke", nb_results)
    result = results.load(run_dir)
    assert result.pattern == "microbatch" and result.metrics["delivery"]["lost_events"] == 0
    assert result.metrics["latency_s"]["count"] > 0 and result.metrics["saturation"]["ratio_to_bulk"] > 0
    assert (run_dir / "20_microbatch.ipynb").exists() and (run_dir / "samples.parquet").exists()


def test_hybrid_notebook_runs_a_real_job_store_and_server(nb_results):
    values = pipeline.pattern_parameters("hybrid", "smoke", {"fault_batch_kill_at_s": "1.0"})
    run_dir = pipeline.run_pattern("hybrid", values, "smoke", nb_results)
    result = results.load(run_dir)
    m = result.metrics
    assert result.pattern == "hybrid" and m["score_mismatches"] == 0 and m["lookup_latency_s"]["count"] > 0
    assert m["batch_fault"]["killed_before_publish"] and m["batch_fault"]["errors"] == 0
    assert (run_dir / "40_hybrid.ipynb").exists() and "age_s" in pl.read_parquet(run_dir / "samples.parquet").columns


def test_predictor_notebook_measures_the_predictor_alone(nb_results):
    values = pipeline.pattern_parameters("predictor", "smoke", {"min_seconds": "0.05"})
    run_dir = pipeline.run_pattern("predictor", values, "smoke", nb_results)
    result = results.load(run_dir)
    m = result.metrics
    assert result.pattern == "predictor" and [s["size"] for s in m["call_sizes"]] == [1, 10, 100, 1000, 10000]
    assert m["max_abs_diff_vs_lightgbm"] == 0.0 and m["predictions"] >= 3 * 10000
    assert (run_dir / "05_predictor.ipynb").exists() and (run_dir / "samples.parquet").exists()
    assert "cpu_us_per_row" in _outputs_text(run_dir / "05_predictor.ipynb")  # the per-size table
