"""The open-loop core every load-tested pattern shares: a window's record, its length, the capacity
search over windows, the verdicts a result takes from them, and the raw samples they leave.

A pattern supplies only what is its own: how to drive one window at a rate (``measure(name, rate,
k) -> Window``) and what extras its windows carry. The rules here are written once (MLPerf LoadGen's
shape: the harness, not the system under test, owns windows, capacity and validity), so per-request,
streaming and hybrid runs are judged by the same code and the same reason strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from bench.measure import capacity, metrics
from bench.measure.load import Observations


@dataclass
class Window:
    """One measured open-loop window: its offered ``rate``, raw observations, statistics
    (``metrics.window_summary``) and the CPU of the process tree that served it. A pattern that
    records more per window subclasses it (typed fields, not dict keys)."""

    name: str
    rate: float
    obs: Observations
    summary: dict
    cpu: metrics.CpuUsage

    def curve_extras(self) -> dict:
        """What this pattern adds to the window's point on the capacity curve (nothing by default)."""
        return {}


W = TypeVar("W", bound=Window)


def measured_duration(duration_s: float, min_count: int, rate: float, max_duration_s: float) -> float:
    """How long a main window measures (warm-up excluded): at least ``duration_s`` and long enough
    for ``min_count`` arrivals at ``rate``, whichever is longer, never beyond ``max_duration_s``
    (MLPerf's min-duration / min-query-count rule)."""
    return min(max(duration_s, min_count / rate), max_duration_s)


def summarize(
    obs: Observations,
    cpu: metrics.CpuUsage,
    *,
    warmup_s: float,
    slo_s: float,
    lag_bound_s: float,
    in_process: bool = False,
) -> dict:
    """``metrics.window_summary`` of a window, made invalid if other work took the machine meanwhile
    (it inflates latency: batch runs say so the same way)."""
    summary = metrics.window_summary(
        obs, warmup_s=warmup_s, slo_s=slo_s, lag_bound_s=lag_bound_s, in_process=in_process
    )
    busy = cpu.contention()
    if busy:
        summary["valid"] = False
        summary["invalid_reasons"].append(busy)
    return summary


def search_capacity(
    measure: Callable[[str, float, int], W],
    *,
    start: float,
    max_rate: float,
    tolerance: float,
    cores: float,
    slo_ms: float,
    window_s: float,
    knee_factor: float,
    max_windows: int = 16,
) -> tuple[dict, list[W]]:
    """The capacity under the SLO: ``capacity.search`` (doubling from ``start``, then bisection) over
    windows ``measure(name, rate, k)`` drives (``k``: windows measured before this one, for its seed).

    A window passes if it is sustainable; one whose SLO verdict the generator's lag decided stops the
    search ("generator"). Returns what a result records (``capacity.describe``) and the windows.
    """
    windows: list[W] = []

    def passes(rate: float) -> capacity.Verdict:
        w = measure(f"capacity@{rate:.0f}", rate, len(windows))
        windows.append(w)
        if not w.summary["slo_decidable"]:
            return None  # the generator, not the system, set the limit: stop searching
        return w.summary["sustainable"]

    found = capacity.search(passes, start=start, max_rate=max_rate, tolerance=tolerance, max_windows=max_windows)
    curve = [capacity.curve_point(w.summary, **w.curve_extras()) for w in windows]
    described = capacity.describe(found, curve, cores=cores, slo_ms=slo_ms, window_s=window_s, knee_factor=knee_factor)
    return described, windows


class Invalidatable(Protocol):
    """What the verdicts need of a result (``bench.results.RunResult``, a layer above)."""

    metrics: dict

    def invalidate(self, reason: str) -> None: ...


def apply_verdicts(
    result: Invalidatable, main: Window, cap: dict | None, why_not: Callable[[], str] | None = None
) -> None:
    """Invalidate ``result`` for every reason its main window is invalid (``"main window: …"``) and
    for a capacity measured while other work took the machine; record why the main window was not
    sustainable in ``metrics["not_sustainable_because"]`` if the pattern says how (``why_not``).
    A pattern's own verdicts (mismatches, lost events) follow this call."""
    for reason in main.summary["invalid_reasons"]:
        result.invalidate(f"main window: {reason}")
    if busy := capacity.contended(cap):
        result.invalidate(busy)
    if why_not is not None and not main.summary["sustainable"]:
        result.metrics["not_sustainable_because"] = why_not()


def samples_frame(
    windows: Sequence[Window], warmup_s: float, columns: Mapping[str, Mapping[str, np.ndarray]] | None = None
):
    """Every window's raw observations in one frame (a ``window`` and ``offered_rate`` column each),
    with a pattern's extra per-sample ``columns`` on the windows it names (null elsewhere)."""
    import polars as pl

    frames = []
    for w in windows:
        frame = w.obs.frame(window=w.name, offered_rate=float(w.rate), warmup_s=float(warmup_s))
        extra = (columns or {}).get(w.name)
        if extra:
            frame = frame.with_columns([pl.Series(k, v) for k, v in extra.items()])
        frames.append(frame)
    return pl.concat(frames, how="diagonal_relaxed" if columns else "vertical_relaxed")
