"""The model server's own defences, in process: the feature check against the schema, the body reader."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pytest

from bench.data.workload import FEATURE_COLUMNS, FEATURES
from bench.systems.http_app import FeatureCheck, read_body

CHECK = FeatureCheck(FEATURE_COLUMNS)


def _row(**values: float) -> np.ndarray:
    row = CHECK.lo.copy()  # every column's minimum: a row the schema allows
    for name, value in values.items():
        row[FEATURES.index(name)] = value
    return row


def test_rows_the_schema_allows_pass_with_nulls_where_it_allows_them():
    assert CHECK(CHECK.lo.copy()) is None and CHECK(CHECK.hi.copy()) is None
    assert CHECK(_row(nps_score=np.nan, satisfaction=np.nan, total_charges=np.nan, days_since_login=np.nan)) is None
    assert CHECK(_row(monthly_charges=12.34)) is None  # a fraction in a float column


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("tenure_months", 121, "integers in [0, 120]"),
        ("age", 17, "integers in [18, 100]"),
        ("price_increase_pct_12m", -100.5, "numbers in [-100, 500]"),
        ("satisfaction", 5.5, "numbers in [1, 5] or null"),
        ("tenure_months", 3.5, "integers in [0, 120]"),
        ("age", np.nan, "has no missing values"),
        ("plan", 4, "not a known code"),
        ("region", 1.5, "not a known code"),
        ("contract_type", -1, "0=month_to_month, 1=one_year, 2=two_year"),
    ],
)
def test_a_value_the_schema_does_not_allow_is_refused_naming_the_feature(name, value, words):
    body = orjson.loads(CHECK(_row(**{name: value})))
    assert body["feature"] == name and body["index"] == FEATURES.index(name)
    assert name in body["error"] and words in body["error"]


def test_a_feature_column_without_bounds_is_refused_at_construction():
    from bench.data.workload import Column

    with pytest.raises(ValueError, match="both bounds"):
        FeatureCheck((*FEATURE_COLUMNS[:-1], Column("x", FEATURE_COLUMNS[1].dtype, lo=0)))


def _read(messages, headers=(), max_bytes=100, timeout_s=0.2):
    queue = list(messages)

    async def receive():
        if not queue:
            await asyncio.sleep(10)  # a client that stalls
        return queue.pop(0)

    return asyncio.run(read_body({"headers": list(headers)}, receive, max_bytes, timeout_s))


def test_the_body_reader_joins_chunks_and_refuses_large_or_stalled_bodies():
    chunk = {"type": "http.request", "body": b"x" * 40, "more_body": True}
    last = {"type": "http.request", "body": b"y", "more_body": False}
    assert _read([chunk, last]) == (b"x" * 40 + b"y", None)
    status, _ = _read([], headers=[(b"content-length", b"101")])[1]  # declared: nothing read
    assert status == 413
    assert _read([chunk, chunk, chunk, last])[1][0] == 413  # chunked: counted as it streams in
    assert _read([chunk])[1][0] == 408  # half a body, then nothing
