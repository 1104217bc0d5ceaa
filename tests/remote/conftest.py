"""Two real vLLM OpenAI servers (the embedded pilot and base, on this CPU) shared by the remote
tests, and WSD servers whose engines are those servers."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.background import free_port, wait_ready
from server.settings import AppConfig
from tests.conftest import LiveServer, serve
from wsd_engine.config import ModelConfig
from wsd_engine.engines.vllm_server import as_remote, vllm_server_command

SERVER_START_TIMEOUT_S = 600
# The servers run next to the session's in-process engines: small KV caches keep the four
# engines within this machine's memory (2 GiB each made the kernel kill one).
SERVER_KV_CACHE_GIB = 0.5


@dataclass
class VLLMServer:
    """One vLLM OpenAI server process serving a configured model."""

    model: ModelConfig
    model_path: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        model = self.model.model_copy(update={"kv_cache_space_gib": SERVER_KV_CACHE_GIB})
        command = vllm_server_command(model, self.model_path, port=self.port)
        self.process = command.start(self.log_path)

    def wait_ready(self) -> None:
        wait_ready(f"{self.url}/health", self.process, timeout_s=SERVER_START_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM to the server's process group (it ends its engine core), then wait."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _metric_sum(self, *names: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        prefixes = tuple(f"{name}{{" for name in names)
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefixes)
        )

    def requests_in_engine(self) -> float:
        """vLLM's own gauges of the requests its engine is running or has waiting."""
        return self._metric_sum("vllm:num_requests_running", "vllm:num_requests_waiting")

    def tokens_processed(self) -> float:
        """vLLM's counters of prompt and generated tokens, summed."""
        return self._metric_sum("vllm:prompt_tokens_total", "vllm:generation_tokens_total")


@dataclass
class VLLMServers:
    pilot: VLLMServer
    base: VLLMServer


@pytest.fixture(scope="module")
def vllm_servers(
    embedded_config: AppConfig, model_paths: dict[str, Path], tmp_path_factory: Any
) -> Iterator[VLLMServers]:
    """The embedded pilot and base, each as a vLLM OpenAI server on a free loopback port,
    for this module's tests (stopped after them, so that later tests have the memory)."""
    logs = tmp_path_factory.mktemp("vllm-servers")
    servers = VLLMServers(
        *(
            VLLMServer(model, model_paths[model.served_model_name], logs / f"{role}.log")
            for role, model in (("pilot", embedded_config.pilot), ("base", embedded_config.base))
        )
    )
    try:
        for server in (servers.pilot, servers.base):
            server.start()
        for server in (servers.pilot, servers.base):
            server.wait_ready()
        yield servers
    finally:
        for server in (servers.pilot, servers.base):
            server.stop()


@pytest.fixture(scope="module")
def remote_config(embedded_config: AppConfig, vllm_servers: VLLMServers) -> AppConfig:
    """The embedded config with both engines reached over HTTP."""
    return embedded_config.model_copy(
        update={
            "pilot": as_remote(embedded_config.pilot, vllm_servers.pilot.url),
            "base": as_remote(embedded_config.base, vllm_servers.base.url),
        }
    )


def start_remote_wsd(
    config: AppConfig, model_paths: dict[str, Path], loop: Any
) -> Iterator[LiveServer]:
    """A WSD server (the app starts its remote engines, as `wsd serve` does)."""
    from server.app import create_app

    app = create_app(config, model_paths)
    yield from serve(app, loop, engines=None)


@pytest.fixture(scope="module")
def remote_wsd(remote_config, model_paths, server_loop) -> Iterator[LiveServer]:
    yield from start_remote_wsd(remote_config, model_paths, server_loop)
