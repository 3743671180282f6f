# The two set-up commands of the README: `make up` (install + bring everything up) and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
MUTATE_STAMP = $(VENV)/.mutate-installed

.PHONY: install up down status test bench mutate

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

up: install
	$(VENV)/bin/gpubroker up

down: install
	$(VENV)/bin/gpubroker down

status: install
	$(VENV)/bin/gpubroker status

test: install
	$(VENV)/bin/gpubroker services
	PYTHONPATH=$(CURDIR) $(PY) -m pytest -q -W ignore::DeprecationWarning

# Mutation testing of domain/ with the service-free unit tests (mutmut; minutes, bounded by MUTATE_TIMEOUT_S).
# Not part of `make test`. Writes benchmarks/results/mutation.json.
$(MUTATE_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,mutate]'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	PYTHONPATH=$(CURDIR) $(PY) benchmarks/mutation.py
