"""Bulk batch: read a parquet table with polars in chunks, validate, score, write predictions atomically.

The job is a bounded pipeline (``bench.patterns.batch.pipeline``): a reader thread reads the input a
row group at a time, validates it and prepares ``chunk_rows``-row chunks in the layout the predictor
reads in place (:data:`INPUT_ORDER`); the main thread scores them with the predictor's own threads;
a writer thread appends row groups to a temp file as chunks are scored, renamed into place at the end.
``overlap=False`` runs the same stages one after another.

Timed end to end (read → validate → prepare → score → write → rename), split by phase and, from the
scoring thread's side, into waits (``pipeline``: which stage set the pace is ``bound_by``), and set
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
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from bench.core.errors import BenchError
from bench.core.params import require_choice, require_positive
from bench.data import workload
from bench.data.schema import FeatureSchema
from bench.measure import metrics
from bench.model import Model, make_predictor
from bench.patterns.base import PatternParams, RunContext, new_result
from bench.patterns.batch import pipeline
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
    """Bulk batch parameters; ``chunk_rows`` (rows per ``predict()`` call, and the unit the pipeline
    passes between its threads) bounds memory for inputs larger than RAM.

    ``chunk_rows`` 100k was the best or within noise of it for both predictors, measured end to end
    against 25k and 50k (and 10k, 250k before): 1M rows 0.955 (LightGBM) and 0.734 (lleaves) × raw,
    100k rows 0.895 and 0.633 (n=3 each, quiet machine; results/perf/README.md, issue 17)."""

    chunk_rows: int = 100_000
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


#: What the job reads: the id it writes back and the model's features (not the label).
INPUT_COLUMNS = (workload.ID_COLUMN.name, *(c.name for c in workload.FEATURE_COLUMNS))
#: The layout each predictor reads without a copy of its own. LightGBM takes either order in place
#: (``_np2d_to_np1d``: column-major is passed as such) and polars builds column-major without a
#: transpose; lleaves ``ravel()``s its input, which copies a column-major matrix into row-major inside
#: ``predict`` (0.07 CPU-µs a row). Measured, default model, 2 threads (results/perf/README.md): LightGBM
#: 11.4 vs 11.5 CPU-µs a row F vs C; lleaves 2.10 (F) vs 2.00 (C). Predictors not named here get F.
INPUT_ORDER: dict[str, str] = {"lightgbm": "F", "lleaves": "C"}
#: The largest row group read whole (~270 MB of input columns); a bigger one is read in chunk slices.
MAX_READ_ROWS = 1_000_000
#: Rows per row group of the predictions file (``ChunkWriter``): chunks are written in groups of at
#: least this many, whatever the chunk size.
WRITE_GROUP_ROWS = 100_000
#: Prepared chunks that may wait between stages (each queue): enough to ride out one slow chunk,
#: bounded so memory stays a few chunks whatever the input's size.
PIPELINE_DEPTH = 2
#: How predictions are encoded. pyarrow's default tries a dictionary for every column: for 250k
#: distinct scores and ids it builds a hash table, overflows the dictionary page and falls back, which
#: was most of the write (0.153 CPU-µs a row). A dictionary only for the two constant columns, ids
#: delta-encoded, scores plain (random doubles: zstd saved 5%): 0.036 CPU-µs a row, and a smaller file
#: (2.0 vs 2.7 MB per 250k rows). The schema read back is the same.
WRITE_OPTIONS: dict = {
    "compression": {"customer_id": "zstd", "score": "none", "model_sha256": "zstd", "scored_at": "zstd"},
    "use_dictionary": ["model_sha256", "scored_at"],
    "column_encoding": {"customer_id": "DELTA_BINARY_PACKED"},
}


def input_order(predictor) -> str:
    """The layout ``predictor`` reads in place, "C" or "F" (:data:`INPUT_ORDER`)."""
    return INPUT_ORDER.get(predictor.name, "F")


def prepare(df: pl.DataFrame, order: str, schema: FeatureSchema = workload.SYNTHETIC) -> np.ndarray:
    """The model's input (``schema.matrix``) in the layout ``order``, the same values either way.
    Row-major straight from polars: 0.13 CPU-µs a row against 0.20 for numpy's copy of the
    column-major matrix (1M rows in 50k-row chunks)."""
    return schema.matrix(df, order)


def _read_units(path: Path, chunk_rows: int) -> list[tuple[int, int]]:
    """(offset, rows) of each read: one row group at a time (polars decodes a whole row group for any
    slice of it: 10k-row slices of 100k-row groups cost 1.08 against 0.16 CPU-µs a row), and a row group
    of more than :data:`MAX_READ_ROWS` in slices of ``chunk_rows`` (memory stays bounded)."""
    units, offset = [], 0
    metadata = pq.ParquetFile(path).metadata
    for i in range(metadata.num_row_groups):
        rows = metadata.row_group(i).num_rows
        step = chunk_rows if rows > MAX_READ_ROWS else rows
        units += [(offset + o, min(step, rows - o)) for o in range(0, rows, step)]
        offset += rows
    return units


def read_chunks(
    path: Path,
    chunk_rows: int,
    columns: tuple[str, ...] | FeatureSchema,
    check: Callable[[pl.DataFrame, int], None] | None = None,
) -> Iterator[tuple[int, pl.DataFrame, float, float]]:
    """(offset, frame, read seconds, check seconds) of consecutive ``chunk_rows``-row chunks of
    ``columns`` (or a schema's canonical frame), the last one shorter, cut from row-group reads.
    ``check(frame, offset)`` runs once per read (the schema gate: per 100k-row group it cost 0.05
    CPU-µs a row, per 10k-row chunk 0.18, its query plan being per call). A chunk's seconds are its
    rows' share of its reads' and checks'."""
    scan = columns.scan(path) if isinstance(columns, FeatureSchema) else pl.scan_parquet(path).select(columns)
    pieces: list[pl.DataFrame] = []
    held, read_s, check_s, offset = 0, 0.0, 0.0, 0
    for start, rows in _read_units(path, chunk_rows):
        with metrics.stopwatch() as sw:
            unit = scan.slice(start, rows).collect()
        with metrics.stopwatch() as cw:
            if check is not None:
                check(unit, start)
        read_per_row, check_per_row = sw[0] / max(unit.height, 1), cw[0] / max(unit.height, 1)
        pos = 0
        while pos < unit.height:
            take = min(chunk_rows - held, unit.height - pos)
            pieces.append(unit.slice(pos, take))
            held, pos = held + take, pos + take
            read_s, check_s = read_s + read_per_row * take, check_s + check_per_row * take
            if held == chunk_rows:
                yield offset, pieces[0] if len(pieces) == 1 else pl.concat(pieces, rechunk=False), read_s, check_s
                offset += held
                pieces, held, read_s, check_s = [], 0, 0.0, 0.0
    if held:
        yield offset, pieces[0] if len(pieces) == 1 else pl.concat(pieces, rechunk=False), read_s, check_s


class ChunkWriter:
    """Appends scored chunks to one parquet file (:data:`WRITE_OPTIONS`), a row group per
    ``group_rows`` rows or more: chunks are held until that many are scored (0: a row group per chunk).

    A row group costs ~1.5 ms of its own (a zstd context and the page set-up per column), so 10k-row
    groups cost 0.18 CPU-µs a row against 0.04 for 100k-row ones. With ``total_rows`` known, what is
    held is written as soon as one chunk is left to come, so the job's tail (after its last chunk is
    scored) writes that chunk alone: for 100k rows in 25k-row chunks, 3 ms instead of 9–15."""

    def __init__(self, out_tmp: Path, model_sha: str, group_rows: int = 0, total_rows: int | None = None) -> None:
        self.out_tmp, self.model_sha, self.group_rows, self.total_rows = out_tmp, model_sha, group_rows, total_rows
        self.sha_dtype = pl.Enum([model_sha])
        self.writer: pq.ParquetWriter | None = None
        self._held: list[tuple[pl.DataFrame, np.ndarray]] = []
        self._held_rows = 0
        self._seen = 0

    def write(self, df: pl.DataFrame, scores: np.ndarray, info: dict) -> dict:
        """Write ``df``'s ``customer_id`` with ``scores`` (or hold them for the next row group); returns
        ``info`` with the seconds it took (a flush's seconds go to the chunk that filled the group)."""
        with metrics.stopwatch() as write_s:
            self._held.append((df.select("customer_id"), scores))
            self._held_rows += df.height
            self._seen += df.height
            last_to_come = self.total_rows is not None and self.total_rows - self._seen <= df.height
            if self._held_rows >= self.group_rows or last_to_come:
                self._flush()
        return info | {"write_s": write_s[0]}

    def _table(self, ids: pl.DataFrame, scores: np.ndarray):
        return ids.with_columns(
            pl.Series("score", scores, dtype=pl.Float64),
            # an Enum literal is written as a parquet dictionary: 4 bytes a row, not 64
            pl.lit(self.model_sha, dtype=self.sha_dtype).alias("model_sha256"),
            pl.lit(datetime.now(UTC)).alias("scored_at"),
        ).to_arrow()

    def open(self) -> None:
        """Create the file, and fault in the writer's buffers, before the first chunk arrives (the
        writer thread does it while the first chunk is read, on the core the reader leaves idle).

        The buffers: pyarrow's allocator (mimalloc) maps its first pages as transparent huge pages,
        and on this VM faulting them in cost 0–130 ms of kernel time, at random, in the first
        100k-row write of a process (4 huge-page faults; 3.3–4.9 ms once they were in). A throw-away
        write of one row group's worth of rows into memory takes that cost here, off the job's tail."""
        if self.writer is not None:
            return
        rows = min(self.group_rows or 1, self.total_rows or 1)
        warm = self._table(pl.DataFrame({"customer_id": np.arange(rows, dtype=np.int64)}), np.zeros(rows))
        with pq.ParquetWriter(pa.BufferOutputStream(), warm.schema, **WRITE_OPTIONS) as scratch:
            scratch.write_table(warm)
        self.writer = pq.ParquetWriter(self.out_tmp, warm.schema, **WRITE_OPTIONS)

    def _flush(self) -> None:
        if not self._held:
            return
        ids = self._held[0][0] if len(self._held) == 1 else pl.concat([d for d, _ in self._held], rechunk=False)
        scores = self._held[0][1] if len(self._held) == 1 else np.concatenate([s for _, s in self._held])
        self._held, self._held_rows = [], 0
        table = self._table(ids, scores)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.out_tmp, table.schema, **WRITE_OPTIONS)
        self.writer.write_table(table)

    def close(self) -> None:
        """Write what is held and the file's footer."""
        self._flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def abort(self) -> None:
        """Drop what is held and close the file without writing more (the caller removes it)."""
        self._held, self._held_rows = [], 0
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()


