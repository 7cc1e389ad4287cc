# Two commands do all the set-up from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test browser faults mutation mutation-full mutation-report lint typecheck check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[postgres,web,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/agentfleet demo

# The suite runs on two processes (pytest-xdist); TEST_JOBS=1 runs it in one.
TEST_JOBS ?= 2

test: $(STAMP) browser
	$(PY) -m pytest -q -n $(TEST_JOBS)

# The dashboard's browser tests drive Debian's chromium (never a downloaded browser build).
# Installed once, only where it is missing and apt-get can run (as root or with sudo -n).
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then sudo=""; \
		elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
		else echo "chromium is missing (apt-get install -y chromium as root); browser tests will skip"; exit 0; fi; \
		echo "installing chromium for the browser tests"; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null \
		|| echo "could not install chromium; browser tests will skip (and fail under CI)"; \
	fi

# The long fault run (minutes); see `$(PY) -m tests.faults.run --help` for every option.
faults: $(STAMP)
	$(PY) -m tests.faults.run --backend both --scenario each --duration 120

# Mutation tests of the store and the plans (minutes to hours; see README, Tests). The tool
# comes from the optional `mutation` group, installed here only, never by `make test`.
MUTATION_STAMP := $(VENV)/.mutation-stamp
MUTATION_JOBS ?= 2

$(MUTATION_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[postgres,web,dev,mutation]'
	touch $(MUTATION_STAMP)

mutation: $(MUTATION_STAMP)
	$(PY) -m tests.mutation.run --jobs $(MUTATION_JOBS)

mutation-full: $(MUTATION_STAMP)
	$(PY) -m tests.mutation.run --full --jobs $(MUTATION_JOBS)

mutation-report:
	$(PY) -m tests.mutation.report

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) .agentfleet .pytest_cache .mypy_cache .ruff_cache mutants
