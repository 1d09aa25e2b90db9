"""The price catalogue: what platforms sell, at what dated price, and the line items nobody measures here.

``prices.yaml`` beside this module is the repo's catalogue (its header documents the format). A preset
(:class:`Prices`) picks a platform per role — ``job`` (batch jobs, hybrid refreshes) and ``service``
(always-on replicas), with per-family overrides — and carries the catalogue's line items and which
pattern family needs which. Everything is checked when the file is loaded: a missing preset or field,
a negative price, a utilisation outside (0, 1] or an unknown platform is a :class:`BenchError` naming
the field and the file, before any work.

``Prices("test", vcpu_hour=0.04, gib_hour=0.0, granularity_s=1, minimum_s=60)`` (no catalogue) is a
*flat* preset: every role on one metered platform that sells exactly the measured cores and memory,
with no start-up and no line items — what the tests and the cost model before the catalogue used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from bench.core.errors import BenchError

PRICES_FILE = Path(__file__).with_name("prices.yaml")
KINDS = ("instances", "tasks", "function", "metered")
#: the roles a preset fills; a family's override (``real-time: lambda``) or ``<family>.<role>`` wins
ROLES = ("job", "service")
#: families whose always-on part may run on a function platform (they measure a service time per request)
FUNCTION_FAMILIES = ("real-time", "hybrid")
FAMILIES = ("batch", "streaming", "real-time", "hybrid")
HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = 365.0 / 12


@dataclass(frozen=True)
class Size:
    """A unit that is sold: one instance, task or function size, and its price per hour."""

    name: str
    vcpu: float
    gib: float
    hour: float  #: $ per hour of this size (a function: per second of billed duration × 3600)
    cpu: str = ""  #: CPU family it runs on ("" = the platform does not say)
    compute_share: float = 1.0  #: the part of ``hour`` that is compute (the rest memory), for the breakdown

    @property
    def per_s(self) -> float:
        return self.hour / 3600.0

    def describe(self) -> str:
        return f"{self.name} ({self.vcpu:g} vCPU, {self.gib:g} GiB)"


@dataclass(frozen=True)
class Platform:
    """Where a pattern runs and how it is billed (see ``prices.yaml`` for the kinds)."""

    name: str
    kind: str
    description: str = ""
    as_of: str = ""
    granularity_s: float = 1.0
    minimum_s: float = 0.0
    startup_s: float = 0.0  #: the platform's own start before the job's process, billed; priced, not measured
    units: tuple[Size, ...] = ()  #: instances
    vcpu_hour: float = 0.0  #: tasks, metered
    gib_hour: float = 0.0
    sizes: tuple[tuple[float, float, float, float], ...] = ()  #: tasks: (vcpu, smallest GiB, largest GiB, step)
    price_factor: float = 1.0
    memory_price_ratio: float = 0.0  #: instances: a GiB-hour over a vCPU-hour, to split a size's price
    per_request: float = 0.0  #: function
    per_gib_s: float = 0.0
    per_vcpu_s: float = 0.0
    memory_gib: tuple[float, float, float] = (0.125, 10.0, 1 / 1024)
    gib_per_vcpu: float = 0.0  #: function: CPU follows memory (0: chosen from vcpu_sizes)
    vcpu_sizes: tuple[float, ...] = ()
    replaces: Mapping[str, str] = field(default_factory=dict)  #: line items this platform needs instead of a family's

    def billed_seconds(self, seconds: float) -> float:
        """What a run of ``seconds`` is billed for: rounded up to the granularity, at least the minimum."""
        steps = math.ceil(seconds / self.granularity_s - 1e-9) if seconds > 0 else 0
        return max(steps * self.granularity_s, self.minimum_s)

    def fit(self, cores: float, gib: float, cpu: str = "") -> tuple[Size, str]:
        """The cheapest size sold with at least ``cores`` vCPU and ``gib`` GiB (the same CPU family as
        ``cpu`` where the platform sells one), and a note when the family could not be matched."""
        cores, gib = max(cores, 1e-9), max(gib, 0.0)
        if self.kind == "metered":
            hour = (cores * self.vcpu_hour + gib * self.gib_hour) * self.price_factor
            share = cores * self.vcpu_hour / (cores * self.vcpu_hour + gib * self.gib_hour) if hour else 1.0
            return Size("metered", cores, gib, hour, "", share), ""
        if self.kind == "instances":
            fits = [u for u in self.units if u.vcpu >= cores - 1e-9 and u.gib >= gib - 1e-9]
            if not fits:
                raise BenchError(f"platform {self.name!r} sells no size with >= {cores:g} vCPU and >= {gib:.2f} GiB")
            same = [u for u in fits if cpu and u.cpu == cpu]
            u = min(same or fits, key=lambda s: (s.hour, s.vcpu, s.gib, s.name))
            note = ""
            if cpu and not same:
                note = f"no {cpu} size fits on {self.name}: priced as {u.name} ({u.cpu or 'CPU family not stated'})"
            return u, note
        if self.kind == "tasks":
            for vcpu, lo, hi, step in sorted(self.sizes):
                if vcpu < cores - 1e-9:
                    continue
                g = max(lo, lo + math.ceil((gib - lo) / step - 1e-9) * step)
                if g > hi + 1e-9:
                    continue
                compute, memory = vcpu * self.vcpu_hour, g * self.gib_hour
                hour = (compute + memory) * self.price_factor
                return Size(f"{vcpu:g} vCPU / {g:g} GiB task", vcpu, g, hour, "", compute / (compute + memory)), ""
            raise BenchError(f"platform {self.name!r} sells no task with >= {cores:g} vCPU and >= {gib:.2f} GiB")
        # function: memory at least what was measured and what buys the measured cores
        lo, hi, step = self.memory_gib
        if self.gib_per_vcpu:
            need = max(gib, cores * self.gib_per_vcpu, lo)
            g = lo + math.ceil((need - lo) / step - 1e-9) * step
            vcpu = g / self.gib_per_vcpu
        else:
            vcpus = [v for v in sorted(self.vcpu_sizes) if v >= cores - 1e-9]
            if not vcpus:
                raise BenchError(f"platform {self.name!r} sells no function size with >= {cores:g} vCPU")
            vcpu = vcpus[0]
            g = lo + math.ceil((max(gib, lo) - lo) / step - 1e-9) * step
        if g > hi + 1e-9:
            raise BenchError(f"platform {self.name!r} sells no function size with >= {gib:.2f} GiB (largest {hi:g})")
        compute, memory = vcpu * self.per_vcpu_s, g * self.per_gib_s
        # where CPU follows memory (Lambda), the memory bought is the price of the CPU: count it as compute
        share = 1.0 if self.gib_per_vcpu and not self.per_vcpu_s else compute / (compute + memory)
        return Size(f"{g * 1024:.0f} MB function", vcpu, g, (compute + memory) * 3600, "", share), ""


@dataclass(frozen=True)
class LineItem:
    """A cost a deployment pays besides compute, priced, not measured: per month + per million predictions.

    A line item that is a server the runs can measure (the online store, the broker) names its sold
    node (``node``, ``vcpu``, ``gib``; ``per_month`` is then the price of one node): a run that metered
    such a server gets it sized on these nodes from its measured CPU and memory (``bench.analysis.bill``);
    without ``vcpu``/``gib`` (a price file from before them) it stays one flat, unmeasured price.
    ``fronts_service``: it stands in front of an HTTP service (a load balancer, an API gateway), so a
    run with no service of its own (clients read the store directly) does not need it."""

    name: str
    description: str = ""
    as_of: str = ""
    per_month: float = 0.0
    per_million: float = 0.0
    node: str = ""  #: the sold node's name (e.g. cache.t4g.small), for the bill's text
    vcpu: float = 0.0  #: one node's vCPUs (0: not given; the item cannot be sized by a measurement)
    gib: float = 0.0  #: one node's memory, GiB (0: not given)
    #: the vCPUs its engine runs commands on, when fewer than ``vcpu`` (Valkey: its main thread), 0 = all
    engine_vcpu: float = 0.0
    fronts_service: bool = False

    def per_day(self, predictions_per_day: float) -> float:
        return self.per_month / DAYS_PER_MONTH + self.per_million * predictions_per_day / 1e6

    @property
    def sized(self) -> bool:
        """Whether it sells nodes a measured server can be sized on (``vcpu`` and ``gib`` given)."""
        return self.vcpu > 0 and self.gib > 0

    @property
    def command_vcpu(self) -> float:
        """The vCPUs a measured CPU per prediction is spread over: the engine's, else the node's."""
        return min(self.engine_vcpu, self.vcpu) if self.engine_vcpu else self.vcpu

    @property
    def node_per_day(self) -> float:
        """One node's price a day (``per_month`` is one node's)."""
        return self.per_month / DAYS_PER_MONTH

    def describe_node(self) -> str:
        return f"{self.node or self.name} ({self.vcpu:g} vCPU, {self.gib:g} GiB)"


@dataclass(frozen=True)
class Prices:
    """One preset of the catalogue: a platform per role and family, line items and their attachment.

    The four legacy fields (``vcpu_hour``, ``gib_hour``, ``granularity_s``, ``minimum_s``) describe a
    flat preset and are used only when ``platforms`` is empty. ``minimums``, ``startups`` and
    ``line_items_on`` switch the billing minimum, the platforms' start-up and the line items off (the
    sensitivity table's assumptions)."""

    name: str
    vcpu_hour: float | None = None
    gib_hour: float | None = 0.0
    granularity_s: float = 1.0
    minimum_s: float = 0.0
    as_of: str = ""
    description: str = ""
    platforms: Mapping[str, Platform] = field(default_factory=dict)  #: role or family key -> platform
    line_items: Mapping[str, LineItem] = field(default_factory=dict)
    attach: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  #: family -> line item names
    target_utilisation: float | None = None  #: the preset's default when the workload sets none
    source: str = ""  #: the file it came from
    cpu_families: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    minimums: bool = True
    startups: bool = True
    line_items_on: bool = True

    def __post_init__(self) -> None:
        where = f"prices {self.name!r}"
        if not self.platforms:
            if self.vcpu_hour is None or not self.vcpu_hour > 0:
                raise BenchError(f"{where}: 'vcpu_hour' must be > 0, got {self.vcpu_hour}")
            if not self.granularity_s > 0:
                raise BenchError(f"{where}: 'granularity_s' must be > 0, got {self.granularity_s}")
            for name in ("gib_hour", "minimum_s"):
                if (getattr(self, name) or 0) < 0:
                    raise BenchError(f"{where}: {name!r} must be >= 0, got {getattr(self, name)}")
        if self.target_utilisation is not None:
            check_utilisation(self.target_utilisation, f"{where} 'target_utilisation'")

    # -- the legacy flat preset --------------------------------------------------------------------

    @property
    def flat(self) -> bool:
        return not self.platforms

    def _flat_platform(self) -> Platform:
        return Platform(
            "flat",
            "metered",
            description=f"{self.name}: ${self.vcpu_hour}/vCPU-h, ${self.gib_hour or 0}/GiB-h",
            as_of=self.as_of,
            granularity_s=self.granularity_s,
            minimum_s=self.minimum_s,
            vcpu_hour=float(self.vcpu_hour or 0),
            gib_hour=float(self.gib_hour or 0),
        )

    def billed_seconds(self, seconds: float) -> float:
        """A flat preset's billed seconds (kept for callers of the flat model; platforms bill their own)."""
        return self._flat_platform().billed_seconds(seconds)

    def per_hour(self, cores: float, gib: float) -> float:
        return cores * float(self.vcpu_hour or 0) + gib * float(self.gib_hour or 0)

    # -- lookups -----------------------------------------------------------------------------------

    def platform(self, family: str, role: str) -> Platform:
        """The platform ``family``'s ``role`` runs on, with the preset's switches applied."""
        if self.flat:
            p = self._flat_platform()
        else:
            # a family's own key overrides its main role (batch: its jobs; the others: their service)
            keys = (f"{family}.{role}", family if role == primary_role(family) else "", role)
            p = self.platforms[next(k for k in keys if k in self.platforms)]
        changes: dict[str, Any] = {}
        if not self.minimums:
            changes["minimum_s"] = 0.0
        if not self.startups:
            changes["startup_s"] = 0.0
        return replace(p, **changes) if changes else p

    def items_for(self, family: str, platform: Platform | None = None, service: bool = True) -> list[LineItem]:
        """The line items ``family`` needs (priced, not measured), a platform's replacements applied;
        with ``service=False`` (a run with no always-on service of its own) without those that front a
        service (``fronts_service``: a load balancer, an API gateway)."""
        if not self.line_items_on:
            return []
        names = list(self.attach.get(family, ()))
        if platform is not None:
            names = [platform.replaces.get(n, n) for n in names]
        items = [self.line_items[n] for n in dict.fromkeys(names)]
        return items if service else [i for i in items if not i.fronts_service]

    def cpu_family(self, cpu_model: str) -> str:
        """The catalogue's CPU family of a provenance ``machine.cpu_model`` ("" if none matches)."""
        text = (cpu_model or "").lower()
        for family, words in self.cpu_families.items():
            if any(w.lower() in text for w in words):
                return family
        return ""

    def with_(self, **changes: Any) -> Prices:
        """This preset with fields changed (``platforms={...}`` merges into the current mapping)."""
        if "platforms" in changes:
            changes["platforms"] = {**self.platforms, **changes["platforms"]}
        return replace(self, **changes)

    def summary(self) -> str:
        """One line for a report: name, date, platform per role, switches."""
        if self.flat:
            return (
                f"{self.name}: ${self.vcpu_hour}/vCPU-h, ${self.gib_hour or 0}/GiB-h, billed per "
                f"{self.granularity_s:g} s, minimum {self.minimum_s:g} s"
            )
        roles = ", ".join(f"{k}: {p.name}" for k, p in self.platforms.items())
        off = [n for n, on in (("minimums", self.minimums), ("start-up", self.startups)) if not on]
        off += [] if self.line_items_on else ["line items"]
        tail = f"; off: {', '.join(off)}" if off else ""
        return f"{self.name} (catalogue as of {self.as_of}): {roles}{tail}"


