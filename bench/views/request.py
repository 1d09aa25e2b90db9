"""Views of the per-request (real-time) pattern: a run's card (30_request) and the report's summary."""

from __future__ import annotations

import re
from collections.abc import Sequence

import polars as pl

from bench.patterns.request import PATTERN
from bench.results import RunResult
from bench.views.report import _empty, _legend_outside, _window_columns, runs_of


def _isolation_text(iso: dict | None) -> str:
    """Where the generator and the server ran: on separate CPUs, or why not (older results: unknown)."""
    if not iso:
        return "not recorded"
    if iso.get("isolated"):
        return f"generator on CPU {iso['generator_cpus']}, server on {iso['server_cpus']}"
    return f"shared ({iso.get('reason')})"


def request_card(result: RunResult) -> pl.DataFrame:
    """A per-request run's headline figures: offered vs answered, latency with its sample count, floor, capacity."""
    m = result.metrics
    lat, svc, lag = m.get("latency_s") or {}, m.get("service_s") or {}, m.get("generator_lag_s") or {}
    floor = m.get("floor_latency_s") or {}
    cap = m.get("capacity") or {}

    def ms(d: dict, key: str) -> str:
        return f"{1e3 * d[key]:.3f}" if d.get(key) is not None else "n/a"

    items = {
        "run_id": result.run_id,
        "valid": "yes" if result.valid else f"NO: {'; '.join(result.invalid_reasons)}",
        "sustainable at the offered rate": "yes"
        if m.get("sustainable")
        else f"NO: {m.get('not_sustainable_because', '')}",
        "offered / answered (predictions/s)": f"{m['offered_rate_per_s']:.1f} / {m['throughput_per_s']:.1f}"
        + (f" ({m['rows_per_request']} rows per request)" if (m.get("rows_per_request") or 1) > 1 else ""),
        "generator and server CPUs": _isolation_text(m.get("isolation")),
        "latency from intended send p50 / p99 / p99.9 (ms)": f"{ms(lat, 'p50')} / {ms(lat, 'p99')} / {ms(lat, 'p99_9')}",
        "latency samples": str(lat.get("count", 0)),
        "service time p50 / p99 (ms)": f"{ms(svc, 'p50')} / {ms(svc, 'p99')}",
        "generator send lag p99 (ms)": ms(lag, "p99"),
        "no-op floor p50 / p99 (ms)": f"{ms(floor, 'p50')} / {ms(floor, 'p99')}" if floor else "n/a",
        "errors": str(m.get("errors")),
        "server CPU µs per prediction": f"{1e6 * m['cpu_seconds_per_prediction']:.1f}"
        if m.get("cpu_seconds_per_prediction")
        else "n/a",
        "generator CPU seconds": f"{m['generator_cpu_seconds']:.2f}"
        if m.get("generator_cpu_seconds") is not None
        else "n/a",
        "capacity at SLO (req/s)": f"{cap['rate_per_s']:.0f} ({cap['limited_by']}; {cap['per_core_per_s']:.0f} per core)"
        if cap
        else "not searched",
        "fixed costs (s)": str({k: round(v, 3) for k, v in m.get("fixed_costs_s", {}).items()}),
    }
    return pl.DataFrame({"metric": list(items), "value": list(items.values())})


