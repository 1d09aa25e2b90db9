"""RunResult files: atomic write, strict load of the current version, load_all's triage, provenance, raw samples."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import polars as pl
import pytest

from bench import results
from bench.core.errors import BenchError
from bench.measure import metrics
from bench.results import RunResult


def _result(run_id: str = "20260101T000000Z-batch-abc123", **overrides: object) -> RunResult:
    fields: dict = {
        "run_id": run_id,
        "pattern": "batch",
        "backend": "polars",
        "profile": "test",
        "params": {"rows": 1000, "chunk_rows": 250, "overlap": True, "data_path": ""},
        "metrics": {
            "predictions": 1000,
            "wall_seconds": 1.5,
            "throughput_per_s": 1000 / 1.5,
            "cpu_seconds": 2.25,
            "provisioned_core_seconds": 3.0,
            "latency_s": metrics.latency_summary([0.1, 0.2, 0.3, 0.4]),
            "phases_s": {"read": 0.5, "score": 0.75},
        },
        "provenance": results.provenance(model_sha256="x", data_sha256="y"),
    }
    fields.update(overrides)
    return RunResult(**fields)


def _write_json(run_dir: Path, data: object) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / results.RESULT_FILE
    path.write_text(json.dumps(data))
    return path


# --------------------------------------------------------------------------------------------
# Round trip
# --------------------------------------------------------------------------------------------


def test_write_load_round_trip(tmp_path: Path) -> None:
    original = _result()
    run_dir = tmp_path / "runs" / original.run_id
    path = results.write(original, run_dir)
    assert path == run_dir / "result.json"
    loaded = results.load(path)
    assert loaded == original
    assert loaded.to_dict() == original.to_dict()
    assert results.load(run_dir) == original  # a run directory works too
    assert loaded.schema_version == results.SCHEMA_VERSION
    assert loaded.provenance["model_sha256"] == "x" and loaded.provenance["data_sha256"] == "y"
    assert loaded.samples is None
    assert sorted(p.name for p in run_dir.iterdir()) == ["result.json"]  # no temp files left behind
    assert "samples" not in json.loads(path.read_text())


def test_invalid_result_round_trip(tmp_path: Path) -> None:
    original = _result()
    original.invalidate("scores differ from the predictor's on 3 rows")
    original.invalidate("machine busy")
    loaded = results.load(results.write(original, tmp_path / "run"))
    assert loaded.valid is False
    assert loaded.invalid_reasons == ["scores differ from the predictor's on 3 rows", "machine busy"]


def test_null_latency_is_allowed(tmp_path: Path) -> None:
    original = _result()
    original.metrics["latency_s"] = None
    assert results.load(results.write(original, tmp_path / "run")).metrics["latency_s"] is None


def test_write_overwrites_atomically(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    results.write(_result(backend="first"), run_dir)
    results.write(_result(backend="second"), run_dir)
    assert results.load(run_dir).backend == "second"
    assert sorted(p.name for p in run_dir.iterdir()) == ["result.json"]


def test_samples_written_and_loaded(tmp_path: Path) -> None:
    samples = pl.DataFrame({"chunk": [0, 1, 2], "latency_s": [0.1, 0.25, 0.2], "rows": [250, 250, 100]})
    original = _result()
    original.samples = samples
    run_dir = tmp_path / "run"
    results.write(original, run_dir)
    assert (run_dir / results.SAMPLES_FILE).is_file()
    back = results.load_samples(run_dir)
    assert back is not None and back.equals(samples)
    assert results.load_samples(str(run_dir)).equals(samples)


def test_load_samples_none_when_absent(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    results.write(_result(), run_dir)
    assert results.load_samples(run_dir) is None


def test_write_refuses_invalid_result_without_reasons(tmp_path: Path) -> None:
    bad = _result(valid=False)
    with pytest.raises(BenchError, match="invalid_reasons"):
        results.write(bad, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_write_into_unwritable_location(tmp_path: Path) -> None:
    # Tests run as root, so chmod does not make a directory unwritable; a path under a regular FILE
    # cannot be created by anyone.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    run_dir = blocker / "runs" / "r1"
    with pytest.raises(BenchError, match="not writable") as info:
        results.write(_result(), run_dir)
    assert str(run_dir) in str(info.value)
    with pytest.raises(BenchError, match="not writable"):
        results.ensure_writable(run_dir)
    assert blocker.read_text() == ""


# --------------------------------------------------------------------------------------------
# The strict loader
# --------------------------------------------------------------------------------------------


def _drop(key: str) -> Callable[[dict], None]:
    return lambda d: d.pop(key)


def _set(*keys_and_value: object) -> Callable[[dict], None]:
    *keys, value = keys_and_value

    def mutate(d: dict) -> None:
        target = d
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value

    return mutate


REFUSED: dict[str, tuple[Callable[[dict], None], str]] = {
    "missing run_id": (_drop("run_id"), "missing field 'run_id'"),
    "missing metrics": (_drop("metrics"), "missing field 'metrics'"),
    "missing provenance": (_drop("provenance"), "missing field 'provenance'"),
    "params not a dict": (_set("params", [1, 2]), "field 'params' must be dict"),
    "valid not a bool": (_set("valid", "yes"), "field 'valid' must be bool"),
    "schema_version 3": (_set("schema_version", 3), "schema_version 3 is not supported"),
    "schema_version 0": (_set("schema_version", 0), "schema_version 0 is not supported"),
    "schema_version missing": (_drop("schema_version"), "has no schema_version"),
    "schema_version as text": (_set("schema_version", "1"), "schema_version '1' is not supported"),
    "schema_version null": (_set("schema_version", None), "schema_version None is not supported"),
    "metrics lack predictions": (lambda d: d["metrics"].pop("predictions"), "metrics lack ['predictions']"),
    "metrics lack latency": (lambda d: d["metrics"].pop("latency_s"), "metrics lack ['latency_s']"),
    "negative throughput": (_set("metrics", "throughput_per_s", -1.0), "metrics.throughput_per_s must be a number"),
    "negative cpu": (_set("metrics", "cpu_seconds", -0.5), "metrics.cpu_seconds must be a number"),
    "text wall seconds": (_set("metrics", "wall_seconds", "1.5"), "metrics.wall_seconds must be a number"),
    "bool predictions": (_set("metrics", "predictions", True), "metrics.predictions must be a number"),
    "latency without p99": (_set("metrics", "latency_s", {"count": 3}), "metrics.latency_s must be null or"),
    "latency as number": (_set("metrics", "latency_s", 0.1), "metrics.latency_s must be null or"),
    "latency with a stray key": (_set("metrics", "latency_s", "p42", 0.1), "unknown key(s) ['p42']"),
    "metrics lack memory": (lambda d: d["metrics"].pop("memory"), "metrics lack ['memory']"),
    "memory as number": (_set("metrics", "memory", 5), "metrics.memory must hold exactly"),
    "memory as float": (_set("metrics", "memory", "peak_rss_bytes", 1.5), "peak_rss_bytes must be null or an int"),
    "negative memory": (_set("metrics", "memory", "peak_rss_bytes", -1), "peak_rss_bytes must be null or an int"),
    "fixed cost as text": (_set("metrics", "fixed_costs_s", "model_load", "1s"), "metrics.fixed_costs_s must map"),
    "fixed costs as list": (_set("metrics", "fixed_costs_s", [1.0]), "metrics.fixed_costs_s must map"),
    "provenance lacks git": (lambda d: d["provenance"].pop("git"), "provenance lacks 'git'"),
    "provenance lacks data sha": (lambda d: d["provenance"].pop("data_sha256"), "provenance lacks 'data_sha256'"),
    "invalid without reasons": (_set("valid", False), "invalid result must say why"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_load_refuses(tmp_path: Path, case: str) -> None:
    mutate, message = REFUSED[case]
    data = copy.deepcopy(_result().to_dict())
    mutate(data)
    path = _write_json(tmp_path / "run", data)
    with pytest.raises(BenchError) as info:
        results.load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)  # the file is named


def test_unmodified_dict_loads(tmp_path: Path) -> None:
    """The REFUSED cases start from a result that loads: each refusal is caused by its one change."""
    result = _result()  # built once: provenance carries the current second
    assert results.load(_write_json(tmp_path / "run", result.to_dict())) == result


def test_load_refuses_non_json(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text("{ this is not json")
    with pytest.raises(BenchError, match="is not valid JSON"):
        results.load(path)


def test_load_refuses_json_that_is_not_an_object(tmp_path: Path) -> None:
    path = _write_json(tmp_path / "run", [1, 2, 3])
    with pytest.raises(BenchError, match="expected a JSON object, got list"):
        results.load(path)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="does not exist"):
        results.load(tmp_path / "nowhere" / "result.json")
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(BenchError, match="does not exist"):
        results.load(tmp_path / "empty-run")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_load_refuses_non_finite_metrics(tmp_path: Path, value: float) -> None:
    data = _result().to_dict()
    data["metrics"]["throughput_per_s"] = value
    path = _write_json(tmp_path / "run", data)
    with pytest.raises(BenchError, match="throughput_per_s"):
        results.load(path)


def test_load_refuses_binary_file(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "binary"
    run_dir.mkdir(parents=True)
    (run_dir / results.RESULT_FILE).write_bytes(b"\xff\xfe\x00\x81 not text")
    with pytest.raises(BenchError, match="not valid JSON"):
        results.load(run_dir)
    assert set(results.load_all(tmp_path).refused) == {"binary"}


# --------------------------------------------------------------------------------------------
# load_all
# --------------------------------------------------------------------------------------------


def test_load_all_separates_good_refused_incomplete(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    good_a = _result(run_id="a-good")
    good_b = _result(run_id="b-good", backend="pyarrow")
    results.write(good_a, runs / "a-good")
    results.write(good_b, runs / "b-good")
    bad = _result(run_id="c-bad").to_dict()
    bad["schema_version"] = 99
    _write_json(runs / "c-bad", bad)
    (runs / "d-notjson").mkdir()
    (runs / "d-notjson" / "result.json").write_text("")
    (runs / "e-running").mkdir()
    (runs / "e-running" / "samples.parquet").write_bytes(b"")
    (runs / "stray-file.txt").write_text("not a run")

    loaded = results.load_all(tmp_path)
    assert [r.run_id for r in loaded.results] == ["a-good", "b-good"]
    assert loaded.results == [good_a, good_b]
    assert set(loaded.refused) == {"c-bad", "d-notjson"}
    assert "schema_version 99" in loaded.refused["c-bad"]
    assert "not valid JSON" in loaded.refused["d-notjson"]
    assert loaded.incomplete == ["e-running"]


def test_load_all_without_runs(tmp_path: Path) -> None:
    loaded = results.load_all(tmp_path / "no-such-dir")
    assert (loaded.results, loaded.refused, loaded.incomplete) == ([], {}, [])


def test_default_results_dir_is_bench_results_dir(results_dir: Path) -> None:
    run_dir = results.run_dir_for("r-1")
    assert run_dir == results_dir / "runs" / "r-1"
    results.write(_result(run_id="r-1"), run_dir)
    loaded = results.load_all()
    assert [r.run_id for r in loaded.results] == ["r-1"]


# --------------------------------------------------------------------------------------------
# Provenance and ids
# --------------------------------------------------------------------------------------------


def test_provenance_keys() -> None:
    prov = results.provenance(model_sha256="x", data_sha256="y")
    assert {"utc", "git", "python", "machine", "hostname", "packages", "model_sha256", "data_sha256"} <= set(prov)
    assert (prov["model_sha256"], prov["data_sha256"]) == ("x", "y")
    assert set(prov["git"]) == {"commit", "dirty"}
    assert prov["machine"]["logical_cores"] == os.cpu_count()
    assert prov["machine"]["memory_gib"] > 0
    assert {"cpu_model", "os", "arch"} <= set(prov["machine"])
    assert prov["packages"]["lightgbm"] == lgb.__version__
    assert prov["packages"]["polars"] == pl.__version__
    assert json.loads(json.dumps(prov)) == prov  # plain JSON
    assert str(os.cpu_count()) in results.machine_key(prov)


def test_provenance_git_commit_of_this_checkout() -> None:
    git = results.provenance(model_sha256=None, data_sha256=None)["git"]
    if (results.paths.project_root() / ".git").exists():
        assert isinstance(git["commit"], str) and len(git["commit"]) == 40
        assert isinstance(git["dirty"], bool)
    else:
        assert git == {"commit": None, "dirty": None}


def test_new_run_id() -> None:
    ids = {results.new_run_id("batch") for _ in range(20)}
    assert len(ids) == 20
    assert all("-batch-" in i for i in ids)
    assert sorted(ids)[0][:8].isdigit()


def test_numpy_scalars_in_metrics_are_written_as_numbers(tmp_path: Path) -> None:
    import numpy as np

    result = _result()
    result.metrics["predictions"] = np.int64(7)
    result.metrics["throughput_per_s"] = np.float64(2.5)
    results.write(result, tmp_path / "run")
    loaded = results.load(tmp_path / "run")
    assert loaded.metrics["predictions"] == 7 and loaded.metrics["throughput_per_s"] == 2.5
