# braid: `make demo` runs the product on the embedded default, `make test` runs lint and tests.
# Both install what they need first (a .venv with torch's CPU wheel, then the project).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= braid-data
SAMPLE := tests/data/sample.jsonl
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo serve worker test test-fast lint bench bench-sparse clean

install: $(STAMP)

# torch first, pinned to the CPU wheel on disk: anything that pulls torch later finds it
# satisfied instead of downloading a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/braid ingest $(SAMPLE) --data-dir $(DATA_DIR)
	$(BIN)/braid search "how does reciprocal rank fusion combine rankings" --data-dir $(DATA_DIR)

serve: install
	$(BIN)/braid serve --data-dir $(DATA_DIR)

# The one writer of a split deployment (needs BRAID_QDRANT__MODE=server; see README).
worker: install
	$(BIN)/braid worker --data-dir $(DATA_DIR)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test-fast: install
	$(BIN)/pytest -q -m "not slow"

test: lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/braid bench query --docs 100000 --json

bench-sparse: install
	$(BIN)/braid bench sparse --chunks 1000000 --json

clean:
	rm -rf $(VENV) $(DATA_DIR) .mypy_cache .ruff_cache .pytest_cache
