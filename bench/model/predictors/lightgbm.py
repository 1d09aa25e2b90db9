"""LightGBM's own predictor, and the one place that reaches into LightGBM's private C-API wrapper.

``_LightGBMRow`` uses ``lightgbm.basic``'s ``_LIB``/``_c_str``/``_safe_call`` and the booster's
``_handle`` (LightGBM 4.x): the single-row FastConfig entry points have no public Python API. If a
LightGBM upgrade moves them, this file is what breaks, and ``predict_row`` is its only user.
"""

from __future__ import annotations

import ctypes

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _LIB, _c_str, _safe_call  # private: the fence (module docstring)

from bench.core.params import require_positive
from bench.model.training import Model


class LightGBMPredictor:
    """LightGBM's own ``Booster.predict`` with an explicit thread count.

    Threads: use the machine's cores for bulk scoring; use 1 for single rows and small batches, where
    more OpenMP threads only spin (measured: 82 µs wall but 193 µs CPU per row at 2 threads).
    """

    name = "lightgbm"

    def __init__(self, model: Model, num_threads: int = 1) -> None:
        require_positive("predictor", num_threads=num_threads)
        self.booster = model.booster
        self.num_threads = num_threads
        self._row_call = None  # LightGBM's single-row fast path, set up on the first predict_row

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, num_threads=self.num_threads)

    def predict_row(self, row: np.ndarray) -> float:
        """One row's score (``row``: the model's features, 1-D) by LightGBM's single-row fast path:
        its prediction set-up is made once (``LGBM_BoosterPredictForMatSingleRowFastInit``) instead
        of per call as ``Booster.predict`` does; the score is bit-for-bit ``predict``'s. Measured on
        2 cores: ~30 µs of CPU per row against ~90 µs hot, ~350 against ~700 µs cold (5 ms apart)."""
        if self._row_call is None:
            self._row_call = _LightGBMRow(self.booster, self.num_threads)
        return self._row_call(row)


class _LightGBMRow:
    """A FastConfig of one booster for float64 rows: one C call per row into preallocated buffers."""

    def __init__(self, booster: lgb.Booster, num_threads: int) -> None:
        self._lib, self._check = _LIB, _safe_call
        self.handle = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(0),  # C_API_PREDICT_NORMAL: the transformed score, as predict() returns
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(booster.best_iteration),  # predict()'s default: the best iteration (0: all)
                ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
                ctypes.c_int32(booster.num_feature()),
                _c_str(f"num_threads={num_threads}"),
                ctypes.byref(self.handle),
            )
        )
        self.row = np.empty(booster.num_feature(), dtype=np.float64)
        self.out = np.empty(booster.num_model_per_iteration(), dtype=np.float64)  # one score per class
        self.out_len = ctypes.c_int64(0)
        self._args = (
            self.handle,
            ctypes.c_void_p(self.row.ctypes.data),
            ctypes.byref(self.out_len),
            self.out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        )
        self._call = _LIB.LGBM_BoosterPredictForMatSingleRowFast

    def __call__(self, row: np.ndarray) -> float:
        np.copyto(self.row, row)  # also checks the shape and converts the dtype
        self._check(self._call(*self._args))
        return float(self.out[0])

    def __del__(self) -> None:
        try:
            self._check(self._lib.LGBM_FastConfigFree(self.handle))
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
