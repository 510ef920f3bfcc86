# Two commands on a fresh machine: `make run` (the whole pipeline on digits) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch lies on local disk; pinning it first keeps pip from pulling a CUDA build.
TORCH_PIN := torch==2.13.0
# MovieLens 100k (the `ml-100k` source) comes inside this wheel. Only its data files are read, never
# its code, and its pinned dependencies conflict with ours: --no-deps, which pyproject cannot say.
RECBOLE_PIN := recbole==1.2.1
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run lint test test-fast bench bench-search clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps $(RECBOLE_PIN)
	@$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/clpipe run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# The full suite: unit, distributed (gloo), real Ray / Prefect / MLflow end to end, on two
# pytest-xdist workers (tests/parallel.py says how they share it). The slowest tests are listed
# at the end; the aim is 20 minutes on 2 cores (docs/testing.md has the measured times).
# XDIST="" runs it in one process.
XDIST ?= -n 2
test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q --durations=40 $(XDIST) $(PYTEST_ARGS)

# The inner loop, under 5 minutes on 2 cores: everything but the slow tests and the `integration`
# ones, so no Ray, no Prefect server and no MLflow server starts (MLflow on a sqlite file, in
# process, still runs). `make test` runs these too.
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -m "not slow and not integration" $(XDIST) $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/export_throughput.py
	$(BIN)/python benchmarks/ingest_throughput.py

# The nearest-neighbour engines side by side (docs/search.md); installs the other engines first.
bench-search: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/ann_engines.py --rows 200000
	$(BIN)/python benchmarks/ann_engines.py --exact-sizes 5000,20000,50000

clean:
	rm -rf $(VENV) workspace .pytest_cache
