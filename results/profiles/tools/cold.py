import time, numpy as np, sys
from bench import model as mm
from bench.app import runner, profiles
from bench.data import workload
from bench.core.params import parse
from bench.patterns import request as rq
import polars as pl
prof = profiles.get("default").pattern_params("request")
params = parse(rq.RequestParams, {**prof}, owner="r")
data = runner.resolve_workload(params)
model = mm.load(mm.ensure_model(runner.model_params(params)).path)
frame = pl.scan_parquet(data.path).head(2000).collect()
X = np.ascontiguousarray(workload.feature_matrix(frame))
name = sys.argv[1] if len(sys.argv) > 1 else "lightgbm"
pred = mm.make_predictor(model, name, 1)
def run(gap_s, n=400):
    cpu = []
    for i in range(n):
        row = X[i % 2000 : i % 2000 + 1]
        if gap_s: time.sleep(gap_s)
        c0 = time.thread_time_ns(); pred.predict(row); cpu.append(time.thread_time_ns() - c0)
    cpu.sort(); return cpu[len(cpu)//2] / 1e3, sum(cpu)/len(cpu)/1e3
for gap in (0, 0.0005, 0.005, 0, 0.005):
    print(name, f"gap {gap*1e3:.1f} ms: p50 / mean thread CPU per predict %.1f / %.1f us" % run(gap))
def spin(s):
    t = time.perf_counter() + s
    while time.perf_counter() < t: pass
def run2(gap_s, n=300):
    cpu = []
    for i in range(n):
        row = X[i % 2000 : i % 2000 + 1]
        spin(gap_s)
        c0 = time.thread_time_ns(); pred.predict(row); cpu.append(time.thread_time_ns() - c0)
    cpu.sort(); return cpu[len(cpu)//2] / 1e3, sum(cpu)/len(cpu)/1e3
for gap in (0.005, 0.0005):
    print(name, f"SPIN gap {gap*1e3:.1f} ms: p50 / mean %.1f / %.1f us" % run2(gap))
