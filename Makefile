# The two commands of the README: `make demo` and `make test`. Each sets up everything it
# needs on a fresh machine: the virtualenv and its packages, the Cassandra jars, the node.
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: venv check test test-fast soak demo bench node-start node-stop clean mutation haproxy

# requirements-dev.txt: the migration's requirements.txt and the checks, tests and benchmark tools;
# requirements-frameworks.txt: LangChain and LlamaIndex, for the tests that read migrated tables
# back through them (tests/test_frameworks.py). The migration itself needs requirements.txt only.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-frameworks.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt -r requirements-frameworks.txt
	touch $@

venv: $(VENV)/.installed

check: venv  ## formatting, lint and types
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: check haproxy  ## offline tests (no Java); then on a real node (started if none answers): fast, slow, cluster, astra
	$(PY) -m pytest -q -m "not node"
	scripts/with-node.sh sh -c '$(PY) -m pytest -q -m "node and not slow and not cluster and not astra" \
		&& $(PY) -m pytest -q -m "node and slow and not cluster and not astra" && $(PY) -m pytest -q -m cluster \
		&& $(PY) -m pytest -q -m astra'

# The Astra-like database's SNI proxy (scripts/astra-local.sh), from Debian's packages, as the jars from Maven.
haproxy:
	@command -v haproxy >/dev/null || { apt-get update -qq && apt-get install -y -qq haproxy; }

test-fast: venv  ## the offline tests only: no database, no Java
	$(PY) -m pytest -q -m "not node"

# tests/test_model.py at length: random seed (printed; MODEL_SEED=N repeats it), SOAK_EXAMPLES state machine
# runs of up to SOAK_STEPS steps; a failure is shrunk and printed with its steps and @reproduce_failure blob.
soak: venv  ## the model-based adversary test, many random examples (not in make test's bound)
	scripts/with-node.sh env HYPOTHESIS_PROFILE=soak $(PY) -m pytest -q -s -p no:cacheprovider tests/test_model.py

demo: venv  ## create.py, migrate.py, migrate.py --verify on a local node
	scripts/with-node.sh scripts/demo.sh

bench: venv  ## the benchmark of docs/benchmark.md
	scripts/with-node.sh $(PY) -m bench.run

# Not in CI: mutmut over the modules that guard correctness ([tool.mutmut] in pyproject.toml), against
# the offline tests; the score per module at the end. Results are cached in mutants/ (rm -rf it to
# start over). MUTATION_JOBS: worker processes (each runs pytest).
MUTATION_JOBS ?= 2
mutation: venv  ## mutation testing of plan, transform, verify, rejects, state, copy, digest, lease (docs/mutation.md)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-mutation.txt
	$(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS)
	$(VENV)/bin/mutmut results --all true | $(PY) scripts/mutation-score.py

node-start:
	scripts/cassandra.sh start

node-stop:
	scripts/cassandra.sh stop

clean:
	rm -rf mutants runs last-error.txt .pytest_cache .mypy_cache .ruff_cache