class _Stages(ChunkWriter):
    """The writer by the name and arguments the Ray engine (``ray_data``) builds it with: a row group
    per block it is given, as before."""

    def __init__(self, data_path: Path, model_sha: str, predictor, out_tmp: Path) -> None:
        super().__init__(out_tmp, model_sha)


class _Job:
    """One job's three stages over ``chunk_rows`` chunks, each returning its chunk's timings."""

    def __init__(self, data: workload.Dataset, predictor, writer: ChunkWriter, chunk_rows: int) -> None:
        self.data_path, self.schema = Path(data.path), data.schema
        self.predictor, self.writer, self.chunk_rows = predictor, writer, chunk_rows
        self.order = input_order(predictor)

    def _validate(self, df: pl.DataFrame, offset: int) -> None:
        self.schema.validate(df, source=f"{self.data_path} rows {offset}..{offset + df.height}")

    def load(self) -> Iterator[tuple[pl.DataFrame, np.ndarray, dict]]:
        """Read and validate each row group, prepare each chunk of it (the reader thread)."""
        for offset, df, read_s, validate_s in read_chunks(
            self.data_path, self.chunk_rows, self.schema, check=self._validate
        ):
            with metrics.stopwatch() as prepare_s:
                X = prepare(df, self.order, self.schema)
            info = {
                "offset": offset,
                "rows": df.height,
                "read_s": read_s,
                "validate_s": validate_s,
                "prepare_s": prepare_s[0],
            }
            yield df, X, info

    def score(self, item: tuple[pl.DataFrame, np.ndarray, dict]) -> tuple[pl.DataFrame, np.ndarray, dict]:
        df, X, info = item
        with metrics.stopwatch() as score_s:
            scores = self.predictor.predict(X)
        return df, scores, info | {"score_s": score_s[0]}

    def write(self, item: tuple[pl.DataFrame, np.ndarray, dict]) -> dict:
        return self.writer.write(*item)


