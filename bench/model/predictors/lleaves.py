"""The lleaves predictor (the model compiled to native code by LLVM), and the one place that reaches
into lleaves' internals: ``Model._c_entry_func`` (lleaves 1.3), the compiled function ``predict_row``
calls directly. lleaves is an optional extra (``pip install -e '.[compiled]'``): it is imported only
when this backend is asked for, never by importing this module.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from bench.core import files
from bench.core.errors import BenchError
from bench.core.params import require_positive
from bench.model.training import Model

#: lleaves' compile options: one set, so one cache entry per model and machine
LLEAVES_COMPILE = {"fblocksize": 34, "fcodemodel": "large", "finline": True, "use_fp64": True}
LLEAVES_INSTALL_HINT = "install it with: pip install -e '.[compiled]' (lleaves 1.3 needs llvmlite==0.44.0)"


def import_lleaves():
    """lleaves and llvmlite, or a BenchError that says what is missing and how to get it."""
    try:
        # Lazy: an optional dependency (the `compiled` extra; 25 ms to import after lightgbm), imported
        # only by a run that asked for this backend, so a machine without it runs every other backend.
        import lleaves
        import llvmlite
        import llvmlite.binding as llvm
    except Exception as exc:  # ImportError, or an llvmlite whose shared library does not load
        raise BenchError(
            f"predictor 'lleaves' is not available on this machine ({exc}); {LLEAVES_INSTALL_HINT}"
        ) from exc
    return lleaves, llvmlite, llvm


def unavailable() -> str | None:
    """Why lleaves cannot run here (a sentence), or None when it can."""
    try:
        import_lleaves()
    except BenchError as exc:
        return str(exc)
    return None


def compiled_cache_path(model: Model, directory: Path | None = None) -> Path:
    """Where lleaves' object code for ``model`` lives: keyed by the model's sha256, the compiler's
    versions, the options and the host CPU (an object file built for another CPU may not run here)."""
    _, llvmlite, llvm = import_lleaves()
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
    lleaves, _, _ = import_lleaves()
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
    files.atomic_write_bytes(record_path, lambda t: t.write_text(json.dumps(record, indent=2)))
    return {**record, "cache_hit": False}


def fixed_costs(model: Model) -> dict[str, float]:
    """lleaves' compile, once per model and machine, measured when the cache entry was built (seconds)."""
    return {"predictor_compile": float(ensure_compiled(model)["compile_s"])}


class LleavesPredictor:
    """The model compiled to native code by lleaves (LLVM): the same trees, no interpreter per node.

    Compiles on first use and caches the object file by model hash (:func:`ensure_compiled`); loading
    a cached one takes milliseconds. Threads: lleaves splits a call's rows over ``num_threads``
    Python threads, so single rows should use 1.
    """

    name = "lleaves"

    def __init__(self, model: Model, num_threads: int = 1) -> None:
        require_positive("predictor", num_threads=num_threads)
        lleaves, _, _ = import_lleaves()
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
        """One row's score by the compiled entry function itself (private: ``_c_entry_func``), into
        preallocated buffers: what ``predict`` does for one row minus its per-call conversions and
        pointer set-up."""
        if self._row_args is None:
            self._row_in = np.empty(self.compiled.num_feature(), dtype=np.float64)
            self._row_out = np.zeros(max(1, self.compiled.num_model_per_iteration()), dtype=np.float64)
            ptr = ctypes.POINTER(ctypes.c_double)
            self._row_args = (self._row_in.ctypes.data_as(ptr), self._row_out.ctypes.data_as(ptr), 0, 1)
        np.copyto(self._row_in, row)  # also checks the shape and converts the dtype
        self.compiled._c_entry_func(*self._row_args)
        return float(self._row_out[0])
