# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NODES  ?= 3
# Basho's riak 2.7.0 client, which the suite runs against real nodes: its protobuf
# (python3_protobuf 2.5) and ours cannot share one environment, so it gets its own.
RIAK_VENV ?= .venv-riak

.PHONY: run test lint typecheck unit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[fast]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[fast,test]'
	touch $@ $(VENV)/.installed

$(RIAK_VENV)/.installed:
	$(PYTHON) -m venv $(RIAK_VENV)
	$(RIAK_VENV)/bin/python -m pip install -q 'riak==2.7.0'
	touch $@

run: $(VENV)/.installed
	$(BIN)/dynamo up --nodes $(NODES)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

test: $(VENV)/.installed-test $(RIAK_VENV)/.installed
	bash tests/setup.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	# The pure layers (no sockets, no processes) on every core; then the layers with
	# real sockets and node processes one test at a time, so no test's timing competes
	# with another's.
	$(BIN)/pytest -n auto tests/unit tests/sim
	$(BIN)/pytest tests/integration tests/lab tests/cluster tests/chaos

unit: $(VENV)/.installed-test
	$(BIN)/pytest tests/unit

clean:
	rm -rf $(VENV) $(RIAK_VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
