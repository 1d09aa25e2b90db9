"""The broker source's wire formats: pre-encoded XADDs, event payloads, score entries, reply parsing."""

from __future__ import annotations

import numpy as np
import pytest

from bench.core.errors import BenchError
from bench.patterns.microbatch import MicrobatchParams, wire
from bench.patterns.microbatch.producer import _Replies


def test_an_xadd_command_is_valid_resp_carrying_the_event():
    X = np.arange(12, dtype=np.float64).reshape(4, 3) + 0.5
    schedule = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])  # cycles through the 4 rows
    cmds, width = wire.encode_xadd("s:1", X, schedule)
    assert cmds.shape == (6, width)
    one = cmds[5].tobytes()
    assert one.startswith(b"*5\r\n$4\r\nXADD\r\n$3\r\ns:1\r\n$1\r\n*\r\n$1\r\ne\r\n$40\r\n") and one.endswith(b"\r\n")
    payload = one[-42:-2]
    idx, t, rows, bad = wire.decode_events([payload], 3)
    assert idx.tolist() == [5] and t.tolist() == [0.5] and bad == []
    assert np.array_equal(rows[0], X[1])  # bit for bit


def test_malformed_payloads_are_set_aside_not_decoded():
    X = np.ones((2, 3))
    cmds, width = wire.encode_xadd("s", X, np.zeros(2))
    good = cmds[1].tobytes()[-42:-2]
    idx, _, rows, bad = wire.decode_events([b"junk", good, None, good[:-1]], 3)
    assert idx.tolist() == [1] and rows.shape == (1, 3) and bad == [0, 2, 3]


def test_scores_round_trip_bit_for_bit():
    idx, scores = np.array([3, 1, 2]), np.array([0.1, 1 / 3, np.nextafter(0.5, 1)])
    fields = {k.encode(): v for k, v in wire.encode_scores(idx, scores, 1.5, 2.5).items()}
    i, s, r, w = wire.decode_scores(fields)
    assert i.tolist() == [3, 1, 2] and s.tobytes() == scores.tobytes() and (r, w) == (1.5, 2.5)


def test_replies_are_counted_in_order_across_partial_reads():
    rep = _Replies()
    assert rep.feed(b"$15\r\n1700000000000-0\r\n$15\r\n17000") == [True]
    assert rep.feed(b"00000000-1\r\n-LOADING Valkey is loading\r\n$3\r\n1-0\r\n") == [True, False, True]
    assert rep.first_error.startswith("-LOADING")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source": "kafka"}, "'source' must be one of"),
        ({"broker_url": "valkey://127.0.0.1:1"}, "'broker_url' needs source='broker'"),
        ({"fault_broker_kill_at_s": 1.0}, "'fault_broker_kill_at_s' needs source='broker'"),
        ({"source": "broker", "broker_url": "http://x:1"}, "'broker_url' must be valkey://"),
        ({"source": "broker", "broker_appendfsync": "sometimes"}, "'broker_appendfsync' must be one of"),
        ({"source": "broker", "claim_idle_ms": 0}, "'claim_idle_ms' must be > 0"),
        (
            {"source": "broker", "broker_url": "valkey://127.0.0.1:1", "fault_broker_kill_at_s": 1.0},
            "kills the broker the run starts",
        ),
    ],
)
def test_bad_broker_parameters_are_refused_naming_them(overrides, message):
    with pytest.raises(BenchError, match=message):
        MicrobatchParams(**overrides)
