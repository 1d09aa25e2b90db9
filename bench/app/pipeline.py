"""Execute the notebooks with papermill: one pattern run (``bench run``), the report, or the whole pipeline.

Each executed notebook is kept: pattern runs in their run directory beside result.json, the data,
model and report notebooks under ``results/notebooks/``. Parameters are validated before papermill
starts, so a bad one fails in milliseconds with its name, not minutes later inside a kernel.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import model, results
from bench.app import profiles, runner
from bench.core import paths
from bench.core.errors import BenchError
from bench.core.files import atomic_write_bytes
from bench.core.params import from_string, parse
from bench.data import workload as workload_mod
from bench.model import training
from bench.patterns import registry
from bench.patterns.base import PatternParams

#: The Jupyter kernel the pipeline runs notebooks in: this interpreter, registered under the venv.
KERNEL_NAME = "bench"
NOTEBOOK_TIMEOUT_S = 3 * 3600  #: bound on any one cell
#: The exported pages' titles (a browser tab, a bookmark, a search result: not "Notebook").
REPORT_TITLE = "Batch, streaming or real time — what scoring costs (measured)"
RECOMMEND_TITLE = "Which pattern? The article's four questions, answered with measurements"


def isolate_jupyter_dirs() -> None:
    """Keep Jupyter, IPython and matplotlib state inside the project, not in $HOME."""
    state = paths.project_root() / ".jupyter"
    for var, sub in (("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "matplotlib")):
        os.environ.setdefault(var, str(state / sub))
        Path(os.environ[var]).mkdir(parents=True, exist_ok=True)


def ensure_kernel() -> str:
    """Register this interpreter as the ``bench`` kernel inside sys.prefix if it is not there yet.

    Papermill otherwise resolves the notebook's ``python3`` kernel through the user's Jupyter paths,
    which on a fresh machine may be missing ("No such kernel") or point at another Python.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    spec_dir = specs.get(KERNEL_NAME)
    if spec_dir is None or not Path(spec_dir).resolve().is_relative_to(Path(sys.prefix).resolve()):
        from ipykernel.kernelspec import install

        install(kernel_name=KERNEL_NAME, display_name="Python 3 (bench)", prefix=sys.prefix)
    return KERNEL_NAME


def execute(notebook: str, output: Path, parameters: dict[str, Any]) -> Path:
    """Run ``notebooks/<notebook>`` with papermill into ``output`` (kept even when a cell fails)."""
    import papermill

    source = paths.notebooks_dir() / notebook
    if not source.is_file():
        raise BenchError(f"notebook {str(source)!r} does not exist")
    isolate_jupyter_dirs()
    output.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(source),
        str(output),
        parameters=parameters,
        kernel_name=ensure_kernel(),
        cwd=str(paths.project_root()),
        progress_bar=False,
        execution_timeout=NOTEBOOK_TIMEOUT_S,
    )
    return output


