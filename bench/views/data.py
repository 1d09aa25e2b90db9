"""Views of the data and the model (00_data, 01_model): what was generated, what was trained."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl


def datasets_table(datasets: Sequence) -> pl.DataFrame:
    """Each dataset's file, size, seed, content hash and generation time."""
    return pl.DataFrame(
        [
            {
                "file": Path(d.path).name,
                "rows": d.rows,
                "seed": d.seed,
                "sha256": d.sha256[:16],
                "mib": round(Path(d.path).stat().st_size / 2**20, 1),
                "generate_s": d.generate_seconds,
            }
            for d in datasets
        ]
    )


def column_profile(df: pl.DataFrame) -> pl.DataFrame:
    """Per column: dtype, null share, min, max, mean (categoricals: number of categories used)."""
    rows = []
    for name, dtype in df.schema.items():
        s = df.get_column(name)
        numeric = dtype.is_numeric()
        rows.append(
            {
                "column": name,
                "dtype": str(dtype),
                "null_pct": round(100 * s.null_count() / max(len(s), 1), 2),
                "min": float(s.min()) if numeric else None,
                "max": float(s.max()) if numeric else None,
                "mean": round(float(s.mean()), 4) if numeric else None,
                "distinct": s.n_unique() if not numeric else None,
            }
        )
    return pl.DataFrame(rows)


def plot_churn_by(df: pl.DataFrame, columns: Sequence[str]):
    """Churn rate against a few features (binned numerics, categories as they are)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.2), sharey=True)
    for ax, col in zip(axes, columns, strict=True):
        s = df.get_column(col)
        key = pl.col(col).cast(pl.String) if not s.dtype.is_numeric() else pl.col(col).qcut(8, allow_duplicates=True)
        g = df.group_by(key.alias("bin")).agg(pl.col("churned").mean().alias("rate"), pl.len()).sort("bin")
        ax.bar([str(b) for b in g["bin"]], g["rate"])
        ax.set_title(col, fontsize=9)
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    axes[0].set_ylabel("churn rate")
    fig.tight_layout()
    return fig


def model_card(model) -> pl.DataFrame:
    """The model's identity and quality as one two-column table."""
    meta = model.meta
    items = {
        "file": Path(model.path).name,
        "sha256": model.sha256,
        "trees": meta.get("params", {}).get("trees"),
        "leaves": meta.get("params", {}).get("leaves"),
        "features": len(model.feature_names),
        "train rows": meta.get("train_rows"),
        "holdout rows": meta.get("holdout_rows"),
        "holdout AUC": meta.get("holdout_auc"),
        "train seconds": meta.get("train_seconds"),
        "lightgbm": meta.get("lightgbm_version"),
    }
    return pl.DataFrame({"field": list(items), "value": [str(v) for v in items.values()]})


def plot_feature_importance(model, top: int = 15):
    """Total gain per feature, largest first."""
    import matplotlib.pyplot as plt

    gain = model.booster.feature_importance(importance_type="gain")
    pairs = sorted(zip(model.feature_names, gain, strict=True), key=lambda p: p[1])[-top:]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(pairs) + 1))
    ax.barh([p[0] for p in pairs], [p[1] for p in pairs])
    ax.set_xlabel("total gain")
    ax.set_title("Feature importance")
    fig.tight_layout()
    return fig
