"""How close the batch pattern gets to raw ``predict()``, per predictor and job size, code version against code version.

What it measures: for each ``--predictors`` × ``--sizes`` point, one run of the batch pattern itself
(``bench.app.runner.run_pattern``, the ``--profile``'s batch parameters plus any ``key=value``), in a
fresh process whose ``PYTHONPATH`` is a ``--checkout`` (default: this one), so two code versions run
on the same data, model and machine. Per run it prints one JSON line: the end-to-end rate, raw
``predict()``'s rate on the same rows in the same run and their ratio, the phase seconds, the
pipeline's split of the wall time and the stage it names as the bound (when the version records one),
CPU-seconds, the CPU other processes took meanwhile (``foreign_cpu_s``), the load average before the
run, and the run's validity with its reasons. ``--rounds`` repeats every point, interleaving the
checkouts, so drift on a shared machine shows as spread, not as a difference between versions; a
summary table (median [min–max], n, valid runs) ends the output.

``--quiet-cores`` waits (at most ``--quiet-wait-s``) before each run until other work on the machine
takes under that many cores over one second (from ``/proc/stat``): a timing taken beside other jobs is
noise. ``--pyspy DIR`` records each run with ``py-spy record --native -f raw`` into DIR (read the files
with ``python -m bench.tools.pyspy_summary``).

Run::

    python -m bench.tools.batch_profile --sizes 100000,1000000 --rounds 3
    python -m bench.tools.batch_profile --checkout /tmp/base --checkout . --predictors lleaves --rounds 5
    python -m bench.tools.batch_profile --checkout /tmp/base --checkout .::chunk_rows=50000 --rounds 3
    python -m bench.tools.batch_profile --sizes 1000000 chunk_rows=50000 overlap=false
    python -m bench.tools.batch_profile --sizes 1000000 --predictors lleaves --rounds 1 --pyspy /tmp/spy

A base checkout is e.g. ``mkdir /tmp/base && git archive HEAD bench | tar -x -C /tmp/base``; data and
models are shared (``BENCH_DATA_DIR`` of this checkout), results go to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.app import profiles
from bench.core import paths
from bench.core.params import from_string
from bench.patterns import registry

RUN_TIMEOUT_S = 900.0  #: bound on one run's process (a 1M-row LightGBM run takes ~40 s with its baseline)
#: The child: one run of the pattern; its summary as the last line of stdout.
_CHILD = """
import json, os, sys
import bench
assert os.path.dirname(os.path.dirname(bench.__file__)) == os.environ["PYTHONPATH"], bench.__file__
from bench.app import runner
params, run_dir = json.loads(sys.argv[1]), sys.argv[2]
r = runner.run_pattern("batch", params, run_dir=run_dir)
m = r.metrics
keep = ("predictions", "wall_seconds", "throughput_per_s", "raw_predict_rows_per_s", "raw_predict_seconds",
        "e2e_to_raw_ratio", "phases_s", "chunks", "cpu_seconds", "raw_predict_cpu_seconds", "bound_by", "pipeline",
        "score_mismatches")
out = {k: m.get(k) for k in keep if k in m}
out["foreign_cpu_s"] = m["cpu"].get("foreign_cpu_s")
out["chunk_rows"] = r.params["chunk_rows"]
out |= {"valid": r.valid, "invalid_reasons": r.invalid_reasons}
print(json.dumps(out))
"""


def _busy_s() -> float:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_cores: float, max_wait_s: float) -> float:
    """Wait until the machine's busy cores over one second drop under ``max_cores`` (at most
    ``max_wait_s``); returns the last second's busy cores (this process sleeps meanwhile)."""
    deadline = time.monotonic() + max_wait_s
    while True:
        b0 = _busy_s()
        time.sleep(1.0)
        busy = _busy_s() - b0
        if busy < max_cores or time.monotonic() > deadline:
            return busy


