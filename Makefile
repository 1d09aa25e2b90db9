# The README's two commands: `make report` and `make test`. Both set everything up on first use.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
PROFILE ?= default
STAMP   := $(VENV)/.installed
# MLServer (the off-the-shelf anchor, bench/systems/mlserver.py) in a venv of its own: it pins
# FastAPI < 0.116, which the harness's .venv does not. ~25 s and ~480 MB on the 2-core VM.
MLSERVER_VENV  := .venv-mlserver
MLSERVER_STAMP := $(MLSERVER_VENV)/.installed

# Keep Jupyter, IPython and matplotlib state inside the checkout, not in $HOME.
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.jupyter/runtime
export IPYTHONDIR          := $(CURDIR)/.jupyter/ipython
export MPLCONFIGDIR        := $(CURDIR)/.jupyter/matplotlib
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup setup-mlserver report publish test lint strip clean

setup: $(STAMP) $(MLSERVER_STAMP)

# Re-install whenever pyproject.toml changes; register the venv's interpreter as the `bench`
# Jupyter kernel so papermill never looks for a hand-registered one.
$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; install Python 3.11 or run make PY=/path/to/python3.11"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@$(BIN)/python -m pip install --quiet -e '.[compiled]' \
	  || echo "warning: the compiled predictor (lleaves + llvmlite 0.44) did not install here; predictor=lleaves runs will be skipped, lightgbm runs as usual"
	$(BIN)/bench kernel
	@touch $@


setup-mlserver: $(MLSERVER_STAMP)

$(MLSERVER_STAMP):
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; install Python 3.11 or run make PY=/path/to/python3.11"; exit 1; }
	$(PY) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MLSERVER_VENV)/bin/python -m pip install --quiet mlserver==1.7.1 mlserver-lightgbm==1.7.1
	@touch $@

report: setup
	$(BIN)/bench pipeline --profile $(PROFILE)

# After `make report PROFILE=full`: copy the report, its plots, verdicts and provenance to results/published/.
publish: setup
	$(BIN)/python -m bench.tools.publish

test: setup
	$(BIN)/ruff check bench tests
	@# the layers contract (pyproject): its full report only when broken, a line when kept
	@out=$$($(BIN)/lint-imports 2>&1) || { echo "$$out"; exit 1; }; echo "lint-imports: the layers contract is kept"
	$(BIN)/python -m bench.tools.strip --check notebooks
	$(BIN)/pytest

# Remove outputs from notebooks under notebooks/ (executed copies belong in results/).
strip: setup
	$(BIN)/python -m bench.tools.strip notebooks

clean:
	rm -rf $(VENV) $(MLSERVER_VENV) .jupyter .pytest_cache .benchmarks
