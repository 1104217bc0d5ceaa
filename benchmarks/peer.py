"""The peer: vLLM's own OpenAI server of the base model, measured like our modes."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from benchmarks.measure import ModeResult, Settings, aggregate, run_load, stream_chat
from server.background import free_port, wait_ready
from server.settings import AppConfig
from wsd_engine.templates import PLAIN_STOP_STRINGS, render_plain_text

logger = logging.getLogger("wsd.bench")


class Peer:
    """Plain vLLM OpenAI server of the base model (vLLM's own CPU defaults), on loopback."""

    def __init__(self, config: AppConfig, paths: dict[str, Path]) -> None:
        self.base = config.base
        self.port = free_port()
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(paths[self.base.served_model_name]),
            "--served-model-name", self.base.served_model_name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", self.base.dtype, "--max-model-len", str(self.base.max_model_len),
            "--enforce-eager", "--disable-log-stats",
        ]  # fmt: skip
        if self.base.block_size:
            command += ["--block-size", str(self.base.block_size)]
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(int(self.base.kv_cache_space_gib))}
        logger.info("starting the peer: %s", " ".join(command))
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def wait_ready(self) -> None:
        """Block until the peer answers its health check (it loads while our engines do)."""
        wait_ready(f"http://127.0.0.1:{self.port}/health", self.process)

    def bench(self, settings: Settings) -> list[ModeResult]:
        """Every concurrency level against the peer."""
        self.wait_ready()
        url = f"http://127.0.0.1:{self.port}/v1/completions"
        results = []
        for concurrency in settings.concurrencies:
            # the plain-template prompts our base mode uses, and its stop strings (vLLM's
            # server takes at most 4; these three are inside every one of ours)
            bodies = [
                {
                    "model": self.base.served_model_name,
                    "prompt": render_plain_text(p),
                    "max_tokens": settings.max_tokens,
                    "temperature": 0,
                    "stop": [s for s in PLAIN_STOP_STRINGS if s.startswith("[")],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                }
                for p in settings.prompts(concurrency)
            ]

            async def run(
                bodies: list[dict[str, Any]] = bodies, c: int = concurrency
            ) -> ModeResult:
                async with httpx.AsyncClient(timeout=600) as client:
                    samples, wall = await run_load(
                        bodies, c, lambda body: stream_chat(client, url, body), f"peer c={c}"
                    )
                return aggregate("peer", c, samples, wall)

            results.append(asyncio.run(run()))
            logger.info("%s", asdict(results[-1]))
        return results

    def stop(self) -> None:
        """End the peer server."""
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
