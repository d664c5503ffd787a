# accord: `make run` trains and publishes the demo ensemble; `make test` runs the suite.
# Both create .venv and install everything on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
INSTALL := $(BIN)/pip install --quiet -e '.[dev]'

.PHONY: install run test test-fast lint bench reliability-report clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(INSTALL)
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/accord train --name demo

test: $(STAMP)
	$(BIN)/pytest

# the tests not marked slow (no flow run, no cluster start): the lane to run while editing
test-fast: $(STAMP)
	$(BIN)/pytest -m 'not slow'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.quality
	$(BIN)/python -m bench.parallel
	$(BIN)/python -m bench.transfer
	$(BIN)/python -m bench.scale
	$(BIN)/python -m bench.keras_steps
	$(BIN)/python -m bench.predict

reliability-report: $(STAMP)
	$(BIN)/python -m bench.reliability

clean:
	rm -rf $(VENV) registry .pytest_cache .mypy_cache .ruff_cache
