"""Run one pattern in-process: resolve its workload and model, time the fixed costs, run, write the result.

This is what a pattern notebook calls; ``bench run`` reaches it through papermill so the executed
notebook lands beside the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import model as model_mod
from bench import results
from bench.core.errors import BenchError
from bench.core.params import parse
from bench.data import workload
from bench.measure import metrics
from bench.patterns import registry
from bench.patterns.base import PatternParams, RunContext


def resolve_workload(params: PatternParams) -> workload.Dataset:
    """The scoring dataset: an explicit file, or the generated one for (rows, data_seed)."""
    if params.data_path:
        return workload.open_dataset(params.data_path)
    return workload.ensure_dataset(params.rows, params.data_seed)


def model_params(params: PatternParams) -> model_mod.ModelParams:
    return model_mod.ModelParams(
        train_rows=params.train_rows, trees=params.trees, leaves=params.leaves, seed=params.model_seed
    )


def run_pattern(
    name: str, params: PatternParams | Mapping[str, Any], *, profile: str = "adhoc", run_dir: str | Path | None = None
) -> results.RunResult:
    """Run pattern ``name`` once and write ``result.json`` (+ samples) into its run directory."""
    pattern = registry.get(name)
    if not isinstance(params, pattern.params):
        params = parse(pattern.params, dict(params), owner=name)
    if run_dir:
        run_dir = Path(run_dir)
        run_id = run_dir.name
    else:
        run_id = results.new_run_id(name)
        run_dir = results.run_dir_for(run_id)
    results.ensure_writable(run_dir)
    data = resolve_workload(params)
    unavailable = model_mod.predictor_unavailable(params.predictor)
    if unavailable:  # before any work: the native backend still runs, this one cannot
        raise BenchError(unavailable)
    path = model_mod.ensure_model(model_params(params)).path  # train (if needed) outside the timed region
    with metrics.stopwatch() as load_s:  # the fixed cost every job pays: reading the model file
        model = model_mod.load(path)
    # A compiled backend is built once per model and machine (cached), outside the timed region; its
    # measured build time is reported as a fixed cost.
    compile_costs = model_mod.predictor_fixed_costs(model, params.predictor)
    result = pattern.run(data, model, params, RunContext(run_id, run_dir, profile))
    result.metrics.setdefault("fixed_costs_s", {})["model_load"] = load_s[0]
    result.metrics["fixed_costs_s"].update(compile_costs)
    result.metrics["model"] = {k: model.meta.get(k) for k in ("holdout_auc", "train_seconds", "train_rows")}
    if result.metrics.get("predictions") == 0:  # nothing was scored: no number of this run means anything
        errors = result.metrics.get("errors")
        result.invalidate("the pattern got no predictions" + (f" (errors: {errors})" if errors else ""))
    results.write(result, run_dir)
    return result
