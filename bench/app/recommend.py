"""``bench recommend``: the four answers from the command line, the pick printed or as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from bench.analysis import answers, recommend
from bench.core.errors import BenchError
from bench.views import recommend as recommend_view


def command(
    *,
    latency: str | None = None,
    freshness: str | None = None,
    trigger: str | None = None,
    volume: str | None = None,
    use_cases: bool = False,
    results_dir: Path | None = None,
    price_preset: str = "",
    prices_file: str = "",
    peak_to_mean: float = 3.0,
    min_replicas: int = 2,
    as_json: bool = False,
) -> str:
    """What ``bench recommend`` prints: answers checked first, then results loaded, then the pick(s)."""
    if use_cases:
        if any(v is not None for v in (latency, freshness, trigger, volume)):
            raise BenchError("--use-cases runs the seven stored use cases; leave out --latency/--freshness/...")
        cases = list(answers.USE_CASES)
    else:
        given = {"--latency": latency, "--freshness": freshness, "--trigger": trigger, "--volume": volume}
        absent = [k for k, v in given.items() if v is None]
        if absent:
            raise BenchError(f"recommend needs {', '.join(absent)} (all four answers), or --use-cases")
        cases = [answers.Answers(latency, freshness, trigger, volume)]
    inp = recommend.inputs(results_dir, price_preset, prices_file, peak_to_mean, min_replicas, require_runs=True)
    recs = [recommend.recommend(a, inp.runs, inp.prices, inp.base) for a in cases]
    if as_json:
        doc = {"machine": inp.machine, "results": str(inp.results_dir), "recommendations": [r.to_dict() for r in recs]}
        return json.dumps(doc, indent=2, default=str)
    head = f"Measured on {inp.machine} ({len(inp.runs)} valid runs in {inp.results_dir})"
    if inp.left_out:
        head += f"; left out {sum(inp.left_out.values())} runs of other machines"
    return "\n\n".join([head + ".", *(recommend_view.text(r) for r in recs)])
