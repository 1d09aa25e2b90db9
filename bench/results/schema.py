"""What a result.json holds, version 2: RunResult with typed Metrics, Latency and Memory blocks, and ``check``.

Attribute access (``result.metrics.memory.peak_rss_bytes``) is the way forward. ``Metrics`` is also a
mutable mapping over exactly its JSON form (``m["predictions"]``, ``m.get("capacity")``, ``m["x"] = v``)
so the analysis and view readers written against v1 dicts keep working while they are moved over;
that mapping access is the transition, not the interface to extend.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from typing import Any, Self

import polars as pl

from bench.core.errors import BenchError

#: Bump when a metric is added, renamed or re-typed; write ``update_to_<n>`` in migrate.py; commit a fixture.
SCHEMA_VERSION = 2

#: Metrics every result carries; patterns add their own keys beside these (kept in ``Metrics.extra``).
REQUIRED_METRICS = (
    "predictions",
    "wall_seconds",
    "throughput_per_s",
    "cpu_seconds",
    "provisioned_core_seconds",
    "latency_s",
)
_NUMBERS = ("predictions", "wall_seconds", "throughput_per_s", "cpu_seconds", "provisioned_core_seconds")
#: Blocks present in every v2 result besides the required metrics.
_BLOCKS = ("fixed_costs_s", "memory")
TYPED_METRICS = (*REQUIRED_METRICS, *_BLOCKS)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < math.inf


@dataclass
class Latency:
    """A latency summary in seconds (``bench.measure.metrics.latency_summary``); absent figures are None."""

    count: int | None = None
    min: float | None = None
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p99_9: float | None = None
    max: float | None = None
    tail_samples: dict[str, int] | None = None  #: samples at or above each percentile

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Latency:
        """Build from a summary dict; an unknown key is refused (it would be lost on write)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise BenchError(f"latency summary has unknown key(s) {unknown}; expected some of {sorted(names)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: only the figures present, in summary order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


#: Where a memory figure came from, most specific first: (scope, key in metrics, key inside that block).
_MEMORY_SOURCES = (
    ("job process tree", "peak_rss_bytes", None),  # batch and predictor: the job's own CpuMeter peak
    ("ray cluster with its actors", "ray", "rss_bytes_with_actors"),  # streaming: what the cluster holds
    # per-request and hybrid, when the meter kept no per-root peaks (v1 files) or the server is the
    # generator's own process (inprocess): the whole tree, an upper bound for an HTTP server
    # (~0.55 GiB for http/lightgbm in the v1 fixture, vs 0.31 GiB for inprocess)
    ("server and load generator", "cpu", "peak_rss_bytes"),
)
#: The load generator's root label in a per-request meter; every other root is the system under test.
_GENERATOR = "generator"


@dataclass
class Memory:
    """Peak resident memory of what a bill charges for: one job, or one replica of a server."""

    peak_rss_bytes: int | None = None  #: None where the run measured no memory
    measured_as: str = "not measured"  #: the scope of the figure (see ``_MEMORY_SOURCES``)

    @classmethod
    def of(cls, metrics: Mapping[str, Any]) -> Memory:
        """The memory a producer's metrics measured, from the most specific source they carry."""
        cpu = metrics.get("cpu")
        by_label = cpu.get("peak_rss_by_label") if isinstance(cpu, Mapping) else None
        if "peak_rss_bytes" not in metrics and "ray" not in metrics and isinstance(by_label, Mapping):
            # per-request and hybrid: the server's processes (and a Ray Serve cluster's) apart from the
            # generator, whose process also holds the in-process predictor and the refresh jobs it spawns
            served = [v for k, v in by_label.items() if k != _GENERATOR and _is_number(v)]
            if served:
                return cls(int(sum(served)), "server processes")
        for scope, key, inner in _MEMORY_SOURCES:
            block = metrics.get(key)
            value = block.get(inner) if inner and isinstance(block, Mapping) else None if inner else block
            if _is_number(value):
                return cls(int(value), scope)
        return cls()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Memory:
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {"peak_rss_bytes": self.peak_rss_bytes, "measured_as": self.measured_as}

    @property
    def gib(self) -> float:
        """The peak in GiB, 0 where nothing was measured (cost prices memory per GiB-hour)."""
        return (self.peak_rss_bytes or 0) / 2**30


@dataclass
class Metrics(MutableMapping[str, Any]):
    """What a run measured: typed fields every result has, pattern-specific blocks in ``extra``.

    Producers may assign a dict (``result.metrics = m``) and keep filling ``m``: the dict is adopted as
    ``extra`` (not copied) and its typed keys move into the fields. Numbers are None until set; a
    written or loaded result always has them (``check``).
    """

    predictions: int | None = None
    wall_seconds: float | None = None
    throughput_per_s: float | None = None
    cpu_seconds: float | None = None
    provisioned_core_seconds: float | None = None
    latency_s: Latency | None = None
    fixed_costs_s: dict[str, float] = field(default_factory=dict)  #: untimed set-up, by name (seconds)
    memory: Memory = field(default_factory=Memory)
    extra: dict[str, Any] = field(default_factory=dict)  #: pattern blocks: capacity, delivery, phases_s…
    #: memory is re-derived from ``extra`` until a memory block is given (producers fill ``extra`` late)
    _derived_memory: bool = field(default=True, repr=False, compare=False)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Metrics:
        """Adopt a producer's or a file's metrics dict: typed keys become fields, the rest stays ``extra``."""
        if isinstance(values, Metrics):
            return values
        extra = values if isinstance(values, dict) else dict(values)
        out = cls(extra=extra)
        out._absorb()
        return out

    def _absorb(self) -> None:
        """Move typed keys a producer put in ``extra`` into the fields; keep derived memory current."""
        for key in TYPED_METRICS:
            if key in self.extra:
                self[key] = self.extra.pop(key)
        if self._derived_memory:
            self.memory = Memory.of(self.extra)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: typed fields first (numbers only once set), then the pattern's blocks."""
        self._absorb()
        out: dict[str, Any] = {k: getattr(self, k) for k in _NUMBERS if getattr(self, k) is not None}
        out["latency_s"] = None if self.latency_s is None else self.latency_s.to_dict()
        out["fixed_costs_s"] = self.fixed_costs_s
        out["memory"] = self.memory.to_dict()
        return out | self.extra

    # -- Mapping access over the JSON form (the transition; see the module docstring) --------------

    def __getitem__(self, key: str) -> Any:
        self._absorb()
        if key in _NUMBERS:
            value = getattr(self, key)
            if value is None:
                raise KeyError(key)
            return value
        if key == "latency_s":
            return None if self.latency_s is None else self.latency_s.to_dict()
        if key == "fixed_costs_s":
            return self.fixed_costs_s  # the stored dict: ``m["fixed_costs_s"][name] = s`` must stick
        if key == "memory":
            return self.memory.to_dict()
        return self.extra[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in _NUMBERS:
            setattr(self, key, value)
        elif key == "latency_s":
            self.latency_s = value if value is None or isinstance(value, Latency) else Latency.from_mapping(value)
        elif key == "fixed_costs_s":
            self.fixed_costs_s = value if isinstance(value, dict) else dict(value)
        elif key == "memory":
            self.memory = value if isinstance(value, Memory) else Memory.from_mapping(value)
            self._derived_memory = False
        else:
            self.extra[key] = value

    def __delitem__(self, key: str) -> None:
        if key in _NUMBERS or key == "latency_s":
            self[key]  # noqa: B018 - KeyError if absent, as a dict would
            setattr(self, key, None)
        elif key in _BLOCKS:
            raise KeyError(f"{key!r} is part of every result and cannot be removed")
        else:
            del self.extra[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def __ior__(self, other: Mapping[str, Any]) -> Self:
        self.update(other)
        return self

    def __or__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        return self.to_dict() | dict(other)


@dataclass
class RunResult:
    """One run of one pattern. ``valid`` is False with reasons whenever a number must not be trusted."""

    run_id: str
    pattern: str
    backend: str
    profile: str
    params: dict[str, Any]
    metrics: Metrics  #: a dict assigned here is adopted as Metrics (see ``Metrics.from_mapping``)
    provenance: dict[str, Any]
    valid: bool = True
    invalid_reasons: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    #: raw observations, written beside result.json as samples.parquet (not part of the JSON)
    samples: pl.DataFrame | None = field(default=None, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "metrics" and not isinstance(value, Metrics):
            value = Metrics.from_mapping(value)
        super().__setattr__(name, value)

    def invalidate(self, reason: str) -> None:
        self.valid = False
        self.invalid_reasons.append(reason)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (always the current schema version's)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"}
        out["metrics"] = self.metrics.to_dict()
        out["schema_version"] = SCHEMA_VERSION
        return out


_TYPES: dict[str, type] = {
    "run_id": str,
    "pattern": str,
    "backend": str,
    "profile": str,
    "params": dict,
    "metrics": dict,
    "provenance": dict,
    "valid": bool,
    "invalid_reasons": list,
}


def _check_metrics(m: dict[str, Any], source: str) -> None:
    missing = [k for k in (*REQUIRED_METRICS, *_BLOCKS) if k not in m]
    if missing:
        raise BenchError(f"{source}: metrics lack {missing}")
    for key in REQUIRED_METRICS:
        value = m[key]
        if key == "latency_s":
            if value is not None and not (isinstance(value, dict) and "count" in value and "p99" in value):
                raise BenchError(f"{source}: metrics.latency_s must be null or a latency summary with count and p99")
        elif not _is_number(value):
            raise BenchError(f"{source}: metrics.{key} must be a number, finite and >= 0, got {value!r}")
    costs = m["fixed_costs_s"]
    if not isinstance(costs, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in costs.items()):
        raise BenchError(f"{source}: metrics.fixed_costs_s must map names to seconds (numbers >= 0), got {costs!r}")
    mem = m["memory"]
    if not (isinstance(mem, dict) and set(mem) == {"peak_rss_bytes", "measured_as"}):
        raise BenchError(f"{source}: metrics.memory must hold exactly peak_rss_bytes and measured_as, got {mem!r}")
    peak = mem["peak_rss_bytes"]
    if not (peak is None or (isinstance(peak, int) and _is_number(peak))) or not isinstance(mem["measured_as"], str):
        raise BenchError(f"{source}: metrics.memory.peak_rss_bytes must be null or an integer >= 0, got {peak!r}")


def check(data: Any, source: str = "result") -> RunResult:
    """Validate a decoded current-version result.json and build the RunResult, or raise BenchError saying what is wrong."""
    if not isinstance(data, dict):
        raise BenchError(f"{source}: expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BenchError(f"{source}: schema_version {version!r} is not the current {SCHEMA_VERSION} (migrate it first)")
    for key, tp in _TYPES.items():
        if key not in data:
            raise BenchError(f"{source}: missing field {key!r}")
        if not isinstance(data[key], tp):
            raise BenchError(f"{source}: field {key!r} must be {tp.__name__}, got {type(data[key]).__name__}")
    _check_metrics(data["metrics"], source)
    if data["metrics"]["latency_s"] is not None:
        try:
            Latency.from_mapping(data["metrics"]["latency_s"])
        except (BenchError, TypeError) as exc:
            raise BenchError(f"{source}: metrics.latency_s: {exc}") from exc
    for key in ("utc", "git", "machine", "packages", "model_sha256", "data_sha256"):
        if key not in data["provenance"]:
            raise BenchError(f"{source}: provenance lacks {key!r}")
    if not data["valid"] and not data["invalid_reasons"]:
        raise BenchError(f"{source}: an invalid result must say why (invalid_reasons is empty)")
    result = RunResult(**{k: data[k] for k in (*_TYPES, "schema_version")})
    if result.valid and not result.metrics.predictions:
        # a run that scored nothing has no rate, latency or cost to compare (files written before the
        # runner invalidated such runs said valid): listed as invalid, never compared, never divided by
        result.invalidate("no predictions: the run scored nothing")
    return result