def primary_role(family: str) -> str:
    """The role a family's own key in a preset sets: batch's jobs, every other family's service."""
    return "job" if family == "batch" else "service"


def check_utilisation(value: Any, where: str) -> float:
    if not _number(value) or not 0 < value <= 1:
        raise BenchError(f"{where} must be in (0, 1], got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------------
# Loading and checking a catalogue file
# --------------------------------------------------------------------------------------------------


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class _Checker:
    """Reads fields of a decoded catalogue, raising a BenchError that names the field and the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> BenchError:
        return BenchError(f"price file {str(self.path)!r}: {where} {message}")

    def mapping(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict) or not value:
            raise self.fail(where, f"must be a non-empty mapping, got {value!r}")
        return value

    def num(self, block: dict, key: str, where: str, *, default: Any = None, positive: bool = False) -> float:
        if key not in block:
            if default is None:
                raise self.fail(f"{where}.{key}", "is missing")
            return default
        v = block[key]
        if not _number(v):
            raise self.fail(f"{where}.{key}", f"must be a number, got {v!r}")
        if v < 0 or (positive and v == 0):
            raise self.fail(f"{where}.{key}", f"must be {'> 0' if positive else '>= 0'}, got {v!r}")
        return float(v)

    def known(self, block: dict, allowed: set[str], where: str) -> None:
        unknown = sorted(set(block) - allowed)
        if unknown:
            raise self.fail(where, f"has unknown field(s) {unknown}; expected some of {sorted(allowed)}")


_PLATFORM_FIELDS = {
    "description",
    "as_of",
    "kind",
    "granularity_s",
    "minimum_s",
    "startup_s",
    "units",
    "units_from",
    "price_factor",
    "vcpu_hour",
    "gib_hour",
    "sizes",
    "memory_price_ratio",
    "per_request",
    "per_gib_s",
    "per_vcpu_s",
    "memory_gib",
    "gib_per_vcpu",
    "vcpu_sizes",
    "replace",
}
_PRESET_FIELDS = {"description", "as_of", "target_utilisation", "attach", *ROLES}


def _platform(c: _Checker, name: str, raw: Any, table: dict) -> Platform:
    where = f"platforms.{name}"
    b = c.mapping(raw, where)
    c.known(b, _PLATFORM_FIELDS, where)
    kind = b.get("kind")
    if kind not in KINDS[:3]:
        raise c.fail(f"{where}.kind", f"must be one of {list(KINDS[:3])}, got {kind!r}")
    common = {
        "description": str(b.get("description", "")),
        "as_of": str(b.get("as_of", table.get("as_of", ""))),
        "price_factor": c.num(b, "price_factor", where, default=1.0, positive=True),
        "replaces": MappingProxyType(dict(b.get("replace") or {})),
    }
    if kind == "function":
        mem = b.get("memory_gib")
        if not (isinstance(mem, list) and len(mem) == 3 and all(_number(x) and x > 0 for x in mem)):
            raise c.fail(f"{where}.memory_gib", f"must be [smallest, largest, step] GiB, all > 0, got {mem!r}")
        vcpus = b.get("vcpu_sizes") or []
        gpv = c.num(b, "gib_per_vcpu", where, default=0.0)
        if not gpv and not (isinstance(vcpus, list) and vcpus and all(_number(v) and v > 0 for v in vcpus)):
            raise c.fail(where, "needs 'gib_per_vcpu' (> 0) or 'vcpu_sizes' (a list of numbers > 0)")
        return Platform(
            name,
            kind,
            granularity_s=c.num(b, "granularity_s", where, positive=True),
            per_request=c.num(b, "per_request", where),
            per_gib_s=c.num(b, "per_gib_s", where),
            per_vcpu_s=c.num(b, "per_vcpu_s", where, default=0.0),
            memory_gib=tuple(float(x) for x in mem),
            gib_per_vcpu=gpv,
            vcpu_sizes=tuple(float(v) for v in vcpus),
            **common,
        )
    billing = {
        "granularity_s": c.num(b, "granularity_s", where, positive=True),
        "minimum_s": c.num(b, "minimum_s", where),
        "startup_s": c.num(b, "startup_s", where),
    }
    source = b
    if "units_from" in b:
        base = b["units_from"]
        if base not in table.get("platforms", {}) or base == name:
            raise c.fail(f"{where}.units_from", f"names an unknown platform {base!r}")
        source = table["platforms"][base]
    if kind == "instances":
        units_raw = c.mapping(source.get("units"), f"{where}.units")
        units = []
        ratio = c.num(b, "memory_price_ratio", where, default=0.0)
        for unit, u in units_raw.items():
            uw = f"{where}.units.{unit}"
            u = c.mapping(u, uw)
            c.known(u, {"vcpu", "gib", "hour", "cpu"}, uw)
            vcpu = c.num(u, "vcpu", uw, positive=True)
            gib = c.num(u, "gib", uw, positive=True)
            hour = c.num(u, "hour", uw, positive=True) * common["price_factor"]
            share = vcpu / (vcpu + ratio * gib)
            units.append(Size(str(unit), vcpu, gib, hour, str(u.get("cpu", "")), share))
        return Platform(name, kind, units=tuple(units), memory_price_ratio=ratio, **billing, **common)
    sizes_raw = source.get("sizes")
    if not isinstance(sizes_raw, list) or not sizes_raw:
        raise c.fail(
            f"{where}.sizes", f"must be a non-empty list of {{vcpu, gib: [smallest, largest, step]}}, got {sizes_raw!r}"
        )
    sizes = []
    for i, s in enumerate(sizes_raw):
        sw = f"{where}.sizes[{i}]"
        s = c.mapping(s, sw)
        g = s.get("gib")
        if not (isinstance(g, list) and len(g) == 3 and all(_number(x) and x > 0 for x in g) and g[0] <= g[1]):
            raise c.fail(f"{sw}.gib", f"must be [smallest, largest, step] GiB, all > 0, got {g!r}")
        sizes.append((c.num(s, "vcpu", sw, positive=True), float(g[0]), float(g[1]), float(g[2])))
    return Platform(
        name,
        kind,
        vcpu_hour=c.num(b, "vcpu_hour", where, positive=True),
        gib_hour=c.num(b, "gib_hour", where),
        sizes=tuple(sizes),
        **billing,
        **common,
    )


def _merge(base: dict, override: dict) -> dict:
    """``override`` merged into ``base`` by key (mappings recursively), for ``extends: bench`` files."""
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read(path: Path) -> dict:
    try:
        table = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BenchError(f"price file {str(path)!r} cannot be read as YAML: {exc}") from exc
    if not isinstance(table, dict):
        raise BenchError(f"price file {str(path)!r} has no 'presets' mapping (it is not a mapping at all)")
    if "extends" in table:
        if table["extends"] != "bench":
            raise BenchError(
                f"price file {str(path)!r}: 'extends' must be 'bench' (the repo catalogue), got {table['extends']!r}"
            )
        table = _merge(_read(PRICES_FILE), {k: v for k, v in table.items() if k != "extends"})
    return table


@dataclass(frozen=True)
class Catalogue:
    """A whole checked catalogue file: its presets, every platform it sells and its line items."""

    path: str
    default: str
    presets: Mapping[str, Prices]
    platforms: Mapping[str, Platform]
    line_items: Mapping[str, LineItem]


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """A catalogue file (default: the repo's), all of it checked before anything is priced."""
    path = Path(path) if path else PRICES_FILE
    table = _read(path)
    presets, platforms, items = _presets(path, table)
    default = table.get("default") or next(iter(presets))
    if default not in presets:
        raise BenchError(f"price file {str(path)!r}: default names an unknown preset {default!r}")
    return Catalogue(
        str(path), default, MappingProxyType(presets), MappingProxyType(platforms), MappingProxyType(items)
    )


def _presets(path: Path, table: dict) -> tuple[dict[str, Prices], dict[str, Platform], dict[str, LineItem]]:
    c = _Checker(path)
    presets = table.get("presets")
    if not isinstance(presets, dict) or not presets:
        raise BenchError(f"price file {str(path)!r} has no 'presets' mapping")
    if "platforms" not in table and "line_items" not in table:
        return {name: _flat(c, name, p, table) for name, p in presets.items()}, {}, {}
    c.known(
        table,
        {"as_of", "currency", "default", "cpu_families", "platforms", "line_items", "attach", "presets"},
        "the top level",
    )
    platforms = {n: _platform(c, n, p, table) for n, p in c.mapping(table.get("platforms"), "platforms").items()}
    items = {}
    for n, raw in (table.get("line_items") or {}).items():
        where = f"line_items.{n}"
        b = c.mapping(raw, where)
        fields = {"description", "as_of", "per_month", "per_million", "node", "vcpu", "gib", "engine_vcpu"}
        c.known(b, fields | {"fronts_service"}, where)
        if "per_month" not in b and "per_million" not in b:
            raise c.fail(where, "needs 'per_month' or 'per_million'")
        if ("vcpu" in b) != ("gib" in b):
            raise c.fail(where, "needs both 'vcpu' and 'gib' (one node's size) or neither")
        if ("vcpu" in b) and "per_month" not in b:
            raise c.fail(where, "sells nodes ('vcpu', 'gib'): it needs 'per_month', the price of one node")
        if not isinstance(b.get("fronts_service", False), bool):
            raise c.fail(f"{where}.fronts_service", f"must be true or false, got {b['fronts_service']!r}")
        items[n] = LineItem(
            n,
            str(b.get("description", "")),
            str(b.get("as_of", table.get("as_of", ""))),
            c.num(b, "per_month", where, default=0.0),
            c.num(b, "per_million", where, default=0.0),
            node=str(b.get("node", "")),
            vcpu=c.num(b, "vcpu", where, default=0.0, positive=True),
            gib=c.num(b, "gib", where, default=0.0, positive=True),
            engine_vcpu=c.num(b, "engine_vcpu", where, default=0.0, positive=True),
            fronts_service=bool(b.get("fronts_service", False)),
        )
    for p in platforms.values():
        for old, new in p.replaces.items():
            if new not in items:
                raise c.fail(f"platforms.{p.name}.replace.{old}", f"names an unknown line item {new!r}")
    families = {}
    for f, raw in (table.get("cpu_families") or {}).items():
        if not (isinstance(raw, list) and all(isinstance(w, str) for w in raw)):
            raise c.fail(f"cpu_families.{f}", f"must be a list of words found in a CPU model, got {raw!r}")
        families[f] = tuple(raw)
    attach = _attach(c, table.get("attach") or {}, items, "attach")
    out = {}
    for name, raw in presets.items():
        where = f"presets.{name}"
        b = c.mapping(raw, where)
        c.known(b, _PRESET_FIELDS | set(FAMILIES) | {f"{f}.{r}" for f in FAMILIES for r in ROLES}, where)
        chosen = {}
        for key in [k for k in b if k in ROLES or k in FAMILIES or "." in k]:
            pname = b[key]
            if pname not in platforms:
                raise c.fail(
                    f"{where}.{key}", f"names an unknown platform {pname!r}; expected one of {sorted(platforms)}"
                )
            chosen[key] = platforms[pname]
        for role in ROLES:
            if role not in chosen:
                raise c.fail(f"{where}.{role}", "is missing (the platform of every pattern's " + role + "s)")
        for key, p in chosen.items():
            family, _, role = key.partition(".")
            role = role or (key if key in ROLES else "service")
            if p.kind == "function" and (role == "job" or (family not in ROLES and family not in FUNCTION_FAMILIES)):
                raise c.fail(
                    f"{where}.{key}",
                    f"cannot be the function platform {p.name!r}: functions serve requests "
                    f"(only {list(FUNCTION_FAMILIES)} services)",
                )
        if chosen["service"].kind == "function":
            raise c.fail(
                f"{where}.service",
                f"cannot be the function platform {chosen['service'].name!r} (streaming needs replicas)",
            )
        tu = b.get("target_utilisation")
        if tu is not None:
            check_utilisation(tu, f"price file {str(path)!r}: {where}.target_utilisation")
        out[name] = Prices(
            name,
            as_of=str(b.get("as_of", table.get("as_of", ""))),
            description=str(b.get("description", "")),
            platforms=MappingProxyType(chosen),
            line_items=MappingProxyType(items),
            attach=MappingProxyType({**attach, **_attach(c, b.get("attach") or {}, items, f"{where}.attach")}),
            target_utilisation=tu,
            source=str(path),
            cpu_families=MappingProxyType(families),
        )
    return out, platforms, items


def _attach(c: _Checker, raw: Any, items: dict, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise c.fail(where, f"must map pattern families to line item names, got {raw!r}")
    out = {}
    for family, names in raw.items():
        if family not in FAMILIES:
            raise c.fail(f"{where}.{family}", f"is not a pattern family; expected one of {list(FAMILIES)}")
        if not isinstance(names, list) or any(n not in items for n in names):
            raise c.fail(f"{where}.{family}", f"must list known line items ({sorted(items)}), got {names!r}")
        out[family] = tuple(names)
    return out


def _flat(c: _Checker, name: str, raw: Any, table: dict) -> Prices:
    """A preset of a pre-catalogue price file (vcpu_hour, gib_hour, granularity_s, minimum_s)."""
    where = f"presets.{name}"
    b = c.mapping(raw, where)
    c.known(b, {"description", "vcpu_hour", "gib_hour", "granularity_s", "minimum_s"}, where)
    return Prices(
        name,
        vcpu_hour=c.num(b, "vcpu_hour", where, positive=True),
        gib_hour=c.num(b, "gib_hour", where, default=0.0),
        granularity_s=c.num(b, "granularity_s", where, default=1.0, positive=True),
        minimum_s=c.num(b, "minimum_s", where, default=0.0),
        as_of=str(table.get("as_of", "")),
        description=str(b.get("description", "")),
        source=str(c.path),
    )


#: keyword overrides ``load_prices`` accepts: a platform name per role or family, and the switches
_OVERRIDES = {
    *ROLES,
    *(f.replace("-", "_") for f in FAMILIES),
    "target_utilisation",
    "minimums",
    "startups",
    "line_items_on",
}


def load_prices(path: str | Path | None = None, preset: str | None = None, **overrides: Any) -> Prices:
    """A preset of a catalogue (default: the repo's; the file's ``default`` preset), checked whole.

    Keyword overrides: ``job=``/``service=``/``batch=``/``real_time=``/``streaming=``/``hybrid=`` a
    platform name of the same catalogue; ``target_utilisation=``; ``minimums=``, ``startups=``,
    ``line_items_on=`` False to switch those off."""
    path = Path(path) if path else PRICES_FILE
    cat = load_catalogue(path)
    presets = cat.presets
    name = preset or cat.default
    if name not in presets:
        raise BenchError(f"price preset {name!r} is not in {str(path)!r}; expected one of: {', '.join(presets)}")
    unknown = sorted(set(overrides) - _OVERRIDES)
    if unknown:
        raise BenchError(f"price preset {name!r}: unknown field(s) {unknown}; expected some of {sorted(_OVERRIDES)}")
    p = presets[name]
    platforms = {}
    for key in [k for k in overrides if k.replace("_", "-") in (*ROLES, *FAMILIES)]:
        pname = overrides.pop(key)
        if pname not in cat.platforms:
            raise BenchError(
                f"price preset {name!r}: {key}={pname!r} is not a platform of {str(path)!r}; "
                f"expected one of {sorted(cat.platforms)}"
            )
        platforms[key.replace("_", "-")] = cat.platforms[pname]
    if "target_utilisation" in overrides:
        check_utilisation(overrides["target_utilisation"], f"price preset {name!r} 'target_utilisation'")
    return p.with_(platforms=platforms, **overrides) if platforms else replace(p, **overrides)
