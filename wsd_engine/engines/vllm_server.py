"""Serving a configured model as a vLLM OpenAI server, for WSD's remote engines to reach.

The command carries the same engine settings as the in-process adapter (dtype, context, prefix
caching, block size, KV cache, CPU binding), plus what the remote adapter needs from a base
model's server: the token-in/token-out endpoint and cached-token counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from wsd_engine.config import ModelConfig

_GIB = 1 << 30


@dataclass(frozen=True)
class ServerCommand:
    """A vLLM server's command line and the environment variables it needs."""

    argv: tuple[str, ...]
    env: dict[str, str]

    def shell(self) -> str:
        """The command as one shell line."""
        assignments = [f"{key}={value}" for key, value in self.env.items()]
        return " ".join([*assignments, *self.argv])

    def start(self, log_path: Path) -> subprocess.Popen[bytes]:
        """Start the server in its own process group, its output going to `log_path`."""
        log = log_path.open("wb")
        return subprocess.Popen(
            self.argv,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def vllm_server_command(
    model: ModelConfig,
    model_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    on_cpu: bool = True,
) -> ServerCommand:
    """`python -m vllm.entrypoints.openai.api_server` for one local model config."""
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_path),
        "--served-model-name", model.served_model_name,
        "--dtype", model.dtype,
        "--max-model-len", str(model.max_model_len),
        "--host", host,
        "--port", str(port),
        # scoring passes go through /inference/v1/generate and read cached-token counts
        "--enable-scale-out",
        "--enable-prompt-tokens-details",
        "--disable-uvicorn-access-log",
    ]  # fmt: skip
    argv.append(
        "--enable-prefix-caching" if model.enable_prefix_caching else "--no-enable-prefix-caching"
    )
    if model.enforce_eager:
        argv.append("--enforce-eager")
    if model.block_size is not None:
        argv += ["--block-size", str(model.block_size)]
    if model.max_num_batched_tokens is not None:
        argv += ["--max-num-batched-tokens", str(model.max_num_batched_tokens)]
    if model.tensor_parallel_size > 1:
        argv += ["--tensor-parallel-size", str(model.tensor_parallel_size)]
    if api_key:
        argv += ["--api-key", api_key]
    env: dict[str, str] = {}
    if on_cpu:
        argv += ["--kv-cache-memory-bytes", str(int(model.kv_cache_space_gib * _GIB))]
        if model.cpu_threads_bind is not None:
            env["VLLM_CPU_OMP_THREADS_BIND"] = model.cpu_threads_bind
        if model.cpu_reserved_cores is not None:
            env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(model.cpu_reserved_cores)
    else:
        argv += ["--gpu-memory-utilization", str(model.gpu_memory_utilization)]
    return ServerCommand(tuple(argv), env)


def as_remote(model: ModelConfig, url: str, api_key: str | None = None) -> ModelConfig:
    """The config of a local model once it is served at `url` (same id, tokenizer, template)."""
    tokenizer = model.embedded.value if model.embedded is not None else model.path
    return ModelConfig(
        served_model_name=model.served_model_name,
        url=url,
        tokenizer=tokenizer,
        api_key=api_key,
        prompt_template=model.prompt_template,
    )
