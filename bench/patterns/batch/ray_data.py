"""Bulk batch on Ray Data (``BatchParams.engine="ray"``): the same job as ``bench.patterns.batch``, run by Ray.

Ray Data reads the parquet file in blocks of about ``chunk_rows`` rows (``read_parquet``), an actor
pool of ``ray_actors`` scorers (``map_batches`` with a callable class: the model is loaded once per
actor) validates, prepares and scores batches of at most ``chunk_rows`` rows, and the driver streams
the predictions, in input order, into ONE parquet file: a temp file beside ``predictions.parquet``,
renamed over it when complete — the same file, columns and location as the local engine, so
``verify``, the report and every reader of a run directory work unchanged. Writing a directory of
files with ``Dataset.write_parquet`` was not chosen: it would change what the rest of the code reads.

Input checks, the raw-predict baseline, verification and metrics are the local engine's
(``batch.check_input`` and ``batch.finish``). CPU is metered over the whole process tree (driver
and every Ray process), Ray's start-up is a fixed cost, and every wait on Ray is bounded by
``ray_timeout_s``. On a cluster (``ray_address``), the data and model paths must be readable by
every node.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from bench.core.errors import BenchError
from bench.data import workload
from bench.data.schema import ID, FeatureSchema
from bench.measure import metrics
from bench.model import Model, make_predictor
from bench.patterns.base import RunContext, new_result
from bench.patterns.batch import local as batch
from bench.results import RunResult
from bench.systems.raysession import RaySession

#: Column the scorer adds to its output: JSON timings of one batch on that batch's first row, null
#: elsewhere, so timings survive Ray Data merging several batches' outputs into one block.
INFO_COLUMN = "_batch_info"
#: Ray Data's listing and read tasks each hold one CPU: a pool holding every CPU would never get its
#: input (ray-project/ray#44687), so one CPU is always left to them.
READ_CPUS = 1
#: How long a failed run waits for Ray Data's consumer thread to leave Ray before Ray is shut down
#: (at least ``ray_timeout_s``): it leaves when its pending block arrives, which took 20 s after the
#: start on an idle 2-core machine (Ray Data starting its actors) and 43 s beside a CPU-bound process.
CONSUMER_EXIT_S = 120.0


def _as_schema_frame(block: pa.Table, schema: FeatureSchema) -> pl.DataFrame:
    """The block as a polars frame whose categoricals are the schema's Enums.

    Polars keeps Enums through parquet in Arrow field metadata; should a block arrive without it
    (a plain dictionary column becomes a Categorical, whose codes follow first appearance), the
    columns are cast by value, so ``feature_matrix`` always sees the schema's codes.
    """
    df = pl.from_arrow(block)
    assert isinstance(df, pl.DataFrame)
    casts = {
        c.name: c.dtype
        for c in schema.features
        if isinstance(c.dtype, pl.Enum) and c.name in df.columns and df.schema[c.name] != c.dtype
    }
    if casts:
        try:
            df = df.cast(casts)  # type: ignore[arg-type]
        except pl.exceptions.PolarsError as exc:
            raise BenchError(
                f"a Ray Data block's categorical column(s) {sorted(casts)} hold unknown values: {exc}"
            ) from exc
    return df


class Scorer:
    """One Ray Data actor: loads the model once, then validates, prepares and scores each batch."""

    def __init__(
        self, model_path: str, model_sha256: str, predictor: str, num_threads: int, source: str, id_column: str
    ) -> None:
        # In the actor's worker process: Ray pickles this class by value, so the model code is
        # imported where the actor runs, not captured from the driver.
        from bench import model as model_mod

        with metrics.stopwatch() as load_s:
            model = model_mod.load(model_path)
        if model.sha256 != model_sha256:
            raise BenchError(f"model file {model_path!r} changed since the driver loaded it (sha256 differs)")
        self.predictor = model_mod.make_predictor(model, predictor, num_threads)
        self.schema = model.schema.with_id(id_column)
        self.source = source
        self.init: dict | None = {"pid": os.getpid(), "model_load_s": load_s[0]}

    def __call__(self, block: pa.Table) -> pa.Table:
        with metrics.stopwatch() as convert_s:
            df = self.schema.canonical(_as_schema_frame(block, self.schema))
        with metrics.stopwatch() as validate_s:
            self.schema.validate(df, source=f"{self.source} (a Ray Data batch of {df.height} rows)")
        with metrics.stopwatch() as prepare_s:
            X = self.schema.matrix(df)
        with metrics.stopwatch() as score_s:
            scores = self.predictor.predict(X)
        info = {
            "rows": df.height,
            "validate_s": validate_s[0],
            "prepare_s": convert_s[0] + prepare_s[0],  # Arrow block -> polars frame -> feature matrix
            "score_s": score_s[0],
            "pid": os.getpid(),
        }
        if self.init is not None:  # the actor's start-up, reported once with its first batch
            info["init"], self.init = self.init, None
        if df.height == 0:
            marker = pa.nulls(0, pa.string())
        else:
            marker = pa.concat_arrays([pa.array([json.dumps(info)], pa.string()), pa.nulls(df.height - 1, pa.string())])
        return pa.table({ID: df.get_column(ID).to_arrow(), "score": pa.array(scores), INFO_COLUMN: marker})


def _bytes_per_row(path: Path) -> float:
    """Uncompressed bytes per row from the parquet footer: sizes Ray Data's blocks to ``chunk_rows``."""
    meta = pq.ParquetFile(path).metadata
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return max(size / max(meta.num_rows, 1), 1.0)


