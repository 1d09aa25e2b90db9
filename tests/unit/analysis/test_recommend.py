"""The recommender (claim C9): four answers + measured runs + prices -> a pattern, why the others lose, flips."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from helpers import PRICES, batch_run, run_result, service_run

from bench import results
from bench.analysis import answers, cost, recommend
from bench.analysis.answers import Answers
from bench.app import cli
from bench.core.errors import BenchError
from bench.views import recommend as recommend_view

BASE = cost.Workload(1.0)


def _rt(run_id="rt", capacity=2_000.0, p99=0.004):
    r = service_run(run_id, capacity=capacity)
    r.metrics["latency_s"] = {"p99": p99, "count": 20_000}
    return r


def _stream(run_id="st", capacity=40_000.0, p99=0.06):
    r = service_run(run_id, capacity=capacity, backend="ray/b1000-w50ms", pattern="microbatch", cores=2)
    r.metrics["latency_s"] = {"p99": p99, "count": 20_000}
    return r


def _hybrid(run_id="hy", capacity=3_000.0, p99=0.002, job_rows_per_s=50_000.0, job_fixed_s=1.5):
    m = {
        "predictions": 2_000,
        "cpu_seconds": 1.0,
        "wall_seconds": 10.0,
        "provisioned_core_seconds": 10.0,
        "capacity": {"rate_per_s": capacity, "slo_ms": 50.0},
        "latency_s": {"p99": p99, "count": 2_000},
        "job": {"rows_per_s": job_rows_per_s, "fixed_s": job_fixed_s, "cores": 1, "cpu_s": 3.0, "rows": 100_000},
    }
    return run_result(run_id, "hybrid", "sqlite/lightgbm", m)


def _runs(rt_capacity=2_000.0):
    return [batch_run("b", fixed=0.5), _rt(capacity=rt_capacity), _stream()]


def _reasons(rec) -> dict[str, str]:
    return {x.label: x.reason for x in rec.runners_up}


# ---------------------------------------------------------------------------------------------
# Answers and their parsing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("latency_s", 0, "'latency_s' must be a duration > 0"),
        ("latency_s", -1.0, "'latency_s' must be a duration > 0"),
        ("latency_s", math.nan, "'latency_s' must be a duration > 0"),
        ("latency_s", "fast", "'latency_s' must be a number of seconds or e.g. '50ms'"),
        ("freshness_s", "0s", "'freshness_s' must be a duration > 0"),
        ("freshness_s", None, "'freshness_s' must be a number of seconds"),
        ("trigger", "bogus", "'trigger' must be one of schedule, event, request; got 'bogus'"),
        ("predictions_per_day", 0, "'predictions_per_day' must be a number of predictions per day > 0"),
        ("predictions_per_day", -5, "'predictions_per_day' must be a number of predictions per day > 0"),
        ("predictions_per_day", math.nan, "'predictions_per_day' must be a number"),
        ("predictions_per_day", "lots", "'predictions_per_day' must be a number > 0"),
        ("predictions_per_day", True, "'predictions_per_day' must be a number > 0"),
    ],
)
def test_each_bad_answer_is_refused_naming_its_field(field, value, message):
    good = {"latency_s": "50ms", "freshness_s": "1s", "trigger": "request", "predictions_per_day": 1e6}
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Answers(**{**good, field: value})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("50ms", 0.05), ("2s", 2.0), ("5min", 300.0), ("24h", 86_400.0), ("1d", 86_400.0), (3, 3.0), (" 1.5 h", 5400.0)],
)
def test_durations_parse(text, seconds):
    assert answers.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5 parsecs", "", "-1s", "1e400s", "ms"])
def test_bad_durations_say_what_is_expected(bad):
    with pytest.raises(BenchError, match="'latency_s' must be"):
        answers.parse_duration(bad, "latency_s")


def test_volumes_parse_with_suffixes():
    assert [answers.parse_volume(v) for v in ("1e6", "250k", "3.2M", "1B", 7)] == [1e6, 2.5e5, 3.2e6, 1e9, 7.0]


def test_bad_inputs_to_recommend_are_refused_before_any_work():
    with pytest.raises(BenchError, match="needs Answers"):
        recommend.recommend({"latency_s": 1}, _runs(), PRICES, BASE)
    with pytest.raises(BenchError, match="cost.Prices"):
        recommend.recommend(answers.USE_CASES[0], _runs(), "aws", BASE)


# ---------------------------------------------------------------------------------------------
# Picks follow the answers and the measurements
# ---------------------------------------------------------------------------------------------


def test_a_tight_latency_excludes_batch_and_streaming_and_picks_real_time():
    rec = recommend.recommend(Answers("50ms", "1s", "event", 1e5), _runs(), PRICES, BASE, flip_volumes=None)
    assert rec.choice.label == "real-time http/lightgbm"
    assert rec.choice.latency_s == pytest.approx(0.004) and rec.choice.runs == ("rt",)
    reasons = _reasons(rec)
    assert reasons["streaming ray/b1000-w50ms"].startswith("p99 60 ms > 50 ms acceptable (1.2× over)")
    assert "> 50 ms acceptable" in reasons["batch (local)"] and "staleness up to" in reasons["batch (local)"]
    # cost is the cost model's, not a number of the recommender's own
    w = cost.Workload(1e5)
    assert rec.choice.cost_per_day == pytest.approx(cost.options(_runs())[0][1].cost(w, PRICES)["cost_per_day"])


def test_cheap_batch_wins_a_scheduled_daily_question():
    rec = recommend.recommend(Answers("1h", "2d", "schedule", 1e5), _runs(), PRICES, BASE, flip_volumes=None)
    c = rec.choice
    assert c.label == "batch (local)" and c.batch_every_h == 24
    job = cost.batch_cost(cost.batch_measures(_runs())[0], cost.Workload(1e5, batch_every_h=24), PRICES)
    assert c.job_wall_s == pytest.approx(job["job_wall_s"]) == pytest.approx(1.5)  # 100k at 100k/s + 0.5 s
    assert c.latency_s == pytest.approx(1.5) and c.staleness_s == pytest.approx(86_400 + 1.5)
    assert c.cost_per_day == pytest.approx(job["cost_per_day"])
    reasons = _reasons(rec)
    assert reasons["real-time http/lightgbm"].startswith("costs $1.92/day more (")
    assert "Recommended: batch (local)" in recommend_view.text(rec) and "every 24 h" in recommend_view.text(rec)


def test_batch_runs_as_often_as_freshness_demands_and_no_more():
    rec = recommend.recommend(Answers("1h", "3h", "schedule", 1e5), _runs(), PRICES, BASE, flip_volumes=None)
    assert rec.choice.label == "batch (local)" and rec.choice.batch_every_h == 2  # 3 h + job > 3 h: next rung
    assert rec.choice.units == 12


def test_a_request_trigger_rules_out_streaming_and_plain_batch_with_the_reason():
    rec = recommend.recommend(Answers("1s", "7d", "request", 1e5), _runs(), PRICES, BASE, flip_volumes=None)
    assert rec.choice.label == "real-time http/lightgbm"
    reasons = _reasons(rec)
    assert "caller waits" in reasons["streaming ray/b1000-w50ms"]
    assert "hybrid pattern" in reasons["batch (local)"]


def test_hybrid_serves_a_request_when_its_staleness_is_tolerated():
    runs = [*_runs(), _hybrid()]
    loose = recommend.recommend(Answers("100ms", "2d", "request", 1e5), runs, PRICES, BASE, flip_volumes=None)
    hy = next(x for x in (loose.choice, *loose.runners_up) if x.label == "hybrid sqlite/lightgbm")
    assert hy.feasible and hy.latency_basis == "lookup p99" and hy.latency_s == pytest.approx(0.002)
    assert hy.staleness_s == pytest.approx(24 * 3600 + 1e5 / 50_000 + 1.5)  # interval + the job's wall time
    tight = recommend.recommend(Answers("100ms", "1s", "request", 1e5), runs, PRICES, BASE, flip_volumes=None)
    assert "staleness up to" in _reasons(tight)["hybrid sqlite/lightgbm"]


def test_a_measured_capacity_or_a_price_moves_the_pick_and_its_cost():
    a = Answers("1s", "1min", "event", 1e8)  # peak 3,472/s: a few real-time replicas at 2,000/s
    fast = recommend.recommend(a, _runs(), PRICES, BASE, flip_volumes=None)
    rt = next(o for o in cost.options(_runs())[0] if o.label == "real-time http/lightgbm")
    assert fast.choice.label == "real-time http/lightgbm"
    assert fast.choice.units == rt.cost(cost.Workload(1e8), PRICES)["units"]  # the cost model's sizing
    slow = recommend.recommend(a, _runs(rt_capacity=100.0), PRICES, BASE, flip_volumes=None)
    assert slow.choice.label == "streaming ray/b1000-w50ms"
    assert _reasons(slow)["real-time http/lightgbm"].startswith("costs $")  # dearer at 100/s per replica
    dear = recommend.recommend(a, _runs(), replace(PRICES, vcpu_hour=0.08), BASE, flip_volumes=None)
    assert dear.choice.cost_per_day > fast.choice.cost_per_day


def test_batch_is_never_scheduled_more_often_than_its_billed_time_allows():
    # a 60 s billing minimum: a job runs at most every 10 min, however small it is
    rec = recommend.recommend(Answers("1h", "5min", "schedule", 1e5), _runs(), PRICES, BASE, flip_volumes=None)
    batch = next(x for x in (rec.choice, *rec.runners_up) if x and x.label == "batch (local)")
    assert not batch.feasible and any("is refused" in m and "at most every 10 min" in m for m in batch.misses)
    assert recommend.min_interval_s(PRICES, 1.5) == 600
    ok = recommend.recommend(Answers("1h", "30min", "schedule", 1e5), _runs(), PRICES, BASE, flip_volumes=None)
    assert ok.choice.label == "batch (local)" and ok.choice.batch_every_h * 3600 >= 600
    # a job billed over 2.4 h is kept on the daily rung, flagged
    slow = [batch_run("b", rows_per_s=10.0, cpu_s=1e5, fixed=0.5), _rt(), _stream()]
    daily = recommend.recommend(Answers("1d", "3d", "schedule", 1e5), slow, PRICES, BASE, flip_volumes=None)
    b = next(x for x in (daily.choice, *daily.runners_up) if x and x.label == "batch (local)")
    assert b.batch_every_h == 24 and b.flags and "flagged: its job is billed" in b.summary()


def test_streaming_and_real_time_replicas_of_different_core_counts_are_said():
    rec = recommend.recommend(Answers("1s", "1min", "event", 1e6), _runs(), PRICES, BASE, flip_volumes=None)
    assert rec.notes and "streaming replica holds 2 cores" in rec.notes[0] and "real-time replica 1" in rec.notes[0]
    same = [batch_run("b"), _rt(), service_run("st", backend="ray/b1000-w50ms", pattern="microbatch", cores=1)]
    same[2].metrics["latency_s"] = {"p99": 0.06, "count": 20_000}
    assert recommend.recommend(Answers("1s", "1min", "event", 1e6), same, PRICES, BASE, flip_volumes=None).notes == ()


def test_the_flip_is_found_where_the_costs_cross():
    # batch: 1 row/ms on 2 cores; real time: 2 replicas of 1 core, never more below 1.7B/day at peak 1×
    runs = [batch_run("b", rows_per_s=1_000.0, cpu_s=1_000.0, fixed=0.0), _rt(capacity=10_000.0)]
    base = cost.Workload(1.0, peak_to_mean=1.0, min_replicas=2)
    rec = recommend.recommend(Answers("3d", "3d", "schedule", 1e6), runs, PRICES, base)
    assert rec.choice.label == "batch (local)"
    assert len(rec.flips) == 1
    flip = rec.flips[0]
    assert (flip.before, flip.after) == ("batch (local)", "real-time http/lightgbm")
    # 2 cores × V / 1000 s = 2 replicas × 1 core × 86,400 s  ->  V = 86.4M predictions/day
    assert flip.at_per_day == pytest.approx(86.4e6, rel=1e-3)
    assert "above 86.4M predictions/day, real-time http/lightgbm becomes the pick" in recommend_view.text(rec)
    cheaper = recommend.recommend(Answers("3d", "3d", "schedule", 1e6), runs, replace(PRICES, vcpu_hour=0.08), base)
    assert cheaper.flips[0].at_per_day == pytest.approx(flip.at_per_day, rel=1e-3)  # prices scale both sides


def test_nothing_feasible_names_the_closest_and_what_it_misses_by():
    rec = recommend.recommend(Answers("1ms", "1s", "request", 1e6), _runs(), PRICES, BASE, flip_volumes=None)
    assert rec.choice is None and rec.closest.label == "real-time http/lightgbm"
    text = recommend_view.text(rec)
    assert "Nothing measured meets these answers. Closest: real-time http/lightgbm" in text
    assert "p99 4 ms > 1 ms acceptable (4× over)" in text
    assert rec.to_dict()["recommended"] is None
    none = recommend.recommend(Answers("1s", "1s", "request", 1e6), [batch_run("b")], PRICES, BASE, flip_volumes=None)
    assert none.choice is None and none.closest is None and "Nothing measured can serve" in recommend_view.text(none)


def test_the_seven_use_cases_all_produce_a_row():
    assert [a.name for a in answers.USE_CASES] == [
        "churn",
        "fraud",
        "demand forecasting",
        "recommendations",
        "IoT anomalies",
        "lead scoring",
        "content moderation",
    ]
    assert all(a.assumption for a in answers.USE_CASES)
    t = recommend_view.table(answers.USE_CASES, _runs(), PRICES, BASE)
    assert t.height == 7 and t["use case"].to_list()[0] == "churn"
    picks = dict(zip(t["use case"], t["recommended"], strict=True))
    assert picks["churn"] == "batch (local)" and picks["fraud"] == "real-time http/lightgbm"
    assert all(t["recommended"].str.len_chars() > 0) and all(t["flips"].str.len_chars() > 0)
    empty = recommend_view.table(answers.USE_CASES, [], PRICES, BASE, flip_volumes=None)
    assert empty.height == 7 and empty["cost/day ($)"].null_count() == 7  # no runs: no figure invented


# ---------------------------------------------------------------------------------------------
# The CLI, end to end on a results directory
# ---------------------------------------------------------------------------------------------

_PROVENANCE = {
    "utc": "2026-01-01T00:00:00Z",
    "git": {"commit": "x", "dirty": False},
    "machine": {"cpu_model": "test cpu", "logical_cores": 2, "memory_gib": 8},
    "packages": {},
    "model_sha256": "m",
    "data_sha256": "d",
}


def _write_results(root):
    for r in _runs():
        r.metrics.setdefault("throughput_per_s", r.metrics["predictions"] / r.metrics["wall_seconds"])
        r.metrics.setdefault("latency_s", None)
        r.provenance = dict(_PROVENANCE)
        results.write(r, root / "runs" / r.run_id)
    return root


def test_cli_recommend_end_to_end(tmp_path, capsys):
    root = _write_results(tmp_path / "results")
    question = ["--latency", "100ms", "--freshness", "24h", "--trigger", "request", "--volume", "1e6"]
    assert cli.main(["recommend", *question, "--results", str(root)]) == 0
    out = capsys.readouterr().out
    assert "Measured on test cpu · 2 cores · 8 GiB (3 valid runs" in out
    assert "Recommended: real-time http/lightgbm" in out
    assert cli.main(["recommend", *question, "--results", str(root), "--json", "--price-preset", "aws-spot"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["recommendations"][0]["recommended"]["label"] == "real-time http/lightgbm"
    assert doc["recommendations"][0]["prices"].startswith("aws-spot")
    assert cli.main(["recommend", "--use-cases", "--results", str(root)]) == 0
    out = capsys.readouterr().out
    assert all(f"{a.name}: " in out for a in answers.USE_CASES)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trigger", "bogus"], "bench: error: answer 'trigger' must be one of schedule, event, request"),
        (["--latency", "soon"], "bench: error: answer 'latency_s' must be a number of seconds"),
        (["--price-preset", "azure"], "bench: error: price preset 'azure' is not in"),
    ],
)
def test_cli_recommend_refuses_bad_input_with_exit_2(tmp_path, capsys, args, message):
    root = _write_results(tmp_path / "results")
    good = {"--latency": "100ms", "--freshness": "24h", "--trigger": "request", "--volume": "1e6"}
    good.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["recommend", *(x for kv in good.items() for x in kv), "--results", str(root)]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_recommend_without_results_says_to_run_the_report(tmp_path, capsys):
    question = ["--latency", "1s", "--freshness", "1d", "--trigger", "event", "--volume", "1e6"]
    assert cli.main(["recommend", *question, "--results", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "bench: error: no valid results under" in err and "make report" in err
    assert cli.main(["recommend", "--latency", "1s", "--results", str(tmp_path)]) == 2
    assert "needs --freshness, --trigger, --volume" in capsys.readouterr().err
