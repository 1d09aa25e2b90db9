"""The local batch engine's pieces on small files: chunks cut from row-group reads, the model's input in
each predictor's layout, and the predictions writer (row groups, encodings, what it reads back as)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from bench.data import workload
from bench.patterns.batch import local


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """1,000 generated customers (nulls in the nullable columns included)."""
    data = workload.ensure_dataset(1_000, 11, directory=tmp_path_factory.mktemp("batch-local"))
    return pl.read_parquet(data.path)


@pytest.fixture(scope="module")
def grouped(frame: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same rows in 70-row row groups, so chunks straddle row-group boundaries."""
    path = tmp_path_factory.mktemp("batch-grouped") / "grouped.parquet"
    frame.write_parquet(path, row_group_size=70)
    assert pq.ParquetFile(path).metadata.num_row_groups == 15
    return path


def test_prepare_gives_feature_matrix_in_either_layout(frame: pl.DataFrame) -> None:
    """Row-major input is the same values as ``workload.feature_matrix`` (nulls as NaN, codes for
    categoricals); column-major is ``workload.feature_matrix`` itself."""
    reference = workload.feature_matrix(frame)
    assert sum(frame.null_count().row(0)) > 0  # the check covers nulls
    c = local.prepare(frame, "C")
    f = local.prepare(frame, "F")
    assert c.flags["C_CONTIGUOUS"] and f.flags["F_CONTIGUOUS"]
    assert c.dtype == f.dtype == np.float64
    assert np.array_equal(c, reference, equal_nan=True)
    assert np.array_equal(f, reference, equal_nan=True)
    assert np.isnan(c).any()


def test_input_order_per_predictor() -> None:
    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

    assert local.input_order(Named("lleaves")) == "C"
    assert local.input_order(Named("lightgbm")) == "F"
    assert local.input_order(Named("another")) == "F"


@pytest.mark.parametrize("chunk_rows", [50, 70, 333, 1_000, 5_000])
def test_chunks_are_exact_and_cover_the_file(grouped: Path, frame: pl.DataFrame, chunk_rows: int) -> None:
    checked: list[tuple[int, int]] = []
    chunks = list(
        local.read_chunks(grouped, chunk_rows, local.INPUT_COLUMNS, check=lambda df, o: checked.append((o, df.height)))
    )
    assert [o for o, *_ in chunks] == list(range(0, frame.height, chunk_rows))
    assert all(df.height == chunk_rows for _, df, *_ in chunks[:-1])
    assert pl.concat([df for _, df, *_ in chunks]).equals(frame.select(local.INPUT_COLUMNS))
    assert checked == [(o, 70) for o in range(0, 980, 70)] + [(980, 20)]  # once per row group
    assert all(r >= 0 and c >= 0 for _, _, r, c in chunks)


def test_a_row_group_too_big_to_read_whole_is_read_in_chunks(
    grouped: Path, frame: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "MAX_READ_ROWS", 60)
    units = local._read_units(grouped, 25)
    assert units[:3] == [(0, 25), (25, 25), (50, 20)]
    assert sum(n for _, n in units) == frame.height
    chunks = list(local.read_chunks(grouped, 25, local.INPUT_COLUMNS))
    assert pl.concat([df for _, df, *_ in chunks]).equals(frame.select(local.INPUT_COLUMNS))


@pytest.mark.parametrize(
    ("group_rows", "total", "groups"),
    [
        (0, None, [250] * 4),
        (300, None, [500, 500]),
        (10_000, None, [1_000]),
        (10_000, 1_000, [750, 250]),  # known total: the last chunk is written alone, right after it is scored
        (400, 1_000, [500, 250, 250]),
    ],
)
def test_writer_groups_rows_and_reads_back_as_written(
    frame: pl.DataFrame, tmp_path: Path, group_rows: int, total: int | None, groups: list[int]
) -> None:
    out = tmp_path / "p.parquet"
    sha = "ab" * 32
    scores = np.random.default_rng(0).random(frame.height)
    writer = local.ChunkWriter(out, sha, group_rows=group_rows, total_rows=total)
    writer.open()
    for o in range(0, frame.height, 250):
        info = writer.write(frame.slice(o, 250), scores[o : o + 250], {"offset": o})
        assert info["offset"] == o and info["write_s"] >= 0
    writer.close()
    meta = pq.ParquetFile(out).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == groups
    back = pl.read_parquet(out)
    assert back.columns == ["customer_id", "score", "model_sha256", "scored_at"]
    assert back.schema["model_sha256"] == pl.Enum([sha])
    assert back.schema["scored_at"] == pl.Datetime("us", "UTC")
    assert back["customer_id"].to_list() == frame["customer_id"].to_list()
    assert back["score"].to_numpy().tobytes() == scores.tobytes()  # bit for bit


def test_writer_abort_writes_nothing_more(frame: pl.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    writer = local.ChunkWriter(out, "cd" * 32, group_rows=10_000)
    writer.write(frame.slice(0, 100), np.zeros(100), {})
    writer.abort()
    writer.close()  # nothing held, nothing open: a no-op
    assert not out.exists()
