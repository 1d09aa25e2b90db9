"""A pattern owns its hooks: nothing outside ``bench/patterns/`` branches on a pattern's name, and every
registered pattern fills every hook the layers above ask (cost, verdicts, the pipeline, the views)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path

import pytest

from bench.app import profiles
from bench.core import paths
from bench.patterns import base, registry

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _names_a_pattern(node: ast.AST) -> bool:
    """``pattern``, ``r.pattern``, ``self.pattern_name``...: an expression that holds a pattern's name."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return "pattern" in name.lower()


def _strings(node: ast.AST) -> list[str]:
    """The string literals of ``"batch"`` or ``("batch", "request")``; [] for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for elt in node.elts for s in _strings(elt)]
    return []


def name_comparisons(source: str, known: set[str]) -> list[tuple[int, str]]:
    """Line and text of each comparison of a pattern-holding expression with a string literal, and of
    each dict literal keyed by two or more registered pattern names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(map(_names_a_pattern, operands)) and any(_strings(o) for o in operands):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
            if len(keys & known) >= 2:
                found.append((node.lineno, "dict keyed by " + ", ".join(sorted(keys & known))))
    return found


def test_the_scan_finds_what_it_forbids():
    known = {"batch", "request"}
    bad = 'if r.pattern == "batch": pass\nok = pattern in ("request", "x")\nd = {"batch": 1, "request": 2}\n'
    assert [line for line, _ in name_comparisons(bad, known)] == [1, 2, 3]
    good = 'if r.pattern == spec.name: pass\nfam = family(r) == "batch"\nd = {"batch_compiled": ()}\n'
    assert name_comparisons(good, known) == []


def test_no_pattern_name_comparisons_outside_patterns():
    known = set(registry.names())
    offenders = []
    for path in sorted(BENCH.rglob("*.py")):
        if (BENCH / "patterns") in path.parents:
            continue
        for line, text in name_comparisons(path.read_text(encoding="utf-8"), known):
            offenders.append(f"{path.relative_to(BENCH.parent)}:{line}: {text}")
    assert not offenders, "ask the Pattern's hooks (bench.patterns.base.Pattern) instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize("name", registry.names())
def test_every_pattern_provides_every_hook(name):
    spec = registry.get(name)
    for f in dataclasses.fields(base.Pattern):
        assert getattr(spec, f.name) is not None, f"{name}: hook {f.name!r} is not set"
    assert spec.family in base.FAMILIES
    assert spec.cost_kind in base.COST_KINDS
    assert spec.limits in base.LIMIT_BASES
    assert (paths.notebooks_dir() / spec.notebook).is_file()
    assert importlib.import_module(spec.view)  # its report views exist
    assert callable(spec.run) and dataclasses.is_dataclass(spec.params)
    assert isinstance(spec.latency_key, str) and spec.latency_key.endswith("_s")
    profile_fields = {f.name for f in dataclasses.fields(profiles.Profile)}
    named = {k: v for k, v in dataclasses.asdict(spec.sweep).items() if v}
    assert spec.sweep.base and set(named.values()) <= profile_fields, f"{name}: sweep names unknown profile fields"
    for prof in profiles.PROFILES.values():
        points = prof.sweep(name)
        assert points, f"{prof.name}: no {name} runs"
        for values in points:
            label = spec.label(values)
            assert isinstance(label, str) and label


def test_each_family_is_one_pattern():
    """Verdicts and cost options are built per family: two patterns of one family would be merged."""
    families = [registry.get(n).family for n in registry.names()]
    assert len(families) == len(set(families))


def test_a_function_level_import_of_bench_says_why() -> None:
    """No function-level import hides a cycle: the few lazy ones (Ray, an optional branch, a Ray actor's
    own process) carry a comment on the line above saying why; import-linter checks the direction."""
    unexplained = []
    for path in sorted(BENCH.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                module = inner.module if isinstance(inner, ast.ImportFrom) else None
                names = [a.name for a in inner.names] if isinstance(inner, ast.Import) else [module or ""]
                if any(n == "bench" or n.startswith("bench.") for n in names):
                    above = lines[inner.lineno - 2].strip() if inner.lineno > 1 else ""
                    if not above.startswith("#"):
                        unexplained.append(f"{path.relative_to(BENCH.parent)}:{inner.lineno}")
    assert not unexplained, f"function-level imports of bench without a why-comment above: {unexplained}"
