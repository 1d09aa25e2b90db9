"""Every profile's runs are valid parameters of their pattern, and each profile measures what it says."""

from __future__ import annotations

import pytest

from bench import patterns, profiles
from bench.errors import BenchError
from bench.params import parse


@pytest.mark.parametrize("name", list(profiles.PROFILES))
def test_every_sweep_point_parses(name):
    prof = profiles.get(name)
    for pattern in patterns.names():
        spec = patterns.get(pattern)
        parse(spec.params, prof.pattern_params(pattern), owner=pattern)
        for values in prof.sweep(pattern):
            parse(spec.params, values, owner=pattern)


def test_profiles_measure_every_backend_they_promise():
    assert {v["backend"] for v in profiles.get("default").sweep("request")} == {"inprocess", "http", "ray_serve"}
    assert {v["backend"] for v in profiles.get("smoke").sweep("request")} == {"inprocess", "http"}
    apps = {v.get("server_app", "fastapi") for v in profiles.get("default").sweep("request") if v["backend"] == "http"}
    assert apps == {"fastapi", "asgi"}
    full = profiles.get("full")
    assert len(full.sweep("request")) == 3 * len(full.request_variants) + len(full.request_extras)
    claims = [v for v in profiles.get("default").sweep("request") if v.get("fault_kill_at_s") or v.get("aggregate")]
    assert {v.get("aggregate", "") for v in claims} == {"", "onthefly", "precomputed"}  # C8 and C10 are measured
    assert any(v.get("fault_batch_kill_at_s") for v in profiles.get("default").sweep("hybrid"))
    assert {v["max_batch"] for v in profiles.get("default").sweep("microbatch")} == {100, 1_000}
    assert len(profiles.get("smoke").sweep("microbatch")) == 1
    default_batch = profiles.get("default").sweep("batch")
    assert len(default_batch) == 3 * len(profiles.get("default").batch_rows)
    assert max(v["rows"] for v in default_batch) == 1_000_000


def test_unknown_profile():
    with pytest.raises(BenchError, match="unknown profile 'laptop'"):
        profiles.get("laptop")
