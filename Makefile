# The two set-up commands of the README: `make up` (install + bring everything up) and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: install up down status test bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build (this machine's wheel folder); neuralforecast would otherwise pull CUDA
	$(PY) -m pip install -q 'torch==2.13.0'
	$(PY) -m pip install -q -e '.[test,forecast]'
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
