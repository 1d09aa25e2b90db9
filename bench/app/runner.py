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
from bench.data.schema import FeatureSchema
from bench.measure import metrics
from bench.patterns import registry
from bench.patterns.base import PatternParams, RunContext


def resolve_workload(params: PatternParams, schema: FeatureSchema = workload.SYNTHETIC) -> workload.Dataset:
    """The scoring dataset: an explicit file read by ``schema`` (the model's features and
    ``id_column``), or the generated one for (rows, data_seed), which only the synthetic model reads."""
    if params.data_path:
        return workload.open_dataset(params.data_path, schema.with_id(params.id_column))
    if not schema.strict:
        raise BenchError(
            f"model_path {params.model_path!r} reads features the generated data does not hold "
            f"({', '.join(schema.names[:5])}{', …' if len(schema.names) > 5 else ''}); give data_path, a parquet "
            "table with them"
        )
    return workload.ensure_dataset(params.rows, params.data_seed)


def model_file(params: PatternParams) -> Path:
    """The model file a run scores with: ``model_path``, or the synthetic model of the params
    (trained if not cached, outside any timed region)."""
    if params.model_path:
        return Path(params.model_path)
    return model_mod.ensure_model(model_params(params)).path


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
    unavailable = model_mod.predictor_unavailable(params.predictor)
    if unavailable:  # before any work: the native backend still runs, this one cannot
        raise BenchError(unavailable)
    path = model_file(params)
    with metrics.stopwatch() as load_s:  # the fixed cost every job pays: reading the model file
        model = model_mod.load(path)
    data = resolve_workload(params, model.schema)  # checked against the model's features before any work
    # A compiled backend is built once per model and machine (cached), outside the timed region; its
    # measured build time is reported as a fixed cost.
    compile_costs = model_mod.predictor_fixed_costs(model, params.predictor)
    result = pattern.run(data, model, params, RunContext(run_id, run_dir, profile))
    result.metrics.setdefault("fixed_costs_s", {})["model_load"] = load_s[0]
    result.metrics["fixed_costs_s"].update(compile_costs)
    result.metrics["model"] = {k: model.meta.get(k) for k in ("holdout_auc", "train_seconds", "train_rows")} | {
        "file": str(path) if params.model_path else None,  # a user's model; None: trained from the params
        "trees": model.booster.num_trees(),
        "features": len(model.schema.names),
        "categorical_features": len(model.schema.categorical),
    }
    if result.metrics.get("predictions") == 0:  # nothing was scored: no number of this run means anything
        errors = result.metrics.get("errors")
        result.invalidate("the pattern got no predictions" + (f" (errors: {errors})" if errors else ""))
    results.write(result, run_dir)
    return result
