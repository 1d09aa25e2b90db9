"""Maintenance commands (not part of a benchmark run)."""
