# Every target builds its own virtual environment: nothing installed by hand is assumed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/sor: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/sor

.PHONY: example test lint bench
example: $(BIN)/sor
	cd examples/hello && ../../$(BIN)/sor local invoke . --event event.json

lint: $(BIN)/sor
	$(BIN)/ruff check sor tests bench runtimes middlewares
	$(BIN)/ruff format --check sor tests bench runtimes middlewares
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -n 2 tests

bench: $(BIN)/sor
	$(BIN)/python -m bench
