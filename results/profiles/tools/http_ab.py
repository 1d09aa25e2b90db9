"""A/B harness: one HTTP server run, floor + main windows; prints JSON summary."""
import json, sys, os, time
from pathlib import Path
import numpy as np
import bench
from bench import model as model_mod
from bench.data import workload
from bench.app import runner
from bench.core.params import parse
from bench.patterns import request as rq
from bench.app import profiles
if os.environ.get("HB_FACTORY"):
    import subprocess
    from bench.serve import process as _proc
    _Popen = subprocess.Popen
    def _popen(cmd, *a, **k):
        cmd = [os.environ["HB_FACTORY"] if c == "bench.systems.http_app:app_from_env" else c for c in cmd]
        return _Popen(cmd, *a, **k)
    _proc.subprocess = type("S", (), {"Popen": staticmethod(_popen), "TimeoutExpired": subprocess.TimeoutExpired, "STDOUT": subprocess.STDOUT})

args = dict(a.split("=", 1) for a in sys.argv[1:])
reps = int(args.pop("windows", "1"))
prof = profiles.get("default").pattern_params("request")
from bench.core.params import from_string
vals = {**prof, "backend": "http", "capacity": False, **{k: from_string(rq.RequestParams, k, v) for k, v in args.items()}}
params = parse(rq.RequestParams, vals, owner="request")
data = runner.resolve_workload(params)
model = model_mod.load(model_mod.ensure_model(runner.model_params(params)).path)
run_dir = Path("/tmp/hb/runs") / f"{os.getpid()}"
backend = rq.make_backend(rq.HttpBackend, data, model, params, run_dir)
measured_s = min(max(params.duration_s, params.min_requests / params.rate), params.max_duration_s)
out = {"src": bench.__file__, "params": args}
try:
    backend.start()
    print("server pid", backend.server.pid, file=sys.stderr, flush=True)
    if os.environ.get("HB_PAUSE"):
        time.sleep(float(os.environ["HB_PAUSE"]))
    res = []
    for k in range(reps):
        fl = rq.measure(backend, "floor", min(params.rate, 500.0), 4.0, params.seed + 100 + k, path="/noop")
        mw = rq.measure(backend, "main", params.rate, measured_s, params.seed + k)
        def cpu_us(w):
            srv = sum(v for kk, v in w.cpu.by_label.items() if kk != "generator")
            n = int((w.obs.status == 200).sum())
            return 1e6 * srv / n, 1e6 * w.cpu.by_label.get("generator", 0) / n
        s = mw.summary
        def parts(w):
            o = w.obs; ok = (o.status == 200) & (o.intended >= params.warmup_s)
            q = lambda a: float(np.median(a[ok])) * 1e3
            return {"lag": q(o.issued - o.intended), "handoff": q(o.sent - o.issued), "rtt": q(o.done - o.sent)}
        res.append({
            "floor_p50_ms": 1e3 * fl.summary["latency_s"]["p50"],
            "floor_p99_ms": 1e3 * fl.summary["latency_s"]["p99"],
            "p50_ms": 1e3 * s["latency_s"]["p50"], "p90_ms": 1e3 * s["latency_s"]["p90"], "p99_ms": 1e3 * s["latency_s"]["p99"],
            "n": s["latency_s"].get("count") or s["completed"],
            "valid": s["valid"], "why": s["invalid_reasons"], "mismatch": mw.mismatches,
            "server_cpu_us": cpu_us(mw)[0], "gen_cpu_us": cpu_us(mw)[1],
            "floor_server_cpu_us": cpu_us(fl)[0], "parts": parts(mw), "floor_parts": parts(fl), "floor_gen_cpu_us": cpu_us(fl)[1],
        })
    out["windows"] = res
finally:
    backend.stop()
print(json.dumps(out))