def _dataset(data_path: Path, model: Model, params: batch.BatchParams, id_column: str):
    """The lazy Ray Data pipeline: read in blocks of ~``chunk_rows`` rows, score on the actor pool, in order."""
    import ray

    ctx = ray.data.DataContext.get_current().copy()
    ctx.execution_options.preserve_order = True  # the output file is in input order, as the local engine's
    ctx.target_max_block_size = max(int(params.chunk_rows * _bytes_per_row(data_path)), 64 * 1024)
    ctx.target_min_block_size = min(ctx.target_min_block_size, ctx.target_max_block_size)
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    with ray.data.DataContext.current(ctx):  # the dataset seals a copy; the process-wide context is untouched
        return ray.data.read_parquet(str(data_path)).map_batches(
            Scorer,
            fn_constructor_kwargs={
                "model_path": str(model.path),
                "model_sha256": model.sha256,
                "predictor": params.predictor,
                "num_threads": params.num_threads,
                "source": str(data_path),
                "id_column": id_column,
            },
            batch_size=params.chunk_rows,
            batch_format="pyarrow",
            # `concurrency=` is deprecated since Ray 2.51 in favour of an explicit strategy
            compute=ray.data.ActorPoolStrategy(size=params.ray_actors),
            num_cpus=params.num_threads,
        )


