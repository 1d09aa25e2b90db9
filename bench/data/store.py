"""The low-latency store the hybrid pattern serves from: one SQLite file per published generation.

Why SQLite: it is in the standard library (nothing to install or operate), a read is a real B-tree
lookup in a file through the OS page cache (not a Python dict pretending to be a store), and a whole
table can be published atomically by writing a new file and renaming it over the old one — so a batch
job killed half-way leaves the previous generation serving, which is exactly the property the article
claims for batch (C8). Readers open a generation read-only and immutable (no locks) and switch to a
new one when the file's inode changes, checked at most every ``check_s``.

``DictStore`` loads the same file into a Python dict: the in-process lower bound (no I/O, no SQL),
reported as such; it pays in memory and in reload time at each refresh.

``ValkeyStore`` reads from a Redis-protocol server (``bench.systems.valkey`` starts one; here the
"path" is its URL, ``valkey://host:port``): an online store in its own process, one network round
trip per lookup. A generation is written under its own key prefix ``g<N>:`` (one packed value per
key: each column's value as a little-endian int64 or float64, so a score reads back bit for bit),
then made current by one ``SET current N`` — atomic — and only then are older generations deleted.
Measured with valkey-py 6.2 + hiredis on the 2-core VM, 3,000 reads each: a packed GET p50 20 µs /
p99 33 µs, an HMGET of a one-field hash 23 / 51 µs; writing 20,000 rows by MSET in chunks of 5,000
took 0.04 s, by pipelined HSET 0.15 s. Hence packed values and MSET.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError

KINDS = ("sqlite", "dict", "valkey")
#: URL schemes a store "path" may have: a Redis-protocol server, not a file
URL_SCHEMES = ("valkey://", "redis://", "unix://")
_NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        if not name or set(name) - _NAME_OK:
            raise BenchError(f"store column name {name!r} must be lower-case letters, digits and _")


def is_url(path: str | Path) -> bool:
    """Whether a store "path" names a Redis-protocol server rather than a file."""
    return isinstance(path, str) and path.startswith(URL_SCHEMES)


def _check_columns(key: np.ndarray, values: dict[str, np.ndarray]) -> None:
    _check_names(["key", *values])
    for name, col in values.items():
        if len(col) != len(key):
            raise BenchError(f"store column {name!r} has {len(col)} values for {len(key)} keys")


def publish(path: str | Path, key: np.ndarray, values: dict[str, np.ndarray], meta: dict) -> str | Path:
    """Write ``key -> values`` and ``meta`` as a new generation at ``path``, atomically.

    The table is written to a temporary file beside ``path`` and renamed over it only when complete
    (fsynced), so readers see the old generation or the new one, never a partial one. A ``path``
    that is a server URL (:func:`is_url`) publishes to that server instead (:func:`publish_valkey`).
    """
    if is_url(path):
        return publish_valkey(str(path), key, values, meta)
    path = Path(path)
    key = np.asarray(key)
    _check_columns(key, values)
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


# --------------------------------------------------------------------------------------------
# Valkey (a Redis-protocol server): one key per customer per generation, one pointer key
# --------------------------------------------------------------------------------------------

#: the pointer to the current generation; ``g<N>:meta`` holds generation N's meta and row format
POINTER = "current"
#: the last generation number handed out, and the set of generations that may have keys
COUNTER, GENERATIONS = "generation_counter", "generations"
#: keys per MSET or UNLINK and per SCAN step while publishing: the server runs one command at a time,
#: and a 5,000-key MSET held it for 1–10 ms, which every lookup behind it waited out (lookup p99 at
#: 1,000/s: 0.7 ms without a refresh, 3–4 ms with one every 5 s); 500 keys hold it well under 1 ms
_CHUNK = 500


def _connect(url: str, timeout_s: float = 5.0):
    """A client of the server at ``url`` that has answered PING, or BenchError naming the URL."""
    import valkey  # lazy: only a Valkey store needs the client

    try:
        client = valkey.Valkey.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=min(timeout_s, 2.0))
        client.ping()
    except ValueError as exc:
        raise BenchError(f"store URL {url!r} is not a valid Valkey URL: {exc}") from exc
    except (valkey.exceptions.ValkeyError, OSError) as exc:
        raise BenchError(f"store {url!r} is not reachable: {exc}") from exc
    return client


def key_prefix(generation: int) -> str:
    """The prefix of every key of generation ``generation`` (a reader builds ``<prefix><customer id>``)."""
    return f"g{generation}:"


def _delete_generation(client, generation: int) -> int:
    """Delete every key of generation ``generation`` (UNLINK: freed off the server's main thread)."""
    deleted, batch = 0, []
    for k in client.scan_iter(match=f"{key_prefix(generation)}*", count=_CHUNK):
        batch.append(k)
        if len(batch) >= _CHUNK:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def publish_valkey(url: str, key: np.ndarray, values: dict[str, np.ndarray], meta: dict) -> str:
    """Write a new generation to the server at ``url``: rows under a new prefix, its meta, then one
    ``SET current N`` (atomic: a reader sees the old generation or the new one, never a mix), then
    delete every other generation (the previous one, and any a killed publisher left half-written).
    One publisher at a time (the hybrid's refresh jobs never overlap)."""
    key = np.asarray(key)
    _check_columns(key, values)
    fmt = "<" + "".join("q" if np.asarray(col).dtype.kind in "iub" else "d" for col in values.values())
    pack = struct.Struct(fmt).pack
    client = _connect(url)
    try:
        generation = int(client.incr(COUNTER))  # never reused, even after a publisher was killed
        client.sadd(GENERATIONS, generation)  # before any row: a killed publish is swept by the next
        prefix = key_prefix(generation)
        ids = key.tolist()
        columns = [np.asarray(v).tolist() for v in values.values()]
        for a in range(0, len(ids), _CHUNK):
            rows = zip(*(c[a : a + _CHUNK] for c in columns), strict=True)
            client.mset({f"{prefix}{i}": pack(*row) for i, row in zip(ids[a : a + _CHUNK], rows, strict=True)})
        doc = {"meta": meta, "columns": list(values), "format": fmt, "rows": len(ids)}
        client.set(f"{prefix}meta", json.dumps(doc))
        client.set(POINTER, generation)  # the switch
        for old in sorted(int(g) for g in client.smembers(GENERATIONS)):
            if old != generation:
                _delete_generation(client, old)
                client.srem(GENERATIONS, old)
    except BenchError:
        raise
    except Exception as exc:  # the server went away mid-publish: the previous generation stays current
        raise BenchError(f"publishing to store {url!r} failed: {exc}") from exc
    finally:
        client.close()
    return url


def current_generation(path: str | Path) -> int | None:
    """What identifies the published generation at ``path`` now (a file's inode, a server's pointer),
    None if there is none: a publish happened if this changed."""
    if is_url(path):
        client = _connect(str(path))
        try:
            value = client.get(POINTER)
        finally:
            client.close()
        return int(value) if value is not None else None
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


class ValkeyStore:
    """Reads one key at a time from the current generation on the server at ``url``.

    The pointer is re-read at most every ``check_s`` (as :class:`SqliteStore` stats its file); a key
    not found is looked up once more after re-reading the pointer, so a generation deleted after a
    switch this reader had not yet seen reads as the new generation, never as a missing customer.
    """

    kind = "valkey"

    def __init__(self, url: str, check_s: float = 0.05) -> None:
        self.url, self.path, self.check_s = str(url), str(url), check_s
        self.generations = 0
        self.generation: int | None = None
        self._next_check = 0.0
        self._client = _connect(self.url)
        if not self._switch():
            raise BenchError(f"store {self.url!r} has no published generation (no {POINTER!r} key)")

    def _switch(self) -> bool:
        """Follow the pointer: load the current generation's meta if it moved. False: no generation."""
        import valkey

        try:
            value = self._client.get(POINTER)
            if value is None:
                return False
            generation = int(value)
            if generation == self.generation:
                return False
            doc = self._client.get(f"{key_prefix(generation)}meta")
        except valkey.exceptions.ValkeyError as exc:
            raise BenchError(f"store {self.url!r}: reading the current generation failed: {exc}") from exc
        if doc is None:
            raise BenchError(f"store {self.url!r}: generation {generation} is current but has no meta")
        d = json.loads(doc)
        self.meta, self.columns, self.rows = d["meta"], d["columns"], d["rows"]
        self._unpack = struct.Struct(d["format"]).unpack
        self._prefix = key_prefix(generation)
        self.generation = generation
        self.generations += 1
        return True

    def refresh(self) -> bool:
        """Switch to a newly published generation if there is one (a GET at most every ``check_s``)."""
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self.check_s
        return self._switch()

    def get(self, key: int) -> tuple | None:
        """The row's values, or None if ``key`` is not in the current generation."""
        raw = self._client.get(f"{self._prefix}{key}")
        if raw is None:
            if not self._switch():
                return None
            raw = self._client.get(f"{self._prefix}{key}")
            if raw is None:
                return None
        return self._unpack(raw)

    def __len__(self) -> int:
        """Rows of the current generation, counted on the server (its meta key excluded)."""
        return sum(
            1 for k in self._client.scan_iter(match=f"{self._prefix}*", count=_CHUNK) if not k.endswith(b":meta")
        )

    def memory_bytes(self) -> int:
        """The server's ``used_memory``: every generation it holds, plus its own overhead."""
        return int(self._client.info("memory")["used_memory"])

    def close(self) -> None:
        self._client.close()


def open_store(kind: str, path: str | Path, check_s: float = 0.05) -> SqliteStore | ValkeyStore:
    """A reader of ``kind`` (one of :data:`KINDS`) on the generation at ``path`` (a URL for valkey)."""
    if kind not in KINDS:
        raise BenchError(f"store kind must be one of {KINDS}, got {kind!r}")
    if kind == "valkey":
        return ValkeyStore(str(path), check_s)
    return (SqliteStore if kind == "sqlite" else DictStore)(path, check_s)
