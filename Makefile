# The two commands of the README: `make demo` and `make test`. Each sets up everything it
# needs on a fresh machine: the virtualenv and its packages, the Cassandra jars, the node.
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: venv check test test-fast soak demo bench node-start node-stop clean

# requirements-frameworks.txt: LangChain and LlamaIndex, for the tests that read migrated tables
# back through them (tests/test_frameworks.py); the migration itself needs requirements.txt only.
$(VENV)/.installed: requirements.txt requirements-frameworks.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-frameworks.txt
	touch $@

venv: $(VENV)/.installed

check: venv  ## formatting, lint and types
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: check  ## offline tests (no Java); then on a real node (started if none answers): fast, slow, cluster
	$(PY) -m pytest -q -m "not node"
	scripts/with-node.sh sh -c '$(PY) -m pytest -q -m "node and not slow and not cluster" \
		&& $(PY) -m pytest -q -m "node and slow and not cluster" && $(PY) -m pytest -q -m cluster'

test-fast: venv  ## the offline tests only: no database, no Java
	$(PY) -m pytest -q -m "not node"

# tests/test_model.py at length: random seed (printed; MODEL_SEED=N repeats it), SOAK_EXAMPLES state machine
# runs of up to SOAK_STEPS steps; a failure is shrunk and printed with its steps and @reproduce_failure blob.
soak: venv  ## the model-based adversary test, many random examples (not in make test's bound)
	scripts/with-node.sh env HYPOTHESIS_PROFILE=soak $(PY) -m pytest -q -s -p no:cacheprovider tests/test_model.py

demo: venv  ## create.py, migrate.py, migrate.py --verify on a local node
	scripts/with-node.sh scripts/demo.sh

bench: venv  ## the benchmark of the README
	scripts/with-node.sh $(PY) -m bench.run

node-start:
	scripts/cassandra.sh start

node-stop:
	scripts/cassandra.sh stop

clean:
	rm -rf runs last-error.txt .pytest_cache .mypy_cache .ruff_cache