def check_input(data: workload.Dataset, context: RunContext) -> tuple[Path, int]:
    """Untimed gate shared by both engines: the input exists, has rows and passes the schema; the run
    directory is writable. Returns the output path (``predictions.parquet``) and the row count."""
    if not Path(data.path).is_file():
        raise BenchError(f"data file {str(data.path)!r} does not exist")
    ensure_writable(Path(context.run_dir))
    total = pl.scan_parquet(data.path).select(pl.len()).collect().item()
    if total == 0:
        raise BenchError(f"data file {str(data.path)!r} has no rows")
    # The schema gate over the whole file before any work (untimed); each row group passes it again
    # inside the timed region, as a production job would.
    data.schema.validate(data.scan(), source=str(data.path))
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

    writer = ChunkWriter(tmp_path, model.sha256, group_rows=WRITE_GROUP_ROWS, total_rows=total)
    job = _Job(data, predictor, writer, params.chunk_rows)
    try:
        with metrics.CpuMeter(interval_s=0.1) as meter, metrics.stopwatch() as wall:
            if params.overlap:
                chunks, times = pipeline.run(
                    job.load,
                    job.score,
                    job.write,
                    depth=PIPELINE_DEPTH,
                    timeout_s=params.chunk_timeout_s,
                    start_writer=writer.open,
                )
            else:
                chunks, times = pipeline.run_sequential(job.load, job.score, job.write)
            with metrics.stopwatch() as close_s:  # the footer, then the atomic rename
                writer.close()
                os.replace(tmp_path, out_path)
            chunks[-1]["write_s"] += close_s[0]
            times.drain_s += close_s[0]
    finally:
        writer.abort()  # after a failure: nothing more is written, and the temp file goes
        tmp_path.unlink(missing_ok=True)
    usage = meter.result

    result = new_result("batch", f"local/{params.predictor}", params, context, model, data)
    e2e_rate = metrics.throughput(total, wall[0])
    phases = {p: sum(c[f"{p}_s"] for c in chunks) for p in PHASES}
    cores = os.cpu_count() or 1
    m: dict = {
        "predictions": total,
        "wall_seconds": wall[0],
        "throughput_per_s": e2e_rate,
        "cpu_seconds": usage.cpu_s,
        # the predictor's threads, or more where the reader and writer threads kept more cores busy
        "provisioned_core_seconds": min(cores, max(params.num_threads, math.ceil(usage.cpu_s / wall[0]))) * wall[0],
        "latency_s": None,  # a batch consumer sees staleness, modelled from job duration (cost issue)
        "cpu_seconds_per_prediction": usage.cpu_s / total,
        "phases_s": phases,
        "phases_overlap": params.overlap,
        "chunks": len(chunks),
        "peak_rss_bytes": usage.peak_rss_bytes,
        "cpu": usage.to_dict(),
        "output_bytes": out_path.stat().st_size,
        "bound_by": pipeline.bound_by(times, {p: phases[p] for p in ("read", "validate", "prepare")}),
        "pipeline": {
            **pipeline_split(times, wall[0]),
            "depth": PIPELINE_DEPTH if params.overlap else 0,
            "input_order": job.order,
            "threads": {
                "predictor": params.num_threads,
                "reader_writer": 2 if params.overlap else 0,
                "polars_pool": pl.thread_pool_size(),
            },
        },
    }
    record_process_start(result, m, start)
    finish(result, m, usage, data, out_path, predictor, params, total)
    result.samples = pl.DataFrame(chunks)
    return result


