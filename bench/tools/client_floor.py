"""How much of a reported HTTP latency is the load generator's: our client against a C client (wrk)
on the same server's ``/noop``, and the generator's send lag at high offered rates, with the
generator on a CPU of its own and without.

What it measures, on one uvicorn server (the request pattern's ``HttpBackend``; ``/noop`` answers
through the whole stack without touching the model):

* ``closed_loop``: one connection, one request at a time, 2,000 requests after 200 warm-up: p50 and
  p99 round trip of our client (``bench.measure.httpclient``) and of ``wrk -t1 -c1 --latency`` for
  the same seconds, wrk pinned to the generator's CPU — the client overhead is the difference.
* ``open_loop``: the pattern's own open-loop windows at each ``--rates`` value (req/s) against
  ``/noop``, with ``isolate_generator`` on and off: generator send-lag p99, latency p50/p99, n, and
  whether the window was valid (a lagging generator makes it invalid).

Run::

    python -m bench.tools.client_floor                       # smoke-sized server, rates 1000,2000,5000
    python -m bench.tools.client_floor --rates 5000 --window-s 6 server_app=fastapi

wrk comes from Debian's ``wrk`` package; without it the C-client column is null.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import model as model_mod
from bench.app import profiles, runner
from bench.core.params import from_string, parse
from bench.measure.httpclient import HttpPool
from bench.patterns import request


def _closed_loop_ours(host: str, port: int, n: int = 2_000, warm: int = 200) -> dict:
    """Sequential /noop round trips over one kept-alive connection: p50/p99 in ms."""

    async def go() -> list[float]:
        pool = HttpPool(host, port, 1)
        raw = pool.encode("GET", "/noop")
        out = []
        for i in range(n + warm):
            t0 = time.perf_counter()
            await pool.request(raw, 5.0)
            if i >= warm:
                out.append(time.perf_counter() - t0)
        pool.close()
        return out

    x = np.array(asyncio.run(go()))
    return {"p50_ms": float(np.median(x)) * 1e3, "p99_ms": float(np.quantile(x, 0.99)) * 1e3, "n": int(x.size)}


_WRK_LINE = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def _closed_loop_wrk(host: str, port: int, cpus: list[int], seconds: int = 5) -> dict | None:
    """``wrk -t1 -c1`` on /noop for ``seconds``, pinned to ``cpus``: p50/p99 in ms (None without wrk)."""
    if shutil.which("wrk") is None:
        return None
    cmd = ["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", f"http://{host}:{port}/noop"]
    if cpus and shutil.which("taskset"):
        cmd = ["taskset", "-c", ",".join(map(str, cpus)), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    got = {f"p{q}_ms": float(v) * scale[u] for q, v, u in _WRK_LINE.findall(out)}
    requests = re.search(r"(\d+) requests in", out)
    return got | {"n": int(requests.group(1)) if requests else None}


def _open_loop(backend, rate: float, window_s: float, seed: int) -> dict:
    w = request.measure(backend, f"noop@{rate:.0f}", rate, window_s, seed, path="/noop")
    s = w.summary
    lat, lag = s["latency_s"] or {}, s["generator_lag_s"] or {}
    return {
        "rate_per_s": rate,
        "n": lat.get("count", 0),
        "p50_ms": 1e3 * lat["p50"] if lat else None,
        "p99_ms": 1e3 * lat["p99"] if lat else None,
        "lag_p99_ms": 1e3 * lag["p99"] if lag else None,
        "valid": s["valid"],
        "invalid_reasons": s["invalid_reasons"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tools.client_floor", description=__doc__.split("\n\n")[0])
    ap.add_argument("values", nargs="*", metavar="key=value", help="request-pattern parameters (backend is http)")
    ap.add_argument("--profile", default="smoke", help="run size the parameters start from (/noop ignores the model)")
    ap.add_argument("--rates", default="1000,2000,5000", help="open-loop /noop rates (req/s)")
    ap.add_argument("--window-s", type=float, default=4.0, help="length of each open-loop window")
    args = ap.parse_args(argv)
    spec = request.PATTERN
    overrides = dict(v.split("=", 1) for v in args.values)
    out: dict = {"params": overrides, "closed_loop": None, "open_loop": []}
    for isolate in (True, False):
        values = {
            **profiles.get(args.profile).pattern_params("request"),
            "backend": "http",
            "capacity": False,
            "connections": 64,
            "warmup_s": 0.5,
            "isolate_generator": isolate,
            **{k: from_string(spec.params, k, v, owner="request") for k, v in overrides.items()},
        }
        params = parse(spec.params, values, owner="request")
        data = runner.resolve_workload(params)
        model = model_mod.load(model_mod.ensure_model(runner.model_params(params)).path)
        with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
            backend = request.make_backend(request.HttpBackend, data, model, params, Path(tmp))
            try:
                backend.start()
                iso = backend.isolation.to_dict()
                if isolate:
                    out["isolation"] = iso
                    out["closed_loop"] = {
                        "ours": _closed_loop_ours(params.host, backend.server.port),
                        "wrk": _closed_loop_wrk(params.host, backend.server.port, iso["generator_cpus"]),
                    }
                for k, rate in enumerate(float(r) for r in args.rates.split(",")):
                    out["open_loop"].append({"isolated": iso["isolated"], **_open_loop(backend, rate, args.window_s, k)})
            finally:
                backend.stop()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
