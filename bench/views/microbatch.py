"""Views of the streaming (micro-batch) pattern: a run's card and backlog (20_microbatch), the report's
summary and its latency-throughput frontier."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from bench.patterns.microbatch import PATTERN
from bench.results import RunResult
from bench.views.report import _empty, _legend_outside, _window_columns, runs_of


def _ms(d: dict | None, key: str) -> str:
    return f"{1e3 * d[key]:.1f}" if d and d.get(key) is not None else "n/a"


def microbatch_card(result: RunResult) -> pl.DataFrame:
    """A streaming run's headline figures: latency with its sample count, delivery, capacity, peak vs bulk."""
    m = result.metrics
    lat, d, cap, sat = m.get("latency_s") or {}, m["delivery"], m.get("capacity") or {}, m.get("saturation") or {}
    cpu = m.get("cpu_seconds_by_role") or {}
    items = {
        "run_id": result.run_id,
        "valid": "yes" if result.valid else f"NO: {'; '.join(result.invalid_reasons)}",
        "sustainable at the offered rate": "yes"
        if m.get("sustainable")
        else f"NO: {m.get('not_sustainable_because', '')}",
        "offered / scored (events/s)": f"{m['offered_rate_per_s']:.0f} / {m['throughput_per_s']:.0f}",
        "event latency p50 / p99 / max (ms)": f"{_ms(lat, 'p50')} / {_ms(lat, 'p99')} / {_ms(lat, 'max')}",
        "latency samples": str(lat.get("count", 0)),
        "batch size p50 / max; closed by": f"{m['batch_size']['p50']:.0f} / {m['batch_size']['max']:.0f}; "
        f"{m['batches_closed_by']}"
        if m.get("batch_size")
        else "n/a",
        "delivered / offered; lost; duplicates removed; retries (claimed)": f"{d['delivered_events']} / "
        f"{d['offered_events']}; {d['lost_events']}; {d['duplicates_removed']}; "
        f"{d.get('retries', d.get('claimed_entries', 0))}",
        "max queued events": str(m["backlog"]["max_queued_events"]),
        "CPU-s by role": " / ".join(f"{k} {v:.2f}" for k, v in cpu.items()),
        "source": _source(m),
        "CPU µs per event": f"{1e6 * m['cpu_seconds_per_prediction']:.1f}"
        if m.get("cpu_seconds_per_prediction")
        else "n/a",
        "capacity at SLO (events/s)": f"{cap['rate_per_s']:.0f} ({cap['limited_by']}; {cap['per_core_per_s']:.0f} per core)"
        if cap
        else "not searched",
        "peak throughput / bulk predict (rows/s)": f"{sat['throughput_per_s']:.0f} / {sat['bulk']['rows_per_s']:.0f} "
        f"= {sat['ratio_to_bulk']:.2f}"
        if sat
        else "not measured",
        "Ray start (s), Ray RSS (MiB)": f"{m['ray']['start_s']:.1f}, {m['ray']['rss_bytes_after_start'] / 2**20:.0f}",
        "fault": str(m.get("recovery")) if m.get("recovery") else "none",
    }
    if m.get("broker_fault"):
        f = m["broker_fault"]
        items["broker killed"] = (
            f"at {f['at_s']:.1f} s (appendfsync {f['appendfsync'] or 'off'}), back in {1e3 * f['down_s']:.0f} ms: "
            f"{f['lost_events']} of {f['accepted_events']} accepted events lost, {f['duplicates_removed']} duplicates removed"
        )
    return pl.DataFrame({"metric": list(items), "value": list(items.values())})


def _source(m: dict) -> str:
    """Where a run's events came from, and what the broker cost if there was one."""
    b = m.get("broker")
    if not b:
        return "table (replayed by the driver)"
    per = b.get("cpu_seconds_per_event")
    cost = f"{1e6 * per:.1f} µs CPU per event" if per is not None else "its CPU not measured (external)"
    return f"Valkey stream (appendfsync {b['appendfsync'] or 'off'}): {cost}"


