"""What notebooks call right after their parameters cell: every unknown or ill-typed name fails, naming it."""

from __future__ import annotations

import dataclasses

import pytest

from bench.app import notebook
from bench.core.errors import BenchError
from bench.patterns import registry


def test_params_ignore_ipython_modules_and_callables_and_take_the_rest():
    namespace = {"In": [], "Out": {}, "get_ipython": print, "np": dataclasses, "_hidden": 1, "helper": len}
    got = notebook.params("00_data", {**namespace, "rows": 10, "data_seed": 3})
    assert got == notebook.DataNotebook(rows=10, data_seed=3)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rowz": 10}, "unknown notebook 00_data parameter.*'rowz'"),
        ({"rows": "ten"}, "'rows' must be int"),
        ({"rows": 0}, "'rows' must be > 0"),
    ],
)
def test_params_refuse_a_bad_value_naming_it(values, message):
    with pytest.raises(BenchError, match=message):
        notebook.params("00_data", values)


def test_an_unknown_notebook_lists_the_known_ones():
    with pytest.raises(BenchError, match="unknown notebook '99_x'; expected one of: 00_data, 01_model, 90_report"):
        notebook.params("99_x", {})


def test_every_notebook_dataclass_has_a_default_for_every_field():
    for cls in notebook.NOTEBOOKS.values():
        assert cls() == notebook.params(next(k for k, v in notebook.NOTEBOOKS.items() if v is cls), {})


def test_pattern_params_split_the_run_parameters_off():
    spec = registry.get("batch")
    params, run = notebook.pattern_params("batch", {"profile": "smoke", "run_dir": "/tmp/x", "rows": 10})
    assert isinstance(params, spec.params) and params.rows == 10
    assert run == {"profile": "smoke", "run_dir": "/tmp/x"}
    with pytest.raises(BenchError, match="parameter 'run_dir' must be str"):
        notebook.pattern_params("batch", {"run_dir": 3})
