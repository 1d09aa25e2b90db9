"""Bulk batch: read a parquet table with polars in chunks, validate, score, write predictions atomically.

Timed end to end (read → validate → prepare → score → write → rename), split by phase, and set
against a raw ``predict`` over the same rows in the same run, so the ratio shows what the pipeline
around the model costs. A second, untimed pass reads the written file back and checks every score
against the predictor's output on the same rows: a mismatch makes the run invalid.

``engine="ray"`` runs the same job on Ray Data instead (``bench.patterns.batch.ray_data``): same input
checks, same output file, same baseline, verification and metrics.

Both engines also measure, once per run and untimed, what a job platform bills before the job's
first row: a fresh interpreter started to a loaded, ready predictor (``process_start``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from bench.core.errors import BenchError
from bench.core.params import require_choice, require_positive
from bench.data import workload
from bench.measure import metrics
from bench.model import Model, make_predictor
from bench.patterns.base import PatternParams, RunContext, new_result
from bench.results import RunResult, ensure_writable

PHASES = ("read", "validate", "prepare", "score", "write")
ENGINES = ("local", "ray")
#: What a fresh job process imports before it can score, by engine: the job's module (with its
#: package: polars, pyarrow, numpy, LightGBM through ``bench.model``), and for Ray the client a driver
#: needs (``RaySession`` imports Ray before its timed start, so ``ray_start`` does not hold it).
JOB_IMPORTS: dict[str, tuple[str, ...]] = {
    "local": ("bench.patterns.batch.local",),
    "ray": ("bench.patterns.batch.ray_data", "ray", "ray.data"),
}
PROCESS_START_TIMEOUT_S = 60.0  #: bound on the fresh process (measured ~0.7 s local, ~2.6 s with Ray, 2-core VM)
#: The fresh process: import the job's modules, load the model, build the predictor, then report its
#: own split and its CPU (RUSAGE_SELF, all threads, from exec on: the parent's RUSAGE_CHILDREN would
#: also catch any other child reaped meanwhile, such as a Ray process exiting).
_PROCESS_START = """
import time
t0 = time.perf_counter()
import importlib, json, resource, sys
for name in sys.argv[1].split(","):
    importlib.import_module(name)
t1 = time.perf_counter()
from bench import model
m = model.load(sys.argv[2])
t2 = time.perf_counter()
model.make_predictor(m, sys.argv[3], int(sys.argv[4]))
t3 = time.perf_counter()
r = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"imports_s": t1 - t0, "model_load_s": t2 - t1, "predictor_s": t3 - t2,
                  "cpu_s": r.ru_utime + r.ru_stime, "modules": len(sys.modules)}))
