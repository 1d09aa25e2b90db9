"""How close the streaming micro-batch pipeline gets to bulk ``predict()``, per batch size, at saturation.

What it measures: for each ``--batches`` size, one run of the micro-batch pattern (its own local Ray
session and actor pool; a short main window, no capacity search) whose saturation window offers
``saturation_events`` events at once. Per run it prints, as one JSON line: the peak throughput, its
ratio to bulk ``predict()`` over the same rows with the pool's total threads in the driver before Ray
starts (the denominator), the window's seconds, the cores each role used in it (driver, actors, Ray's
own processes: CPU-s over the window's seconds), events delivered, and the run's validity with its
reasons (a busy machine, a score that differs from ``predict()``). ``--rounds`` repeats the sizes,
interleaved, so drift on a shared machine shows as spread rather than as a difference between sizes.

Run (``key=value`` sets any micro-batch parameter; the ``default`` size's model and data)::

    python -m bench.tools.mb_saturation                         # max_batch 1000, 100, 10000
    python -m bench.tools.mb_saturation --batches 1000 --rounds 3 saturation_events=200000
    python -m bench.tools.mb_saturation --profile smoke --batches 100,1000

results/perf/README.md's figures were taken with two saturation windows per Ray session; a run of the
pattern has one, so each window here pays its own session start (reported apart, as a fixed cost).
Timing several windows in one session would need the pattern to expose its session and pool (a public
``open``/``saturation(max_batch, max_wait_ms)`` pair); the pattern's run is the closest public entry.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench import model as model_mod
from bench.app import profiles, runner
from bench.core.params import from_string, parse
from bench.patterns import registry
from bench.patterns.base import RunContext

#: max_wait_ms per max_batch, as results/perf/README.md measured them (other sizes: 200 ms)
WAIT_MS = {100: 10.0, 1000: 50.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tools.mb_saturation", description=__doc__.split("\n\n")[0])
    ap.add_argument("values", nargs="*", metavar="key=value", help="micro-batch pattern parameters")
    ap.add_argument("--profile", default="default", help="run size (bench.app.profiles) the parameters start from")
    ap.add_argument("--batches", default="1000,100,10000", help="max_batch sizes, comma-separated")
    ap.add_argument("--rounds", type=int, default=1, help="times every size is run, interleaved")
    args = ap.parse_args(argv)

    spec = registry.get("microbatch")
    overrides = {
        k: from_string(spec.params, k, v, owner="microbatch") for k, v in (a.split("=", 1) for a in args.values)
    }
    base = {
        **profiles.get(args.profile).pattern_params("microbatch"),
        "capacity": False,
        "duration_s": 2.0,  # the main window is not what this measures: keep it short
        "min_events": 100,
        **overrides,
    }
    batches = [int(b) for b in args.batches.split(",")]
    first = parse(spec.params, base, owner="microbatch")
    data = runner.resolve_workload(first)
    model = model_mod.load(model_mod.ensure_model(runner.model_params(first)).path)
    with tempfile.TemporaryDirectory(prefix="bench-mb-") as tmp:
        for r in range(args.rounds):
            for b in batches:
                wait_ms = overrides.get("max_wait_ms", WAIT_MS.get(b, 200.0))
                params = parse(spec.params, {**base, "max_batch": b, "max_wait_ms": wait_ms}, owner="microbatch")
                run_id = f"mb-{b}-r{r}"
                result = spec.run(data, model, params, RunContext(run_id, Path(tmp) / run_id))
                sat = result.metrics["saturation"]
                if sat is None:
                    raise SystemExit("saturation_events=0: no saturation window to report")
                line = {
                    "max_batch": b,
                    "round": r,
                    "max_wait_ms": params.max_wait_ms,
                    "throughput_per_s": round(sat["throughput_per_s"]),
                    "ratio_to_bulk": round(sat["ratio_to_bulk"], 3),
                    "bulk_rows_per_s": round(sat["bulk"]["rows_per_s"]),
                    "seconds": round(sat["seconds"], 2),
                    "cores": {k: round(v / sat["seconds"], 3) for k, v in sat["cpu"].items()},
                    "delivered_events": sat["delivered_events"],
                    "valid": result.valid,
                    "invalid_reasons": result.invalid_reasons,
                    "fixed_costs_s": result.metrics["fixed_costs_s"],
                }
                print(json.dumps(line, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
