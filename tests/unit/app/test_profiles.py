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
    batched = {(v["backend"], v.get("batch_max", 1), v.get("rows_per_request", 1)) for v in default if v.get("capacity", True)}
    assert {("http", 32, 1), ("ray_serve", 32, 1), ("mlserver", 32, 1), ("http", 1, 100)} <= batched
    assert {v.get("connections", 64) for v in default if v["backend"] == "http"} >= {1, 8, 64}
    apps = {v.get("server_app", "fastapi") for v in profiles.get("default").sweep("request") if v["backend"] == "http"}
    assert apps == {"fastapi", "asgi"}
    full = profiles.get("full")
    native = [v for v in full.sweep("request") if v.get("predictor", "lightgbm") == "lightgbm"]
    assert len(native) == 3 * len(full.request_variants) + len(full.request_extras)
    claims = [v for v in profiles.get("default").sweep("request") if v.get("fault_kill_at_s") or v.get("aggregate")]
    assert {v.get("aggregate", "") for v in claims} == {"", "onthefly", "precomputed"}  # C8 and C10 are measured
    assert any(v.get("fault_batch_kill_at_s") for v in profiles.get("default").sweep("hybrid"))
    assert {v["max_batch"] for v in profiles.get("default").sweep("microbatch")} == {100, 1_000}
    assert len(profiles.get("smoke").sweep("microbatch")) == 2  # native, then compiled
    default_batch = [v for v in profiles.get("default").sweep("batch") if "predictor" not in v]
    assert len(default_batch) == 3 * len(profiles.get("default").batch_rows)
    assert max(v["rows"] for v in default_batch) == 1_000_000


def test_every_profile_measures_the_predictor_alone_on_both_backends_and_one_core():
    from bench.patterns.predictor import parse_call_sizes

    for name in profiles.PROFILES:
        sweep = profiles.get(name).sweep("predictor")
        assert [v["predictor"] for v in sweep] == ["lightgbm", "lleaves"]
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
    lleaves_batch = [v for v in full.sweep("batch") if v.get("predictor") == "lleaves"]
    assert len(lleaves_batch) == full.repeats * len(full.batch_rows)


def test_unknown_profile():
    with pytest.raises(BenchError, match="unknown profile 'laptop'"):
        profiles.get("laptop")
