"""Copy a finished report into ``results/published/``: executed notebooks, HTML, headline plots, verdicts.

``python -m bench.tools.publish [--results DIR] [--out DIR]`` after ``make report PROFILE=full``. The
headline plots are the PNGs the executed report already holds (nothing is re-drawn), the verdict and
crossover tables are computed from the same results with the report's default parameters, and
``provenance.json`` lists every run behind them with its commit, machine and validity.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
from pathlib import Path

import polars as pl

from bench.analysis import cost, verdicts
from bench.app import notebook
from bench.core import paths
from bench.core.errors import BenchError
from bench.views import limits as report_limits
from bench.views import report

#: report cell (its first line) -> the PNG it becomes
PLOTS = {
    "report.plot_request_cdfs(": "latency_cdfs.png",
    "report.plot_request_load_curves(": "latency_vs_load.png",
    "report.plot_cpu_per_prediction(": "cpu_per_prediction.png",
    "report.plot_cost_curves(": "cost_per_day.png",
    "report_hybrid.plot_consumer_age(": "staleness.png",
    "batch_view.plot_batch_throughput(": "batch_throughput.png",
    "microbatch_view.plot_microbatch_frontier(": "streaming_frontier.png",
    "report_limits.plot_call_size_curve(": "call_size_curve.png",
    "request_view.plot_hops(": "request_hops.png",
}


def extract_plots(notebook: Path, out: Path, plots: dict[str, str] = PLOTS) -> list[Path]:
    """Write the first PNG output of each cell named in ``plots``; a missing one is an error, not a gap."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    written = []
    for prefix, name in plots.items():
        cell = next((c for c in nb.cells if c.cell_type == "code" and c.source.startswith(prefix)), None)
        png = next(
            (o["data"]["image/png"] for o in (cell or {}).get("outputs", []) if "image/png" in o.get("data", {})), None
        )
        if png is None:
            raise BenchError(f"{notebook}: no plot from a cell starting {prefix!r}; was the report executed?")
        (out / name).write_bytes(base64.b64decode(png))
        written.append(out / name)
    return written


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(v).replace("|", "\\|")


def markdown(df) -> str:
    """A polars frame as a GitHub markdown table (cells' pipes escaped)."""
    cols = df.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.iter_rows():
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def tables(results_dir: Path) -> tuple[str, dict]:
    """The verdict and crossover tables (report defaults) as markdown, and the runs behind them."""

    sel = report.select(results_dir)
    P = notebook.ReportNotebook()
    prices = cost.load_prices(P.prices_file or None, P.price_preset or None)
    workload = cost.Workload(P.predictions_per_day, P.batch_every_h, P.peak_to_mean, P.min_replicas)
    valid = sel.runs  # the selection's runs are the valid ones of one machine
    verdict = verdicts.table(valid, prices, workload).select("claim", "the article says", "measured", "verdict")
    table = cost.sweep(valid, prices, workload)
    _, realtime, _ = verdicts._pick(valid, prices, workload)
    refs = ["batch (local)"] + ([realtime.label] if realtime else [])
    frames = [f for f in (cost.crossovers(table, reference=ref) for ref in refs) if not f.is_empty()]
    cross = pl.concat(frames) if frames else pl.DataFrame()
    text = f"## Verdicts\n\nPrices `{prices.name}` (as of {prices.as_of}); {workload.predictions_per_day:,.0f} predictions/day, "
    text += f"batch every {workload.batch_every_h:g} h, peak/mean {workload.peak_to_mean:g}, ≥{workload.min_replicas} replicas.\n\n"
    text += markdown(verdict)
    text += f"\n## Crossover volumes (10³–10⁹ predictions/day) against {' and '.join(refs)}\n\n"
    text += markdown(cross) if not cross.is_empty() else "No option's cost crosses a reference's.\n"
    if cross.is_empty() or "batch (local)" not in cross["reference"].to_list():
        text += "\nNo option's cost crosses batch's anywhere in the sweep: batch is the cheapest at every volume.\n"
    text += _predictor_tables(valid, prices, workload)
    runs = [
        {
            "run_id": r.run_id,
            "pattern": r.pattern,
            "backend": r.backend,
            "profile": r.profile,
            "valid": r.valid,
            "invalid_reasons": r.invalid_reasons,
            "git": r.provenance.get("git"),
            "utc": r.provenance.get("utc"),
        }
        for r in [*sel.runs, *sel.invalid]
    ]
    machine = sel.runs[0].provenance.get("machine") if sel.runs else None
    packages = sel.runs[0].provenance.get("packages") if sel.runs else None
    return text, {"machine_label": sel.machine, "machine": machine, "packages": packages, "runs": runs}