def request_summary(runs: Sequence[RunResult]) -> pl.DataFrame:
    """One row per per-request run: offered vs answered, latency with sample count, floor, capacity, CPU."""
    rows = []
    for r in runs_of(runs, PATTERN):
        m = r.metrics
        floor, cap = m.get("floor_latency_s") or {}, m.get("capacity") or {}
        rows.append(
            {
                "backend": r.backend,
                **_window_columns(m, "answered_per_s", digits=3),
                "floor_p50_ms": round(1e3 * floor["p50"], 3) if floor else None,
                "gen_lag_p99_ms": round(1e3 * m["generator_lag_s"]["p99"], 3) if m.get("generator_lag_s") else None,
                "server_cpu_us_per_pred": round(1e6 * m["cpu_seconds_per_prediction"], 1)
                if m.get("cpu_seconds_per_prediction")
                else None,
                "capacity_per_s": round(cap["rate_per_s"], 1) if cap else None,
                "capacity_limited_by": cap.get("limited_by") if cap else None,
                "capacity_per_core": round(cap["per_core_per_s"], 1) if cap else None,
                "knee_per_s": round(cap["knee"]["rate_per_s"], 1) if cap and cap.get("knee") else None,
                "start_s": round(sum(m.get("fixed_costs_s", {}).values()), 2),
                "run_id": r.run_id,
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


# --------------------------------------------------------------------------------------------
# The server's side: where a request's time goes, and what dynamic batching does to it
# --------------------------------------------------------------------------------------------

#: The hops of ``metrics["server_side"]["hops"]``, in the order a request meets them, as a reader names them.
HOPS = {
    "latency_s": "client-seen latency",
    "outside_server_s": "outside the server handler (client, sockets, HTTP stacks, proxy)",
    "queue_s": "queue wait before the batch's predict",
    "predict_s": "the batch's predict call",
    "server_s": "server handler (parse to score)",
}


def server_side_runs(runs: Sequence[RunResult]) -> list[RunResult]:
    """The per-request runs whose answers carried server timings, ordered by configuration and rate."""
    mine = [r for r in runs_of(runs, PATTERN) if r.metrics.get("server_side")]
    return sorted(
        mine, key=lambda r: (_server_label(r.backend), *_batch_params(r), r.metrics.get("offered_rate_per_s") or 0.0)
    )


def _server_label(backend: str) -> str:
    """A backend label without its batch tag (``http[asgi,b32/2ms]/lightgbm`` -> ``http[asgi]/lightgbm``)."""
    return re.sub(r"\[\]", "", re.sub(r",?b\d+/[\d.]+ms", "", backend).replace("[,", "["))


def _batch_params(r: RunResult) -> tuple[int, float]:
    """A run's dynamic-batching parameters; results made before batching existed were unbatched (1, 0 ms)."""
    return int(r.params.get("batch_max", 1)), float(r.params.get("batch_wait_ms", 0.0))


def _ms(summary: dict | None, key: str) -> float | None:
    """One figure of a latency summary (seconds) in ms, 3 decimals; None where it was not measured."""
    return round(1e3 * summary[key], 3) if summary and summary.get(key) is not None else None


def _config_label(r: RunResult) -> str:
    """A configuration as a plot names it: its backend at its offered rate."""
    return f"{r.backend} @ {r.metrics.get('offered_rate_per_s') or 0:,.0f}/s"


def batching_table(runs: Sequence[RunResult]) -> pl.DataFrame:
    """One row per per-request run with server timings: batch sizes, queue wait, predict per batch, CPU per
    prediction, p99 with its n and capacity, so batched and unbatched servers sit side by side."""
    rows = []
    for r in server_side_runs(runs):
        m = r.metrics
        side, lat, cap = m["server_side"], m.get("latency_s") or {}, m.get("capacity") or {}
        hops, b = side.get("hops") or {}, side.get("batching") or {}
        batch_max, wait_ms = _batch_params(r)
        predict = hops.get("predict_s") or {}
        rows.append(
            {
                "backend": r.backend,
                "batch_max": batch_max,
                "batch_wait_ms": wait_ms,
                "offered_per_s": round(m["offered_rate_per_s"], 1),
                "requests": side.get("requests"),
                "batch_size_mean": round(b["batch_size_mean"], 2) if b else None,
                "batch_size_p50": b.get("batch_size_p50"),
                "batch_size_max": b.get("batch_size_max"),
                "queue_p50_ms": _ms(hops.get("queue_s"), "p50"),
                "queue_p99_ms": _ms(hops.get("queue_s"), "p99"),
                "predict_per_batch_p50_us": round(1e6 * predict["p50"], 1) if predict.get("p50") is not None else None,
                "server_cpu_us_per_pred": round(1e6 * m["cpu_seconds_per_prediction"], 1)
                if m.get("cpu_seconds_per_prediction")
                else None,
                "p99_ms": _ms(lat, "p99"),
                "samples": lat.get("count", 0),
                "capacity_per_s": round(cap["rate_per_s"], 1) if cap.get("rate_per_s") is not None else None,
                "capacity_limited_by": cap.get("limited_by"),
                "run_id": r.run_id,
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def hops_table(runs: Sequence[RunResult]) -> pl.DataFrame:
    """One row per hop of each per-request run with server timings: its p50 and p99 in ms and its sample count."""
    rows = []
    for r in server_side_runs(runs):
        hops = r.metrics["server_side"].get("hops") or {}
        batch_max, wait_ms = _batch_params(r)
        for key, name in HOPS.items():
            h = hops.get(key)
            if not h:
                continue
            rows.append(
                {
                    "backend": r.backend,
                    "batch_max": batch_max,
                    "batch_wait_ms": wait_ms,
                    "offered_per_s": round(r.metrics["offered_rate_per_s"], 1),
                    "hop": name,
                    "p50_ms": _ms(h, "p50"),
                    "p99_ms": _ms(h, "p99"),
                    "samples": h.get("count", 0),
                    "run_id": r.run_id,
                }
            )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def hop_medians(r: RunResult) -> dict[str, float]:
    """A run's median time (ms) in each segment of its waterfall; the handler's rest is clipped at 0."""
    hops = r.metrics["server_side"].get("hops") or {}

    def p50(key: str) -> float:
        return _ms(hops.get(key), "p50") or 0.0

    queue, predict = p50("queue_s"), p50("predict_s")
    return {
        "outside server (client, network, HTTP)": p50("outside_server_s"),
        "queue wait": queue,
        "batch predict": predict,
        "rest of server handler": max(p50("server_s") - queue - predict, 0.0),
    }


def plot_hops(runs: Sequence[RunResult], ax=None):
    """Where a request's median time goes, per configuration: a horizontal stacked bar of the median of each
    hop (outside the server, queue wait, batch predict, the rest of the handler), n on each bar."""
    import matplotlib.pyplot as plt

    rs = server_side_runs(runs)
    ax = ax or plt.subplots(figsize=(8, 1.0 + 0.45 * max(len(rs), 1)))[1]
    if not rs:
        return _empty(ax, "no per-request runs with server timings (in-process, MLServer and /score runs have none)")
    segments = [hop_medians(r) for r in rs]
    y = list(range(len(rs)))
    left = [0.0] * len(rs)
    for i, name in enumerate(segments[0]):
        widths = [s[name] for s in segments]
        ax.barh(y, widths, left=left, height=0.6, color=f"C{i}", label=name)
        left = [a + w for a, w in zip(left, widths, strict=True)]
    for yi, end, r in zip(y, left, rs, strict=True):
        ax.annotate(f"n={r.metrics['server_side']['requests']:,}", (end, yi), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=7)  # fmt: skip
    ax.set_yticks(y, [_config_label(r) for r in rs], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15 * max(left) if max(left) > 0 else 1.0)
    ax.set_xlabel("median ms per request (each hop's own median: they need not add up to the latency's)")
    ax.set_title("Where a request's time goes, per configuration", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    _legend_outside(ax)
    return ax
