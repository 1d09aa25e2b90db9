"""The runs a report or a recommendation uses: one machine's valid results of one model, and what was
left out.

Runs of other models on the same machine (the profiles' model-cost sweep: other trees and leaves) are
kept apart in ``Selection.other_model_runs``: a 50-tree model's capacity pooled with the base model's
would move the headline decision, the verdicts and the cost tables as if it were the base model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.results.io import load_all
from bench.results.provenance import machine_key
from bench.results.schema import RunResult

#: The pattern parameters that name a synthetic model (it is trained, content-addressed, from them).
MODEL_FIELDS = ("train_rows", "trees", "leaves", "model_seed")
#: A model's identity: (field, value) pairs, hashable and printable.
ModelKey = tuple[tuple[str, Any], ...]


def model_key(r: RunResult) -> ModelKey:
    """The model a run scored: a model file by its sha256, else the synthetic model's parameters
    (the same parameters train the same model; its sha256 may differ across LightGBM versions)."""
    if r.params.get("model_path"):
        return (("model_sha256", (r.provenance or {}).get("model_sha256")),)
    return tuple((k, r.params.get(k)) for k in MODEL_FIELDS)


def key_of(model: Mapping[str, Any]) -> ModelKey:
    """The key of a synthetic model given as its parameters (a profile's ``model`` dict)."""
    return tuple((k, model.get(k)) for k in MODEL_FIELDS)


def model_label(key: ModelKey) -> str:
    """A model as a reader names it: ``200 trees × 63 leaves`` (training rows and seed when set), or
    ``model file 1a2b3c4d``."""
    d = dict(key)
    if "model_sha256" in d:
        return f"model file {str(d['model_sha256'] or 'unknown')[:8]}"
    if d.get("trees") is None and d.get("leaves") is None:
        return "model not recorded"
    extra = [
        f"{d['train_rows']:,} training rows" if d.get("train_rows") else "",
        f"seed {d['model_seed']}" if d.get("model_seed") is not None else "",
    ]
    extra = [e for e in extra if e]
    return f"{d.get('trees')} trees × {d.get('leaves')} leaves" + (f" ({', '.join(extra)})" if extra else "")


def by_model(runs: Sequence[RunResult]) -> dict[ModelKey, list[RunResult]]:
    """The runs grouped by the model they scored, most runs first (ties by label)."""
    groups: dict[ModelKey, list[RunResult]] = {}
    for r in runs:
        groups.setdefault(model_key(r), []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), model_label(kv[0]))))


def headline_model(runs: Sequence[RunResult], model: Mapping[str, Any] | None = None) -> ModelKey | None:
    """The model the headline compares: ``model`` (a profile's base model) when given and scored by any
    of the runs, else the model most of the runs scored (a pipeline on a user's model file has no run of
    the profile's synthetic model); None when there are no runs and no model."""
    groups = by_model(runs)
    if model and (key_of(model) in groups or not groups):
        return key_of(model)
    return next(iter(groups), None)


@dataclass
class Selection:
    """The valid runs of one machine and one model, and what was left out and why (shown in the report)."""

    machine: str | None
    runs: list[RunResult]  #: the headline's runs: one machine, one model
    other_machines: dict[str, int]  #: machine -> valid runs not mixed in
    invalid: list[RunResult]
    refused: dict[str, str]
    incomplete: list[str]
    model: str | None = None  #: the headline model's label (``model_label``)
    model_key: ModelKey | None = None
    #: valid runs of this machine's other models (the model-cost sweep): never in the headline
    other_model_runs: list[RunResult] = field(default_factory=list)

    @property
    def other_models(self) -> dict[str, int]:
        """Label -> valid runs of each other model of this machine (not mixed into the headline)."""
        return {model_label(k): len(v) for k, v in by_model(self.other_model_runs).items()}


def select(results_dir: Path | None = None, machine: str = "", model: Mapping[str, Any] | None = None) -> Selection:
    """Load every result; keep the valid ones of ``machine`` (default: the machine with most runs) and of
    ``model`` (a profile's base model parameters; default: the model with most runs on that machine).
    The machine's runs of other models go to ``other_model_runs``."""
    loaded = load_all(results_dir)
    valid = [r for r in loaded.results if r.valid]
    invalid = [r for r in loaded.results if not r.valid]
    counts = Counter(machine_key(r.provenance) for r in valid)
    chosen = machine or (counts.most_common(1)[0][0] if counts else None)
    mine = [r for r in valid if machine_key(r.provenance) == chosen]
    others = {k: v for k, v in counts.items() if k != chosen}
    key = headline_model(mine, model)
    runs = [r for r in mine if model_key(r) == key]
    rest = [r for r in mine if model_key(r) != key]
    label = model_label(key) if key is not None else None
    return Selection(chosen, runs, others, invalid, loaded.refused, loaded.incomplete, label, key, rest)