def _cause(exc: BaseException) -> BenchError | None:
    """The BenchError a Ray error wraps (raised in an actor), if any."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, BenchError):
            return e
        stack.extend([e.__cause__, e.__context__, getattr(e, "cause", None)])
    return None


def _blocks(ds, timeout_s: float, stop: threading.Event):
    """Blocks of predictions in order; each wait for the next one is bounded by ``timeout_s``.

    Ray Data's iterator has no timeout of its own, so it runs on a daemon thread that hands blocks
    over a small queue; a stuck Ray cannot hold the run past its bound (``ray.shutdown`` ends it).
    """
    handoff: queue.Queue = queue.Queue(maxsize=2)

    def put(item: tuple) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        blocks = iter(ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1))
        try:
            for block in blocks:
                if not put(("block", block)):
                    return
            put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the driver thread, which raises it
            put(("error", exc))
        finally:
            getattr(blocks, "close", lambda: None)()  # stops Ray Data's executor, here, while Ray is up

    thread = threading.Thread(target=produce, name="ray-data-consumer", daemon=True)
    thread.start()
    n = 0
    try:
        while True:
            try:
                kind, item = handoff.get(timeout=timeout_s)
            except queue.Empty:
                raise BenchError(
                    f"Ray Data gave no block of predictions within ray_timeout_s={timeout_s} s (after {n} blocks)"
                ) from None
            if kind == "done":
                return
            if kind == "error":
                cause = _cause(item)
                if cause is not None:
                    raise BenchError(str(cause)) from item
                raise item
            n += 1
            yield item
    finally:
        # Let the thread leave Ray before anyone shuts Ray down: a Ray call from it after shutdown
        # aborts the whole interpreter (core_worker_process.cc). With ``stop`` set it closes the
        # iterator (which stops Ray Data's executor) as soon as its pending block arrives.
        stop.set()
        thread.join(timeout=max(timeout_s, CONSUMER_EXIT_S))


def _score_and_write(
    ds, writer: batch._Stages, params: batch.BatchParams, meter: metrics.CpuMeter
) -> tuple[list, list]:
    """Drain the pipeline into the temp file: one sample per block received (``arrived_s`` from the
    start: the first one carries Ray Data's start-up, actors and model loads), the scorers' batch infos."""
    t0 = time.perf_counter()
    stop = threading.Event()
    samples: list[dict] = []
    infos: list[dict] = []
    offset = 0
    try:
        for block in _blocks(ds, params.ray_timeout_s, stop):
            meter.sample()  # actors exit when the pipeline ends: count their CPU so far
            batch_infos = [json.loads(s) for s in block.column(INFO_COLUMN).drop_null().to_pylist()]
            infos.extend(batch_infos)
            df = pl.from_arrow(block.select(["customer_id"]))
            assert isinstance(df, pl.DataFrame)
            sample = {
                "arrived_s": time.perf_counter() - t0,
                "offset": offset,
                "rows": block.num_rows,
                "batches": len(batch_infos),
                **{f"{p}_s": sum(i[f"{p}_s"] for i in batch_infos) for p in ("validate", "prepare", "score")},
            }
            samples.append(writer.write(df, block.column("score").to_numpy(), sample))
            offset += block.num_rows
    finally:
        stop.set()
    return samples, infos


def _read_seconds(ds) -> float | None:
    """Remote wall time of Ray Data's read tasks, from the executed dataset's stats (None if absent)."""
    try:
        pending = [ds._get_stats_summary()]  # no public structured form in Ray 2.60; best effort
        total, found = 0.0, False
        while pending:
            summary = pending.pop()
            pending.extend(summary.parents)
            for op in summary.operators_stats:
                if op.operator_name.startswith("Read") and op.wall_time is not None:
                    total, found = total + op.wall_time.sum, True
        return total if found else None
    except Exception:  # noqa: BLE001 - stats are a diagnostic, never a reason to fail a run
        return None


def run(data: workload.Dataset, model: Model, params: batch.BatchParams, context: RunContext) -> RunResult:
    """Score every row of ``data`` on Ray Data and write ``predictions.parquet`` into the run directory."""
    if not data.schema.id_column:  # Ray Data's blocks carry no row offsets to number rows by
        raise BenchError("BatchParams engine='ray' needs an id column in data_path: id_column='' is for engine='local'")
    out_path, total = batch.check_input(data, context)  # fails fast, before paying for Ray
    start = batch.process_start(model, params)  # untimed, before Ray starts: nothing else runs beside it
    tmp_path = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    need = params.ray_actors * params.num_threads + READ_CPUS
    cores = os.cpu_count() or 1
    # A local Ray gets one logical CPU more than the pool holds if the machine has too few; the
    # physical cores stay what they are (see provisioned_core_seconds).
    session = RaySession(address=params.ray_address, num_cpus=None if params.ray_address or cores >= need else need)
    writer = batch._Stages(data.path, model.sha256, None, tmp_path)
    try:
        session.start()
        cluster_cpus = session.info["cluster_cpus"]
        if need > cluster_cpus:
            raise BenchError(
                f"BatchParams ray_actors × num_threads = {need - READ_CPUS} CPUs plus {READ_CPUS} for Ray Data's "
                f"reads, but the Ray cluster has {cluster_cpus:g}"
            )
        ds = _dataset(Path(data.path), model, params, data.schema.id_column)
        roots = {"driver": os.getpid(), **session.roots()}
        with metrics.CpuMeter(roots=roots, interval_s=0.1) as meter, metrics.stopwatch() as wall:
            samples, infos = _score_and_write(ds, writer, params, meter)
            written = sum(s["rows"] for s in samples)
            if written != total:
                raise BenchError(f"Ray Data returned {written} predictions for {total} input rows")
            with metrics.stopwatch() as close_s:
                writer.close()
                os.replace(tmp_path, out_path)
            samples[-1]["write_s"] += close_s[0]
        read_s = _read_seconds(ds)
        session.info["rss_bytes_at_end"] = session.rss_bytes()
    finally:
        writer.close()
        tmp_path.unlink(missing_ok=True)
        session.stop()
    usage = meter.result
    assert usage is not None

    result = new_result("batch", f"ray/{params.predictor}", params, context, model, data)
    e2e_rate = metrics.throughput(total, wall[0])
    held = cluster_cpus if params.ray_address else min(cluster_cpus, cores)
    phases = {p: sum(s[f"{p}_s"] for s in samples) for p in ("validate", "prepare", "score", "write")}
    inits = [i["init"] for i in infos if "init" in i]
    m: dict = {
        "predictions": total,
        "wall_seconds": wall[0],
        "throughput_per_s": e2e_rate,
        "cpu_seconds": usage.cpu_s,
        "provisioned_core_seconds": held * wall[0],  # every core the Ray cluster held, idle or not
        "latency_s": None,
        "cpu_seconds_per_prediction": usage.cpu_s / total,
        # read: Ray Data's read tasks (from its stats; 0.0 if unavailable, see ray.read_s_from_stats)
        "phases_s": {"read": read_s or 0.0, **phases},
        "phases_overlap": True,  # Ray Data streams: reads, scoring and the driver's writes overlap
        "chunks": len(infos),
        "peak_rss_bytes": usage.peak_rss_bytes,
        "cpu": usage.to_dict(),
        "output_bytes": out_path.stat().st_size,
        "fixed_costs_s": {"ray_start": session.start_s},
        "ray": session.info
        | {
            "actors": params.ray_actors,
            "actor_pids": sorted({i["pid"] for i in infos}),
            "actor_model_load_s": [i["model_load_s"] for i in inits],
            "blocks": len(samples),
            "first_block_s": samples[0]["arrived_s"],
            "read_s_from_stats": read_s is not None,
        },
    }
    # The baseline runs raw predict() with the threads the pool scored with, on this process's cores.
    threads = min(params.ray_actors * params.num_threads, cores)
    m["raw_predict_threads"] = threads
    batch.record_process_start(result, m, start)
    batch.finish(result, m, usage, data, out_path, make_predictor(model, params.predictor, threads), params, total)
    result.samples = pl.DataFrame(samples)
    return result
