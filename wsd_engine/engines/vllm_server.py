"""Serving a configured model as a vLLM OpenAI server, for WSD's remote engines to reach.

The command carries the engine settings the in-process adapter gets (`vllm_common.py` renders
them as flags), plus what the remote adapter needs from a base model's server: the
token-in/token-out endpoint and cached-token counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from wsd_engine.config import ModelConfig
from wsd_engine.engines.vllm_common import engine_settings


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
    settings = engine_settings(model, model_path, on_cpu=on_cpu)
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        *settings.server_flags(),
        "--host", host,
        "--port", str(port),
        # scoring passes go through /inference/v1/generate and read cached-token counts
        "--enable-scale-out",
        "--enable-prompt-tokens-details",
        "--disable-uvicorn-access-log",
    ]  # fmt: skip
    if api_key:
        argv += ["--api-key", api_key]
    return ServerCommand(tuple(argv), settings.env)


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
