# From a clean clone: `make book` (render the committed results/, minutes) and `make test`; `make results`
# regenerates results/ (hours at cpu). Each sets up .venv idempotently.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PRESET ?= cpu
EXP    ?=
SEEDS  ?=
# datasets: the project's machines keep them in ../shared/data (README there); override with WMASK_DATA=...
WMASK_DATA ?= $(wildcard $(abspath $(CURDIR)/../shared/data))
export WMASK_DATA
# the book build: every chapter reads results/ (trains nothing), warnings are errors, figures need MPLBACKEND unset
BUILD_BOOK = env -u MPLBACKEND PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter-book build . --all -W --keep-going

.PHONY: setup test book results status figures bench gpu-check clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0    # the CPU wheel first, so nothing pulls CUDA packages
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# the linter, unit tests (the layer contracts among them) + papermill runs of every notebook at smoke with run=true (they train, into _build/results), then
# nbval re-executes the executed copies and compares their verdict cells, then the book readers get: built from the
# committed results/ with warnings as errors, then every page is opened in headless Chromium (skipped, with the
# reason, where chromium is absent)
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests --ignore=tests/browser
	$(BIN)/python -m pytest -q --nbval-lax _build/papermill
	$(MAKE) --no-print-directory book
	$(BIN)/python -m pytest -q -rs tests/browser

# the book from the committed results/ (never trains): which results are stale is printed first, then the build
book: setup
	$(BIN)/python -m wmask status
	WMASK_PRESET=cpu $(BUILD_BOOK)
	@echo "open _build/html/index.html"

# regenerate results/ at PRESET from a clean tree: `make results PRESET=cpu EXP=addmul,scan SEEDS=0-2`
results: setup
	$(BIN)/python -m wmask results --preset $(PRESET) $(if $(EXP),--experiments $(EXP)) $(if $(SEEDS),--seeds $(SEEDS))

# every committed result: current, or stale with the computing files changed since
status: setup
	$(BIN)/python -m wmask status

# the README's figure, from the committed results/
figures: setup
	env -u MPLBACKEND $(BIN)/python -m wmask.book.figures book/figures/overview.png

# every model the book trains: plain vs masked step, M sets batched vs one after another (benchmarks/README.md)
bench: setup
	$(BIN)/python benchmarks/mask_step.py --model all

# on a GPU: checks, the bench and the presets' projected time in one run of < 8 min on an H100, written to $OUT or
# _build/gpu-check (benchmarks/README.md); without CUDA a dry run at tiny sizes on the CPU. Needs no setup: the
# venv's torch is the CPU wheel, so on a GPU machine give a Python with CUDA torch (make gpu-check GPU_PYTHON=python3)
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check:
	PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" $(GPU_PYTHON) benchmarks/gpu_check.py

clean:
	rm -rf _build
