"""Views for the hybrid pattern and the claims built on it: run card, staleness, lookup vs fallback,
faults side by side (C8), features at request time (C10), and the age of each pattern's answer (C3).

A run's ``lookup`` says who read the store: the lookup server (``server``) or the client itself
(``direct``, no model server: a miss is answered "not found", never scored live). Both kinds sit in
one summary, each with its lookup latency and the store's CPU per answer, so the server's share of a
lookup reads off the difference.

Staleness is measured in the run on a compressed schedule (refresh every few seconds); the age a
consumer reads is uniform between the job's duration D and the interval R plus D when reads are
spread evenly, so the measured CDF is drawn beside that model, and the model — with the measured D
— projects the staleness at the real schedule (e.g. every 24 h).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from bench.analysis import cost
from bench.patterns.hybrid import PATTERN
from bench.results import RunResult
from bench.views.report import _legend_outside, family, runs_of


def _ms(d: dict | None, key: str = "p50") -> str:
    return f"{1e3 * d[key]:.2f}" if d and d.get(key) is not None else "n/a"


def _us(seconds: float | None, per: int | None) -> str:
    return f"{1e6 * seconds / per:.1f}" if seconds is not None and per else "n/a"


def _lookup(m: dict) -> str:
    """Who read the store; runs from before ``lookup="direct"`` existed all went through the server."""
    return m.get("lookup") or "server"


def _job_wall(m: dict) -> float | None:
    job = m.get("job") or {}
    return (job.get("wall_s") or {}).get("p50")


def staleness_quantiles(interval_s: float, job_s: float, q: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ages a consumer reads when a job of ``job_s`` runs every ``interval_s`` and reads are uniform in time."""
    return job_s + np.asarray(q, dtype=float) * interval_s


def hybrid_card(result: RunResult) -> pl.DataFrame:
    """A hybrid run's headline figures: lookup and fallback latency with counts, hit ratio, staleness, jobs, fault."""
    m = result.metrics
    lat, look, fall = m.get("latency_s"), m.get("lookup_latency_s"), m.get("fallback_latency_s")
    st, job, cap, fault = m.get("staleness_s"), m.get("job") or {}, m.get("capacity") or {}, m.get("batch_fault")
    miss = m.get("not_found_latency_s")
    store = m["store"]
    direct = _lookup(m) == "direct"
    items = {
        "run_id": result.run_id,
        "valid": "yes" if result.valid else f"NO: {'; '.join(result.invalid_reasons)}",
        "who reads the store": "the client itself (direct, no model server)" if direct else "the lookup server (HTTP)",
        "sustainable at the offered rate": "yes" if m.get("sustainable") else "NO",
        "offered / answered (req/s)": f"{m['offered_rate_per_s']:.1f} / {m['throughput_per_s']:.1f}",
        "all answers p50 / p99 (ms), n": f"{_ms(lat)} / {_ms(lat, 'p99')}, n={(lat or {}).get('count', 0)}",
        "lookups p50 / p99 (ms), n": f"{_ms(look)} / {_ms(look, 'p99')}, n={(look or {}).get('count', 0)}",
        **(
            {"not found p50 / p99 (ms), n": f"{_ms(miss)} / {_ms(miss, 'p99')}, n={(miss or {}).get('count', 0)}"}
            if direct
            else {
                "live fallbacks p50 / p99 (ms), n": f"{_ms(fall)} / {_ms(fall, 'p99')}, "
                f"n={(fall or {}).get('count', 0)}"
            }
        ),
        "hit ratio measured (target)": f"{m['hit_ratio']:.3f} ({m['hit_ratio_target']})"
        if m.get("hit_ratio")
        else "n/a",
        "store": f"{store['kind']}, {store['rows']:,} rows, {store['bytes'] / 2**20:.1f} MiB",
        "batch job wall p50 (s), runs": f"{_job_wall(m):.2f}, {job.get('runs')}" if job else "n/a",
        "batch job CPU-s / rows per s (scoring)": f"{job['cpu_s']:.2f} / {job['rows_per_s']:,.0f}" if job else "n/a",
        "staleness p50 / p99 / max (s), n": (
            f"{st['p50']:.2f} / {st['p99']:.2f} / {st['max']:.2f}, n={st['count']} "
            f"(refresh every {m['refresh_interval_s']} s)"
            if st
            else "n/a"
        ),
        "serving CPU µs per answer": _us(m.get("cpu_seconds"), m.get("predictions"))
        + (" (the store alone: no server)" if direct else " (the server with its store)"),
        "store CPU µs per answer": _us(store.get("cpu_seconds"), m.get("predictions")),
        "capacity at SLO (req/s)": f"{cap['rate_per_s']:.0f} ({cap['limited_by']})" if cap else "not searched",
        "errors": str(m.get("errors")),
        "killed refresh": _fault_text(fault) if fault else "none",
    }
    return pl.DataFrame({"metric": list(items), "value": list(items.values())})


