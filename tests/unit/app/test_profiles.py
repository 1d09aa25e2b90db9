"""Every profile's runs are valid parameters of their pattern, and each profile measures what it says."""

from __future__ import annotations

import pytest

from bench.app import profiles
from bench.core.errors import BenchError
from bench.core.params import parse
from bench.patterns import registry


@pytest.mark.parametrize("name", list(profiles.PROFILES))
def test_every_sweep_point_parses(name):
    prof = profiles.get(name)
    for pattern in registry.names():
        spec = registry.get(pattern)
        parse(spec.params, prof.pattern_params(pattern), owner=pattern)
        for values in prof.sweep(pattern):
            parse(spec.params, values, owner=pattern)


def test_profiles_measure_every_backend_they_promise():
    default = profiles.get("default").sweep("request")
    assert {v["backend"] for v in default} == {"inprocess", "http", "ray_serve", "ray_serve_handle", "mlserver"}
    assert {v["backend"] for v in profiles.get("smoke").sweep("request")} == {"inprocess", "http", "mlserver"}
    # issue 15: batched servers (ours, Ray Serve's, MLServer's) and the caller's batch, searched
    batched = {
        (v["backend"], v.get("batch_max", 1), v.get("rows_per_request", 1)) for v in default if v.get("capacity", True)
    }
    assert {("http", 32, 1), ("ray_serve", 32, 1), ("mlserver", 32, 1), ("http", 1, 100)} <= batched
    assert {v.get("connections", 64) for v in default if v["backend"] == "http"} >= {1, 8, 64}
    apps = {v.get("server_app", "fastapi") for v in profiles.get("default").sweep("request") if v["backend"] == "http"}
    assert apps == {"fastapi", "asgi"}
    full = profiles.get("full")
    native = [
        v for v in full.sweep("request") if v.get("predictor", "lightgbm") == "lightgbm" and full.is_base_model(v)
    ]
    assert len(native) == 3 * len(full.request_variants) + len(full.request_extras)
    claims = [v for v in profiles.get("default").sweep("request") if v.get("fault_kill_at_s") or v.get("aggregate")]
    assert {v.get("aggregate", "") for v in claims} == {"", "onthefly", "precomputed"}  # C8 and C10 are measured
    assert any(v.get("fault_batch_kill_at_s") for v in profiles.get("default").sweep("hybrid"))
    assert {v["max_batch"] for v in profiles.get("default").sweep("microbatch")} == {100, 1_000}
    assert len(profiles.get("smoke").sweep("microbatch")) == 2  # native, then compiled
    default = profiles.get("default")
    default_batch = [v for v in default.sweep("batch") if "predictor" not in v and default.is_base_model(v)]
    assert len(default_batch) == 3 * len(profiles.get("default").batch_rows)
    assert max(v["rows"] for v in default_batch) == 1_000_000


def test_every_profile_measures_the_predictor_alone_on_both_backends_and_one_core():
    from bench.patterns.predictor import parse_call_sizes

    for name in profiles.PROFILES:
        prof = profiles.get(name)
        sweep = prof.sweep("predictor")
        assert [v["predictor"] for v in sweep if prof.is_base_model(v)] == ["lightgbm", "lleaves"]
        assert all(v["num_threads"] == 1 and max(parse_call_sizes(v["call_sizes"])) <= v["rows"] for v in sweep)
    big = profiles.get("default").sweep("predictor")[0]
    assert parse_call_sizes(big["call_sizes"]) == [10**k for k in range(7)] and big["rows"] == 1_000_000
    assert profiles.get("full").sweep("predictor")[0]["min_seconds"] == 2.0
    smoke = profiles.get("smoke")
    assert smoke.pattern_params("predictor")["rows"] == max(smoke.batch_rows)  # the dataset 00_data generates


def test_every_pattern_is_also_measured_with_the_compiled_predictor():
    for name in profiles.PROFILES:
        prof = profiles.get(name)
        for pattern in ("batch", "request", "microbatch", "hybrid"):
            compiled = [v for v in prof.sweep(pattern) if v.get("predictor") == "lleaves"]
            assert compiled, f"{name}: no {pattern} run with predictor=lleaves"
            native = [{k: x for k, x in v.items() if k != "predictor"} for v in prof.sweep(pattern)]
            for v in compiled:  # the same configuration as a native run, only the predictor differs
                assert {k: x for k, x in v.items() if k != "predictor"} in native
    full = profiles.get("full")
    lleaves_batch = [v for v in full.sweep("batch") if v.get("predictor") == "lleaves" and full.is_base_model(v)]
    assert len(lleaves_batch) == full.repeats * len(full.batch_rows)


