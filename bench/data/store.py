"""The low-latency store the hybrid pattern serves from: one SQLite file per published generation.

Why SQLite: it is in the standard library (nothing to install or operate), a read is a real B-tree
lookup in a file through the OS page cache (not a Python dict pretending to be a store), and a whole
table can be published atomically by writing a new file and renaming it over the old one — so a batch
job killed half-way leaves the previous generation serving, which is exactly the property the article
claims for batch (C8). Readers open a generation read-only and immutable (no locks) and switch to a
new one when the file's inode changes, checked at most every ``check_s``.

``DictStore`` loads the same file into a Python dict: the in-process lower bound (no I/O, no SQL),
reported as such; it pays in memory and in reload time at each refresh.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError

KINDS = ("sqlite", "dict")
_NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        if not name or set(name) - _NAME_OK:
            raise BenchError(f"store column name {name!r} must be lower-case letters, digits and _")


def publish(path: Path, key: np.ndarray, values: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``key -> values`` and ``meta`` as a new generation at ``path``, atomically.

    The table is written to a temporary file beside ``path`` and renamed over it only when complete
    (fsynced), so readers see the old generation or the new one, never a partial one.
    """
    path = Path(path)
    _check_names(["key", *values])
    key = np.asarray(key)
    for name, col in values.items():
        if len(col) != len(key):
            raise BenchError(f"store column {name!r} has {len(col)} values for {len(key)} keys")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(tmp)
    try:
        cols = ", ".join(
            f"{name} {'INTEGER' if np.asarray(col).dtype.kind in 'iub' else 'REAL'}" for name, col in values.items()
        )
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute(f"CREATE TABLE rows (key INTEGER PRIMARY KEY, {cols})")
        con.execute("CREATE TABLE meta (doc TEXT NOT NULL)")
        placeholders = ", ".join("?" * (1 + len(values)))
        columns = [key.tolist(), *(np.asarray(v).tolist() for v in values.values())]
        con.executemany(f"INSERT INTO rows VALUES ({placeholders})", zip(*columns, strict=True))
        con.execute("INSERT INTO meta VALUES (?)", (json.dumps(meta),))
        con.commit()
    finally:
        con.close()
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


class SqliteStore:
    """Reads one key at a time from the current generation at ``path`` (reopened when it is replaced)."""

    kind = "sqlite"

    def __init__(self, path: str | Path, check_s: float = 0.05) -> None:
        self.path, self.check_s = Path(path), check_s
        self.generations = 0
        self._inode: int | None = None
        self._next_check = 0.0
        self._open()

    def _open(self) -> None:
        try:
            inode = os.stat(self.path).st_ino
            con = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            doc = con.execute("SELECT doc FROM meta").fetchone()
            names = [row[1] for row in con.execute("PRAGMA table_info(rows)")][1:]
        except (OSError, sqlite3.Error) as exc:
            raise BenchError(f"store {str(self.path)!r} is not a readable store generation: {exc}") from exc
        self._load(con, names)
        self.meta, self.columns, self._inode = json.loads(doc[0]), names, inode
        self.generations += 1

    def _load(self, con: sqlite3.Connection, names: list[str]) -> None:
        old = getattr(self, "_con", None)
        self._con = con
        self._sql = f"SELECT {', '.join(names)} FROM rows WHERE key = ?"
        if old is not None:
            old.close()

    def refresh(self) -> bool:
        """Switch to a newly published generation if there is one (a stat at most every ``check_s``)."""
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self.check_s
        try:
            inode = os.stat(self.path).st_ino
        except OSError:
            return False  # between generations, or removed: keep serving the one we have
        if inode == self._inode:
            return False
        self._open()
        return True

    def get(self, key: int) -> tuple | None:
        """The row's values, or None if ``key`` is not in this generation."""
        return self._con.execute(self._sql, (key,)).fetchone()

    def __len__(self) -> int:
        return self._con.execute("SELECT count(*) FROM rows").fetchone()[0]

    def close(self) -> None:
        self._con.close()


class DictStore(SqliteStore):
    """The same generations loaded whole into a dict: lookups without I/O, the in-process lower bound."""

    kind = "dict"

    def _load(self, con: sqlite3.Connection, names: list[str]) -> None:
        try:
            self._rows = {row[0]: tuple(row[1:]) for row in con.execute(f"SELECT key, {', '.join(names)} FROM rows")}
        finally:
            con.close()

    def get(self, key: int) -> tuple | None:
        return self._rows.get(key)

    def __len__(self) -> int:
        return len(self._rows)

    def close(self) -> None:
        self._rows = {}


def open_store(kind: str, path: str | Path, check_s: float = 0.05) -> SqliteStore:
    """A reader of ``kind`` (one of :data:`KINDS`) on the generation at ``path``."""
    if kind not in KINDS:
        raise BenchError(f"store kind must be one of {KINDS}, got {kind!r}")
    return (SqliteStore if kind == "sqlite" else DictStore)(path, check_s)
