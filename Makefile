# Two commands do all the set-up from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test faults lint typecheck check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[postgres,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/agentfleet demo

test: $(STAMP)
	$(PY) -m pytest -q

# The long fault run (minutes); see `$(PY) -m tests.faults.run --help` for every option.
faults: $(STAMP)
	$(PY) -m tests.faults.run --backend both --scenario each --duration 120

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) .agentfleet .pytest_cache .mypy_cache .ruff_cache
