import time, numpy as np, sys
from bench import model as mm
from bench.app import runner, profiles
from bench.data import workload
from bench.core.params import parse
from bench.patterns import request as rq
import polars as pl
print(mm.__file__)
prof = profiles.get("default").pattern_params("request")
params = parse(rq.RequestParams, {**prof}, owner="r")
data = runner.resolve_workload(params)
model = mm.load(mm.ensure_model(runner.model_params(params)).path)
X = np.ascontiguousarray(workload.feature_matrix(pl.scan_parquet(data.path).head(10000).collect()))
for name in ("lightgbm", "lleaves"):
    p = mm.make_predictor(model, name, 1)
    exp = p.predict(X)
    got = np.array([p.predict_row(X[i]) for i in range(len(X))])
    print(name, "predict_row == predict bit-for-bit over", len(X), "rows:", np.array_equal(exp, got))
    def run(f, gap, n=300):
        cpu = []
        for i in range(n):
            if gap: time.sleep(gap)
            c0 = time.thread_time_ns(); f(i); cpu.append(time.thread_time_ns() - c0)
        cpu.sort(); return cpu[n//2]/1e3
    for gap in (0, 0.005):
        a = run(lambda i: float(p.predict(X[i:i+1])[0]), gap); b = run(lambda i: p.predict_row(X[i]), gap)
        print(f"  gap {gap*1e3:.0f} ms: predict(1 row) {a:.1f} us   predict_row {b:.1f} us (thread CPU p50)")