def pipeline_split(times: pipeline.PipelineTimes, wall_s: float) -> dict[str, float]:
    """The job's wall time as the scoring thread spent it: waiting for the first chunk (``fill_s``),
    for later ones (``wait_input_s``), scoring (``score_s``), waiting for the writer (``wait_output_s``),
    the writer's tail with the footer and rename (``drain_s``), and the rest (``other_s``: thread start,
    queue hand-offs)."""
    split = {k: getattr(times, k) for k in ("fill_s", "wait_input_s", "score_s", "wait_output_s", "drain_s")}
    return split | {"other_s": max(0.0, wall_s - sum(split.values()))}


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
            raw_s, raw_cpu_s, mismatches = _baseline_and_verify(data, out_path, predictor, params, total)
        busy = baseline_meter.result.contention()
        if busy and params.baseline:
            result.invalidate(f"during the raw predict() baseline, {busy}")
        if params.baseline:
            m["raw_predict_seconds"] = raw_s
            m["raw_predict_cpu_seconds"] = raw_cpu_s
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
    # Both engines carry the same keys: an engine that does not split its wall time (Ray Data streams
    # on its own) records no bound and no pipeline split, rather than leaving the keys out.
    m.setdefault("bound_by", None)
    m.setdefault("pipeline", None)
    result.metrics = m


def _baseline_and_verify(
    data: workload.Dataset, out_path: Path, predictor, params: BatchParams, total: int
) -> tuple[float, float, int]:
    """Untimed reads; time only ``predict`` on each chunk, given in the layout the job gives it;
    compare with what was written. Returns predict's wall and CPU seconds (the process's, all of its
    threads: nothing else runs meanwhile) and the number of written scores that differ."""
    order = input_order(predictor)
    phases = metrics.Phases()
    cpu_s = 0.0
    mismatches = 0
    written = read_chunks(out_path, params.chunk_rows, ("score",)) if params.verify else None
    for _, df, _, _ in read_chunks(Path(data.path), params.chunk_rows, data.schema):
        X = prepare(df, order, data.schema)
        cpu0 = time.process_time()
        with phases("score"):
            expected = predictor.predict(X)
        cpu_s += time.process_time() - cpu0
        if written is not None:
            got = next(written, (0, pl.DataFrame({"score": []}), 0.0, 0.0))[1].get_column("score").to_numpy()
            mismatches += int(np.sum(got != expected)) if got.shape == expected.shape else len(expected)
    if written is not None:
        mismatches += sum(df.height for _, df, _, _ in written)  # scores written for rows that do not exist
    return phases.seconds().get("score", 0.0), cpu_s, mismatches
