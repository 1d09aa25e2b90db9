"""Train, save and load the LightGBM churn model.

The model is content-addressed: its file name carries a hash of what it was trained from, and its
metadata JSON records the sha256 of the text file, the feature names, the training time and the
holdout AUC. Loading checks that the file is a LightGBM model with one output per row, and reads
which features it takes (the workload's, or any model's own: ``Model.schema``).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl

from bench.core import files, paths
from bench.core.errors import BenchError
from bench.core.params import require_positive
from bench.data import workload
from bench.data.schema import FeatureSchema, model_column


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
    """A loaded model: the booster, the metadata that identifies it, and the features it reads
    (the synthetic workload's schema for the churn model, else the model's own feature list)."""

    path: Path
    booster: lgb.Booster
    sha256: str
    meta: dict
    schema: FeatureSchema = field(default=workload.SYNTHETIC, compare=False, repr=False)

    @property
    def synthetic(self) -> bool:
        """Whether the model reads the synthetic workload's features (trained here, or by the same schema)."""
        return self.schema.strict

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
    files.atomic_write_bytes(path, lambda tmp: booster.save_model(str(tmp)))
    meta = {
        "format": "lightgbm-text",
        "sha256": files.sha256_file(path),
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
    files.atomic_write_bytes(
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


#: Bound on parsing a model without a sidecar in a child process (a 200-tree model parses in ~0.1 s).
PARSE_CHECK_TIMEOUT_S = 120.0


def _parses_in_child(path: Path) -> str | None:
    """Why LightGBM cannot parse ``path``, found in a child process (None if it parses): on a
    truncated file LightGBM itself can crash the process (a notebook saw DeadKernelError)."""
    code = "import sys, lightgbm; lightgbm.Booster(model_file=sys.argv[1])"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            encoding="utf-8",
            errors="replace",  # LightGBM may echo the broken bytes
            timeout=PARSE_CHECK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"LightGBM did not parse it within {PARSE_CHECK_TIMEOUT_S:.0f} s"
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else f"the parser exited with code {proc.returncode}"


def verify_file(path: str | Path) -> tuple[str, dict]:
    """Check a model file before LightGBM reads it: a LightGBM text model whose sha256 matches its
    sidecar (``.json``), or, without a sidecar, one a child process parses. Returns (sha256, sidecar)."""
    path = Path(path)
    if path.is_dir():
        raise BenchError(f"model file {str(path)!r} is a directory, not a LightGBM model")
    if not path.is_file():
        raise BenchError(f"model file {str(path)!r} does not exist")
    with open(path, "rb") as f:
        head = f.read(64)
    if not head.startswith(b"tree\n"):
        raise BenchError(f"model file {str(path)!r} is not a LightGBM text model (it must start with 'tree')")
    sha = files.sha256_file(path)
    meta_path = path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(
            f"model file {str(path)!r}: its sidecar {meta_path.name} is not valid JSON ({exc}); delete both to retrain"
        ) from exc
    if not isinstance(meta, dict):
        raise BenchError(f"model file {str(path)!r}: its sidecar {meta_path.name} is not a JSON object")
    if meta.get("sha256"):
        if meta["sha256"] != sha:
            raise BenchError(
                f"model file {str(path)!r} does not match the sha256 in {meta_path.name} (truncated or changed); "
                "delete it to retrain"
            )
    else:
        why = _parses_in_child(path)
        if why:
            raise BenchError(f"model file {str(path)!r} could not be parsed by LightGBM ({why}); delete it to retrain")
    return sha, meta


def load(path: str | Path) -> Model:
    """Load a LightGBM text model; refuse anything else, or a model of other features, by name.

    The file is checked (:func:`verify_file`) before LightGBM parses it in this process."""
    path = Path(path)
    sha, meta = verify_file(path)
    try:
        booster = lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as exc:
        raise BenchError(f"model file {str(path)!r} could not be parsed by LightGBM: {exc}") from exc
    header = _header(path)
    objective = header.get("objective", "").split(" ")[0]
    if objective not in OBJECTIVES or header.get("num_class", "1") != "1":
        raise BenchError(
            f"model file {str(path)!r} has objective {header.get('objective', 'none')!r}; the harness scores "
            f"models with one output per row: {', '.join(OBJECTIVES)}"
        )
    names = list(booster.feature_name())
    if names == list(workload.FEATURES):
        return Model(path, booster, sha, meta)
    return Model(path, booster, sha, meta, schema=_model_schema(path, names, header, booster))


#: LightGBM objectives the harness scores: one output per row (a probability or a value). Multiclass
#: (one score per class) and ranking (scores comparable only within a query) are not.
OBJECTIVES = (
    "binary",
    "cross_entropy",
    "cross_entropy_lambda",
    "regression",
    "regression_l1",
    "huber",
    "fair",
    "poisson",
    "quantile",
    "mape",
    "gamma",
    "tweedie",
)


def _header(path: Path) -> dict[str, str]:
    """The ``key=value`` lines of a LightGBM text model before its first tree."""
    header: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("Tree="):
                break
            key, eq, value = line.rstrip("\n").partition("=")
            if eq:
                header[key] = value
    return header


def _model_schema(path: Path, names: list[str], header: dict[str, str], booster: lgb.Booster) -> FeatureSchema:
    """A model's own features: a categorical is one whose ``feature_infos`` lists category values
    (a numeric one has a ``[min:max]`` range, or ``none`` when no split uses it); string levels
    from ``pandas_categorical`` when the model was trained on pandas categories."""
    infos = header.get("feature_infos", "").split(" ")
    if len(infos) != len(names):
        raise BenchError(
            f"model file {str(path)!r}: feature_infos lists {len(infos)} features, feature_names {len(names)}"
        )
    categorical = [not (i.startswith("[") or i == "none") for i in infos]
    columns = tuple(model_column(n, c) for n, c in zip(names, categorical, strict=True))
    cats = [n for n, c in zip(names, categorical, strict=True) if c]
    pandas = getattr(booster, "pandas_categorical", None) or []
    levels = (
        {n: tuple(str(v) for v in lv) for n, lv in zip(cats, pandas, strict=False)} if len(pandas) == len(cats) else {}
    )
    return FeatureSchema(columns, levels=levels)


def cached_model_path(params: ModelParams, directory: Path | None = None) -> Path | None:
    """Where the model of ``params`` is cached, if its training data is already on disk (else None:
    nothing is cached yet). Reads the data's sidecar only; generates and hashes nothing."""
    directory = directory or paths.data_dir()
    meta_path = workload.dataset_path(params.train_rows, params.data_seed, directory).with_suffix(".json")
    try:
        sha = json.loads(meta_path.read_text()).get("sha256") if meta_path.exists() else None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None  # a corrupt data sidecar: ensure_dataset regenerates the data, so a new model key
    return directory / "models" / f"churn-{_model_key(params, sha)}.txt" if sha else None
