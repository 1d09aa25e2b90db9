"""The churn model: training, saving and loading (``training``), and the predictor backends
(``predictors``: one module per backend, each fencing its library's private entry points).

The names other layers use are re-exported here: ``from bench.model import Model, make_predictor``.
"""

from bench.model.predictors import PREDICTORS, Predictor, make_predictor, predictor_fixed_costs, predictor_unavailable
from bench.model.predictors.lightgbm import LightGBMPredictor
from bench.model.predictors.lleaves import (
    LLEAVES_COMPILE,
    LLEAVES_INSTALL_HINT,
    LleavesPredictor,
    compiled_cache_path,
    ensure_compiled,
)
from bench.model.training import Model, ModelParams, auc, ensure_model, load, train

__all__ = [
    "LLEAVES_COMPILE",
    "LLEAVES_INSTALL_HINT",
    "PREDICTORS",
    "LightGBMPredictor",
    "LleavesPredictor",
    "Model",
    "ModelParams",
    "Predictor",
    "auc",
    "compiled_cache_path",
    "ensure_compiled",
    "ensure_model",
    "load",
    "make_predictor",
    "predictor_fixed_costs",
    "predictor_unavailable",
    "train",
]