def test_unknown_profile():
    with pytest.raises(BenchError, match="unknown profile 'laptop'"):
        profiles.get("laptop")


# --------------------------------------------------------------------------------------------
# The model-cost sweep (issue 18)
# --------------------------------------------------------------------------------------------


def _extra(prof: profiles.Profile, pattern: str) -> list[dict]:
    return [v for v in prof.sweep(pattern) if not prof.is_base_model(v)]


def test_the_model_sweep_measures_what_the_crossovers_and_c4_c5_need():
    from bench.patterns.predictor import parse_call_sizes

    for name in ("default", "full"):
        prof = profiles.get(name)
        models = {(m["trees"], m["leaves"]) for m in prof.model_sweep.models}
        for pattern in ("predictor", "batch", "request", "microbatch"):
            points = _extra(prof, pattern)
            assert {(v["trees"], v["leaves"]) for v in points} == models, (name, pattern)
            # the same data and training rows as the base model: only the trees and leaves differ
            assert all(v["train_rows"] == prof.model["train_rows"] and v["model_seed"] == 0 for v in points)
        assert all({1, 1_000} <= set(parse_call_sizes(v["call_sizes"])) for v in _extra(prof, "predictor"))
        assert all(v.get("predictor", "lightgbm") == "lightgbm" for p in registry.names() for v in _extra(prof, p))
        # the HTTP server and the streaming configuration the base model also runs, capacity searched
        for pattern, spec in (("request", prof.request), ("microbatch", prof.microbatch)):
            assert all({**spec, **v}.get("capacity", True) for v in _extra(prof, pattern))
        assert {v["backend"] for v in _extra(prof, "request")} == {"http"}
        base_mb = [(v["max_batch"], v["max_wait_ms"]) for v in prof.sweep("microbatch") if prof.is_base_model(v)]
        assert all((v["max_batch"], v["max_wait_ms"]) in base_mb for v in _extra(prof, "microbatch"))
        # the batch job at the base model's largest default size (the cost model reads the largest)
        assert {v["rows"] for v in _extra(prof, "batch")} == {1_000_000}
    grid = {(m["trees"], m["leaves"]) for m in profiles.get("full").model_sweep.models} | {(200, 63)}
    assert grid == {(t, n) for t in (50, 200, 1_000) for n in (15, 63, 255)}
    assert {(m["trees"], m["leaves"]) for m in profiles.get("default").model_sweep.models} == {(50, 15), (1_000, 255)}
    assert len(_extra(profiles.get("full"), "hybrid")) == 8 and not _extra(profiles.get("default"), "hybrid")


def test_smoke_plans_one_tiny_extra_model_through_the_pipeline(tmp_path, monkeypatch):
    from bench.app import pipeline

    smoke = profiles.get("smoke")
    assert [(m["trees"], m["leaves"]) for m in smoke.model_sweep.models] == [(10, 7)]
    attempted: list[tuple[str, dict]] = []
    monkeypatch.setattr(pipeline, "setup_notebooks", lambda *a, **kw: None)
    monkeypatch.setattr(pipeline, "run_pattern", lambda name, values, *a: attempted.append((name, values)) or tmp_path)
    monkeypatch.setattr(pipeline, "report", lambda *a, **kw: tmp_path / "r.html")
    lines: list[str] = []
    pipeline.full("smoke", tmp_path, log=lines.append)
    extra = [(name, v) for name, v in attempted if (v["trees"], v["leaves"]) == (10, 7)]
    assert sorted(name for name, _ in extra) == ["batch", "predictor", "request"]
    assert all(smoke.pattern_params(name)["train_rows"] == v["train_rows"] for name, v in extra)
    assert sum("model 10×7" in line for line in lines) == 3  # its progress lines name the model
    # the base model's runs are all still planned, and come first in each pattern
    assert sum(smoke.is_base_model(v) for _, v in attempted) == sum(
        smoke.is_base_model(v) for p in registry.names() for v in smoke.sweep(p)
    )
    assert profiles.base_model("smoke") == smoke.model and profiles.base_model("") is None
