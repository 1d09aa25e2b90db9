"""The patterns: one folder each, one shape for all — ``run(workload, model, params, context) -> RunResult``.

``base`` holds what they share; ``registry`` lists them (the CLI, the pipeline and the notebooks look
patterns up there: no if/elif factory).
"""