"""


@dataclass(frozen=True)
class BatchParams(PatternParams):
    """Bulk batch parameters; ``chunk_rows`` bounds memory for inputs larger than RAM."""

    chunk_rows: int = 250_000
    num_threads: int = 2  #: bulk scoring uses every core by default
    overlap: bool = True  #: read ahead and write behind on threads while a chunk is scored
    chunk_timeout_s: float = 600.0  #: bound on any one chunk's read or write
    baseline: bool = True  #: also time raw predict on the same rows (for the e2e / raw ratio)
    verify: bool = True  #: read the output back and compare every score
    engine: str = "local"  #: "local" (polars chunks on threads) or "ray" (Ray Data actor pool)
    ray_address: str = ""  #: engine=ray: "" = start a local Ray for the run, else join this cluster
    ray_actors: int = 2  #: engine=ray: scoring actors, each with num_threads LightGBM threads
    ray_timeout_s: float = 600.0  #: engine=ray: bound on every wait for Ray (each block of predictions)

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(
            "BatchParams",
            chunk_rows=self.chunk_rows,
            chunk_timeout_s=self.chunk_timeout_s,
            ray_actors=self.ray_actors,
            ray_timeout_s=self.ray_timeout_s,
        )
        require_choice("BatchParams", "engine", self.engine, ENGINES)


def _read_chunk(path: Path, offset: int, rows: int) -> pl.DataFrame:
    # scan + slice lets polars read only the row groups that hold the slice
    return pl.scan_parquet(path).slice(offset, rows).collect()


class _Stages:
    """The three stages of one chunk; each returns its own timings so stages can run on threads."""

    def __init__(self, data_path: Path, model_sha: str, predictor, out_tmp: Path) -> None:
        self.data_path, self.model_sha, self.predictor, self.out_tmp = data_path, model_sha, predictor, out_tmp
        self.sha_dtype = pl.Enum([model_sha])
        self.writer: pq.ParquetWriter | None = None

    def load(self, offset: int, rows: int) -> tuple[pl.DataFrame, np.ndarray, dict]:
        with metrics.stopwatch() as read_s:
            df = _read_chunk(self.data_path, offset, rows)
        with metrics.stopwatch() as validate_s:
            workload.validate(df, source=f"{self.data_path} rows {offset}..{offset + df.height}")
        with metrics.stopwatch() as prepare_s:
            X = workload.feature_matrix(df)
        info = {
            "offset": offset,
            "rows": df.height,
            "read_s": read_s[0],
            "validate_s": validate_s[0],
            "prepare_s": prepare_s[0],
        }
        return df, X, info

    def score(self, df: pl.DataFrame, X: np.ndarray, info: dict) -> tuple[pl.DataFrame, np.ndarray, dict]:
        with metrics.stopwatch() as score_s:
            scores = self.predictor.predict(X)
        return df, scores, info | {"score_s": score_s[0]}

    def write(self, df: pl.DataFrame, scores: np.ndarray, info: dict) -> dict:
        with metrics.stopwatch() as write_s:
            table = (
                df.select("customer_id")
                .with_columns(
                    pl.Series("score", scores),
                    # an Enum literal is written as a parquet dictionary: 4 bytes a row, not 64
                    pl.lit(self.model_sha, dtype=self.sha_dtype).alias("model_sha256"),
                    pl.lit(datetime.now(UTC)).alias("scored_at"),
                )
                .to_arrow()
            )
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.out_tmp, table.schema, compression="zstd")
            self.writer.write_table(table)
        return info | {"write_s": write_s[0]}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _pipelined(stages: _Stages, offsets: list[int], params: BatchParams) -> list[dict]:
    """Read chunk i+1 and write chunk i-1 on threads while chunk i is scored (writes stay in order)."""
    timeout = params.chunk_timeout_s
    chunks: list[dict] = []
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="batch-io")
    try:
        loading = pool.submit(stages.load, offsets[0], params.chunk_rows)
        writing = None
        for i in range(len(offsets)):
            loaded = loading.result(timeout=timeout)
            if i + 1 < len(offsets):
                loading = pool.submit(stages.load, offsets[i + 1], params.chunk_rows)
            scored = stages.score(*loaded)
            if writing is not None:
                chunks.append(writing.result(timeout=timeout))
            writing = pool.submit(stages.write, *scored)
        chunks.append(writing.result(timeout=timeout))
    except TimeoutError as exc:
        pool.shutdown(wait=False, cancel_futures=True)  # a stuck thread must not hold the run past its bound
        raise BenchError(
            f"a chunk's read or write took longer than chunk_timeout_s={timeout} s (after {len(chunks)} chunks)"
        ) from exc
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # let a write in flight finish before the file is closed
        raise
    pool.shutdown(wait=True)
    return chunks


def check_input(data: workload.Dataset, context: RunContext) -> tuple[Path, int]:
    """Untimed gate shared by both engines: the input exists, has rows and passes the schema; the run
    directory is writable. Returns the output path (``predictions.parquet``) and the row count."""
    if not Path(data.path).is_file():
        raise BenchError(f"data file {str(data.path)!r} does not exist")
    ensure_writable(Path(context.run_dir))
    total = pl.scan_parquet(data.path).select(pl.len()).collect().item()
    if total == 0:
        raise BenchError(f"data file {str(data.path)!r} has no rows")
    # The schema gate over the whole file before any work (untimed); each chunk passes it again
    # inside the timed region, as a production job would.
    workload.validate(pl.scan_parquet(data.path), source=str(data.path))
    return Path(context.run_dir) / "predictions.parquet", total


def process_start(model: Model, params: BatchParams) -> dict:
    """Seconds from spawning a fresh ``sys.executable`` to a loaded, ready predictor, as a job
    container pays before its first row (interpreter, the job's imports, model load, predictor);
    untimed by the job, run before it. ``wall_s`` is None if it took over ``PROCESS_START_TIMEOUT_S``;
    a process that fails is an error (the job could not start either)."""
    imports = JOB_IMPORTS[params.engine]
    cmd = [sys.executable, "-c", _PROCESS_START, ",".join(imports), str(model.path), params.predictor]
    out: dict = {"wall_s": None, "cpu_s": None, "imports": ", ".join(imports), "timeout_s": PROCESS_START_TIMEOUT_S}
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            [*cmd, str(params.num_threads)], capture_output=True, text=True, timeout=PROCESS_START_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return out | {"error": f"a fresh process was not ready within {PROCESS_START_TIMEOUT_S} s"}
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-10:])
        raise BenchError(f"a fresh batch process ({out['imports']}) exited with code {done.returncode}:\n{tail}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    split = {k: child[k] for k in ("imports_s", "model_load_s", "predictor_s")}
    return out | {"wall_s": wall, "cpu_s": child["cpu_s"], "split_s": split, "modules": child["modules"]}


def record_process_start(result: RunResult, m: dict, start: dict) -> None:
    """``start`` into the metrics: its wall time as the fixed cost ``process_start``, the whole record
    as ``process_start``; a run whose fresh process timed out is invalid (its bill would miss it)."""
    m["process_start"] = start
    if start["wall_s"] is None:
        result.invalidate(start["error"])
        return
    # process_start INCLUDES loading the model (split_s.model_load_s): a bill adds it OR the runner's
    # model_load, never both (model_load is what the already-running driver paid to read the file).
    m.setdefault("fixed_costs_s", {})["process_start"] = start["wall_s"]


def run_local(data: workload.Dataset, model: Model, params: BatchParams, context: RunContext) -> RunResult:
    """Score every row of ``data`` and write ``predictions.parquet`` into the run directory."""
    out_path, total = check_input(data, context)
    start = process_start(model, params)  # untimed, before the job: nothing else runs beside it
    tmp_path = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    predictor = make_predictor(model, params.predictor, params.num_threads)

    stages = _Stages(data.path, model.sha256, predictor, tmp_path)
    offsets = list(range(0, total, params.chunk_rows))
    try:
        with metrics.CpuMeter(interval_s=0.1) as meter, metrics.stopwatch() as wall:
            if params.overlap:
                chunks = _pipelined(stages, offsets, params)
            else:
                chunks = [stages.write(*stages.score(*stages.load(o, params.chunk_rows))) for o in offsets]
            with metrics.stopwatch() as close_s:
                stages.close()
                os.replace(tmp_path, out_path)
            chunks[-1]["write_s"] += close_s[0]
    finally:
        stages.close()
        tmp_path.unlink(missing_ok=True)
    usage = meter.result

    result = new_result("batch", f"local/{params.predictor}", params, context, model, data)
    e2e_rate = metrics.throughput(total, wall[0])
    m: dict = {
        "predictions": total,
        "wall_seconds": wall[0],
        "throughput_per_s": e2e_rate,
        "cpu_seconds": usage.cpu_s,
        "provisioned_core_seconds": min(params.num_threads, os.cpu_count() or 1) * wall[0],
        "latency_s": None,  # a batch consumer sees staleness, modelled from job duration (cost issue)
        "cpu_seconds_per_prediction": usage.cpu_s / total,
        "phases_s": {p: sum(c[f"{p}_s"] for c in chunks) for p in PHASES},
        "phases_overlap": params.overlap,
        "chunks": len(chunks),
        "peak_rss_bytes": usage.peak_rss_bytes,
        "cpu": usage.to_dict(),
        "output_bytes": out_path.stat().st_size,
    }
    record_process_start(result, m, start)
    finish(result, m, usage, data, out_path, predictor, params, total)
    result.samples = pl.DataFrame(chunks)
    return result


def finish(
    result: RunResult,
    m: dict,
    usage: metrics.CpuUsage,
    data: workload.Dataset,
    out_path: Path,
    predictor,
    params: BatchParams,
    total: int,
) -> None:
    """Shared by both engines: the untimed raw-predict baseline and verification, the validity
    verdicts, and ``m`` stored as the result's metrics."""
    if params.baseline or params.verify:
        with metrics.CpuMeter(interval_s=0.5) as baseline_meter:
            raw_s, mismatches = _baseline_and_verify(data.path, out_path, predictor, params, total)
        busy = baseline_meter.result.contention()
        if busy and params.baseline:
            result.invalidate(f"during the raw predict() baseline, {busy}")
        if params.baseline:
            m["raw_predict_seconds"] = raw_s
            m["raw_predict_rows_per_s"] = metrics.throughput(total, raw_s)
            m["e2e_to_raw_ratio"] = m["throughput_per_s"] / m["raw_predict_rows_per_s"]
        if params.verify:
            m["verified_rows"] = total
            m["score_mismatches"] = mismatches
            if mismatches:
                result.invalidate(f"{mismatches} written score(s) differ from predict() on the same rows")
    busy = usage.contention()
    if busy:
        result.invalidate(busy)
    result.metrics = m


def _baseline_and_verify(
    data_path: Path, out_path: Path, predictor, params: BatchParams, total: int
) -> tuple[float, int]:
    """Untimed reads; time only ``predict`` on each chunk; compare with what was written."""
    phases = metrics.Phases()
    mismatches = 0
    for offset in range(0, total, params.chunk_rows):
        X = workload.feature_matrix(_read_chunk(data_path, offset, params.chunk_rows))
        with phases("score"):
            expected = predictor.predict(X)
        if params.verify:
            written = _read_chunk(out_path, offset, params.chunk_rows).get_column("score").to_numpy()
            mismatches += int(np.sum(written != expected)) if written.shape == expected.shape else len(expected)
    return phases.seconds().get("score", 0.0), mismatches
