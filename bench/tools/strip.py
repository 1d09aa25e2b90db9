"""Strip outputs and execution counts from notebooks (``--check``: fail if any notebook has them).

Committed notebooks stay reviewable: outputs belong to the executed copies under ``results/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat


def dirty_cells(nb) -> int:
    return sum(1 for c in nb.cells if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count")))


def strip(nb) -> None:
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs = []
            c.execution_count = None
    nb.metadata.pop("papermill", None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    files = [f for p in args.paths for f in (sorted(p.rglob("*.ipynb")) if p.is_dir() else [p])]
    bad = []
    for f in files:
        nb = nbformat.read(f, as_version=4)
        if dirty_cells(nb):
            bad.append(f)
            if not args.check:
                strip(nb)
                nbformat.write(nb, f)
    if args.check and bad:
        print("notebooks with outputs (run `make strip`):", *map(str, bad), sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
