"""Run one pattern in-process: resolve its workload and model, time the fixed costs, run, write the result.

This is what a pattern notebook calls; ``bench run`` reaches it through papermill so the executed
notebook lands beside the result.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import metrics, paths, patterns, results, workload
from bench import model as model_mod
from bench.errors import BenchError
from bench.params import parse
from bench.patterns import PatternParams, RunContext

#: Names a notebook namespace holds besides its parameters (IPython's own and the imports).
_NOTEBOOK_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open", "bench"}
#: Parameters every pattern notebook takes besides its pattern's own.
RUN_PARAMS = ("profile", "run_dir")


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
    pattern = patterns.get(name)
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
    model_mod.ensure_model(model_params(params))  # train outside the timed region if needed
    with metrics.stopwatch() as load_s:
        model = model_mod.load(model_mod.ensure_model(model_params(params)).path)
    result = pattern.run(data, model, params, RunContext(run_id, run_dir, profile))
    result.metrics.setdefault("fixed_costs_s", {})["model_load"] = load_s[0]
    result.metrics["model"] = {k: model.meta.get(k) for k in ("holdout_auc", "train_seconds", "train_rows")}
    results.write(result, run_dir)
    return result


def notebook_params(name: str, namespace: Mapping[str, Any]) -> tuple[PatternParams, dict[str, Any]]:
    """Validate a pattern notebook's parameters from its global namespace.

    Papermill injects parameters as plain variables and only warns about unknown ones; this turns
    any unknown or ill-typed one into an error naming it, before the notebook does any work.
    Returns the pattern's params and the run parameters (profile, run_dir).
    """
    pattern = patterns.get(name)
    values = {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_") and k not in _NOTEBOOK_NAMES and not isinstance(v, type(time))
    }
    run = {k: values.pop(k) for k in RUN_PARAMS if k in values}
    for key in RUN_PARAMS:
        if not isinstance(run.get(key, ""), str):
            raise BenchError(f"notebook parameter {key!r} must be str, got {run[key]!r}")
    return parse(pattern.params, values, owner=f"notebook {pattern.notebook}"), run


def default_results_dir() -> Path:
    return paths.results_dir()
