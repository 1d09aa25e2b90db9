"""Hybrid parameters for ``lookup``: direct needs a Valkey store and refuses what only a server would use."""

from __future__ import annotations

import pytest

from bench.core.errors import BenchError
from bench.patterns.hybrid import PATTERN, SERVER_ONLY, HybridParams, hybrid_label


def _direct(**overrides) -> HybridParams:
    return HybridParams(**({"store": "valkey", "lookup": "direct"} | overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"store": "sqlite"}, r"'lookup' 'direct' .* needs store='valkey'.*got store='sqlite'"),
        ({"store": "dict"}, r"needs store='valkey'"),
        ({"server_workers": 2}, r"'server_workers' configures the lookup server"),
        ({"server_app": "asgi"}, r"'server_app' configures the lookup server"),
        ({"server_gc_freeze": False}, r"'server_gc_freeze' configures the lookup server"),
        ({"num_threads": 2}, r"'num_threads' configures the lookup server"),
        ({"fault_kill_at_s": 1.0}, r"'fault_kill_at_s' kills a live-scoring server"),
        ({"lookup": "client"}, r"'lookup' must be one of \['direct', 'server'\]"),
    ],
)
def test_bad_direct_params_name_the_field(overrides, message):
    with pytest.raises(BenchError, match=message):
        _direct(**overrides)


def test_direct_keeps_what_applies_without_a_server():
    p = _direct(hit_ratio=0.5, connections=8, isolate_generator=False, fault_batch_kill_at_s=1.0)
    assert p.lookup == "direct" and p.hit_ratio == 0.5  # misses are answered "not found"
    assert HybridParams().lookup == "server"


def test_server_only_params_stay_open_to_the_server_mode():
    p = HybridParams(store="valkey", server_workers=2, server_app="asgi", server_gc_freeze=False, num_threads=2)
    assert p.lookup == "server" and set(SERVER_ONLY) <= set(vars(p))


def test_the_label_names_direct_and_the_bill_holds_no_service_for_it():
    assert hybrid_label(_direct(hit_ratio=1.0)) == "lookup[valkey,100%,direct]"
    assert hybrid_label({"store": "valkey", "hit_ratio": 0.95, "lookup": "server"}) == "lookup[valkey,95%]"
    assert hybrid_label({"store": "sqlite", "hit_ratio": 0.95}) == "lookup[sqlite,95%]"  # a result from before lookup
    assert not PATTERN.has_service(_direct()) and not PATTERN.has_service({"lookup": "direct"})
    assert PATTERN.has_service(HybridParams()) and PATTERN.has_service({"store": "sqlite"})
