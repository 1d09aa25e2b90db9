"""What every pattern shares: the common parameters, where a run writes, the registry entry type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.core.params import require_choice, require_finite_fields, require_positive, to_dict
from bench.model import PREDICTORS
from bench.results import RunResult, provenance


@dataclass(frozen=True)
class PatternParams:
    """Parameters every pattern shares: which data, which model, which predictor."""

    rows: int = 100_000  #: customers in the scoring dataset (generated if data_path is empty)
    data_seed: int = 7  #: seed of the scoring dataset (the model trains on another seed)
    data_path: str = ""  #: an existing parquet file instead of a generated one
    model_path: str = ""  #: a LightGBM text model file instead of the trained synthetic one
    id_column: str = "customer_id"  #: data_path's integer id column ("" for row numbers)
    train_rows: int = 200_000
    trees: int = 200
    leaves: int = 63
    model_seed: int = 0
    predictor: str = "lightgbm"
    num_threads: int = 1

    def __post_init__(self) -> None:
        owner = type(self).__name__
        # Every float field of every pattern's params is checked here, once: a NaN or inf that slips
        # past a subclass's range check (rate=inf, refresh_interval_s=nan) is refused by name.
        require_finite_fields(self, owner)
        require_positive(
            owner, rows=self.rows, train_rows=self.train_rows, trees=self.trees, num_threads=self.num_threads
        )
        if not self.leaves >= 2:
            raise BenchError(f"{owner} parameter 'leaves' must be >= 2, got {self.leaves}")
        require_choice(owner, "predictor", self.predictor, PREDICTORS)
        for name, what in (("data_path", "a parquet file"), ("model_path", "a LightGBM text model file")):
            value = getattr(self, name)
            if value and Path(value).is_dir():
                raise BenchError(f"{owner} parameter {name!r}: {value!r} is a directory, not {what}")
            if value and not Path(value).is_file():
                raise BenchError(f"{owner} parameter {name!r}: file {value!r} does not exist")
        if self.id_column != "customer_id" and not self.data_path:
            raise BenchError(
                f"{owner} parameter 'id_column' ({self.id_column!r}) names a column of data_path, which is not set "
                "(the generated data's id is customer_id)"
            )


def cap_rows(values: dict[str, Any], rows: int) -> dict[str, Any]:
    """A sweep point on a table of ``rows`` rows: at most that many customers."""
    return values | ({"rows": min(values["rows"], rows)} if "rows" in values else {})


@dataclass(frozen=True)
class RunContext:
    """Where a run writes and under which names it is filed."""

    run_id: str
    run_dir: Path
    profile: str = "adhoc"


#: What a pattern is, as the article names it: how its predictions reach their consumer.
FAMILIES = ("batch", "streaming", "real-time", "hybrid", "predictor")
#: How a day of it is billed: scheduled jobs, always-on replicas, both, or not at all (a measurement
#: that answers another question, such as the predictor alone).
COST_KINDS = ("job", "always-on", "job+always-on", "none")
#: How the limits table sets a pattern against the raw predictor: end to end vs ``predict()`` in the
#: same job ("phases"), peak throughput with every event offered at once ("saturation"), capacity at
#: the SLO vs a single-row call ("capacity"), or not at all ("": it is the reference).
LIMIT_BASES = ("phases", "saturation", "capacity", "")


@dataclass(frozen=True)
class Sweep:
    """Where a pattern's sweep lives in a run profile: names of ``bench.app.profiles.Profile`` fields.

    A sweep point is ``{**profile.model, **<base>, **variant}`` for each variant, ``<repeats>`` times;
    with ``sizes``, once per size too (as ``rows``). ``extras`` are claim runs made once each;
    ``compiled`` the variants re-run with the compiled predictor. "" = the pattern has none."""

    base: str  #: the pattern's own parameters for every run
    variants: str = ""  #: the configurations swept ("" = one point, the base)
    repeats: str = ""  #: runs per point ("" = once)
    extras: str = ""  #: runs that answer a claim, once each
    sizes: str = ""  #: row counts: one point per size, the smallest for a single ``bench run``
    compiled: str = ""  #: the variants re-run with the compiled predictor


@dataclass(frozen=True)
class Pattern:
    """A registered pattern: its params type, run function and notebook, and the hooks every layer
    above asks instead of comparing its name (cost, verdicts, the pipeline, the report)."""

    name: str
    params: type
    run: Callable[..., Any]
    notebook: str
    family: str  #: one of FAMILIES: which of the article's patterns its runs measure
    cost_kind: str  #: one of COST_KINDS: how bench.analysis.cost bills a day of it
    label: Callable[[Mapping[str, Any]], str]  #: one sweep point in a few words (progress lines)
    sweep: Sweep  #: where its sweep lives in a profile
    view: str  #: the module with its report views, e.g. ``bench.views.batch``
    latency_key: str = "latency_s"  #: the metric with the latency its consumer waits for
    limits: str = ""  #: one of LIMIT_BASES
    #: the parameters that inject a fault: a run with any of them > 0 is a fault run (``is_fault_run``).
    #: Left empty, the params type's ``fault_*_at_s`` fields, the convention every fault follows
    #: (request and microbatch ``fault_kill_at_s``, hybrid ``fault_batch_kill_at_s``).
    fault_params: tuple[str, ...] = ()
    #: Parameters that make a run answer a question other than "what does this service cost": a value
    #: other than the field's default (a C10 aggregate; a caller's own batch of rows per request, which
    #: a per-event consumer would first have to wait to fill). Such runs are shown, never costed.
    not_a_service_params: tuple[str, ...] = ()
    #: Parameter values under which the pattern runs no always-on service of its own (hybrid with
    #: ``lookup="direct"``: clients read the online store, no model server in between). The bill then
    #: holds no service replicas; the run's measured ``components`` (its store) are what stays on.
    serviceless: Mapping[str, Any] = field(default_factory=dict)
    #: A sweep point fitted to a user's table of ``rows`` rows (``bench pipeline --param data_path=``):
    #: by default no more customers than the table holds; the predictor also drops larger call sizes.
    on_table: Callable[[dict[str, Any], int], dict[str, Any]] = field(
        default=lambda values, rows: cap_rows(values, rows)
    )

    def fit_to_table(self, values: Mapping[str, Any], rows: int) -> dict[str, Any]:
        """``values`` for a table of ``rows`` rows (the pattern's ``on_table`` hook)."""
        return self.on_table(dict(values), rows)

    def has_service(self, params: Mapping[str, Any] | Any) -> bool:
        """Whether a run with these parameters keeps an always-on service (replicas to bill)."""
        get = params.get if isinstance(params, Mapping) else lambda name, default=None: getattr(params, name, default)
        return not self.serviceless or any(get(k, None) != v for k, v in self.serviceless.items())

    def is_fault_run(self, params: Mapping[str, Any] | Any) -> bool:
        """Whether a run with these parameters (a result's ``params`` dict, or a params object) had a
        fault injected: its main window is not a steady state, so main-window plots and tables skip it."""
        get = params.get if isinstance(params, Mapping) else lambda name, default=None: getattr(params, name, default)
        return any((get(name, 0) or 0) > 0 for name in self.fault_params)

    def sizes_a_service(self, params: Mapping[str, Any] | Any) -> bool:
        """Whether a run with these parameters sizes a service a consumer could buy: no fault, and
        every ``not_a_service_params`` field at its default."""
        if self.is_fault_run(params):
            return False
        get = params.get if isinstance(params, Mapping) else lambda name, default=None: getattr(params, name, default)
        defaults = {f.name: f.default for f in fields(self.params)} if is_dataclass(self.params) else {}
        return all(get(name, defaults.get(name)) == defaults.get(name) for name in self.not_a_service_params)

    def __post_init__(self) -> None:
        for hook, value, allowed in (
            ("family", self.family, FAMILIES),
            ("cost_kind", self.cost_kind, COST_KINDS),
            ("limits", self.limits, LIMIT_BASES),
        ):
            require_choice(f"Pattern {self.name!r}", hook, value, allowed)
        if not self.fault_params and is_dataclass(self.params):
            named = tuple(
                f.name for f in fields(self.params) if f.name.startswith("fault_") and f.name.endswith("_at_s")
            )
            object.__setattr__(self, "fault_params", named)  # frozen: set once, here


def new_result(pattern: str, backend: str, params: Any, context: RunContext, model: Any, data: Any) -> RunResult:
    """An empty, valid RunResult of this run with its provenance; the pattern fills in the metrics."""
    return RunResult(
        run_id=context.run_id,
        pattern=pattern,
        backend=backend,
        profile=context.profile,
        params=to_dict(params),
        metrics={},
        provenance=provenance(model_sha256=model.sha256, data_sha256=data.sha256),
    )
