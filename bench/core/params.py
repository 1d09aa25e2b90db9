"""Typed, validated parameters: one frozen dataclass per notebook or pattern, checked once, before any work.

Papermill only warns about unknown parameters and passes ``-p rows abc`` through as a string; every
entry point (CLI, pipeline, notebook) goes through :func:`parse` instead, so a wrong name or type is
an error that names the parameter.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from bench.core.errors import BenchError

P = TypeVar("P")

_SCALARS = (bool, int, float, str)


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _allowed(tp: Any) -> tuple[type, ...]:
    """The concrete scalar types a field accepts (``int | None`` -> int, NoneType)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        out: tuple[type, ...] = ()
        for arg in typing.get_args(tp):
            out += _allowed(arg)
        return out
    if tp is type(None):
        return (type(None),)
    if tp in _SCALARS:
        return (tp,)
    raise TypeError(f"unsupported parameter type {tp!r}")


def _check_value(owner: str, name: str, tp: Any, value: Any) -> Any:
    allowed = _allowed(tp)
    if value is None and type(None) in allowed:
        return None
    if isinstance(value, bool):
        if bool in allowed:
            return value
    elif isinstance(value, int) and int in allowed:
        return value
    elif isinstance(value, (int, float)) and float in allowed:
        return float(value)
    elif isinstance(value, str) and str in allowed:
        return value
    names = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
    raise BenchError(f"{owner} parameter {name!r} must be {names}, got {type(value).__name__} {value!r}")


def parse(cls: type[P], values: Mapping[str, Any], *, owner: str | None = None) -> P:
    """Build ``cls`` from ``values``: unknown names, wrong types and bad ranges raise BenchError."""
    owner = owner or cls.__name__
    fields = _field_types(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise BenchError(
            f"unknown {owner} parameter(s) {', '.join(map(repr, unknown))}; "
            f"expected some of: {', '.join(sorted(fields))}"
        )
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in values
    ]
    if required:
        raise BenchError(f"{owner} parameter(s) {', '.join(map(repr, required))} missing; they have no default")
    checked = {k: _check_value(owner, k, fields[k], v) for k, v in values.items()}
    return cls(**checked)


def from_string(cls: type, name: str, text: str, *, owner: str | None = None) -> Any:
    """Convert a ``key=value`` string from the command line to the field's type."""
    owner = owner or cls.__name__
    fields = _field_types(cls)
    if name not in fields:
        raise BenchError(f"unknown {owner} parameter {name!r}; expected one of: {', '.join(sorted(fields))}")
    allowed = _allowed(fields[name])
    if text.lower() in ("none", "null") and type(None) in allowed:
        return None
    for tp in (bool, int, float, str):
        if tp not in allowed:
            continue
        if tp is bool:
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            continue
        try:
            return tp(text)
        except ValueError:
            continue
    names = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
    raise BenchError(f"{owner} parameter {name!r} must be {names}, got {text!r}")


def to_dict(params: Any) -> dict[str, Any]:
    """The parameters as a plain dict (for results and papermill)."""
    return dataclasses.asdict(params)


# Range checks used by the dataclasses' __post_init__ -------------------------------------------


# Every check is written ``not (x >= lo)`` rather than ``x < lo``: a comparison with NaN is False,
# so ``nan < 0`` let fault_kill_at_s=nan through (the server was killed at once in a "valid" run).

#: Metadata key a float field sets to True when NaN or ±inf is a meaningful value for it.
NONFINITE_OK = "nonfinite_ok"


def _finite_note(value: float) -> str:
    return "" if math.isfinite(value) else " (it must be a finite number)"


def require_positive(owner: str, **values: float) -> None:
    """Every value must be a finite number > 0 (NaN and inf refused)."""
    for name, value in values.items():
        if not (value > 0 and math.isfinite(value)):
            raise BenchError(f"{owner} parameter {name!r} must be > 0, got {value!r}" + _finite_note(value))


def require_nonnegative(owner: str, **values: float) -> None:
    """Every value must be a finite number >= 0 (NaN and inf refused)."""
    for name, value in values.items():
        if not (value >= 0 and math.isfinite(value)):
            raise BenchError(f"{owner} parameter {name!r} must be >= 0, got {value!r}" + _finite_note(value))


def require_finite_fields(params: Any, owner: str | None = None) -> None:
    """Every float field of the dataclass ``params`` must be finite, unless its metadata sets
    :data:`NONFINITE_OK`: one check every params dataclass runs, so no field can forget it."""
    owner = owner or type(params).__name__
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if isinstance(value, float) and not f.metadata.get(NONFINITE_OK) and not math.isfinite(value):
            raise BenchError(f"{owner} parameter {f.name!r} must be a finite number, got {value!r}")


def require_choice(owner: str, name: str, value: str, choices: typing.Iterable[str]) -> None:
    """``value`` must be one of ``choices``."""
    choices = sorted(choices)
    if value not in choices:
        raise BenchError(f"{owner} parameter {name!r} must be one of {choices}, got {value!r}")


#: Names IPython puts in a notebook's globals that are not parameters.
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})


def user_values(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter-like globals of a notebook: no private, IPython, module, class or callable names."""
    return {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_")
        and k not in _IPYTHON_NAMES
        and not isinstance(v, types.ModuleType | type)
        and not callable(v)
    }


def nonfinite_keys(value: Any, where: str = "") -> list[str]:
    """Where ``value`` (nested dicts and lists) holds NaN or ±inf, as ``a.b[2]`` paths: what a JSON
    writer refusing them names (``json.dumps`` would write a bare ``NaN`` no JSON reader accepts)."""
    if isinstance(value, Mapping):
        return [k for key, v in value.items() for k in nonfinite_keys(v, f"{where}.{key}" if where else str(key))]
    if isinstance(value, list | tuple):
        return [k for i, v in enumerate(value) for k in nonfinite_keys(v, f"{where}[{i}]")]
    if hasattr(value, "item") and not isinstance(value, float):  # a numpy scalar
        value = value.item() if getattr(value, "size", 1) == 1 else value
    if isinstance(value, float) and not math.isfinite(value):
        return [where or "(value)"]
    return []
