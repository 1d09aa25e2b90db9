"""The model-cost view: each model analysed from its own runs, a missing measurement shown as missing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from helpers import PRICES, batch_run, run_result, service_run  # noqa: E402

from bench.analysis import cost  # noqa: E402
from bench.results import RunResult, selection  # noqa: E402
from bench.views import modelcost  # noqa: E402

BASE = {"train_rows": 200_000, "trees": 200, "leaves": 63, "model_seed": 0}
DEAR = {**BASE, "trees": 1_000, "leaves": 255}
CHEAP = {**BASE, "trees": 50, "leaves": 15}


def _of(r: RunResult, model: dict) -> RunResult:
    r.params = {**r.params, **model, "predictor": "lightgbm"}
    return r


def _predictor(run_id: str, one_us: float, at_1000_us: float) -> RunResult:
    sizes = [
        {"size": s, "cpu_us_per_row": us, "wall_us_per_row": us, "rows_per_s": 1e6 / us, "calls": 100}
        for s, us in ((1, one_us), (1_000, at_1000_us))
    ]
    m = {"predictions": 1_000, "cpu_seconds": 1.0, "wall_seconds": 1.0, "provisioned_core_seconds": 1.0}
    return run_result(run_id, "predictor", "lightgbm", {**m, "call_sizes": sizes})


def _stream(run_id: str, capacity: float) -> RunResult:
    r = service_run(run_id, capacity=capacity, backend="ray/b1000-w50ms", pattern="microbatch", cores=2)
    r.metrics["latency_s"] = {"p99": 0.06}
    return r


def _http(run_id: str, capacity: float, cpu_s: float) -> RunResult:
    r = service_run(run_id, capacity=capacity)
    r.metrics["cpu_seconds"] = cpu_s
    r.metrics["latency_s"] = {"p99": 0.004}
    return r


def _selection() -> selection.Selection:
    """The base model and a dear one fully measured; a cheap model without a predictor run (its
    single-row cost is not measured) and without a streaming run."""
    base = [
        _of(_predictor("b-pred", 38.0, 3.0), BASE),
        _of(batch_run("b-batch", rows_per_s=300_000.0, cpu_s=6.0, fixed=0.5), BASE),
        _of(_http("b-http", 2_000.0, 1.0), BASE),
        _of(_stream("b-stream", 40_000.0), BASE),
        _of(service_run("b-asgi", capacity=9_000.0, backend="http[asgi]/lightgbm"), BASE),  # only the base runs it
    ]
    dear = [
        _of(_predictor("d-pred", 400.0, 40.0), DEAR),
        _of(batch_run("d-batch", rows_per_s=30_000.0, cpu_s=60.0, fixed=0.5), DEAR),
        _of(_http("d-http", 900.0, 2.0), DEAR),
        _of(_stream("d-stream", 20_000.0), DEAR),
    ]
    cheap = [
        _of(batch_run("c-batch", rows_per_s=900_000.0, cpu_s=2.0, fixed=0.5), CHEAP),
        _of(_http("c-http", 2_500.0, 0.9), CHEAP),
    ]
    key = selection.key_of(BASE)
    return selection.Selection("m", base, {}, [], {}, [], "base", key, dear + cheap)


def _models():
    return modelcost.measure(_selection(), PRICES, cost.Workload(1e5))


def test_each_model_is_measured_from_its_own_runs_and_missing_stays_missing():
    models = _models()
    assert [m.label for m in models] == ["200×63", "1000×255", "50×15"]  # by single-row cost, unmeasured last
    t = modelcost.summary_frame(models)
    rows = {r["trees"]: r for r in t.iter_rows(named=True)}
    assert rows[200]["model"] == "200×63 (headline)" and rows[1_000]["model"] == "1000×255"
    assert (rows[200]["single-row CPU µs"], rows[200]["n (1 row)"]) == (38.0, 1)
    assert (rows[1_000]["CPU µs/row at 1,000 rows per call"], rows[1_000]["n (1,000 rows)"]) == (40.0, 1)
    assert rows[50]["single-row CPU µs"] is None and rows[50]["n (1 row)"] == 0  # not measured, not filled in
    # every figure of a model comes from its own runs
    for m in models:
        own = {r.run_id[0] for r in m.runs}
        assert len(own) == 1
        assert all(i[0] in own for v in m.verdicts for _, ids in v.runs for i in ids)
        opts = modelcost.options_frame([m])
        assert all(i[0] in own for ids in opts["runs"].to_list() for i in ids.split(", ") if i)


def test_crossovers_and_c4_c5_move_with_the_model():
    models = {m.label: m for m in _models()}
    cross = modelcost.crossings_frame(list(models.values()))
    col = "crosses at (predictions/day)"
    vs_rt = cross.filter(cross["against"] == "real-time http/lightgbm")
    st = {r["model"]: r for r in vs_rt.filter(vs_rt["option"].str.starts_with("streaming")).iter_rows(named=True)}
    # streaming's crossing with real time is each model's own, and moves with the model
    assert st["200×63"][col] is not None and st["1000×255"][col] is not None
    assert st["200×63"][col] != st["1000×255"][col]
    assert st["200×63"]["reading"] == "streaming ray/b1000-w50ms cheaper above"
    # a pair another model costs that this one has no run of: listed, not measured, never filled in
    assert st["50×15"][col] is None and st["50×15"]["reading"].startswith("not measured")
    # the real-time reference is the configuration every model has, and a pair costed on the headline
    # model alone (its other configurations) is left to the report's cost section
    assert set(cross["against"]) == {"batch (local)", "real-time http/lightgbm"}
    assert not any("asgi" in o for o in cross["option"])
    vs_batch = cross.filter(cross["against"] == "batch (local)")
    assert set(vs_batch["option"]) == {"real-time http/lightgbm", "streaming ray/b1000-w50ms"}
    assert "batch (local)" not in vs_rt["option"].to_list()  # the pair is read once, against batch
    assert all(r.startswith(("never crosses", "not measured")) for r in vs_batch["reading"])
    v = modelcost.verdicts_frame(list(models.values()))
    c5 = dict(zip(v.filter(v["claim"] == "C5")["model"], v.filter(v["claim"] == "C5")["verdict"], strict=True))
    assert c5["200×63"] == "holds" and c5["50×15"].startswith("pending")  # no streaming run of it
    c4 = dict(zip(v.filter(v["claim"] == "C4")["model"], v.filter(v["claim"] == "C4")["measured"], strict=True))
    assert c4["200×63"] != c4["1000×255"]
    summary = modelcost.summary_frame(list(models.values()))
    assert summary.columns[-2:] == ["C4 verdict", "C5 verdict"]


def test_the_section_and_the_plot_render():
    models = _models()
    html = str(modelcost.section(models))
    assert "(headline)" in html and "C4 and C5 per model" in html and 'id="model-cost"' in html
    fig = modelcost.plot_crossovers(models)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    # one line per option crossing batch on two or more models with a single-row measurement
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["streaming ray/b1000-w50ms vs real-time http/lightgbm (crosses on 2 of 2 models)"]
    only = modelcost.section(models[:1])
    assert "No model-cost sweep" in str(only)
