"""Named, ordered migrations of old result.json documents to the current schema (asv's ``update_to_2``).

Each ``update_to_<n>`` takes a version n-1 document and returns a version n one; ``migrate`` applies
them in order on load, so readers see only the current version and never tolerate old keys themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.core.errors import BenchError
from bench.results.schema import SCHEMA_VERSION, Memory

#: Parameters every v2 result's params carry, with the value v1 runs made before they existed used.
V2_PARAM_DEFAULTS: dict[str, Any] = {"predictor": "lightgbm", "num_threads": 1}


def update_to_2(doc: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2: params gain ``predictor`` and ``num_threads`` where older runs lacked them; metrics gain
    a typed ``memory`` block (what each pattern measured, read from wherever v1 kept it) and a
    ``fixed_costs_s`` mapping where a run had none. Backend labels are kept as written."""
    out = dict(doc)
    if isinstance(doc.get("params"), dict):
        out["params"] = V2_PARAM_DEFAULTS | doc["params"]
        for key, default in V2_PARAM_DEFAULTS.items():
            if out["params"][key] is None:  # v1 wrote an unset predictor as null in some runs
                out["params"][key] = default
    if isinstance(doc.get("metrics"), dict):
        m = dict(doc["metrics"])
        m.setdefault("fixed_costs_s", {})
        m["memory"] = Memory.of(m).to_dict()
        out["metrics"] = m
    out["schema_version"] = 2
    return out


#: version found -> the migration that lifts it one version; applied in order up to SCHEMA_VERSION.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: update_to_2}
SUPPORTED_VERSIONS = (*MIGRATIONS, SCHEMA_VERSION)


def migrate(doc: Any, source: str = "result") -> Any:
    """``doc`` lifted to the current schema version; an unknown, newer or missing version is refused."""
    if not isinstance(doc, dict):
        return doc  # ``check`` says what is wrong with it
    version = doc.get("schema_version")
    supported = ", ".join(map(str, SUPPORTED_VERSIONS))
    if "schema_version" not in doc:
        raise BenchError(
            f"{source}: has no schema_version; this bench reads schema versions {supported}. "
            "It was not written by bench: re-run the benchmark to produce it"
        )
    if isinstance(version, bool) or not isinstance(version, int) or version not in SUPPORTED_VERSIONS:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION
        what = (
            "it was written by a newer bench: upgrade bench to read it"
            if newer
            else "re-run the benchmark to write a current result, or upgrade bench"
        )
        raise BenchError(
            f"{source}: schema_version {version!r} is not supported; this bench reads schema versions "
            f"{supported} (and writes {SCHEMA_VERSION}): {what}"
        )
    while doc["schema_version"] < SCHEMA_VERSION:
        doc = MIGRATIONS[doc["schema_version"]](doc)
    return doc
