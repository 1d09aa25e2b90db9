"""The runs a report or a recommendation uses: one machine's valid results, and what was left out."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.results.io import load_all
from bench.results.provenance import machine_key
from bench.results.schema import RunResult


@dataclass
class Selection:
    """The valid runs of one machine, and what was left out and why (shown in the report)."""

    machine: str | None
    runs: list[RunResult]
    other_machines: dict[str, int]  #: machine -> valid runs not mixed in
    invalid: list[RunResult]
    refused: dict[str, str]
    incomplete: list[str]


def select(results_dir: Path | None = None, machine: str = "") -> Selection:
    """Load every result; keep the valid ones of ``machine`` (default: the machine with most runs)."""
    loaded = load_all(results_dir)
    valid = [r for r in loaded.results if r.valid]
    invalid = [r for r in loaded.results if not r.valid]
    counts = Counter(machine_key(r.provenance) for r in valid)
    chosen = machine or (counts.most_common(1)[0][0] if counts else None)
    runs = [r for r in valid if machine_key(r.provenance) == chosen]
    others = {k: v for k, v in counts.items() if k != chosen}
    return Selection(chosen, runs, others, invalid, loaded.refused, loaded.incomplete)
