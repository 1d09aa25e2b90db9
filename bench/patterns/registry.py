"""The registry: every pattern by name. Adding a pattern is one folder under ``patterns/`` and one line here."""

from __future__ import annotations

from bench.core.errors import BenchError
from bench.patterns import batch, hybrid, microbatch, predictor, request
from bench.patterns.base import Pattern

PATTERNS: dict[str, Pattern] = {
    p.name: p for p in (batch.PATTERN, microbatch.PATTERN, request.PATTERN, hybrid.PATTERN, predictor.PATTERN)
}


def get(name: str) -> Pattern:
    """The pattern called ``name``, or a clear error listing the known ones."""
    if name not in PATTERNS:
        raise BenchError(f"unknown pattern {name!r}; expected one of: {', '.join(sorted(PATTERNS))}")
    return PATTERNS[name]


def names() -> list[str]:
    return sorted(PATTERNS)