def microbatch_summary(runs: Sequence[RunResult]) -> pl.DataFrame:
    """One row per streaming run: its batch configuration, latency band, capacity, peak vs bulk, delivery."""
    rows = []
    for r in runs_of(runs, PATTERN):
        m = r.metrics
        cap, sat = m.get("capacity") or {}, m.get("saturation") or {}
        rows.append(
            {
                "config": r.backend,
                **_window_columns(m, "scored_per_s", digits=1),
                "capacity_per_s": round(cap["rate_per_s"]) if cap else None,
                "knee_per_s": round(cap["knee"]["rate_per_s"]) if cap and cap.get("knee") else None,
                "peak_per_s": round(sat["throughput_per_s"]) if sat else None,
                "peak_over_bulk": round(sat["ratio_to_bulk"], 3) if sat else None,
                "cpu_us_per_event": round(1e6 * m["cpu_seconds_per_prediction"], 1)
                if m.get("cpu_seconds_per_prediction")
                else None,
                "broker_us_per_event": round(1e6 * m["broker"]["cpu_seconds_per_event"], 1)
                if (m.get("broker") or {}).get("cpu_seconds_per_event") is not None
                else None,
                "lost": m["delivery"]["lost_events"],
                "ray_start_s": round(m["ray"]["start_s"], 1),
                "run_id": r.run_id,
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def plot_backlog(result: RunResult, ax=None):
    """Events queued (arrived, not yet sent to an actor) over time: the main window and the most
    overloaded window of the capacity search, where the backlog grows without bound."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    m = result.metrics
    series = [(f"main @ {m['offered_rate_per_s']:.0f}/s", m["backlog"])]
    curve = (m.get("capacity") or {}).get("curve") or []
    over = [p for p in curve if not p["sustainable"] and p.get("backlog")]
    if over:
        worst = max(over, key=lambda p: p["offered_rate_per_s"])
        series.append((f"overloaded @ {worst['offered_rate_per_s']:.0f}/s", worst["backlog"]))
    for label, b in series:
        ax.plot(b["t_s"], b["queued_events"], label=label)
    ax.set_xlabel("time in window (s)")
    ax.set_ylabel("queued events")
    ax.set_title(f"Backlog over time ({result.backend})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_microbatch_frontier(runs: Sequence[RunResult], ax=None):
    """p99 event latency against scored throughput, one line per batch configuration: the frontier
    each (max_batch, max_wait) choice reaches before its queue takes over."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    drawn = 0
    for r in runs_of(runs, PATTERN):
        cap = r.metrics.get("capacity")
        if not cap or not cap["curve"]:
            continue
        pts = sorted((p for p in cap["curve"] if p["p99_s"] is not None), key=lambda p: p["offered_rate_per_s"])
        ax.plot([p["throughput_per_s"] for p in pts], [1e3 * p["p99_s"] for p in pts], marker="o", label=r.backend)
        drawn += 1
    if not drawn:
        return _empty(ax, "no streaming capacity searches")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("scored events/s (log)")
    ax.set_ylabel("p99 event latency (ms, log)")
    ax.set_title("Streaming: latency vs throughput per batch configuration")
    ax.grid(alpha=0.3, which="both")
    _legend_outside(ax)
    return ax


#: a streaming event's hops in the order it lives them (``metrics["hops"]``: batcher.MicroBatcher._hops
#: for the table source, brokered.BrokerWindow for the broker)
STREAM_HOPS = {
    "source_lag_s": "source lag",
    "batch_wait_s": "wait for its batch to close",
    "backlog_wait_s": "wait for a free actor",
    "round_trip_s": "actor round trip (send, score, answer, sink)",
    "to_broker_s": "producer → broker (the XADD's reply)",
    "in_stream_s": "in the stream until a consumer read it",
    "scoring_s": "scoring (read → scores written)",
    "to_sink_s": "output stream → sink",
    "latency_s": "end to end",
}


def stream_hops_table(runs: Sequence[RunResult]) -> pl.DataFrame:
    """Per streaming run, where an event's time went: p50 and p99 of each hop (ms) with its count."""
    rows = []
    for r in runs_of(runs, PATTERN):
        hops = r.metrics.get("hops")
        if not hops:
            continue  # older results, or a window with no delivered event
        for key, name in STREAM_HOPS.items():
            h = hops.get(key)
            if h:
                rows.append(
                    {
                        "config": r.backend,
                        "hop": name,
                        "p50_ms": round(1e3 * h["p50"], 3),
                        "p99_ms": round(1e3 * h["p99"], 3),
                        "n": h["count"],
                        "run_id": r.run_id,
                    }
                )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def broker_fault_table(runs: Sequence[RunResult]) -> pl.DataFrame:
    """Delivery through the broker under faults, one row per fault run: what was killed (a consumer
    holding a batch, or the broker with its append-only file policy), how long until it was back,
    events accepted, lost, claimed from the dead consumer and delivered twice, and the latency spike."""
    rows = []
    for r in runs_of(runs, PATTERN):
        m = r.metrics
        if not m.get("broker") or not m.get("recovery"):
            continue
        d, rec, f = m["delivery"], m["recovery"], m.get("broker_fault")
        died = [e for e in m.get("fault_events", []) if e.get("kind") == "actor_died"]
        if f:
            what, back = f"broker SIGKILLed (appendfsync {f['appendfsync'] or 'off'})", f["down_s"]
        else:
            what, back = "consumer SIGKILLed holding a batch", died[0].get("restart_s") if died else None
        rows.append(
            {
                "config": r.backend,
                "fault": what,
                "back_after_ms": round(1e3 * back) if back is not None else None,
                "accepted": d["accepted_events"],
                "lost": d["lost_events"],
                "claimed": d["claimed_entries"],
                "duplicates_removed": d["duplicates_removed"],
                "max_latency_after_ms": round(1e3 * rec["max_latency_after_kill_s"]),
                "recovery_s": round(rec["recovery_s"], 2),
                "run_id": r.run_id,
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()