def _predictor_tables(runs, prices, workload) -> str:
    """The predictor's sections: verdicts per backend, per-row cost vs call size, each pattern's limits."""

    text = ""
    both = verdicts.by_predictor(runs, prices, workload)
    if len(both.columns) > 2:
        keep = [c for c in both.columns if not c.startswith("measured")]
        text += "\n## Does a compiled predictor change any verdict?\n\n" + markdown(both.select(keep))
    calls = report_limits.call_size_table(runs)
    if not calls.is_empty():
        text += "\n## Per-row cost against rows per call (the predictor alone, one thread)\n\n" + markdown(calls)
    limits = report_limits.limits_table(runs)
    if not limits.is_empty():
        text += "\n## Limits: each pattern's throughput against the raw predictor's\n\n" + markdown(limits)
    return text


def one_clean_commit(results_dir: Path) -> str:
    """The one commit every run on disk was made from, with a clean tree; else a BenchError saying
    which runs come from a dirty tree or from which commits (a publication never mixes code)."""
    docs = [json.loads(f.read_text()) for f in sorted((results_dir / "runs").glob("*/result.json"))]
    if not docs:
        raise BenchError(f"{results_dir / 'runs'} holds no result: run `make report PROFILE=full` first")
    gits = {d["run_id"]: (d.get("provenance") or {}).get("git") or {} for d in docs}
    dirty = sorted(run for run, g in gits.items() if g.get("dirty") is not False)
    if dirty:
        raise BenchError(f"{len(dirty)} run(s) come from a dirty tree (or say nothing of it), e.g. {dirty[:3]}")
    commits = sorted({g.get("commit") for g in gits.values()}, key=str)
    if len(commits) != 1:
        raise BenchError(f"the runs come from {len(commits)} commits ({', '.join(map(str, commits))}): publish one")
    return str(commits[0])


def publish(results_dir: Path, out: Path, *, one_commit: bool = True) -> Path:
    """Copy the executed report into ``out`` with its plots, tables and provenance; returns ``out``.
    Refused unless every run comes from one clean commit (:func:`one_clean_commit`; ``one_commit``
    False only for tests of the copying, run from a working tree); ``out`` is
    replaced, not merged, so nothing of an earlier publication is left beside it."""
    report_nb = results_dir / "notebooks" / "90_report.ipynb"
    if not report_nb.exists():
        raise BenchError(f"{report_nb} does not exist: run `make report PROFILE=full` first")
    if one_commit:
        one_clean_commit(results_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("notebooks/90_report.ipynb", "notebooks/95_recommend.ipynb", "report.html", "recommend.html"):
        src = results_dir / name
        if not src.exists():
            raise BenchError(f"{src} does not exist: run `make report PROFILE=full` first")
        shutil.copy2(src, out / Path(name).name)
    extract_plots(report_nb, out)
    text, prov = tables(results_dir)
    (out / "verdicts.md").write_text(text, encoding="utf-8")
    (out / "provenance.json").write_text(json.dumps(prov, indent=1, default=str), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=None, help="results directory (default results/)")
    parser.add_argument("--out", type=Path, default=None, help="default results/published/")
    args = parser.parse_args(argv)
    results_dir = args.results or paths.results_dir()
    try:
        print(publish(results_dir, args.out or results_dir / "published"))
    except BenchError as exc:
        print(f"publish: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
