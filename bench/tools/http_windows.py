"""Where a per-request HTTP answer's time goes: one server, a ``/noop`` floor window and a main window.

What it measures: starts one HTTP server (the request pattern's ``HttpBackend``, uvicorn + the chosen
app), then ``--windows`` times a 4 s open-loop window at min(rate, 500) req/s against ``/noop`` (the
floor: the server and client with no scoring) and a main window against ``/predict`` at the
pattern's rate and duration. Per window it prints, as one JSON document: p50/p90/p99 latency, the
requests it rests on, validity and its reasons, answers that differ from ``predict()``, the server's
and the load generator's CPU per request (each process tree's CPU over the window, warm-up included,
over the requests answered), and the medians of the latency's parts: generator lag (issued −
intended), send handoff (sent − issued) and round trip (done − sent). The capacity search is off.

Run (``key=value`` sets any request-pattern parameter; the ``default`` size's model and data)::

    python -m bench.tools.http_windows duration_s=10 server_app=asgi
    python -m bench.tools.http_windows --windows 3 rate=200 predictor=lleaves
    python -m bench.tools.http_windows --pause-s 5 duration_s=25   # time to attach a profiler:
    py-spy record -p <server pid printed on stderr> -d 20 -r 250 --nonblocking -F -f raw -o server.raw

To compare two versions of the code (results/perf/README.md's "base" vs "new"), run the same command
with each checkout first on ``PYTHONPATH``, interleaved, a few rounds each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import bench
from bench import model as model_mod
from bench.app import profiles, runner
from bench.core.params import from_string, parse
from bench.patterns import request


def _cpu_us_per_answer(window) -> tuple[float, float]:
    """(server, generator) CPU µs per answered request over the window."""
    answered = max(int((window.obs.status == 200).sum()), 1)
    generator = window.cpu.by_label.get("generator", 0.0)
    server = sum(v for k, v in window.cpu.by_label.items() if k != "generator")
    return 1e6 * server / answered, 1e6 * generator / answered


def _parts_ms(window, warmup_s: float) -> dict[str, float | None]:
    """Medians (ms) of the latency's parts over the answered requests after the warm-up."""
    o = window.obs
    ok = (o.status == 200) & (o.intended >= warmup_s)

    def median_ms(a: np.ndarray) -> float | None:
        return float(np.median(a[ok])) * 1e3 if ok.any() else None

    return {
        "lag": median_ms(o.issued - o.intended),
        "handoff": median_ms(o.sent - o.issued),
        "rtt": median_ms(o.done - o.sent),
    }


def _summary(window, warmup_s: float) -> dict:
    s = window.summary
    lat = s["latency_s"] or {}
    server_us, generator_us = _cpu_us_per_answer(window)
    return {
        "rate_per_s": window.rate,
        "p50_ms": 1e3 * lat["p50"] if lat else None,
        "p90_ms": 1e3 * lat["p90"] if lat else None,
        "p99_ms": 1e3 * lat["p99"] if lat else None,
        "n": lat.get("count", 0),
        "valid": s["valid"],
        "invalid_reasons": s["invalid_reasons"],
        "mismatches": window.mismatches,
        "server_cpu_us_per_request": server_us,
        "generator_cpu_us_per_request": generator_us,
        "parts_ms": _parts_ms(window, warmup_s),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tools.http_windows", description=__doc__.split("\n\n")[0])
    ap.add_argument("values", nargs="*", metavar="key=value", help="request-pattern parameters (backend is http)")
    ap.add_argument("--profile", default="default", help="run size (bench.app.profiles) the parameters start from")
    ap.add_argument("--windows", type=int, default=1, help="floor + main window pairs on the same server")
    ap.add_argument("--floor-s", type=float, default=4.0, help="length of each /noop floor window")
    ap.add_argument("--pause-s", type=float, default=0.0, help="wait this long after start (attach a profiler)")
    ap.add_argument("--run-dir", type=Path, help="where the server log goes (default: a temporary directory)")
    args = ap.parse_args(argv)

    spec = request.PATTERN
    overrides = dict(v.split("=", 1) for v in args.values)
    values = {
        **profiles.get(args.profile).pattern_params("request"),
        "backend": "http",
        "capacity": False,
        **{k: from_string(spec.params, k, v, owner="request") for k, v in overrides.items()},
    }
    params = parse(spec.params, values, owner="request")
    data = runner.resolve_workload(params)
    model = model_mod.load(model_mod.ensure_model(runner.model_params(params)).path)
    measured_s = min(max(params.duration_s, params.min_requests / params.rate), params.max_duration_s)
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        run_dir = args.run_dir or Path(tmp)
        backend = request.make_backend(request.HttpBackend, data, model, params, run_dir)
        out: dict = {"bench": bench.__file__, "params": overrides, "profile": args.profile, "windows": []}
        try:
            backend.start()
            print("pids", json.dumps({"driver": os.getpid(), **backend.roots}), file=sys.stderr, flush=True)
            if args.pause_s:
                time.sleep(args.pause_s)
            for k in range(args.windows):
                floor = request.measure(
                    backend, "floor", min(params.rate, 500.0), args.floor_s, params.seed + 100 + k, path="/noop"
                )
                main_window = request.measure(backend, "main", params.rate, measured_s, params.seed + k)
                out["windows"].append(
                    {"floor": _summary(floor, params.warmup_s), "main": _summary(main_window, params.warmup_s)}
                )
        finally:
            backend.stop()
    print(json.dumps(out, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
