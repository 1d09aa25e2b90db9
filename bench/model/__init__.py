"""Train, save and load the LightGBM churn model; predictors behind one small interface.

The model is content-addressed: its file name carries a hash of what it was trained from, and its
metadata JSON records the sha256 of the text file, the feature names, the training time and the
holdout AUC. Loading checks that the file is a LightGBM model of exactly the workload's features.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import lightgbm as lgb
import numpy as np
import polars as pl

from bench.core import paths
from bench.core.errors import BenchError
from bench.core.params import require_choice, require_positive
from bench.data import workload


@dataclass(frozen=True)
class ModelParams:
    """Training parameters (defaults: the model the article's comparison is run with)."""

    train_rows: int = 200_000
    data_seed: int = 1
    trees: int = 200
    leaves: int = 63
    seed: int = 0
    num_threads: int = 2
    holdout_fraction: float = 0.2

    def __post_init__(self) -> None:
        require_positive("model", train_rows=self.train_rows, trees=self.trees, num_threads=self.num_threads)
        if self.leaves < 2:
            raise BenchError(f"model parameter 'leaves' must be >= 2, got {self.leaves}")
        if not 0 < self.holdout_fraction < 1:
            raise BenchError(f"model parameter 'holdout_fraction' must be in (0, 1), got {self.holdout_fraction}")


@dataclass(frozen=True)
class Model:
    """A loaded model: the booster plus the metadata that identifies it."""

    path: Path
    booster: lgb.Booster
    sha256: str
    meta: dict

    @property
    def feature_names(self) -> list[str]:
        return list(self.booster.feature_name())


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney U) identity, ties averaged."""
    labels = np.asarray(labels).astype(bool)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = np.asarray(scores)[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    pos = labels.sum()
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        raise BenchError("AUC needs both classes in the holdout")
    return float((ranks[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def _model_key(params: ModelParams, data_sha: str) -> str:
    blob = json.dumps({"data": data_sha, **asdict(params), "lightgbm": lgb.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train(params: ModelParams, directory: Path | None = None) -> Model:
    """Train on a generated dataset (holdout split by row), save text + metadata, return the loaded model."""
    directory = directory or paths.data_dir()
    ds = workload.ensure_dataset(params.train_rows, params.data_seed, directory)
    df = pl.read_parquet(ds.path)
    workload.validate(df, require_label=True, source=str(ds.path))
    X = workload.feature_matrix(df)
    y = df.get_column("churned").to_numpy()
    n_hold = max(1, int(len(y) * params.holdout_fraction))
    idx = np.random.default_rng(params.seed).permutation(len(y))
    hold, fit = idx[:n_hold], idx[n_hold:]
    lgb_params = {
        "objective": "binary",
        "num_leaves": params.leaves,
        "learning_rate": 0.05,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "seed": params.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": params.num_threads,
        "verbosity": -1,
    }
    train_set = lgb.Dataset(
        X[fit],
        label=y[fit],
        feature_name=list(workload.FEATURES),
        categorical_feature=list(workload.CATEGORICAL_FEATURES),
        free_raw_data=True,
    )
    t0 = time.perf_counter()
    booster = lgb.train(lgb_params, train_set, num_boost_round=params.trees)
    train_s = time.perf_counter() - t0
    holdout_auc = auc(y[hold], booster.predict(X[hold], num_threads=params.num_threads))
    path = directory / "models" / f"churn-{_model_key(params, ds.sha256)}.txt"
    workload.atomic_write_bytes(path, lambda tmp: booster.save_model(str(tmp)))
    meta = {
        "format": "lightgbm-text",
        "sha256": workload.sha256_file(path),
        "feature_names": list(workload.FEATURES),
        "categorical_features": list(workload.CATEGORICAL_FEATURES),
        "params": asdict(params),
        "train_data": ds.to_dict(),
        "train_rows": len(fit),
        "holdout_rows": len(hold),
        "holdout_auc": round(holdout_auc, 5),
        "train_seconds": round(train_s, 3),
        "lightgbm_version": lgb.__version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    workload.atomic_write_bytes(
        path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(meta, indent=2, default=str))
    )
    return load(path)


def ensure_model(params: ModelParams, directory: Path | None = None) -> Model:
    """Load the model trained with ``params`` if it is on disk, else train it."""
    directory = directory or paths.data_dir()
    ds = workload.ensure_dataset(params.train_rows, params.data_seed, directory)
    path = directory / "models" / f"churn-{_model_key(params, ds.sha256)}.txt"
    if path.exists() and path.with_suffix(".json").exists():
        return load(path)
    return train(params, directory)


def load(path: str | Path) -> Model:
    """Load a LightGBM text model; refuse anything else, or a model of other features, by name."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"model file {str(path)!r} does not exist")
    with open(path, "rb") as f:
        head = f.read(64)
    if not head.startswith(b"tree\n"):
        raise BenchError(f"model file {str(path)!r} is not a LightGBM text model (it must start with 'tree')")
    try:
        booster = lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as exc:
        raise BenchError(f"model file {str(path)!r} could not be parsed by LightGBM: {exc}") from exc
    names = list(booster.feature_name())
    if names != list(workload.FEATURES):
        extra = sorted(set(names) - set(workload.FEATURES))
        lacking = sorted(set(workload.FEATURES) - set(names))
        raise BenchError(
            f"model file {str(path)!r} has features that differ from the workload's: "
            f"unexpected {extra}, missing {lacking}" + ("" if extra or lacking else ", order differs")
        )
    sha = workload.sha256_file(path)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta and meta.get("sha256") != sha:
        raise BenchError(f"model file {str(path)!r} does not match the sha256 in {meta_path.name}")
    return Model(path, booster, sha, meta)