def pattern_parameters(pattern: str, profile: str, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """The profile's parameters for ``pattern`` with ``key=value`` overrides, validated (raises BenchError)."""
    spec = registry.get(pattern)
    values = profiles.get(profile).pattern_params(pattern)
    for key, text in (overrides or {}).items():
        values[key] = from_string(spec.params, key, text, owner=pattern)
    parse(spec.params, values, owner=pattern)
    return values


def check_inputs(params: Any) -> None:
    """Check the files a run will read before papermill starts (raises BenchError naming the file):
    the data file (readable, > 0 rows, the schema, its sidecar's hash) and a cached model (its
    sidecar's hash, before LightGBM parses it). Inside a kernel the same errors came last in a
    40–60-line traceback, or as DeadKernelError when LightGBM crashed on a truncated model."""
    if params.model_path:  # a user's model: its features decide what the data must hold
        runner.resolve_workload(params, training.load(params.model_path).schema)
        return
    if params.data_path:
        runner.resolve_workload(params)
    path = training.cached_model_path(runner.model_params(params))
    if path is not None and path.exists() and path.with_suffix(".json").exists():  # else it is retrained
        training.verify_file(path)


def _cell_failure(exc: Exception, notebook: Path) -> BenchError:
    """A failed cell as one line: the BenchError's message (or the exception's type and message),
    and where the executed notebook with the whole traceback is."""
    ename, evalue = getattr(exc, "ename", type(exc).__name__), str(getattr(exc, "evalue", exc)).strip()
    cause = evalue if ename == "BenchError" else f"{ename}: {evalue}"
    return BenchError(f"{cause} (the executed notebook: {notebook})")


def run_pattern(pattern: str, values: dict[str, Any], profile: str, results_dir: Path | None = None) -> Path:
    """Execute the pattern's notebook once; returns the run directory (result.json + executed notebook).

    Parameters and input files are checked first: a run refused before it started leaves no run
    directory. A cell that fails raises BenchError with its one-line cause; the executed notebook stays."""
    spec = registry.get(pattern)
    params = parse(spec.params, values, owner=pattern)
    check_inputs(params)
    run_id = results.new_run_id(pattern)
    run_dir = results.run_dir_for(run_id, results_dir)
    results.ensure_writable(run_dir)
    output = run_dir / spec.notebook
    try:
        execute(spec.notebook, output, {**values, "profile": profile, "run_dir": str(run_dir)})
    except Exception as exc:
        if type(exc).__name__ not in ("PapermillExecutionError", "DeadKernelError"):
            raise
        raise _cell_failure(exc, output) from exc
    if not (run_dir / results.RESULT_FILE).exists():
        raise BenchError(f"notebook {spec.notebook} finished without writing {run_dir / results.RESULT_FILE}")
    return run_dir


def export_html(notebook: Path, html: Path, title: str) -> Path:
    """The executed notebook as a standalone HTML page titled ``title``, without code cells, written atomically."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    node = nbformat.read(str(notebook), as_version=4)
    node.metadata["title"] = title  # nbconvert's lab template titles the page from it ("Notebook" otherwise)
    body, _ = exporter.from_notebook_node(node, resources={"metadata": {"name": title}})
    atomic_write_bytes(html, lambda tmp: tmp.write_text(body, encoding="utf-8"))
    return html


def report(results_dir: Path | None = None, profile: str = "") -> Path:
    """Execute 90_report and 95_recommend over every result under ``results_dir``; export their HTML."""
    results_dir = results_dir or paths.results_dir()
    results.ensure_writable(results_dir)
    nb = execute(
        "90_report.ipynb",
        results_dir / "notebooks" / "90_report.ipynb",
        {"results_dir": str(results_dir), "profile": profile},
    )
    rec = execute(
        "95_recommend.ipynb", results_dir / "notebooks" / "95_recommend.ipynb", {"results_dir": str(results_dir)}
    )
    export_html(rec, results_dir / "recommend.html", RECOMMEND_TITLE)
    return export_html(nb, results_dir / "report.html", REPORT_TITLE)


def setup_notebooks(profile: str, results_dir: Path | None = None, workload: dict[str, str] | None = None) -> None:
    """Execute 00_data and 01_model for ``profile`` (generate the data, train the model); each is
    skipped when the user's ``workload`` gives the table (``data_path``) or the model (``model_path``)."""
    prof = profiles.get(profile)
    out = (results_dir or paths.results_dir()) / "notebooks"
    rows = max(prof.batch_rows)
    if not (workload or {}).get("data_path"):
        execute("00_data.ipynb", out / "00_data.ipynb", {"rows": rows, "train_rows": prof.model["train_rows"]})
    if not (workload or {}).get("model_path"):
        execute("01_model.ipynb", out / "01_model.ipynb", {"profile": profile, **prof.model})


#: What ``bench pipeline --param`` may set: the workload every run shares (your model and table).
WORKLOAD_PARAMS = ("model_path", "data_path", "id_column")


def check_workload(profile: str, workload: dict[str, str]) -> int | None:
    """Refuse a ``bench pipeline --param`` other than :data:`WORKLOAD_PARAMS`, and check the model
    and table (features, types, ids) before any run. Returns the table's rows (None: generated data)."""
    unknown = sorted(set(workload) - set(WORKLOAD_PARAMS))
    if unknown:
        raise BenchError(
            f"bench pipeline --param sets only {', '.join(WORKLOAD_PARAMS)} (the workload every run shares), "
            f"not {unknown}; use bench run for one pattern's parameters"
        )
    if not workload:
        return None
    params = parse(PatternParams, dict(workload), owner="bench pipeline")  # what every pattern shares
    schema = training.load(params.model_path).schema if params.model_path else workload_mod.SYNTHETIC
    data = runner.resolve_workload(params, schema)
    return data.rows if params.data_path else None


def plan(profile: str, name: str, workload: dict[str, str], table_rows: int | None) -> tuple[list[dict], int]:
    """The sweep points of pattern ``name`` on the user's workload, and how many were left out: with a
    model file, the model-cost sweep's other models; with a table, the batch sizes (a batch run scores
    the whole table) but the first, and every point fitted to the table (``Pattern.fit_to_table``)."""
    prof, spec = profiles.get(profile), registry.get(name)
    points = prof.sweep(name)
    if not workload:
        return points, 0
    kept = [v for v in points if not workload.get("model_path") or prof.is_base_model(v)]
    if table_rows is not None:
        sizes = getattr(prof, spec.sweep.sizes) if spec.sweep.sizes else ()
        kept = [spec.fit_to_table(v, table_rows) for v in kept if not sizes or v.get("rows") == sizes[0]]
        if sizes:  # a sized run reads the whole table: its label says so
            kept = [{**v, "rows": table_rows} for v in kept]
    return [{**v, **workload} for v in kept], len(points) - len(kept)


def _describe(pattern: str, values: dict[str, Any]) -> str:
    """One sweep point in a progress line (the pattern's own ``label``)."""
    return registry.get(pattern).label(values)


def full(profile: str, results_dir: Path | None = None, log=print, workload: dict[str, str] | None = None) -> Path:
    """Everything ``make report`` does: data, model, every pattern's sweep, then the report. With a
    ``workload`` (``model_path``, ``data_path``, ``id_column``), every run scores the user's model and table."""
    prof = profiles.get(profile)
    workload = dict(workload or {})
    results.ensure_writable(results_dir or paths.results_dir())
    table_rows = check_workload(profile, workload)  # before any work
    t0 = time.perf_counter()
    log(f"[bench] profile {profile}: {prof.description}")
    if workload:
        log(f"[bench] your workload: {', '.join(f'{k}={v}' for k, v in workload.items())}")
    if not (workload.get("data_path") and workload.get("model_path")):
        log("[bench] 00_data, 01_model: generating data and training the model")
    setup_notebooks(profile, results_dir, workload)
    failed = []
    for name in registry.names():
        sweep, left_out = plan(profile, name, workload, table_rows)
        if left_out:
            log(f"[bench] {name}: {left_out} run(s) of the profile left out (your model, your table)")
        for i, values in enumerate(sweep, 1):
            predictor = values.get("predictor", "lightgbm")
            on = "" if predictor == "lightgbm" else f", {predictor}"
            # a run of the model-cost sweep names its model: it is not the profile's own (a user's model file is)
            sweep_model = not values.get("model_path") and not prof.is_base_model(values)
            on += f", model {values['trees']}×{values['leaves']}" if sweep_model else ""
            what = f"{name} {i}/{len(sweep)} ({_describe(name, values)}{on})"
            unavailable = model.predictor_unavailable(predictor)
            if unavailable:  # an optional backend missing here is said once per run, not a failure
                log(f"[bench] {what}: SKIPPED: {unavailable}")
                continue
            try:
                run_dir = run_pattern(name, values, profile, results_dir)
            except Exception as exc:  # one failed run must not throw away an hour of the others
                if type(exc).__name__ != "PapermillExecutionError" and not isinstance(exc, BenchError):
                    raise
                failed.append(f"{what}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc!r}")
                log(f"[bench] {what}: FAILED, going on ({failed[-1]})")
                continue
            log(f"[bench] {what}: {run_dir}")
    html = report(results_dir, profile)
    log(f"[bench] done in {time.perf_counter() - t0:.0f} s")
    if failed:  # the report is written (it lists runs without a result); the command still fails
        raise BenchError(f"{len(failed)} run(s) failed; the report shows the others:\n" + "\n".join(failed))
    return html
