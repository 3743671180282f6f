# The two set-up commands of the README: `make up` (install + bring everything up) and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: install up down status test bench wheel

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

# The wheel that `ray up cluster/deploy/ray-cluster-*.yaml` copies to every node (dist/).
wheel: install
	rm -rf dist && $(PY) -m pip wheel -q --no-deps -w dist .
