# Every target builds its own virtual environment: nothing installed by hand is assumed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Installed from the lock: PIP_CONSTRAINT also pins the build backend in pip's isolated build.
LOCK := $(CURDIR)/requirements.lock
$(BIN)/sor: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=$(LOCK) $(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/sor

# The shipped middlewares written in Python have no .py suffix: ruff checks them when named.
LINTED := sor tests bench runtimes middlewares middlewares/log-event middlewares/validate-event \
	middlewares/http-errors

.PHONY: example test lint bench node node-deps lock
example: $(BIN)/sor
	cd examples/hello && ../../$(BIN)/sor local invoke . --event event.json

lint: $(BIN)/sor
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

# The Node adapter and middlewares are part of what is tested: no Node, no test run.
node:
	@command -v node >/dev/null || { echo "make test needs Node.js >= 18 on PATH"; exit 1; }

# aws-lambda-ric, AWS's own Node runtime client (npm, pinned in tests/node/package-lock.json), is
# the reference the Node adapter is compared with. npm ci runs when node_modules is missing or
# older than the lock; its native build (curl, aws-lambda-cpp) needs autotools besides cmake and g++.
NODE_DEPS := tests/node
NODE_STAMP := $(NODE_DEPS)/node_modules/.package-lock.json
$(NODE_STAMP): $(NODE_DEPS)/package.json $(NODE_DEPS)/package-lock.json | node
	@command -v autoreconf >/dev/null || { \
		[ "$$(id -u)" = 0 ] || { echo "aws-lambda-ric needs autoconf automake libtool: install them"; exit 1; }; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q autoconf automake libtool; }
	cd $(NODE_DEPS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-deps: $(NODE_STAMP)

test: lint node-deps
	$(BIN)/python -m pytest -q -n 2 tests

bench: $(BIN)/sor
	$(BIN)/python -m bench

# Re-pin every dependency to its newest release allowed by pyproject.toml, on purpose. Resolved
# on the oldest Python sor supports, so that the pins install on every supported Python (and a
# layer for python3.10 builds): `make lock LOCK_PYTHON=/path/to/python3.10` names another one.
LOCK_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10) python3.10)
lock:
	rm -rf .lock-venv
	$(LOCK_PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[dev]' hatchling editables
	{ sed -n '/^#/p' requirements.lock; .lock-venv/bin/pip freeze --exclude-editable | grep -v '^#'; } \
		> requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf .lock-venv
