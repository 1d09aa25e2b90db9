"""Typed parameters: parse() and from_string() refuse unknown names and wrong types, naming the parameter."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from bench.core.errors import BenchError
from bench.core.params import (
    NONFINITE_OK,
    from_string,
    nonfinite_keys,
    parse,
    require_choice,
    require_finite_fields,
    require_nonnegative,
    require_positive,
    to_dict,
)
from bench.model import ModelParams


@dataclass(frozen=True)
class Tiny:
    """One field of every supported kind."""

    count: int = 1
    ratio: float = 0.5
    name: str = "x"
    flag: bool = False
    limit: int | None = None
    label: str | None = None


@dataclass(frozen=True)
class Required:
    needed: int
    optional: int = 0


# --------------------------------------------------------------------------------------------
# parse()
# --------------------------------------------------------------------------------------------


def test_parse_builds_the_dataclass() -> None:
    p = parse(ModelParams, {"trees": 5, "leaves": 7, "holdout_fraction": 0.25})
    assert p == ModelParams(trees=5, leaves=7, holdout_fraction=0.25)
    assert parse(ModelParams, {}) == ModelParams()
    t = parse(Tiny, {"count": 3, "ratio": 0.1, "name": "y", "flag": True, "limit": 9, "label": "z"})
    assert t == Tiny(3, 0.1, "y", True, 9, "z")


def test_parse_rejects_unknown_keys_naming_them() -> None:
    with pytest.raises(BenchError) as info:
        parse(ModelParams, {"trees": 5, "bogus": 1, "tress": 2})
    message = str(info.value)
    assert "'bogus'" in message and "'tress'" in message
    assert "ModelParams" in message
    assert "trees" in message  # the expected names are listed


def test_parse_owner_names_the_caller() -> None:
    with pytest.raises(BenchError, match="^unknown batch parameter"):
        parse(ModelParams, {"bogus": 1}, owner="batch")


@pytest.mark.parametrize(
    "field, value",
    [
        ("trees", "5"),  # str for int
        ("trees", True),  # bool for int
        ("trees", 5.0),  # float for int
        ("trees", None),  # None for a non-optional int
        ("holdout_fraction", "0.2"),  # str for float
        ("holdout_fraction", False),  # bool for float
    ],
)
def test_parse_rejects_wrong_types_on_model_params(field: str, value: object) -> None:
    with pytest.raises(BenchError) as info:
        parse(ModelParams, {field: value})
    message = str(info.value)
    assert f"'{field}'" in message
    assert type(value).__name__ in message


@pytest.mark.parametrize(
    "field, value",
    [
        ("flag", 1),  # int for bool
        ("flag", "true"),  # str for bool
        ("name", 3),  # int for str
        ("limit", "3"),  # str for int | None
        ("limit", 2.0),  # float for int | None
        ("label", 1),  # int for str | None
        ("count", [1]),  # not a scalar at all
    ],
)
def test_parse_rejects_wrong_types_on_tiny(field: str, value: object) -> None:
    with pytest.raises(BenchError, match=f"'{field}'"):
        parse(Tiny, {field: value})


def test_parse_accepts_int_for_float() -> None:
    t = parse(Tiny, {"ratio": 2})
    assert t.ratio == 2.0
    assert type(t.ratio) is float
    m = parse(ModelParams, {"holdout_fraction": 0.5})
    assert type(m.holdout_fraction) is float


def test_parse_optional_fields() -> None:
    assert parse(Tiny, {"limit": None, "label": None}) == Tiny()
    assert parse(Tiny, {"limit": 0}).limit == 0


def test_parse_runs_range_checks() -> None:
    with pytest.raises(BenchError, match="'trees' must be > 0"):
        parse(ModelParams, {"trees": 0})
    with pytest.raises(BenchError, match="holdout_fraction"):
        parse(ModelParams, {"holdout_fraction": 1})


def test_to_dict_round_trips() -> None:
    p = ModelParams(trees=9, num_threads=1)
    assert to_dict(p) == dataclasses.asdict(p)
    assert parse(ModelParams, to_dict(p)) == p
    t = Tiny(count=2, flag=True, limit=4)
    assert parse(Tiny, to_dict(t)) == t


def test_parse_missing_required_field_names_it() -> None:
    with pytest.raises(BenchError, match="'needed'"):
        parse(Required, {"optional": 1})


# --------------------------------------------------------------------------------------------
# from_string()
# --------------------------------------------------------------------------------------------


def test_from_string_int() -> None:
    value = from_string(ModelParams, "trees", "10")
    assert value == 10 and type(value) is int
    assert from_string(Tiny, "limit", "7") == 7


def test_from_string_float() -> None:
    assert from_string(ModelParams, "holdout_fraction", "0.25") == 0.25
    value = from_string(Tiny, "ratio", "3")
    assert value == 3.0 and type(value) is float


@pytest.mark.parametrize("text, expected", [("true", True), ("True", True), ("yes", True), ("1", True)])
def test_from_string_bool_true(text: str, expected: bool) -> None:
    assert from_string(Tiny, "flag", text) is expected


@pytest.mark.parametrize("text", ["false", "FALSE", "no", "0"])
def test_from_string_bool_false(text: str) -> None:
    assert from_string(Tiny, "flag", text) is False


@pytest.mark.parametrize("text", ["none", "None", "null"])
def test_from_string_none_for_optional(text: str) -> None:
    assert from_string(Tiny, "limit", text) is None
    assert from_string(Tiny, "label", text) is None


def test_from_string_none_is_text_for_plain_str() -> None:
    assert from_string(Tiny, "name", "none") == "none"
    assert from_string(Tiny, "label", "abc") == "abc"


@pytest.mark.parametrize(
    "cls, name, text",
    [
        (ModelParams, "trees", "ten"),
        (ModelParams, "trees", "1.5"),
        (ModelParams, "trees", "none"),  # not optional
        (ModelParams, "holdout_fraction", "a fifth"),
        (Tiny, "flag", "maybe"),
        (Tiny, "limit", "seven"),
    ],
)
def test_from_string_bad_text_names_the_parameter(cls: type, name: str, text: str) -> None:
    with pytest.raises(BenchError) as info:
        from_string(cls, name, text)
    message = str(info.value)
    assert f"'{name}'" in message
    assert repr(text) in message


def test_from_string_unknown_name() -> None:
    with pytest.raises(BenchError, match="'bogus'"):
        from_string(ModelParams, "bogus", "1")


def test_from_string_then_parse_builds_params() -> None:
    """What the CLI does with ``-p trees=10 -p holdout_fraction=0.3``."""
    pairs = {"trees": "10", "holdout_fraction": "0.3", "num_threads": "1"}
    values = {k: from_string(ModelParams, k, v) for k, v in pairs.items()}
    assert parse(ModelParams, values) == ModelParams(trees=10, holdout_fraction=0.3, num_threads=1)


# --------------------------------------------------------------------------------------------
# Range helpers
# --------------------------------------------------------------------------------------------


def test_require_positive() -> None:
    require_positive("owner", a=1, b=0.001)
    with pytest.raises(BenchError, match="owner parameter 'b' must be > 0, got 0"):
        require_positive("owner", a=1, b=0)
    with pytest.raises(BenchError, match="'c'"):
        require_positive("owner", c=-3.5)


def test_require_positive_rejects_nan() -> None:
    with pytest.raises(BenchError, match="'timeout'"):
        require_positive("owner", timeout=float("nan"))


def test_require_choice() -> None:
    require_choice("owner", "predictor", "lightgbm", ["lightgbm", "onnx"])
    with pytest.raises(BenchError) as info:
        require_choice("owner", "predictor", "xgb", {"onnx": 1, "lightgbm": 2})
    assert "'predictor'" in str(info.value) and "['lightgbm', 'onnx']" in str(info.value)


# --------------------------------------------------------------------------------------------
# Non-finite numbers: refused by every range check
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0])
def test_require_positive_refuses_nan_inf_and_non_positive(value: float) -> None:
    with pytest.raises(BenchError, match="'x' must be > 0, got"):
        require_positive("owner", x=value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), -1e-9, -3])
def test_require_nonnegative_refuses_nan_inf_and_negative(value: float) -> None:
    with pytest.raises(BenchError, match="'x' must be >= 0, got"):
        require_nonnegative("owner", x=value)
    require_nonnegative("owner", x=0, y=0.0, z=2.5)


@dataclass(frozen=True)
class Floats:
    ratio: float = 0.5
    bound: float = dataclasses.field(default=float("inf"), metadata={NONFINITE_OK: True})
    count: int = 1


def test_require_finite_fields_names_the_field_unless_it_allows_non_finite() -> None:
    require_finite_fields(Floats())  # bound says inf is meaningful for it
    for value in (float("nan"), float("inf")):
        with pytest.raises(BenchError, match="Floats parameter 'ratio' must be a finite number"):
            require_finite_fields(Floats(ratio=value))


def test_nonfinite_keys_names_every_path() -> None:
    import numpy as np

    doc = {"a": {"b": float("nan"), "c": [1.0, np.float64("inf")]}, "ok": 1.5, "s": "nan"}
    assert nonfinite_keys(doc) == ["a.b", "a.c[1]"]
    assert nonfinite_keys({"x": [0, 1.0]}) == []
