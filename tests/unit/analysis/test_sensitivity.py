"""Sensitivity of C1, C2 and C6 to the assumptions of the bill."""

from __future__ import annotations

import polars as pl
import pytest
from helpers import PRICES, batch_run, service_run

from bench.analysis import cost, sensitivity
from bench.core.errors import BenchError


def _runs():
    return [batch_run("b1"), batch_run("b2", rows_per_s=80_000.0), service_run("s1")]


def test_c1_table_covers_every_assumption_and_says_where_no_measurement_decides():
    t = sensitivity.table(_runs(), cost.load_prices(), cost.Workload(100_000), "C1", draws=20)
    presets = len(cost.load_catalogue().presets)
    assert t.height == 3 * 2 * 2 * 2 * presets * 2
    assert set(sensitivity.FACTORS) <= set(t.columns)
    base = t.filter(pl.col("varied") == 0)
    assert base.height == 1 and base["preset"][0] == "aws-on-demand" and base["min_replicas"][0] == 2
    # at 100k/day both sides are a floor and a billing minimum: no interval can mean anything
    assert base["interval"][0] == "no measured quantity" and base["ci95_low"][0] is None
    assert (t["n_batch"] == 2).all() and (t["n_realtime"] == 1).all()
    assert t["article"][0] == "3–10×" and set(t["direction"].drop_nulls()) <= {"within", "above", "below"}
    # a run without a service time cannot be priced per request: those rows say so, with no figure
    unpriced = t.filter(pl.col("holds").is_null())
    assert set(unpriced["preset"]) == {"aws-serverless", "gcp-serverless"}
    assert unpriced["interval"].str.contains("measured no service time").all()
    assert sensitivity.region(t).startswith("C1 holds in") and "could not be priced" in sensitivity.region(t)


def test_c2_reports_both_legs_and_c6_its_own_range():
    t = sensitivity.table(_runs(), PRICES, cost.Workload(100_000), "C2", draws=20)
    assert t.height == 3 * 2 * 2 * 2 * 1 * 2  # a flat preset: only itself
    assert {"batch_direction", "realtime_direction", "batch_per_month", "realtime_per_month"} <= set(t.columns)
    one = t.filter(pl.col("varied") == 0).row(0, named=True)
    assert one["realtime_per_month"] == pytest.approx(2 * 24 * 0.04 * 365 / 12)  # two 1-core replicas
    assert not one["holds"] and one["realtime_direction"] == "below"
    c6 = sensitivity.table(_runs(), PRICES, cost.Workload(100_000), "C6", draws=20)
    assert c6["article"][0] == "5–10×"


def test_a_measured_side_gets_a_bootstrap_interval():
    w = cost.Workload(1e9, peak_to_mean=1.0)  # replicas follow the measured capacity; jobs the measured rate
    t = sensitivity.table(_runs(), PRICES, w, "C1", draws=50)
    base = t.filter(pl.col("varied") == 0).row(0, named=True)
    assert base["interval"].startswith("95% bootstrap") and base["ci95_low"] <= base["ratio"] <= base["ci95_high"]


def test_unknown_claims_and_missing_options_are_refused():
    with pytest.raises(BenchError, match="not one of"):
        sensitivity.table(_runs(), PRICES, claim="C9")
    with pytest.raises(BenchError, match="a costed real-time option"):
        sensitivity.table([batch_run("b")], PRICES)
