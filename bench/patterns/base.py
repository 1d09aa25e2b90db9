"""What every pattern shares: the common parameters, where a run writes, the registry entry type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.core.params import require_choice, require_positive, to_dict
from bench.model import PREDICTORS
from bench.results import RunResult, provenance


@dataclass(frozen=True)
class PatternParams:
    """Parameters every pattern shares: which data, which model, which predictor."""

    rows: int = 100_000  #: customers in the scoring dataset (generated if data_path is empty)
    data_seed: int = 7  #: seed of the scoring dataset (the model trains on another seed)
    data_path: str = ""  #: an existing parquet file instead of a generated one
    train_rows: int = 200_000
    trees: int = 200
    leaves: int = 63
    model_seed: int = 0
    predictor: str = "lightgbm"
    num_threads: int = 1

    def __post_init__(self) -> None:
        owner = type(self).__name__
        require_positive(
            owner, rows=self.rows, train_rows=self.train_rows, trees=self.trees, num_threads=self.num_threads
        )
        if self.leaves < 2:
            raise BenchError(f"{owner} parameter 'leaves' must be >= 2, got {self.leaves}")
        require_choice(owner, "predictor", self.predictor, PREDICTORS)
        if self.data_path and not Path(self.data_path).is_file():
            raise BenchError(f"{owner} parameter 'data_path': file {self.data_path!r} does not exist")


@dataclass(frozen=True)
class RunContext:
    """Where a run writes and under which names it is filed."""

    run_id: str
    run_dir: Path
    profile: str = "adhoc"


@dataclass(frozen=True)
class Pattern:
    """A registered pattern: its name, its params type, its run function and its notebook."""

    name: str
    params: type
    run: Callable[..., Any]
    notebook: str


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
