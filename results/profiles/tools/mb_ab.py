"""Micro-batch saturation harness: one Ray session, the pool, then saturation windows per max_batch."""
import json, os, sys, time, dataclasses
from pathlib import Path
import numpy as np
import bench
from bench import model as mm
from bench.app import runner, profiles
from bench.data import events
from bench.core.params import parse, from_string
from bench.patterns import microbatch as mb
from bench.systems.raysession import RaySession

args = dict(a.split("=", 1) for a in sys.argv[1:])
batches = [int(b) for b in args.pop("batches", "1000,100,10000").split(",")]
reps = int(args.pop("reps", "1"))
prof = profiles.get("default").pattern_params("microbatch")
vals = {**prof, "capacity": False, **{k: from_string(mb.MicrobatchParams, k, v) for k, v in args.items()}}
params = parse(mb.MicrobatchParams, vals, owner="microbatch")
data = runner.resolve_workload(params)
model = mm.load(mm.ensure_model(runner.model_params(params)).path)
table = events.ensure_events(data, params.events, params.event_seed)
_, X = events.read(table)
expected = mm.make_predictor(model, params.predictor, 1).predict(X)
bulk = [mb._bulk_rows_per_s(model, params, X)["rows_per_s"] for _ in range(3)]
kw = {"system_config": {"max_direct_call_object_size": mb.INLINE_BYTES}} if hasattr(mb, "INLINE_BYTES") else {}
_orig_stream = mb._stream
_st = {}
def _timed_stream(*a, **k):
    c0, p0, w0 = time.thread_time(), time.process_time(), time.perf_counter()
    out = _orig_stream(*a, **k)
    _st.update(main_thread_cpu=time.thread_time() - c0, process_cpu=time.process_time() - p0, wall=time.perf_counter() - w0)
    return out
mb._stream = _timed_stream
session = RaySession(address="", **kw)
out = {"src": bench.__file__, "bulk_rows_per_s": bulk, "windows": []}
pool = None
try:
    session.start()
    pool = mb._Pool(model, params)
    print("actor pids", pool.pids, "driver", os.getpid(), file=sys.stderr, flush=True)
    if os.environ.get("HB_PAUSE"):
        time.sleep(float(os.environ["HB_PAUSE"]))
    for r in range(reps):
        for b in batches:
            p = dataclasses.replace(params, max_batch=b, max_wait_ms={100: 10.0, 1000: 50.0}.get(b, 200.0))
            run = mb._Run(p, X, expected, pool, session)
            print("window", b, r, time.time(), file=sys.stderr, flush=True)
            w = run.measure("saturation", np.zeros(params.saturation_events), float("inf"))
            bulk_now = mb._bulk_rows_per_s(model, params, X)["rows_per_s"] if os.environ.get("HB_BULK_EACH") else None
            out["windows"].append({
                "max_batch": b, "rep": r, "throughput": w.summary["throughput_per_s"],
                "ratio": w.summary["throughput_per_s"] / np.median(bulk), "seconds": w.obs.duration_s,
                "delivered": w.stream["delivered_events"], "mismatches": w.stream["mismatches"],
                "cpu": mb._cpu_split(w.cpu), "cpu_s": w.cpu.cpu_s, "system_busy_s": w.cpu.system_busy_s,
                "foreign": w.cpu.foreign_cpu_s(), "bulk_after": bulk_now, **{"stream_" + k: v for k, v in _st.items()},
            })
finally:
    if pool is not None:
        pool.stop()
    session.stop()
print(json.dumps(out))
