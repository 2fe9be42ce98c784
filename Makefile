# The project's table of contents: `make demo` sets up and runs a real local-model loop,
# `make test` runs the tests. Both create .venv on first use.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
HOME_DIR ?= $(HOME)/.sandloop

# llama-cpp-python, for the llamacpp: platform, compiles from source with the flags below: 16
# CPU-minutes measured beside the tests (more with everything, as `pip install .[llamacpp]`).
# These flags leave out what sandloop never calls: the multimodal library, examples, tools.
# The wheel is cached outside the clone, one folder per version, and compiled only when missing.
LLAMACPP_VERSION := 0.3.36
LLAMACPP        := llama-cpp-python==$(LLAMACPP_VERSION)
LLAMACPP_CMAKE  := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF \
                   -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
CACHE_DIR       ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/sandloop
LLAMACPP_WHEELS := $(CACHE_DIR)/llamacpp-$(LLAMACPP_VERSION)

.PHONY: setup setup-llamacpp llamacpp-wheel demo test test-slow test-deep fuzz test-llamacpp lint bench clean openapi

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of PyTorch first: any other spec pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# keyrings.alt, the tests' keyring backend (a plain file), lives outside .venv: installed there it
# would become the user's keyring, and keys "in the keyring" would sit in a readable file. The
# tests put .test-site on their path (tests/conftest.py).
TEST_SITE  := .test-site
TEST_STAMP := $(TEST_SITE)/.installed
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q --no-deps --target $(TEST_SITE) 'keyrings.alt>=5,<6'
	touch $(TEST_STAMP)

# With the system's Python and pip, not .venv's, so it can start before `make setup` (pip builds
# it in an isolated environment either way).
llamacpp-wheel:  ## compile llama-cpp-python into $(LLAMACPP_WHEELS), unless it is there
	ls $(LLAMACPP_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMACPP_CMAKE)" $(PY) -m pip wheel -q --no-deps -w $(LLAMACPP_WHEELS) '$(LLAMACPP)'

setup-llamacpp: $(STAMP) llamacpp-wheel  ## the llamacpp extra, compiled on first use
	$(BIN)/pip install -q --find-links $(LLAMACPP_WHEELS) -e '.[llamacpp]'

# The demo runs Gemma on llama.cpp when the llamacpp extra is installed, else on transformers.
demo: $(STAMP)
	net=gemma-trio; $(BIN)/python -c "import llama_cpp" 2>/dev/null && net=gemma-trio-llamacpp; \
	$(BIN)/sandloop run examples/networks/$$net.yaml --genesis "a red balloon" --seed 7 --max-steps 6
	$(BIN)/sandloop runs

# Two pytest workers (pytest-xdist), a test file each at a time: the tests mostly wait on
# subprocesses and servers, so two keep both cores busy.
XDIST := -n 2 --dist loadfile

test: $(STAMP) $(TEST_STAMP)
	$(BIN)/pytest -q -m "not slow" $(XDIST) --durations=15

# The slow tests two at a time, then the few that time what they watch (kills, leases, rate
# limits, schedules) apart from them: the CPU-heavy ones (eight writers, Gemma) made them miss.
# These mostly wait on timers, so two of them share the cores well.
test-slow: $(STAMP) $(TEST_STAMP)
	$(BIN)/pytest -q -m "slow and not alone and not deep" $(XDIST) --durations=15
	$(BIN)/pytest -q -m "slow and alone and not deep" $(XDIST) --durations=8

# The few slow tests that CI leaves out for time (a harder test covers the same ground).
test-deep: $(STAMP) $(TEST_STAMP)
	$(BIN)/pytest -q -m deep $(XDIST)

# The fuzz suite with 8 times the cases of `make test`, for exploration (see benchmarks/RESULTS.md);
# CI runs it once, in `make test`.
fuzz: $(STAMP) $(TEST_STAMP)
	SANDLOOP_FUZZ_EXAMPLES=2000 $(BIN)/pytest -q -s tests/fuzz

# The llamacpp tests fail, not skip, here when llama-cpp-python is missing.
test-llamacpp: setup-llamacpp $(TEST_STAMP)
	SANDLOOP_REQUIRE_LLAMACPP=1 $(BIN)/pytest -q -m llamacpp

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks notebooks
	$(BIN)/ruff format --check src tests benchmarks notebooks
	$(BIN)/mypy

openapi: $(STAMP)  ## regenerate docs/openapi.json after changing the HTTP API
	$(BIN)/python -c "import json; from sandloop.web.app import create_app; print(json.dumps(create_app().openapi(), indent=2, sort_keys=True))" > docs/openapi.json

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_step_overhead.py
	$(BIN)/python benchmarks/bench_driver.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_sweep_local.py
	$(BIN)/python benchmarks/bench_trajectories.py
	$(BIN)/python benchmarks/bench_sweep_memory.py
	$(BIN)/python benchmarks/bench_record_throughput.py
	$(BIN)/python benchmarks/bench_store_reads.py
	$(BIN)/python benchmarks/bench_search.py
	$(BIN)/python benchmarks/bench_embed.py
	$(BIN)/python benchmarks/bench_local_reuse.py
	if $(BIN)/python -c "import llama_cpp" 2>/dev/null; then \
	  $(BIN)/python benchmarks/bench_llamacpp.py; else echo "bench_llamacpp: needs make setup-llamacpp"; fi
	$(BIN)/python benchmarks/bench_local_speech.py
	$(BIN)/python benchmarks/bench_router.py
	$(BIN)/python benchmarks/bench_catalog.py
	$(BIN)/python benchmarks/bench_export.py --million
	$(BIN)/python benchmarks/bench_judge.py
	$(BIN)/python benchmarks/bench_image_export.py --n 25000
	$(BIN)/python benchmarks/bench_export_mixed.py --n 1000000 --repeat 2
	$(BIN)/python benchmarks/bench_prefect_backends.py
	$(BIN)/python benchmarks/bench_handoff.py
	$(BIN)/python benchmarks/bench_cli_start.py
	$(BIN)/python benchmarks/bench_api.py
	$(BIN)/python benchmarks/bench_gallery.py --n 50
	$(BIN)/python benchmarks/bench_streams.py --streams 500
	$(BIN)/python benchmarks/bench_work_queue.py
	$(BIN)/python benchmarks/bench_remote_home.py
	$(BIN)/python benchmarks/bench_workers.py

clean:
	rm -rf $(VENV) $(TEST_SITE) .pytest_cache .mypy_cache .ruff_cache
