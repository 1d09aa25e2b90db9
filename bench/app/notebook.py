"""What notebooks call right after their ``parameters`` cell: strict parameter checking.

Papermill injects parameters as plain variables and only warns about names the notebook does not
declare (``-p rows abc`` even arrives as a string). :func:`params` turns any unknown or ill-typed
parameter into an error naming it, before the notebook does any work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.core.errors import BenchError
from bench.core.params import parse, require_positive
from bench.core.params import user_values as _user_values
from bench.patterns import registry

#: Names a notebook namespace holds besides its parameters (IPython's own).
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
#: Parameters every pattern notebook takes besides its pattern's own.
RUN_PARAMS = ("profile", "run_dir")


@dataclass(frozen=True)
class DataNotebook:
    """00_data: the scoring dataset (largest size of the profile) and the training dataset."""

    rows: int = 100_000
    data_seed: int = 7
    train_rows: int = 200_000
    train_seed: int = 1

    def __post_init__(self) -> None:
        require_positive("00_data", rows=self.rows, train_rows=self.train_rows)


@dataclass(frozen=True)
class ModelNotebook:
    """01_model: the model every pattern shares."""

    profile: str = "adhoc"
    train_rows: int = 200_000
    trees: int = 200
    leaves: int = 63
    model_seed: int = 0
    num_threads: int = 2

    def __post_init__(self) -> None:
        require_positive("01_model", train_rows=self.train_rows, trees=self.trees, num_threads=self.num_threads)


@dataclass(frozen=True)
class ReportNotebook:
    """90_report: where the results are and which machine's runs to compare ("" = the one with most runs)."""

    results_dir: str = ""
    profile: str = ""
    machine: str = ""
    prices_file: str = ""  #: "" = the repo's bench/analysis/prices.yaml
    price_preset: str = ""  #: "" = the file's default
    predictions_per_day: float = 100_000.0  #: the article's example volume
    batch_every_h: float = 24.0
    peak_to_mean: float = 3.0
    min_replicas: int = 2


NOTEBOOKS: dict[str, type] = {"00_data": DataNotebook, "01_model": ModelNotebook, "90_report": ReportNotebook}


def params(name: str, namespace: Mapping[str, Any]) -> Any:
    """Validated parameters of notebook ``name`` (00_data, 01_model, 90_report) from its globals."""
    if name not in NOTEBOOKS:
        raise BenchError(f"unknown notebook {name!r}; expected one of: {', '.join(NOTEBOOKS)}")
    return parse(NOTEBOOKS[name], _user_values(namespace), owner=f"notebook {name}")


def pattern_params(pattern: str, namespace: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
    """A pattern notebook's parameters: the pattern's params dataclass, and (profile, run_dir)."""
    spec = registry.get(pattern)
    values = _user_values(namespace)
    run = {k: values.pop(k) for k in RUN_PARAMS if k in values}
    for key, value in run.items():
        if not isinstance(value, str):
            raise BenchError(f"notebook {spec.notebook} parameter {key!r} must be str, got {value!r}")
    return parse(spec.params, values, owner=f"notebook {spec.notebook}"), run
