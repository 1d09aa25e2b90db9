"""The one exception type for bad input: the message names the parameter or file and what was expected."""

from __future__ import annotations


class BenchError(ValueError):
    """Raised before any work starts when a parameter, file or result is not what the harness expects."""
