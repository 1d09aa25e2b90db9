"""The four answers a use case gives (acceptable latency, freshness, trigger, daily volume): parsed
from friendly strings ("50ms", "24h", "250k"), checked, and printed back in the same units.

Printing lives beside parsing because the decision (``bench.analysis.recommend``) writes its reasons
with these figures ("p99 4.2 ms > 1 ms acceptable"); ``bench.views.recommend`` lays them out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bench.core.errors import BenchError

TRIGGERS = ("schedule", "event", "request")

_UNITS = {
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "d": 86_400.0,
    "day": 86_400.0,
    "w": 604_800.0,
}
_MULTIPLIERS = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}
_NUMBER = r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)"
_DURATION_RE = re.compile(rf"^{_NUMBER}\s*([a-z]*)$")
_VOLUME_RE = re.compile(rf"^{_NUMBER}\s*([kmbg]?)$")
_DURATION_HINT = "a number of seconds or e.g. '50ms', '2s', '5min', '24h', '1d'"


# --------------------------------------------------------------------------------------------
# Input: durations, volumes, the four answers
# --------------------------------------------------------------------------------------------


def _finite_positive(name: str, value: float, expected: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise BenchError(f"answer {name!r} must be {expected}, got {value!r}")
    return float(value)


def parse_duration(value: str | float, name: str = "duration") -> float:
    """Seconds from a number (seconds) or a string such as "50ms", "2s", "5min", "24h", "1d"; > 0, finite."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BenchError(f"answer {name!r} must be {_DURATION_HINT}, got {type(value).__name__} {value!r}")
    if isinstance(value, str):
        match = _DURATION_RE.match(value.strip().lower().replace("_", ""))
        if not match or match.group(2) not in {"", *_UNITS}:
            raise BenchError(f"answer {name!r} must be {_DURATION_HINT}, got {value!r}")
        number, unit = match.groups()
        value = float(number) * _UNITS.get(unit, 1.0)
    return _finite_positive(name, float(value), f"a duration > 0 ({_DURATION_HINT})")


def parse_volume(value: str | float, name: str = "predictions_per_day") -> float:
    """Predictions per day from a number or a string such as "1e6", "250k", "3.2M", "1B"; > 0, finite."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BenchError(f"answer {name!r} must be a number > 0 (e.g. 1e6 or '250k'), got {value!r}")
    if isinstance(value, str):
        match = _VOLUME_RE.match(value.strip().lower().replace("_", "").replace(",", ""))
        if not match:
            raise BenchError(f"answer {name!r} must be a number > 0 (e.g. 1e6, '250k', '3.2M'), got {value!r}")
        value = float(match.group(1)) * _MULTIPLIERS[match.group(2)]
    return _finite_positive(name, float(value), "a number of predictions per day > 0")


@dataclass(frozen=True)
class Answers:
    """The article's four questions answered for one use case (durations in seconds, or strings like "50ms")."""

    latency_s: float  #: acceptable time from the trigger to the prediction being available
    freshness_s: float  #: how old a prediction may be when it is used (a daily churn score: 24 h or more)
    trigger: str  #: "schedule", "event" or "request"
    predictions_per_day: float
    name: str = ""
    assumption: str = ""  #: one line: what we assumed to get these answers

    def __post_init__(self) -> None:
        # Durations and volume may arrive as friendly strings: normalised here, so every check runs
        # before any work and the stored fields are plain floats.
        object.__setattr__(self, "latency_s", parse_duration(self.latency_s, "latency_s"))
        object.__setattr__(self, "freshness_s", parse_duration(self.freshness_s, "freshness_s"))
        object.__setattr__(self, "predictions_per_day", parse_volume(self.predictions_per_day))
        if not isinstance(self.trigger, str) or self.trigger not in TRIGGERS:
            raise BenchError(f"answer 'trigger' must be one of {', '.join(TRIGGERS)}; got {self.trigger!r}")
        for name in ("name", "assumption"):
            if not isinstance(getattr(self, name), str):
                raise BenchError(f"answer {name!r} must be a string, got {getattr(self, name)!r}")

    def describe(self) -> str:
        """The answers in one line, e.g. "request-triggered, answer within 50 ms, at most 1 s old, 1M/day"."""
        return (
            f"{self.trigger}-triggered, available within {fmt_duration(self.latency_s)}, "
            f"at most {fmt_duration(self.freshness_s)} old when used, "
            f"{fmt_volume(self.predictions_per_day)} predictions/day"
        )


#: The article's seven use cases. Latencies, freshness and volumes are our assumptions, stated in
#: each line; the cost of each prediction is our churn model's, standing in for every use case's model.
USE_CASES: tuple[Answers, ...] = (
    Answers(
        "6h", "7d", "schedule", "100k", "churn",
        "100k customers scored each night for a weekly retention review; the job has until morning (6 h)",
    ),
    Answers(
        "50ms", "1s", "request", "1M", "fraud",
        "1M card payments a day, each scored inside its authorisation call: 50 ms for the model, no stale score",
    ),
    Answers(
        "4h", "2d", "schedule", "1M", "demand forecasting",
        "1M item-store forecasts refreshed nightly for the next day's orders; the job has 4 h",
    ),
    Answers(
        "100ms", "1d", "request", "5M", "recommendations",
        "5M home-page views a day each ask for ranked items within 100 ms; yesterday's ranking is acceptable",
    ),
    Answers(
        "2min", "5min", "event", "14.4M", "IoT anomalies",
        "10k sensors reporting once a minute (14.4M readings/day); an anomaly must surface within 2 min",
    ),
    Answers(
        "5min", "1h", "event", "20k", "lead scoring",
        "20k web leads a day, each scored on submission and routed to a sales rep within 5 min",
    ),
    Answers(
        "200ms", "1s", "request", "10M", "content moderation",
        "10M posts a day, each screened in the publish call before anyone sees it: 200 ms budget",
    ),
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Formatting: every figure printed the same way
# --------------------------------------------------------------------------------------------


def fmt_duration(seconds: float | None) -> str:
    """A duration in the unit a reader expects: "4.2 ms", "3.1 s", "5 min", "24 h", "7 d"."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    for limit, unit, scale in ((1, "ms", 1e-3), (60, "s", 1), (3600, "min", 60), (2 * 86_400, "h", 3600)):
        if seconds < limit:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 86_400:.3g} d"


def fmt_volume(v: float) -> str:
    """A count with a suffix: "100k", "3.2M", "1B"."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def fmt_money(x: float | None) -> str:
    """Dollars: cents above $1, three significant digits below (a daily batch job can cost $0.00138)."""
    if x is None:
        return "n/a"
    return f"${x:,.2f}" if x >= 1 else f"${x:.3g}"


def fmt_ratio(x: float) -> str:
    """How many times larger: "2.9×", "1,440×"; a near tie as a percentage ("+0.12%")."""
    if x < 1.1:
        return f"+{(x - 1) * 100:.2g}%"
    return f"{x:,.0f}×" if x >= 10 else f"{x:.2g}×"
