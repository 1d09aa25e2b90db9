"""Old result files still load (asv's test_backward_compat_load): v1 fixtures migrate to v2 and give the
same report numbers the v1 code gave; unknown versions are refused with what to do."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from bench import results
from bench.analysis import cost
from bench.core.errors import BenchError
from bench.results import Latency, Memory, Metrics, RunResult
from bench.views import report

FIXTURES = Path(__file__).parents[2] / "fixtures"
V1 = FIXTURES / "results_v1"
#: Figures the v1 code (commit a82ca52, before typed results) computed from these fixtures: runs_table,
#: cost options and sweep, and service measures at an injected capacity.
EXPECTED = json.loads((FIXTURES / "results_v1_expected.json").read_text())
V1_RUNS = sorted(p.name for p in V1.iterdir() if p.is_dir())
#: Kinds the fixtures must cover (pattern, backend prefix): one file per kind at least.
KINDS = [
    ("batch", "local/lightgbm"),
    ("batch", "local/lleaves"),
    ("microbatch", "ray/"),
    ("predictor", "lightgbm"),
    ("request", "inprocess/"),
    ("request", "http/"),
    ("hybrid", "lookup["),
]


def _raw(run_id: str) -> dict:
    return json.loads((V1 / run_id / results.RESULT_FILE).read_text())


def _loaded() -> list[RunResult]:
    return [results.load(V1 / run_id) for run_id in V1_RUNS]


def test_fixtures_cover_every_kind_and_are_v1() -> None:
    raws = [_raw(r) for r in V1_RUNS]
    assert {d["schema_version"] for d in raws} == {1}
    for pattern, prefix in KINDS:
        assert any(d["pattern"] == pattern and d["backend"].startswith(prefix) for d in raws), (pattern, prefix)


@pytest.mark.parametrize("run_id", V1_RUNS)
def test_every_v1_fixture_loads_as_v2_with_its_values(run_id: str) -> None:
    raw = _raw(run_id)
    r = results.load(V1 / run_id)
    assert r.schema_version == 2 and r.run_id == raw["run_id"]
    assert (r.pattern, r.backend, r.valid, r.invalid_reasons) == (
        raw["pattern"],
        raw["backend"],  # labels are kept as written
        raw["valid"],
        raw["invalid_reasons"],
    )
    assert r.params == raw["params"] and {"predictor", "num_threads"} <= set(r.params)
    # every v1 metric reads back the same through the mapping access the readers use
    for key, value in raw["metrics"].items():
        assert key in r.metrics and r.metrics[key] == value, key
    assert set(r.metrics) == set(raw["metrics"]) | {"memory"}
    # and through the typed fields
    m = r.metrics
    assert (m.predictions, m.wall_seconds, m.cpu_seconds) == tuple(
        raw["metrics"][k] for k in ("predictions", "wall_seconds", "cpu_seconds")
    )
    assert m.fixed_costs_s == raw["metrics"]["fixed_costs_s"]
    assert (m.latency_s is None) == (raw["metrics"]["latency_s"] is None)
    if m.latency_s is not None:
        assert m.latency_s.p99 == raw["metrics"]["latency_s"]["p99"]
    assert m.memory.peak_rss_bytes and m.memory.peak_rss_bytes > 0  # every fixture measured its memory


def test_memory_comes_from_where_each_pattern_measured_it() -> None:
    for r in _loaded():
        raw = _raw(r.run_id)["metrics"]
        if r.pattern in ("batch", "predictor"):
            assert r.metrics.memory == Memory(raw["peak_rss_bytes"], "job process tree")
        elif r.pattern == "microbatch":
            assert r.metrics.memory == Memory(raw["ray"]["rss_bytes_with_actors"], "ray cluster with its actors")
        else:  # per-request and hybrid servers: the meter's tree, server and load generator
            assert r.metrics.memory == Memory(raw["cpu"]["peak_rss_bytes"], "server and load generator")


def test_runs_table_is_the_v1_codes() -> None:
    assert report.runs_table(_loaded()).to_dicts() == EXPECTED["runs_table"]


def _same_fields(new: dict, old: dict) -> dict:
    """The new measure restricted to the fields the v1 code had (later cost models read more)."""
    return {k: new[k] for k in old}


def test_cost_model_reads_the_v1_codes_measurements() -> None:
    """What the cost model reads from each run (rates, CPU, cores, fixed costs, memory) is what the v1
    code read from the same files; the prices put on them are the cost model's own (issue 13 reshaped
    them into a bill), so only the measured inputs are pinned here."""
    runs = _loaded()
    opts, missing = cost.options(runs)
    got = {o.label: [asdict(m) for m in o.measures] for o in opts}
    for label, old in EXPECTED["options"].items():
        assert label in got, f"option {label!r} of the v1 code is no longer costed"
        olds = [m | {"memory_gib": 0.0} if label.startswith(("real-time", "hybrid")) else m for m in old["measures"]]
        news = [m | {"memory_gib": 0.0} if label.startswith(("real-time", "hybrid")) else m for m in got[label]]
        # sums of the same measured seconds may differ in the last bit (they are added in another order)
        for n, o in zip(news, olds, strict=True):
            assert _same_fields(n, o) == {k: pytest.approx(v, rel=1e-12) if isinstance(v, float) else v for k, v in o.items()}
    assert {m["option"] for m in missing} <= {m["option"] for m in EXPECTED["missing"]}


def test_servers_memory_is_now_priced() -> None:
    """The v1 code priced per-request and hybrid servers' memory at $0 (no one read it): their measure now
    carries the server's peak RSS and the bill a memory part; streaming's memory is as before."""
    p, w = cost.load_prices(), cost.Workload(1e6)
    before = EXPECTED["services_at_capacity_1000"]
    for r in _loaded():
        if r.run_id not in before or not cost.serving(r):
            continue  # a fault run sizes no service
        r.metrics["capacity"] = {"rate_per_s": 1000.0, "slo_ms": 50.0}  # smoke runs search no capacity
        if r.pattern == "hybrid":
            measure, day = cost.hybrid_measures([r], r.backend)[0], cost.hybrid_cost
        else:
            measure, day = cost.service_measures([r], r.pattern, r.backend)[0], cost.service_cost
        old = before[r.run_id]["measure"]
        assert measure.memory_gib == pytest.approx(r.metrics.memory.peak_rss_bytes / 2**30)
        assert _same_fields(asdict(measure), old) | {"memory_gib": 0.0} == old | {"memory_gib": 0.0}
        if r.pattern == "microbatch":
            assert measure.memory_gib == old["memory_gib"]
        else:
            assert old["memory_gib"] == 0.0 and measure.memory_gib > 0.25
            assert day(measure, w, p)["breakdown"]["memory"] > 0


@pytest.mark.parametrize("run_id", V1_RUNS)
def test_migrated_fixture_round_trips_as_v2(tmp_path: Path, run_id: str) -> None:
    r = results.load(V1 / run_id)
    path = results.write(r, tmp_path / run_id)
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 2 and doc["metrics"]["memory"] == r.metrics.memory.to_dict()
    back = results.load(path)
    assert back == r and back.to_dict() == r.to_dict() == doc


def test_update_to_2_fills_params_older_runs_lacked_and_keeps_labels() -> None:
    old = _raw("20261201T205433Z-microbatch-524e25")
    del old["params"]["predictor"], old["params"]["num_threads"]
    old["backend"] = "ray/b1000-w50ms"
    before = copy.deepcopy(old)
    new = results.update_to_2(old)
    assert old == before  # the input is not modified
    assert new["schema_version"] == 2 and new["backend"] == "ray/b1000-w50ms"
    assert (new["params"]["predictor"], new["params"]["num_threads"]) == ("lightgbm", 1)
    assert new["metrics"]["memory"] == {"peak_rss_bytes": 1333989376, "measured_as": "ray cluster with its actors"}
    old["params"]["predictor"] = None
    assert results.update_to_2(old)["params"]["predictor"] == "lightgbm"
    kept = _raw("20261201T205551Z-request-15f9f1")
    assert results.update_to_2(kept)["params"]["predictor"] == "lleaves"  # a recorded value is kept


def test_update_to_2_without_memory_or_fixed_costs() -> None:
    old = _raw("20261201T205506Z-predictor-d32319")
    for key in ("peak_rss_bytes", "cpu", "fixed_costs_s"):
        old["metrics"].pop(key)
    m = results.update_to_2(old)["metrics"]
    assert m["memory"] == {"peak_rss_bytes": None, "measured_as": "not measured"} and m["fixed_costs_s"] == {}


@pytest.mark.parametrize(
    ("version", "says"),
    [
        (99, ["schema_version 99 is not supported", "1, 2", "newer bench", "upgrade bench"]),
        (3, ["schema_version 3", "upgrade bench"]),
        (0, ["schema_version 0", "re-run"]),
        ("2", ["schema_version '2'", "re-run"]),
        (True, ["schema_version True", "re-run"]),
    ],
)
def test_unknown_versions_are_refused_saying_what_to_do(tmp_path: Path, version: object, says: list[str]) -> None:
    doc = _raw(V1_RUNS[0]) | {"schema_version": version}
    path = tmp_path / "run" / results.RESULT_FILE
    path.parent.mkdir()
    path.write_text(json.dumps(doc))
    with pytest.raises(BenchError) as info:
        results.load(path)
    for text in [str(path), *says]:
        assert text in str(info.value)


def test_missing_version_is_refused(tmp_path: Path) -> None:
    doc = _raw(V1_RUNS[0])
    del doc["schema_version"]
    path = tmp_path / results.RESULT_FILE
    path.write_text(json.dumps(doc))
    with pytest.raises(BenchError, match="has no schema_version; this bench reads schema versions 1, 2"):
        results.load(path)


def test_v1_files_with_bad_types_are_still_refused(tmp_path: Path) -> None:
    doc = _raw(V1_RUNS[0])
    doc["metrics"]["wall_seconds"] = "1.5"
    doc["params"] = [1]
    path = tmp_path / results.RESULT_FILE
    path.write_text(json.dumps(doc))
    with pytest.raises(BenchError, match="field 'params' must be dict"):
        results.load(path)
    doc["params"] = {}
    path.write_text(json.dumps(doc))
    with pytest.raises(BenchError, match="metrics.wall_seconds must be a number"):
        results.load(path)


def test_load_all_migrates_old_runs_beside_new_ones(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for run_id in V1_RUNS[:2]:
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / results.RESULT_FILE).write_text((V1 / run_id / results.RESULT_FILE).read_text())
    fresh = results.load(V1 / V1_RUNS[2])
    fresh.run_id = "z-new"
    results.write(fresh, runs / "z-new")
    loaded = results.load_all(tmp_path)
    assert [r.run_id for r in loaded.results] == [*V1_RUNS[:2], "z-new"] and not loaded.refused
    assert {r.schema_version for r in loaded.results} == {2}


# --------------------------------------------------------------------------------------------
# Metrics: typed fields, and the mapping access producers and readers use during the transition
# --------------------------------------------------------------------------------------------


def _producer_dict() -> dict:
    return {
        "predictions": 10,
        "wall_seconds": 2.0,
        "throughput_per_s": 5.0,
        "cpu_seconds": 1.0,
        "provisioned_core_seconds": 2.0,
        "latency_s": {"count": 10, "p50": 0.01, "p99": 0.02},
        "capacity": {"rate_per_s": 100.0, "slo_ms": 50.0},
    }


def test_a_producers_dict_becomes_typed_metrics() -> None:
    r = RunResult("r", "request", "http/lightgbm", "t", {}, _producer_dict(), {})
    m = r.metrics
    assert isinstance(m, Metrics) and m.predictions == 10 and m.latency_s == Latency(count=10, p50=0.01, p99=0.02)
    assert m["latency_s"] == {"count": 10, "p50": 0.01, "p99": 0.02}  # readers still get the plain summary
    assert m.extra == {"capacity": {"rate_per_s": 100.0, "slo_ms": 50.0}} and m["capacity"]["slo_ms"] == 50.0
    assert m.fixed_costs_s == {} and m.memory == Memory()
    r.metrics = _producer_dict()  # assignment converts too
    assert isinstance(r.metrics, Metrics)


def test_producers_keep_filling_their_dict_after_assigning_it() -> None:
    """The patterns assign ``result.metrics = m`` and then add keys to ``m``; the runner adds fixed costs."""
    r = RunResult("r", "request", "http/lightgbm", "t", {}, {}, {})
    m = _producer_dict()
    r.metrics = m
    m["not_sustainable_because"] = "p99 over the SLO"
    m["cpu"] = {"peak_rss_bytes": 3 * 2**30}  # memory measured after assignment still counts
    r.metrics.setdefault("fixed_costs_s", {})["model_load"] = 0.25
    r.metrics["fixed_costs_s"].update({"predictor_compile": 1.0})
    r.metrics["model"] = {"holdout_auc": 0.8}
    d = r.metrics.to_dict()
    assert d["not_sustainable_because"] == "p99 over the SLO" and d["model"] == {"holdout_auc": 0.8}
    assert d["fixed_costs_s"] == {"model_load": 0.25, "predictor_compile": 1.0}
    assert r.metrics.memory == Memory(3 * 2**30, "server and load generator") and r.metrics.memory.gib == 3.0


def test_metrics_mapping_behaves_like_the_v1_dict() -> None:
    m = Metrics.from_mapping({"predictions": 3})
    assert "predictions" in m and "wall_seconds" not in m and m.get("wall_seconds", 7) == 7
    with pytest.raises(KeyError):
        m["wall_seconds"]  # noqa: B018
    m |= {"wall_seconds": 1.5, "phases_s": {"read": 0.5}}
    assert m.wall_seconds == 1.5 and m["phases_s"] == {"read": 0.5}
    del m["phases_s"], m["wall_seconds"]
    assert "phases_s" not in m and m.wall_seconds is None
    assert dict(m) == m.to_dict() and list(m)[:2] == ["predictions", "latency_s"]
    m["memory"] = {"peak_rss_bytes": 5, "measured_as": "job process tree"}
    m["peak_rss_bytes"] = 99  # an explicit memory block wins over derivation
    assert m.memory.peak_rss_bytes == 5


def test_a_stray_latency_key_is_refused_not_dropped() -> None:
    with pytest.raises(BenchError, match="unknown key"):
        Metrics.from_mapping({"latency_s": {"count": 1, "p99": 0.1, "p99.9": 0.2}})


def test_a_servers_memory_is_its_own_not_the_load_generators() -> None:
    m = {"cpu": {"peak_rss_bytes": 900, "peak_rss_by_label": {"generator": 600, "server": 250, "server_restarted": 50}}}
    assert Memory.of(m) == Memory(300, "server processes")
    # in-process: the generator's process is the server; no other root, so the whole tree
    assert Memory.of({"cpu": {"peak_rss_bytes": 700, "peak_rss_by_label": {"generator": 700}}}) == Memory(
        700, "server and load generator"
    )