def run_once(checkout: Path, params: dict, pyspy: Path | None, label: str) -> dict:
    """One run of the pattern with ``checkout`` first on the path; its summary (or the error)."""
    env = os.environ | {
        "PYTHONPATH": str(checkout),
        "BENCH_DATA_DIR": str(paths.data_dir()),  # shared data and models, whichever checkout runs
    }
    with tempfile.TemporaryDirectory(prefix="batch-profile-") as tmp:
        env["BENCH_RESULTS_DIR"] = tmp
        cmd = [sys.executable, "-c", _CHILD, json.dumps(params), str(Path(tmp) / "runs" / label)]
        if pyspy is not None:
            pyspy.mkdir(parents=True, exist_ok=True)
            spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            cmd = [spy, "record", "--native", "-r", "200", "-f", "raw", "-o", str(pyspy / f"{label}.raw"), "--", *cmd]
        try:
            # cwd: `python -c` puts the working directory first on sys.path, before PYTHONPATH
            done = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return {"error": f"no result within {RUN_TIMEOUT_S} s"}
    if done.returncode != 0:
        return {"error": "\n".join(done.stderr.splitlines()[-8:])}
    # the child's summary is its last JSON line (py-spy prints its own lines after it)
    return json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{")))


def _spread(outs: list[dict]) -> str:
    ratios = [o["e2e_to_raw_ratio"] for o in outs if o.get("e2e_to_raw_ratio") is not None]
    if not ratios:
        return "n/a"
    return f"{statistics.median(ratios):.3f} [{min(ratios):.3f}–{max(ratios):.3f}] ({len(ratios)})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tools.batch_profile", description=__doc__.split("\n\n")[0])
    ap.add_argument("values", nargs="*", metavar="key=value", help="batch pattern parameters")
    ap.add_argument("--profile", default="default", help="run size (bench.app.profiles) the parameters start from")
    ap.add_argument("--sizes", default="10000,100000,1000000", help="rows per job, comma-separated")
    ap.add_argument("--predictors", default="lightgbm,lleaves", help="predictor backends, comma-separated")
    ap.add_argument("--chunks", default="", help="chunk_rows values to sweep, comma-separated (default: the profile's)")
    ap.add_argument("--rounds", type=int, default=1, help="times every point is run, interleaved")
    ap.add_argument(
        "--checkout",
        action="append",
        help="a tree holding bench/, optionally with its own parameters: PATH::key=value,key=value (repeat to compare)",
    )
    ap.add_argument("--quiet-cores", type=float, default=0.3, help="wait until other work takes fewer cores")
    ap.add_argument("--quiet-wait-s", type=float, default=60.0, help="the longest wait for a quiet machine")
    ap.add_argument("--pyspy", type=Path, metavar="DIR", help="record each run with py-spy into DIR")
    args = ap.parse_args(argv)

    spec = registry.get("batch")
    overrides = {k: from_string(spec.params, k, v, owner="batch") for k, v in (a.split("=", 1) for a in args.values)}
    base = {**profiles.get(args.profile).pattern_params("batch"), **overrides}
    checkouts: list[tuple[str, Path, dict]] = []  # (as given, the tree, its own parameters)
    for given in args.checkout or [str(paths.project_root())]:
        where, _, extra = given.partition("::")
        own = {
            k: from_string(spec.params, k, v, owner="batch")
            for k, v in (a.split("=", 1) for a in extra.split(",") if a)
        }
        checkouts.append((given, Path(where).resolve(), own))
    sizes = [int(s) for s in args.sizes.split(",")]
    predictors = args.predictors.split(",")
    chunks = [int(c) for c in args.chunks.split(",")] if args.chunks else [base.get("chunk_rows")]
    rows: dict[tuple, list[dict]] = {}
    for round_ in range(args.rounds):
        for predictor in predictors:
            for size in sizes:
                for chunk in chunks:
                    for i, (given, checkout, own) in enumerate(checkouts):
                        params = base | {"rows": size, "predictor": predictor}
                        if chunk is not None:
                            params["chunk_rows"] = chunk
                        params |= own
                        busy = wait_quiet(args.quiet_cores, args.quiet_wait_s)
                        label = f"{predictor}-{size}-c{chunk}-v{i}-r{round_}"
                        out = run_once(checkout, params, args.pyspy, label)
                        out = {"checkout": given, "predictor": predictor, "rows": size, "round": round_} | out
                        out["busy_cores_before"] = round(busy, 2)
                        out["loadavg"] = os.getloadavg()[0]
                        print(json.dumps(out), flush=True)
                        rows.setdefault((given, predictor, size, params["chunk_rows"]), []).append(out)
    print(
        "\n| checkout | predictor | rows | chunk_rows | e2e / raw, valid runs: median [min–max] (n) | all runs | bound_by |"
    )
    print("|---|---|---|---|---|---|---|")
    for (checkout, predictor, size, chunk), outs in rows.items():
        bounds = ", ".join(sorted({str(o.get("bound_by")) for o in outs if "bound_by" in o})) or "-"
        cells = [_spread([o for o in outs if o.get("valid")]), _spread(outs)]
        print(f"| {checkout} | {predictor} | {size:,} | {chunk:,} | {cells[0]} | {cells[1]} | {bounds} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
