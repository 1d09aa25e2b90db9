"""What a pattern reads from a table: the model's features and an id, as one canonical frame.

A :class:`FeatureSchema` is the model's feature list (names in the model's order, which are
categorical, their string levels when the model carries them) plus the table's id column. Every
reader goes through :meth:`FeatureSchema.scan`, which yields the same frame whatever the table: an
Int64 ``customer_id`` (the id column, or the row number when there is none) and the features, a
categorical as its integer code. The synthetic workload's schema (``workload.SYNTHETIC``) is
``strict``: exact dtypes and ranges; a user's table is checked for what the model needs (each
feature present and of a usable type, no infinities, a unique integer id), nothing more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from bench.core.errors import BenchError

#: The id column's name in every canonical frame (the table's own name is ``FeatureSchema.id_column``).
ID = "customer_id"
#: LightGBM reads a categorical as a non-negative integer code (a negative one as missing).
MAX_CODE = 2**31 - 1


@dataclass(frozen=True)
class Column:
    """One column: dtype, whether nulls are allowed, and the valid closed range."""

    name: str
    dtype: pl.DataType
    nullable: bool = False
    lo: float | None = None
    hi: float | None = None
    categorical: bool = False  #: a model's categorical feature read as integer codes (an Enum is one too)


def is_categorical(col: Column) -> bool:
    """A categorical feature: an Enum in the synthetic schema, an integer code column in a model's."""
    return col.categorical or isinstance(col.dtype, pl.Enum)


def model_column(name: str, categorical: bool) -> Column:
    """A feature of a model the synthetic generator did not make: any number or null (a categorical:
    a non-negative integer code or null), no range of its own."""
    if categorical:
        return Column(name, pl.Int64(), nullable=True, lo=0, hi=MAX_CODE, categorical=True)
    return Column(name, pl.Float64(), nullable=True, lo=-np.inf, hi=np.inf)