def _fault_text(f: dict) -> str:
    before, after = f.get("staleness_max_before_s"), f.get("staleness_max_after_s")
    ages = f"oldest score read {before:.2f} s before, {after:.2f} s after" if before and after else "ages n/a"
    return (
        f"killed {f['killed_at_s']:.1f} s in ({'before' if f['killed_before_publish'] else 'AFTER'} publishing), "
        f"re-run {'ok' if f['rerun_ok'] else 'FAILED'}; {f['errors']} errors; {ages}"
    )


def plot_staleness(result: RunResult, ax=None):
    """Measured CDF of the age of the scores read (compressed schedule) beside the uniform model."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    s = _steady_ages(result)
    if s.size == 0:
        ax.text(0.5, 0.5, "no lookups from refreshed generations", ha="center", transform=ax.transAxes)
        return ax
    x = np.sort(s)
    ax.plot(x, np.arange(1, x.size + 1) / x.size, label=f"measured (n={x.size})")
    m = result.metrics
    d, r = _job_wall(m), m.get("refresh_interval_s")
    if d and r:
        q = np.linspace(0, 1, 101)
        ax.plot(staleness_quantiles(r, d, q), q, "--", label=f"model: uniform on [D, R+D], D={d:.2f} s, R={r} s")
    ax.set_xlabel("age of the score read (s)")
    ax.set_ylabel("fraction of lookups")
    ax.set_title("Hybrid: staleness a consumer reads")
    ax.legend(loc="lower right")
    return ax


def _steady_ages(result: RunResult) -> np.ndarray:
    """Ages of the main window's lookups from generations its own refreshes published (as the run's
    ``staleness_s``): the first generation was read before the server started."""
    if result.samples is None or "age_s" not in result.samples.columns:
        return np.array([])
    s = result.samples.filter(
        (pl.col("window") == "main")
        & (pl.col("intended_s") >= pl.col("warmup_s"))
        & (pl.col("status") == 200)
        & (pl.col("from_store") == 1)
    )
    refreshed = [j["as_of"] for j in result.metrics.get("jobs", []) if j["kind"] != "initial" and j["ok"]]
    if refreshed:
        s = s.filter(pl.col("as_of") >= min(refreshed))
    return s["age_s"].to_numpy()


def hybrid_summary(runs: Sequence[RunResult]) -> pl.DataFrame:
    """One row per hybrid run: lookup vs fallback latency, hit ratio, staleness, job time, capacity."""
    rows = []
    for r in runs_of(runs, PATTERN):
        m = r.metrics
        st, cap = m.get("staleness_s") or {}, m.get("capacity") or {}
        miss = m.get("fallback_latency_s") or m.get("not_found_latency_s")
        rows.append(
            {
                "run_id": r.run_id,
                "configuration": r.backend,
                "lookup by": _lookup(m),
                "valid": r.valid,
                "lookup p50 / p99 ms": f"{_ms(m.get('lookup_latency_s'))} / {_ms(m.get('lookup_latency_s'), 'p99')}",
                "lookups n": (m.get("lookup_latency_s") or {}).get("count", 0),
                #: a miss: scored live by the server, or answered "not found" to a direct client
                "miss (live / not found) p50 / p99 ms": f"{_ms(miss)} / {_ms(miss, 'p99')}",
                "misses n": (miss or {}).get("count", 0),
                "serving CPU µs/answer": _us(m.get("cpu_seconds"), m.get("predictions")),
                "store CPU µs/answer": _us((m.get("store") or {}).get("cpu_seconds"), m.get("predictions")),
                "hit ratio": m.get("hit_ratio"),
                "staleness p50 / max s": f"{st['p50']:.2f} / {st['max']:.2f}" if st else "n/a",
                "staleness n": st.get("count", 0),
                "refresh every s": m.get("refresh_interval_s"),
                "job wall s": _job_wall(m),
                "capacity req/s": cap.get("rate_per_s"),
                "errors": sum((m.get("errors") or {}).values()),
                "killed refresh": bool(m.get("batch_fault")),
            }
        )
    return pl.DataFrame(rows)


def _s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def fault_table(runs: Sequence[RunResult]) -> pl.DataFrame:
    """Claim C8 side by side: a killed batch refresh (hybrid) vs a killed model server (per request)."""
    rows = []
    for r in runs:
        m = r.metrics
        if family(r) == "hybrid" and m.get("batch_fault"):
            f = m["batch_fault"]
            rows.append(
                {
                    "run_id": r.run_id,
                    "what was killed": "hybrid: the batch refresh job",
                    "valid": r.valid,
                    "failed requests": f["errors"],
                    "unavailable s": 0.0 if not f["errors"] else None,
                    "oldest score read before / after (s)": f"{_s(f['staleness_max_before_s'])} / "
                    f"{_s(f['staleness_max_after_s'])}",
                    "recovery": f"re-run {'ok' if f['rerun_ok'] else 'failed'} in {f['rerun_wall_s'] or 0:.2f} s",
                }
            )
        if family(r) == "real-time" and m.get("fault_events"):
            u = m.get("unavailability") or {}
            ev = m["fault_events"][0]
            rows.append(
                {
                    "run_id": r.run_id,
                    "what was killed": f"per-request: the model server ({r.backend})",
                    "valid": r.valid,
                    "failed requests": u.get("failed_requests", 0),
                    "unavailable s": u.get("unavailable_s", 0.0),
                    "oldest score read before / after (s)": "0 / 0 (scored live)",
                    "recovery": f"restarted in {ev['restart_s']:.2f} s" if ev.get("restarted") else "not restarted",
                }
            )
    return pl.DataFrame(rows)


def aggregate_table(runs: Sequence[RunResult]) -> pl.DataFrame:
    """Claim C10: per-request runs answering a 90-day aggregate on the fly vs pre-computed, beside plain scoring."""
    rows = []
    for r in runs:
        p, m = r.params, r.metrics
        if family(r) != "real-time" or p.get("backend") != "http" or p.get("fault_kill_at_s"):
            continue
        if p.get("server_app", "fastapi") != "fastapi" or p.get("server_workers", 1) != 1:
            continue
        lat, cap = m.get("latency_s"), m.get("capacity") or {}
        agg = m.get("aggregate") or {}
        rows.append(
            {
                "feature": {
                    "onthefly": "computed per request (polars)",
                    "precomputed": "read pre-computed (SQLite)",
                }.get(p.get("aggregate", ""), "none (score only)"),
                "activity log rows": agg.get("log_rows"),
                "p50 ms": round(1e3 * lat["p50"], 3) if lat else None,
                "p99 ms": round(1e3 * lat["p99"], 3) if lat else None,
                "samples": lat["count"] if lat else 0,
                "server CPU µs/request": round(1e6 * m["cpu_seconds_per_prediction"], 1)
                if m.get("cpu_seconds_per_prediction")
                else None,
                "capacity req/s": cap.get("rate_per_s"),
                "valid": r.valid,
                "run_id": r.run_id,
            }
        )
    return pl.DataFrame(rows).sort("feature") if rows else pl.DataFrame()


_QUANTILES = (("min", 0.0), ("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p99_9", 0.999), ("max", 1.0))


def plot_consumer_age(runs: Sequence[RunResult], prices, workload, ax=None):
    """Claim C3 in one picture: how old a prediction is when it is used, per costed option, log axis.

    Real time and streaming: the measured latency quantiles (request or event to score). Batch and
    hybrid: uniform between the job time D and the schedule R plus D, with D measured at the workload's
    volume and R the workload's batch interval (hybrid lookups themselves take milliseconds).
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(8, 4.5))[1]
    opts, _ = cost.options(runs)
    if not opts:
        ax.text(0.5, 0.5, "no costed runs yet", ha="center", transform=ax.transAxes)
        return ax
    by_id = {r.run_id: r for r in runs}
    interval = workload.batch_every_h * 3600
    for o in opts:
        if o.kind == "always-on":
            lats = [by_id[m.run_id].metrics.get("latency_s") for m in o.measures]
            lats = [x for x in lats if x]
            if not lats:
                continue
            xs = [float(np.median([x[k] for x in lats])) for k, _ in _QUANTILES]
            n = int(np.median([x["count"] for x in lats]))
            ax.step(xs, [q for _, q in _QUANTILES], where="post", label=f"{o.label} (n={n})")
        else:
            d = o.cost(workload, prices)["job_wall_s"]
            q = np.linspace(0, 1, 51)
            ax.plot(
                staleness_quantiles(interval, d, q), q, "--", label=f"{o.label}: D={d:.1f} s, R={interval / 3600:g} h"
            )
    ax.set_xscale("log")
    ax.set_xlabel("age of the prediction when used (s, log)")
    ax.set_ylabel("fraction of predictions used")
    ax.set_title(f"How fresh is each pattern's answer ({workload.predictions_per_day:,.0f} predictions/day)")
    ax.grid(alpha=0.3, which="both")
    _legend_outside(ax)
    return ax
