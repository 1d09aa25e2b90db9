"""Each notebook's ``parameters`` cell agrees with its dataclass's defaults, by value.

Papermill runs a notebook with the cell's values unless told otherwise, and the CLI and the profiles run
it with the dataclass's: a cell that drifts from the defaults makes "run the notebook" and "run the
pattern" two different measurements. The cell is parsed with ``ast`` (never executed): every statement
is ``name = <literal>``; every name is a field with that default, and every field is in the cell.
Pattern notebooks also take ``profile`` and ``run_dir`` (``bench.app.notebook.RUN_PARAMS``), which are
not pattern parameters.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import pkgutil

import pytest

import bench.analysis
from bench.app import notebook
from bench.core import paths
from bench.patterns import registry


def _recommend_notebook() -> type:
    """``RecommendNotebook``, wherever in ``bench.analysis`` it lives."""
    for info in pkgutil.walk_packages(bench.analysis.__path__, "bench.analysis."):
        cls = getattr(importlib.import_module(info.name), "RecommendNotebook", None)
        if cls is not None:
            return cls
    raise AssertionError("no RecommendNotebook in bench.analysis")


def _targets() -> dict[str, tuple[type, tuple[str, ...]]]:
    """notebook file -> (its parameters dataclass, names the cell may hold besides the fields)."""
    out = {registry.get(name).notebook: (registry.get(name).params, notebook.RUN_PARAMS) for name in registry.names()}
    out |= {f"{name}.ipynb": (cls, ()) for name, cls in notebook.NOTEBOOKS.items()}
    out["95_recommend.ipynb"] = (_recommend_notebook(), ())
    return out


TARGETS = _targets()


def _cell_values(name: str) -> dict[str, object]:
    nb = json.loads((paths.notebooks_dir() / name).read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{name} needs exactly one cell tagged 'parameters'"
    values: dict[str, object] = {}
    for stmt in ast.parse("".join(cells[0]["source"])).body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name), (
            f"{name}: the parameters cell holds only `name = value` lines, got {ast.unparse(stmt)!r}"
        )
        key = stmt.targets[0].id
        assert key not in values, f"{name}: {key!r} is set twice"
        try:
            values[key] = ast.literal_eval(stmt.value)
        except ValueError:
            pytest.fail(f"{name}: {key} = {ast.unparse(stmt.value)} is not a literal")
    return values


def _default(f: dataclasses.Field) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise AssertionError(f"field {f.name!r} has no default: a notebook cannot run without it")


def test_every_notebook_has_a_parameters_dataclass():
    assert sorted(TARGETS) == sorted(p.name for p in paths.notebooks_dir().glob("*.ipynb"))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_parameters_cell_equals_the_dataclass_defaults(name):
    cls, extra = TARGETS[name]
    values = _cell_values(name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields) - set(extra))
    assert not unknown, f"{name} sets {unknown}, which {cls.__name__} has no field for"
    missing = sorted(set(fields) - set(values))
    assert not missing, f"{name} does not declare {cls.__name__}'s {missing}"
    wrong = {
        key: (value, _default(fields[key]))
        for key, value in values.items()
        if key in fields
        # by value, and a bool is never taken for 1 or 0
        and (value != _default(fields[key]) or isinstance(value, bool) != isinstance(_default(fields[key]), bool))
    }
    assert not wrong, f"{name}: cell value != {cls.__name__} default: {wrong}"
    assert set(extra) <= set(values), f"{name} must also declare {sorted(set(extra) - set(values))}"


def test_the_check_catches_a_drifted_cell(tmp_path, monkeypatch):
    """The test above can fail: a cell whose value differs from the default is reported, naming both."""
    source = paths.notebooks_dir() / "00_data.ipynb"
    nb = json.loads(source.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    cell["source"] = ["rows = 5\n", "data_seed = 7\n", "train_rows = 200_000\n", "train_seed = True\n"]
    (tmp_path / "00_data.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    monkeypatch.setattr(paths, "notebooks_dir", lambda: tmp_path)
    with pytest.raises(AssertionError, match=r"'rows': \(5, 100000\).*'train_seed': \(True, 1\)"):
        test_parameters_cell_equals_the_dataclass_defaults("00_data.ipynb")
