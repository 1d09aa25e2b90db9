"""pyproject.toml and environment.yml must ask for the same packages with the same ranges."""

from __future__ import annotations

import re
import tomllib

import yaml

from bench.core import paths

#: conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"ray-data": "ray", "ray-serve": "ray", "uvicorn-standard": "uvicorn"}
REQUIRED = {"jupyterlab", "papermill", "polars", "lightgbm", "ray", "pytest-benchmark", "nbval"}


def _split(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", spec)
    assert m, spec
    return m.group(1).lower().replace("_", "-"), m.group(3).replace(" ", "")


def pyproject_deps() -> dict[str, str]:
    data = tomllib.loads((paths.project_root() / "pyproject.toml").read_text())
    extras = [d for group in data["project"].get("optional-dependencies", {}).values() for d in group]
    return dict(_split(d) for d in data["project"]["dependencies"] + extras)


def conda_deps() -> dict[str, str]:
    env = yaml.safe_load((paths.project_root() / "environment.yml").read_text())
    out = {}
    pip = [d for dep in env["dependencies"] if isinstance(dep, dict) for d in dep.get("pip", [])]
    for dep in env["dependencies"] + [d for d in pip if not d.startswith("-")]:
        if isinstance(dep, dict) or dep.startswith(("python=", "pip")) and _split(dep)[0] in ("python", "pip"):
            continue
        name, spec = _split(dep)
        out[CONDA_TO_PYPI.get(name, name)] = spec
    return out


def test_environment_yml_mirrors_pyproject():
    py, conda = pyproject_deps(), conda_deps()
    assert set(py) == set(conda), (
        f"only in pyproject: {set(py) - set(conda)}; only in environment.yml: {set(conda) - set(py)}"
    )
    differing = {k: (py[k], conda[k]) for k in py if py[k] != conda[k]}
    assert not differing, f"ranges differ (pyproject, environment.yml): {differing}"


def test_required_packages_are_declared():
    assert REQUIRED <= set(pyproject_deps())


def test_environment_yml_pins_python_311_on_conda_forge():
    env = yaml.safe_load((paths.project_root() / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    assert "python=3.11" in env["dependencies"]


def test_compiled_backend_is_an_optional_extra_with_llvmlite_pinned():
    """lleaves must not block installing the native backend, and needs llvmlite 0.44 (FINDINGS)."""
    data = tomllib.loads((paths.project_root() / "pyproject.toml").read_text())
    compiled = dict(_split(d) for d in data["project"]["optional-dependencies"]["compiled"])
    assert compiled["llvmlite"] == "==0.44.0"
    assert "lleaves" in compiled and "lleaves" not in dict(_split(d) for d in data["project"]["dependencies"])
    makefile = (paths.project_root() / "Makefile").read_text()
    assert "'.[compiled]'" in makefile
