"""Every maintenance and measurement command in ``bench/tools/`` starts and explains itself.

Each runs as users run it (``python -m bench.tools.<name> --help``, in a subprocess: the module's imports
and argument parser are what is checked), and documents what it measures and how to run it. The
commands themselves measure for minutes; none is run for real here.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import bench.tools
from bench.core import paths

TOOLS = sorted(m.name for m in pkgutil.iter_modules(bench.tools.__path__))


def test_the_tools_are_found():
    assert {"cold", "http_windows", "mb_saturation", "publish", "pyspy_summary", "strip", "threads"} <= set(TOOLS)


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.CompletedProcess]:
    """``--help`` of every tool, started together (each pays bench's import time: ~1-2 s on 2 cores)."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"bench.tools.{name}", "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=paths.project_root(),
        )
        for name in TOOLS
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return out


@pytest.mark.parametrize("name", TOOLS)
def test_help_runs(helps, name):
    proc = helps[name]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:"), proc.stdout[:500]


@pytest.mark.parametrize("name", TOOLS)
def test_module_docstring_says_what_and_how(name):
    doc = importlib.import_module(f"bench.tools.{name}").__doc__ or ""
    assert len(doc.strip().splitlines()) >= 1 and doc.strip()[0].isupper(), f"bench.tools.{name} needs a docstring"
    if name not in ("publish", "strip"):  # measurement commands: what they measure, and how to run them
        assert "What it " in doc and f"python -m bench.tools.{name}" in doc, f"bench.tools.{name}'s docstring"


def test_publish_refuses_runs_of_a_dirty_tree_or_of_several_commits(tmp_path):
    import json

    import pytest

    from bench.core.errors import BenchError
    from bench.tools.publish import one_clean_commit

    def run(name: str, commit: str, dirty: bool) -> None:
        d = tmp_path / "runs" / name
        d.mkdir(parents=True)
        doc = {"run_id": name, "provenance": {"git": {"commit": commit, "dirty": dirty}}}
        (d / "result.json").write_text(json.dumps(doc))

    run("a", "c1", False)
    run("b", "c1", False)
    assert one_clean_commit(tmp_path) == "c1"
    run("c", "c2", False)
    with pytest.raises(BenchError, match="come from 2 commits"):
        one_clean_commit(tmp_path)
    run("d", "c1", True)
    with pytest.raises(BenchError, match=r"1 run\(s\) come from a dirty tree.*'d'"):
        one_clean_commit(tmp_path)