@dataclass(frozen=True)
class FeatureSchema:
    """The model's features and the table's id column (``""``: row numbers are the ids)."""

    features: tuple[Column, ...]
    id_column: str = ID
    #: string levels of a categorical feature, in code order (the model's ``pandas_categorical``)
    levels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: exact dtypes and ranges, checked per column (the synthetic workload); else what the model needs
    strict: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.features)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.features if is_categorical(c))

    def with_id(self, id_column: str) -> FeatureSchema:
        return self if id_column == self.id_column else dataclasses.replace(self, id_column=id_column)

    # -- reading ---------------------------------------------------------------------------

    def check_columns(self, schema: pl.Schema, source: str) -> None:
        """Refuse a table that lacks a feature or the id column, or holds one of a type the model
        cannot read, naming it. The strict schema's dtypes are checked by :meth:`validate`."""
        wanted = [*self.names, *([self.id_column] if self.id_column else [])]
        missing = [n for n in wanted if n not in schema]
        if missing:
            what = "the workload schema (data/README.md)" if self.strict else "the model's features and the id column"
            raise BenchError(f"{source}: missing column(s) {missing}; expected {what}")
        if self.id_column and not schema[self.id_column].is_integer():
            raise BenchError(
                f"{source}: id_column {self.id_column!r} has dtype {schema[self.id_column]}, expected integers "
                "(or id_column='' for row numbers)"
            )
        if self.strict:
            return
        for col in self.features:
            got = schema[col.name]
            if not is_categorical(col):
                if not (got.is_numeric() or got == pl.Boolean):
                    raise BenchError(f"{source}: feature {col.name!r} has dtype {got}, expected numbers")
                continue
            if got.is_integer():
                continue
            named = got in (pl.String, pl.Categorical) or isinstance(got, pl.Enum)
            if named and col.name in self.levels:
                continue
            if named:
                raise BenchError(
                    f"{source}: categorical feature {col.name!r} has dtype {got}, but the model records no "
                    "category names to map it by; expected its integer codes"
                )
            raise BenchError(
                f"{source}: categorical feature {col.name!r} has dtype {got}, expected integer codes"
                + (f" or one of {list(self.levels[col.name])}" if col.name in self.levels else "")
            )

    def scan(self, path: str | Path) -> pl.LazyFrame:
        """The table at ``path`` as the canonical frame (``customer_id`` and the features), lazily."""
        frame = pl.scan_parquet(path)
        if not self.id_column:
            frame = frame.with_row_index(ID)
        return self.canonical(frame)

    def canonical(self, frame: pl.LazyFrame | pl.DataFrame):
        """``frame`` (a table of this schema) as ``customer_id`` and the features. Without an id
        column the frame must already hold ``customer_id`` as its row index (:meth:`scan` adds it)."""
        if self.strict and self.id_column == ID:
            return frame.select([ID, *self.names])
        dtypes = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema  # resolved once
        exprs = [pl.col(self.id_column if self.id_column else ID).cast(pl.Int64).alias(ID)]
        for col in self.features:
            c = pl.col(col.name)
            if col.name in self.levels and not dtypes[col.name].is_integer():  # names -> the model's codes
                mapping = {name: i for i, name in enumerate(self.levels[col.name])}
                c = c.cast(pl.String).replace_strict(mapping, default=-1, return_dtype=pl.Int64)
            exprs.append(c.alias(col.name))
        return frame.select(exprs)

    # -- checking and the model's input ----------------------------------------------------

    def validate(self, df: pl.DataFrame | pl.LazyFrame, *, source: str = "input") -> None:
        """Check a canonical frame: nulls, NaN/inf and ranges (strict), or what the model needs (no
        infinity, categorical codes known and non-negative, ids present). BenchError names the column."""
        # the strict gate is the workload's own, and the workload imports this module
        from bench.data import workload

        if self.strict:
            workload.validate(df, source=source)
            return
        exprs: list[pl.Expr] = [pl.col(ID).null_count().alias(f"{ID}/nulls")]
        for col in self.features:
            c = pl.col(col.name)
            if is_categorical(col):
                exprs.append(c.min().cast(pl.Float64).alias(f"{col.name}/min"))
            else:
                exprs.append(c.cast(pl.Float64).is_infinite().sum().alias(f"{col.name}/inf"))
        frame = df.lazy() if isinstance(df, pl.DataFrame) else df
        try:
            stats = frame.select(exprs).collect().row(0, named=True)
        except pl.exceptions.PolarsError as exc:
            raise BenchError(f"{source}: could not be read as the model's features: {exc}") from exc
        if stats[f"{ID}/nulls"]:
            raise BenchError(f"{source}: id_column {self.id_column!r} has {stats[f'{ID}/nulls']} null(s)")
        for col in self.features:
            if stats.get(f"{col.name}/inf"):
                raise BenchError(
                    f"{source}: feature {col.name!r} has {stats[f'{col.name}/inf']} infinite value(s); "
                    "use null or NaN for missing"
                )
            low = stats.get(f"{col.name}/min")
            if low is not None and low < 0:
                known = f"one of {list(self.levels[col.name])}" if col.name in self.levels else "a code >= 0"
                raise BenchError(f"{source}: categorical feature {col.name!r} holds a value that is not {known}")

    def check_ids_unique(self, frame: pl.LazyFrame, source: str) -> None:
        """Refuse a table whose id column repeats a value (the hybrid store and the stream key by it)."""
        if not self.id_column:
            return
        dupes = frame.select(pl.len() - pl.col(ID).n_unique()).collect().item()
        if dupes:
            raise BenchError(f"{source}: id_column {self.id_column!r} is not unique ({dupes} repeated value(s))")

    def matrix(self, df: pl.DataFrame, order: str = "F") -> np.ndarray:
        """The model's input from a canonical frame: float64, nulls as NaN, categoricals as codes;
        column-major (what polars produces without a copy) or row-major (``order="C"``)."""
        exprs = [
            (pl.col(c.name).to_physical() if isinstance(c.dtype, pl.Enum) else pl.col(c.name)).cast(pl.Float64)
            for c in self.features
        ]
        if order == "F":
            return df.select(exprs).to_numpy()
        return df.select(exprs).to_numpy(order="c")
