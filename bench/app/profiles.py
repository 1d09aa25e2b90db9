"""Named run profiles: how big each step is. ``smoke`` for CI, ``default`` for a laptop, ``full`` to publish."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from bench.core.errors import BenchError
from bench.patterns import registry


@dataclass(frozen=True)
class ModelSweep:
    """Extra models the pipeline measures beside the base one (issue 18: how the answer moves with the
    model's cost), and the runs each one gets, per pattern.

    A pattern's runs are in the field named as its ``Sweep.base`` (``batch``, ``request``, ...), each a
    variant over that pattern's base parameters in the profile, made once per extra model. Only the runs
    the model-cost view needs: the predictor alone (single-row and 1,000-row cost, C4), a batch job
    (the crossover's reference, C4), and each always-on pattern with its capacity search (the crossover's
    other side, C5). The runs of these models never enter the headline (``bench.results.selection``)."""

    models: tuple[dict[str, Any], ...] = ()  #: each a few PatternParams model fields over the profile's ``model``
    batch: tuple[dict[str, Any], ...] = ()
    microbatch: tuple[dict[str, Any], ...] = ()
    request: tuple[dict[str, Any], ...] = ()
    hybrid: tuple[dict[str, Any], ...] = ()
    predictor: tuple[dict[str, Any], ...] = ()

    def runs(self, base: str) -> tuple[dict[str, Any], ...]:
        """The variants each extra model gets of the pattern whose ``Sweep.base`` is ``base``."""
        return getattr(self, base, ()) if base in {f.name for f in fields(self)} - {"models"} else ()


@dataclass(frozen=True)
class Profile:
    """The sizes of one pipeline: the model every pattern shares, and each pattern's sweep."""

    name: str
    description: str
    model: dict[str, Any]  #: PatternParams model fields: train_rows, trees, leaves, model_seed
    batch_rows: tuple[int, ...]  #: the batch pattern runs once per size (and per repeat)
    batch: dict[str, Any] = field(default_factory=dict)  #: other BatchParams for every batch run
    repeats: int = 1  #: runs per sweep point, so the report can show spread
    request: dict[str, Any] = field(default_factory=dict)  #: RequestParams of a single ``bench run request``
    #: the per-request runs the pipeline makes: each a backend and its own RequestParams over ``request``
    request_variants: tuple[dict[str, Any], ...] = ()
    request_repeats: int = 1  #: runs per request variant (each one costs a capacity search)
    request_extras: tuple[dict[str, Any], ...] = ()  #: runs that answer a claim (C8, C10): once each
    microbatch: dict[str, Any] = field(default_factory=dict)  #: MicrobatchParams of every streaming run
    microbatch_variants: tuple[dict[str, Any], ...] = ()  #: the batch configurations the pipeline sweeps
    microbatch_extras: tuple[dict[str, Any], ...] = ()  #: streaming runs that answer a claim (delivery under faults)
    hybrid: dict[str, Any] = field(default_factory=dict)  #: HybridParams of every hybrid run
    hybrid_variants: tuple[dict[str, Any], ...] = ()  #: store, hit ratio and fault configurations
    predictor: dict[str, Any] = field(default_factory=dict)  #: PredictorParams of every predictor-alone run
    predictor_variants: tuple[dict[str, Any], ...] = ()  #: the backends the predictor pattern measures
    #: the variants of each pattern re-run with the compiled predictor (lleaves) beside the native sweep
    batch_compiled: tuple[dict[str, Any], ...] = ()
    request_compiled: tuple[dict[str, Any], ...] = ()
    microbatch_compiled: tuple[dict[str, Any], ...] = ()
    hybrid_compiled: tuple[dict[str, Any], ...] = ()
    predictor_compiled: tuple[dict[str, Any], ...] = ()
    model_sweep: ModelSweep = ModelSweep()  #: extra models and their runs (the report's model-cost section)

    def _field(self, name: str, default: Any) -> Any:
        """A field a pattern's sweep names ("" = the pattern has none: ``default``)."""
        return getattr(self, name) if name else default

    def pattern_params(self, pattern: str) -> dict[str, Any]:
        """Parameters a single ``bench run <pattern>`` starts from (the sweep's smallest point)."""
        sweep = registry.get(pattern).sweep
        sizes = self._field(sweep.sizes, ())
        return {**self.model, **self._field(sweep.base, {}), **({"rows": sizes[0]} if sizes else {})}

    def sweep(self, pattern: str) -> list[dict[str, Any]]:
        """Every run of ``pattern`` this profile makes, repeats included: the native predictor's sweep,
        the claim runs, the configurations re-run with the compiled predictor, then the extra models'
        runs (``model_sweep_points``)."""
        sweep = registry.get(pattern).sweep
        points = self._points(pattern, self._field(sweep.variants, ({},)))
        base = self._field(sweep.base, {})
        points += [{**self.model, **base, **extra} for extra in self._field(sweep.extras, ())]
        compiled = self._points(pattern, self._field(sweep.compiled, ()))
        points += [{**point, "predictor": COMPILED_PREDICTOR} for point in compiled]
        return points + self.model_sweep_points(pattern)

    def model_sweep_points(self, pattern: str) -> list[dict[str, Any]]:
        """The runs of ``pattern`` the extra models get: each variant over the pattern's base parameters,
        once per model, the model's fields last (a variant cannot change the model it is run for)."""
        sweep = registry.get(pattern).sweep
        base = self._field(sweep.base, {})
        return [
            {**self.model, **base, **variant, **extra}
            for extra in self.model_sweep.models
            for variant in self.model_sweep.runs(sweep.base)
        ]

    def is_base_model(self, values: Mapping[str, Any]) -> bool:
        """Whether a sweep point scores the profile's own model (not one of the model sweep's)."""
        return all(values.get(k) == v for k, v in self.model.items()) and not values.get("model_path")

    def _points(self, pattern: str, variants: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
        """Each variant over the pattern's base parameters, with the pattern's sizes and repeats."""
        sweep = registry.get(pattern).sweep
        base, repeats = self._field(sweep.base, {}), self._field(sweep.repeats, 1)
        if sweep.sizes:
            return [
                {**self.model, **base, **v, "rows": rows}
                for v in variants
                for rows in self._field(sweep.sizes, ())
                for _ in range(repeats)
            ]
        return [{**self.model, **base, **v} for v in variants for _ in range(repeats)]


#: The compiled predictor backend the ``compiled`` configurations are re-run with.
COMPILED_PREDICTOR = "lleaves"
#: The configurations each profile re-runs with the compiled predictor, so every pattern is measured
#: with both backends in the same session (Ray Serve is left out: Ray's own overhead, ~30 ms a
#: request, dwarfs the predictor's ~0.1 ms, and its capacity search is the pipeline's slowest).
COMPILED_CONFIGS: dict[str, tuple[dict[str, Any], ...]] = {
    "batch_compiled": ({},),
    "request_compiled": ({"backend": "inprocess"}, {"backend": "http"}, {"backend": "http", "server_app": "asgi"}),
    "microbatch_compiled": ({"max_batch": 1_000, "max_wait_ms": 50.0},),
    "hybrid_compiled": ({},),
}


#: Per-request runs that answer a claim rather than size a service (not costed as serving options):
#: the model server killed mid-window and restarted by a supervisor (C8), one of two replicas behind
#: one address killed mid-window and replaced by uvicorn's supervisor (C8 as a cost model with two
#: replicas assumes it), and a 90-day activity aggregate computed per request with polars vs read
#: pre-computed (C10).
REPLICA_FAULT: dict[str, Any] = {"fault_target": "replica", "server_workers": 2}
REQUEST_EXTRAS: tuple[dict[str, Any], ...] = (
    {"backend": "http", "fault_kill_at_s": 4.0, "capacity": False, "floor": False},
    {"backend": "http", "fault_kill_at_s": 4.0, **REPLICA_FAULT, "capacity": False, "floor": False},
    {
        "backend": "http",
        "aggregate": "onthefly",
        "floor": False,
        "rate": 50.0,
        "min_requests": 500,
        "capacity_max_rate": 2_000.0,
    },
    {"backend": "http", "aggregate": "precomputed", "floor": False, "rate": 50.0, "min_requests": 500},
)
#: Real time as teams deploy it (issue 15): our server with dynamic batching, the caller batching 100
#: rows per request, Ray Serve's ``@serve.batch``, and MLServer (the off-the-shelf anchor) with its
#: adaptive batching; each with its capacity search, so the cost model can pick the cheapest.
BATCHED_VARIANTS: tuple[dict[str, Any], ...] = (
    {"backend": "http", "batch_max": 32, "batch_wait_ms": 2.0},
    {"backend": "http", "rows_per_request": 100},
    {"backend": "ray_serve", "batch_max": 32, "batch_wait_ms": 2.0, "rate": 25.0, "min_requests": 250},
    # Serve's deployment through its handle, no HTTP proxy: the proxy's share of a Ray Serve request
    {"backend": "ray_serve_handle", "rate": 25.0, "min_requests": 250},
    {"backend": "mlserver", "batch_max": 32, "batch_wait_ms": 2.0},
)
#: The same server and rate over 1 and 8 client connections (64 in the main runs): a latency is
#: comparable only with its connection count. Main window only.
CONNECTION_VARIANTS: tuple[dict[str, Any], ...] = tuple(
    {"backend": "http", "connections": c, "capacity": False, "floor": False} for c in (1, 8)
)
#: Streaming through a real broker (issue 16): the same batch configuration with events through a
#: Valkey stream and a consumer group, with its capacity search and saturation window, beside the table.
BROKER_VARIANTS: tuple[dict[str, Any], ...] = ({"max_batch": 1_000, "max_wait_ms": 50.0, "source": "broker"},)
#: Delivery through the broker under faults, main window only: a consumer SIGKILLed holding a batch
#: (its entries claimed by its peer), and the broker SIGKILLed and restarted with its append-only file
#: fsynced on every write and once a second.
BROKER_FAULTS: tuple[dict[str, Any], ...] = tuple(
    {"max_batch": 1_000, "max_wait_ms": 50.0, "source": "broker", "capacity": False, "saturation_events": 0, **f}
    for f in (
        {"fault_kill_at_s": 2.0},
        {"fault_broker_kill_at_s": 2.0, "broker_appendfsync": "always"},
        {"fault_broker_kill_at_s": 2.0, "broker_appendfsync": "everysec"},
    )
)
#: The predictor alone, one row per call up to a million (claim C4): both backends, on one core.
PREDICTOR_SIZES = "1,10,100,1000,10000,100000,1000000"
PREDICTOR_VARIANTS: tuple[dict[str, Any], ...] = ({"predictor": "lightgbm"}, {"predictor": "lleaves"})
#: The hybrid runs: steady state with its capacity, and a refresh killed half-way (C8); then the online
#: store as a server (Valkey, issue 16), read through the lookup server and read by the clients
#: themselves with no model server (the article's "served from a database"; every customer known).
HYBRID_VARIANTS: tuple[dict[str, Any], ...] = (
    {},
    {"fault_batch_kill_at_s": 11.0, "capacity": False, "duration_s": 30.0},
    {"store": "valkey"},
    {"store": "valkey", "lookup": "direct", "hit_ratio": 1.0},
)

#: The model-cost sweep (issue 18): trees × leaves around the base model (200 × 63) on the same
#: synthetic data and training rows. Through the HTTP server one request of the base model used 484
#: CPU-µs against 15 µs for its predictor alone on one row (the published report): the server's share
#: dwarfs a cheap model's cost and weighs less the dearer the model, so the crossovers and C4/C5 may move.
MODEL_GRID: tuple[dict[str, Any], ...] = tuple(
    {"trees": t, "leaves": n} for t in (50, 200, 1_000) for n in (15, 63, 255) if (t, n) != (200, 63)
)
#: On a laptop only the grid's two corners, cheapest and dearest: four runs each, two of them with a
#: capacity search, and the 1,000 × 255 model's training (the default report must stay short).
MODEL_CORNERS: tuple[dict[str, Any], ...] = ({"trees": 50, "leaves": 15}, {"trees": 1_000, "leaves": 255})
#: What each extra model is measured with: the predictor alone at call sizes 1 … 10,000 (100k rows: the
#: untimed reference scores of the whole dataset are the run's slowest part on a 1,000-tree model); a
#: 1M-row batch job (the base model's largest default size: the cost model reads the largest); the HTTP
#: server and the 1,000-event / 50 ms micro-batches with their capacity searches (the configurations
#: the base model also runs, so each crossover pair has the same label for every model).
LAPTOP_MODEL_SWEEP = ModelSweep(
    models=MODEL_CORNERS,
    predictor=({"predictor": "lightgbm", "rows": 100_000, "call_sizes": "1,10,100,1000,10000"},),
    batch=({"rows": 1_000_000},),
    request=({"backend": "http"},),
    microbatch=({"max_batch": 1_000, "max_wait_ms": 50.0},),
)
#: The published report: the whole grid, and the hybrid pattern with its lookup capacity as well.
FULL_MODEL_SWEEP = replace(LAPTOP_MODEL_SWEEP, models=MODEL_GRID, hybrid=({},))
#: CI: one tiny extra model through the predictor, a batch job and the HTTP server (capacity is not
#: searched in smoke), so the path from the profile to the report's model-cost section runs: 25 s more
#: (measured on 2 cores: the three notebooks took 7, 6 and 12 s).
SMOKE_MODEL_SWEEP = ModelSweep(
    models=({"trees": 10, "leaves": 7},),
    predictor=({"predictor": "lightgbm"},),
    batch=({"rows": 10_000},),
    request=({"backend": "http"},),
)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="smoke",
            description="CI: tiny data and model, seconds per notebook",
            model={"train_rows": 5_000, "trees": 20, "leaves": 15, "model_seed": 0},
            batch_rows=(2_000, 10_000),
            batch={"chunk_rows": 4_000, "num_threads": 2},
            request={
                "rows": 2_000,
                "rate": 100.0,
                "duration_s": 2.0,
                "min_requests": 200,
                "warmup_s": 0.5,
                "capacity": False,
            },
            request_variants=(
                {"backend": "inprocess"},
                {"backend": "http"},
                {"backend": "http", "server_app": "asgi"},
                {"backend": "http", "batch_max": 8, "batch_wait_ms": 2.0},
                {"backend": "http", "rows_per_request": 10},
                {"backend": "mlserver", "batch_max": 8, "batch_wait_ms": 2.0},
            ),
            request_extras=(
                {"backend": "http", "fault_kill_at_s": 1.0, "duration_s": 3.0, "floor": False},
                # a replacement worker answers ~1 s after the kill: 4 s leaves 2 s of window after it
                {"backend": "http", "fault_kill_at_s": 1.0, **REPLICA_FAULT, "duration_s": 4.0, "floor": False},
                {"backend": "http", "aggregate": "onthefly", "floor": False},
                {"backend": "http", "aggregate": "precomputed", "floor": False},
            ),
            microbatch={
                "rows": 2_000,
                "events": 4_000,
                "rate": 500.0,
                "duration_s": 2.0,
                "min_events": 300,
                "warmup_s": 0.3,
                "max_batch": 200,
                "capacity": False,
                "saturation_events": 5_000,
            },
            microbatch_variants=({},),
            hybrid={
                "rows": 2_000,
                "rate": 100.0,
                "duration_s": 4.0,
                "min_requests": 200,
                "warmup_s": 0.5,
                "capacity": False,
                "refresh_interval_s": 1.5,
            },
            hybrid_variants=({"fault_batch_kill_at_s": 1.0},),  # the first refresh is the one killed
            # the smoke model compiles with lleaves in well under a second: both backends even in CI
            predictor={"rows": 10_000, "call_sizes": "1,10,100,1000,10000", "min_seconds": 0.2, "num_threads": 1},
            predictor_variants=PREDICTOR_VARIANTS,
            batch_compiled=({},),
            request_compiled=({"backend": "http"},),
            microbatch_compiled=({},),
            hybrid_compiled=({},),
            model_sweep=SMOKE_MODEL_SWEEP,
        ),
        Profile(
            name="default",
            description="a laptop: the article's model (200 trees, 63 leaves), batch up to 1M rows, 3 repeats",
            model={"train_rows": 200_000, "trees": 200, "leaves": 63, "model_seed": 0},
            batch_rows=(10_000, 100_000, 1_000_000),
            batch={"chunk_rows": 100_000, "num_threads": 2},
            repeats=3,
            request={"rate": 200.0, "duration_s": 10.0, "capacity_window_s": 4.0},
            request_variants=(
                {"backend": "inprocess"},
                {"backend": "http"},
                {"backend": "http", "server_app": "asgi"},
                # Ray Serve on 2 cores answers well under 100 req/s: start its search lower.
                {"backend": "ray_serve", "rate": 25.0, "min_requests": 250},
                *BATCHED_VARIANTS,
            ),
            request_extras=REQUEST_EXTRAS + CONNECTION_VARIANTS,
            microbatch={"rate": 2_000.0, "duration_s": 6.0, "capacity_window_s": 4.0, "saturation_events": 200_000},
            microbatch_variants=(
                {"max_batch": 1_000, "max_wait_ms": 50.0},
                {"max_batch": 100, "max_wait_ms": 10.0},
                *BROKER_VARIANTS,
            ),
            microbatch_extras=BROKER_FAULTS,
            hybrid={"rows": 100_000, "rate": 200.0, "duration_s": 20.0, "refresh_interval_s": 5.0},
            hybrid_variants=HYBRID_VARIANTS,
            predictor={"rows": 1_000_000, "call_sizes": PREDICTOR_SIZES, "min_seconds": 1.0, "num_threads": 1},
            predictor_variants=PREDICTOR_VARIANTS,
            **COMPILED_CONFIGS,
            model_sweep=LAPTOP_MODEL_SWEEP,
        ),
        Profile(
            name="full",
            description="the published report: 1M-row training set, batch up to 10M rows, 3 repeats",
            model={"train_rows": 1_000_000, "trees": 200, "leaves": 63, "model_seed": 0},
            batch_rows=(10_000, 100_000, 1_000_000, 10_000_000),
            batch={"chunk_rows": 100_000, "num_threads": 2},
            repeats=3,
            request={"rate": 200.0, "duration_s": 30.0, "capacity_window_s": 8.0},
            request_variants=(
                {"backend": "inprocess"},
                {"backend": "http"},
                {"backend": "http", "server_app": "asgi"},
                {"backend": "http", "server_app": "asgi", "server_workers": 2},
                {"backend": "ray_serve", "rate": 25.0, "min_requests": 750},
                *BATCHED_VARIANTS,
                {"backend": "http", "server_app": "asgi", "batch_max": 32, "batch_wait_ms": 2.0},
                {"backend": "mlserver"},
            ),
            request_repeats=3,
            request_extras=REQUEST_EXTRAS + CONNECTION_VARIANTS,
            microbatch={
                "rate": 2_000.0,
                "duration_s": 20.0,
                "capacity_window_s": 8.0,
                "saturation_events": 500_000,
                "events": 1_000_000,
            },
            microbatch_variants=(
                {"max_batch": 10_000, "max_wait_ms": 200.0},
                {"max_batch": 1_000, "max_wait_ms": 50.0},
                {"max_batch": 100, "max_wait_ms": 10.0},
                *BROKER_VARIANTS,
            ),
            microbatch_extras=BROKER_FAULTS,
            hybrid={"rows": 100_000, "rate": 200.0, "duration_s": 30.0, "refresh_interval_s": 6.0},
            hybrid_variants=(*HYBRID_VARIANTS, {"store": "dict"}, {"hit_ratio": 0.5}),
            predictor={"rows": 1_000_000, "call_sizes": PREDICTOR_SIZES, "min_seconds": 2.0, "num_threads": 1},
            predictor_variants=PREDICTOR_VARIANTS,
            **COMPILED_CONFIGS,
            model_sweep=FULL_MODEL_SWEEP,
        ),
    )
}


def base_model(name: str) -> dict[str, Any] | None:
    """The model profile ``name`` compares in its headline (None for "": the report then takes the
    model most runs scored)."""
    return dict(get(name).model) if name else None


def get(name: str) -> Profile:
    """The profile called ``name``, or a clear error listing the known ones."""
    if name not in PROFILES:
        raise BenchError(f"unknown profile {name!r}; expected one of: {', '.join(PROFILES)}")
    return PROFILES[name]
