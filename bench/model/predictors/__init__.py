"""Predictor backends behind one small interface, by name: the registry ``make_predictor`` reads.

Each backend is one module that alone touches its library's private entry points:
``lightgbm`` (LightGBM's single-row FastConfig) and ``lleaves`` (the compiled entry function;
lleaves itself is imported only when that backend is built).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from bench.core.params import require_choice
from bench.model.predictors import lleaves
from bench.model.predictors.lightgbm import LightGBMPredictor
from bench.model.predictors.lleaves import LleavesPredictor
from bench.model.training import Model


class Predictor(Protocol):
    """Scores a float64 matrix in the model's feature order; one interface for every backend."""

    name: str
    num_threads: int

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def predict_row(self, row: np.ndarray) -> float:
        """One row's score (1-D, the model's features): the single-row path a server calls per
        request. Reuses buffers: one caller at a time (a server's event loop), not thread-safe."""
        ...


PREDICTORS: dict[str, type] = {"lightgbm": LightGBMPredictor, "lleaves": LleavesPredictor}

#: per backend that can be missing: why it cannot run here (a sentence), or None
_UNAVAILABLE = {"lleaves": lleaves.unavailable}
#: per backend with a cost before its first prediction: those costs in seconds, by name
_FIXED_COSTS = {"lleaves": lleaves.fixed_costs}


def make_predictor(model: Model, name: str = "lightgbm", num_threads: int = 1) -> Predictor:
    """Build the named predictor backend (registry lookup, clear error on an unknown or missing one)."""
    require_choice("predictor", "predictor", name, PREDICTORS)
    return PREDICTORS[name](model, num_threads=num_threads)


def predictor_unavailable(name: str) -> str | None:
    """Why predictor ``name`` cannot run here (a sentence), or None when it can."""
    check = _UNAVAILABLE.get(name)
    return check() if check else None


def predictor_fixed_costs(model: Model, name: str) -> dict[str, float]:
    """The fixed costs a backend adds before its first prediction (seconds), e.g. lleaves' compile."""
    costs = _FIXED_COSTS.get(name)
    return costs(model) if costs else {}