# --------------------------------------------------------------------------------------------
# Predictors
# --------------------------------------------------------------------------------------------


class Predictor(Protocol):
    """Scores a float64 matrix in the model's feature order; one interface for every backend."""

    name: str
    num_threads: int

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def predict_row(self, row: np.ndarray) -> float:
        """One row's score (1-D, the model's features): the single-row path a server calls per
        request. Reuses buffers: one caller at a time (a server's event loop), not thread-safe."""
        ...


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
        import ctypes

        from lightgbm.basic import _LIB, _c_str, _safe_call

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


#: lleaves' compile options: one set, so one cache entry per model and machine
LLEAVES_COMPILE = {"fblocksize": 34, "fcodemodel": "large", "finline": True, "use_fp64": True}
LLEAVES_INSTALL_HINT = "install it with: pip install -e '.[compiled]' (lleaves 1.3 needs llvmlite==0.44.0)"


def _import_lleaves():
    """lleaves and llvmlite, or a BenchError that says what is missing and how to get it."""
    try:
        import lleaves
        import llvmlite
        import llvmlite.binding as llvm
    except Exception as exc:  # ImportError, or an llvmlite whose shared library does not load
        raise BenchError(
            f"predictor 'lleaves' is not available on this machine ({exc}); {LLEAVES_INSTALL_HINT}"
        ) from exc
    return lleaves, llvmlite, llvm


def predictor_unavailable(name: str) -> str | None:
    """Why predictor ``name`` cannot run here (a sentence), or None when it can."""
    if name == "lleaves":
        try:
            _import_lleaves()
        except BenchError as exc:
            return str(exc)
    return None


