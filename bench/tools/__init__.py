"""Commands outside a benchmark run, each ``python -m bench.tools.<name> --help``.

Maintenance: ``strip`` (notebook outputs), ``publish`` (the committed report). Performance investigation
(results/perf/README.md): ``http_windows``, ``mb_saturation``, ``cold``, ``threads``, ``pyspy_summary``.
They use only bench's public API; each module's docstring says what it measures and how to run it.
"""