def compiled_cache_path(model: Model, directory: Path | None = None) -> Path:
    """Where lleaves' object code for ``model`` lives: keyed by the model's sha256, the compiler's
    versions, the options and the host CPU (an object file built for another CPU may not run here)."""
    lleaves, llvmlite, llvm = _import_lleaves()
    from importlib.metadata import version

    llvm.initialize_native_target()
    key = json.dumps(
        {
            "model": model.sha256,
            "lleaves": version("lleaves"),
            "llvmlite": llvmlite.__version__,
            "cpu": llvm.get_host_cpu_name(),
            "features": llvm.get_host_cpu_features().flatten(),
            **LLEAVES_COMPILE,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return (directory or model.path.parent / "compiled") / f"{model.path.stem}-{digest}.o"


def ensure_compiled(model: Model, directory: Path | None = None) -> dict:
    """Compile ``model`` with lleaves once and cache the object file; returns the cache's record.

    The record (a JSON beside the object file) holds the measured compile time, which every run with
    this backend reports as a fixed cost. The object file is written to a temporary name and renamed,
    so a concurrent reader sees either no cache or a whole one.
    """
    lleaves, _, _ = _import_lleaves()
    path = compiled_cache_path(model, directory)
    record_path = path.with_suffix(".json")
    if path.is_file() and record_path.is_file():
        return {**json.loads(record_path.read_text()), "cache_hit": True}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    try:
        compiled = lleaves.Model(model_file=str(model.path))
        compiled.compile(cache=str(tmp), **LLEAVES_COMPILE)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise BenchError(f"lleaves could not compile model {str(model.path)!r}: {exc}") from exc
    record = {
        "model_sha256": model.sha256,
        "object_file": path.name,
        "compile_s": time.perf_counter() - t0,
        "compile_cpu_s": time.process_time() - cpu0,
        "options": LLEAVES_COMPILE,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.replace(tmp, path)
    workload.atomic_write_bytes(record_path, lambda t: t.write_text(json.dumps(record, indent=2)))
    return {**record, "cache_hit": False}


class LleavesPredictor:
    """The model compiled to native code by lleaves (LLVM): the same trees, no interpreter per node.

    Compiles on first use and caches the object file by model hash (:func:`ensure_compiled`); loading
    a cached one takes milliseconds. Threads: lleaves splits a call's rows over ``num_threads``
    Python threads, so single rows should use 1.
    """

    name = "lleaves"

    def __init__(self, model: Model, num_threads: int = 1) -> None:
        require_positive("predictor", num_threads=num_threads)
        lleaves, _, _ = _import_lleaves()
        self.num_threads = num_threads
        self.compile_record = ensure_compiled(model)
        self.compiled = lleaves.Model(model_file=str(model.path))
        self._row_args = None  # predict_row's buffers and pointers, made on first use
        try:
            self.compiled.compile(cache=str(compiled_cache_path(model)), **LLEAVES_COMPILE)
        except Exception as exc:
            raise BenchError(f"lleaves could not load its compiled model for {str(model.path)!r}: {exc}") from exc

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.compiled.predict(X, n_jobs=self.num_threads)

    def predict_row(self, row: np.ndarray) -> float:
        """One row's score by the compiled entry function itself, into preallocated buffers: what
        ``predict`` does for one row minus its per-call conversions and pointer set-up."""
        if self._row_args is None:
            import ctypes

            self._row_in = np.empty(self.compiled.num_feature(), dtype=np.float64)
            self._row_out = np.zeros(max(1, self.compiled.num_model_per_iteration()), dtype=np.float64)
            ptr = ctypes.POINTER(ctypes.c_double)
            self._row_args = (self._row_in.ctypes.data_as(ptr), self._row_out.ctypes.data_as(ptr), 0, 1)
        np.copyto(self._row_in, row)  # also checks the shape and converts the dtype
        self.compiled._c_entry_func(*self._row_args)
        return float(self._row_out[0])


PREDICTORS: dict[str, type] = {"lightgbm": LightGBMPredictor, "lleaves": LleavesPredictor}


def make_predictor(model: Model, name: str = "lightgbm", num_threads: int = 1) -> Predictor:
    """Build the named predictor backend (registry lookup, clear error on an unknown or missing one)."""
    require_choice("predictor", "predictor", name, PREDICTORS)
    return PREDICTORS[name](model, num_threads=num_threads)


def predictor_fixed_costs(model: Model, name: str) -> dict[str, float]:
    """The fixed costs a backend adds before its first prediction (seconds): lleaves' compile, once
    per model and machine, measured when the cache entry was built."""
    if name != "lleaves":
        return {}
    record = ensure_compiled(model)
    return {"predictor_compile": float(record["compile_s"])}
