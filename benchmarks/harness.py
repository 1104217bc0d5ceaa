"""`wsd bench`: online WSD against the offline procedure, the single models and plain vLLM.

One invocation, one machine, the same prompts and engines for every mode:

- wsd: the HTTP server, streamed;        - base, pilot: single models through the same server;
- offline: the paper's three stages on the same engines;
- peer: `python -m vllm.entrypoints.openai.api_server` serving the base model alone.

Writes a markdown table, a JSON file and a PNG plot to benchmarks/results/.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.measure import (
    EngineFloor,
    ModeResult,
    Sample,
    Settings,
    aggregate,
    chat_body,
    run_load,
    stream_chat,
)
from benchmarks.peer import Peer
from benchmarks.report import write_report
from benchmarks.scoring_cost import switch_floor
from server.background import BackgroundLoop, free_port, start_server
from server.settings import AppConfig, load_config
from wsd_engine.engines.pair import EnginePair
from wsd_engine.offline import run_offline
from wsd_engine.request import WSDRequest
from wsd_engine.templates import Message
from wsd_engine.weights.prepare import prepare_config

logger = logging.getLogger("wsd.bench")


def bench_server(
    config: AppConfig,
    paths: dict[str, Path],
    settings: Settings,
    before_measuring: Callable[[], None] | None = None,
) -> tuple[list[ModeResult], EngineFloor | None]:
    """wsd, base, pilot through the HTTP server; offline on the same engines; then, when wsd
    was measured, the engine floor of the switch latency on the idle base engine."""
    import uvicorn

    from server.app import create_app

    loop = BackgroundLoop()
    pair = EnginePair.start(config, paths)
    port = free_port()
    app = create_app(config, paths, engines=pair)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    results: list[ModeResult] = []
    floor = None
    try:
        server_task = loop.run(start_server(server))
        if before_measuring is not None:
            before_measuring()
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        model_ids = {
            "wsd": config.wsd.served_model_name,
            "base": config.base.served_model_name,
            "pilot": config.pilot.served_model_name,
        }
        for concurrency in settings.concurrencies:
            prompts = settings.prompts(concurrency)
            for mode in settings.modes:
                if mode == "offline":
                    results.append(loop.run(_offline(app, config, prompts, settings, concurrency)))
                elif mode in model_ids:
                    results.append(
                        asyncio.run(
                            _http_mode(url, model_ids[mode], mode, prompts, settings, concurrency)
                        )
                    )
                logger.info("%s", asdict(results[-1]))
        server.should_exit = True
        loop.run(asyncio.wait_for(server_task, timeout=30))
        unsent = getattr(pair.base, "unsent_passes", None)
        if unsent is not None:  # a remote base: cached passes its server failed to send
            logger.info("cached scoring passes the base's server failed to send: %d", unsent)
        if "wsd" in settings.modes:
            floor = loop.run(switch_floor(pair.base))
            logger.info("engine floor of the switch latency: %s", asdict(floor))
    finally:
        pair.shutdown()
        loop.stop()
    return results, floor


async def _http_mode(
    url: str,
    model: str,
    mode: str,
    prompts: list[list[Message]],
    settings: Settings,
    concurrency: int,
) -> ModeResult:
    me = psutil.Process()
    cpu_before = me.cpu_times()
    async with httpx.AsyncClient(timeout=600) as client:
        samples, wall = await run_load(
            [chat_body(model, p, settings) for p in prompts],
            concurrency,
            lambda body: stream_chat(client, url, body),
            f"{mode} c={concurrency}",
        )
    result = aggregate(mode, concurrency, samples, wall)
    cpu_after = me.cpu_times()
    result.main_process_cpu_s = round(
        (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system), 2
    )
    return result


async def _offline(
    app: Any,
    config: AppConfig,
    prompts: list[list[Message]],
    settings: Settings,
    concurrency: int,
) -> ModeResult:
    orchestrator = app.state.registry.wsd.orchestrator
    method = config.wsd.defaults()
    if settings.draft_max_tokens is not None:
        method = method.model_copy(update={"draft_max_tokens": settings.draft_max_tokens})

    async def one(item: tuple[int, list[Message]]) -> Sample:
        index, messages = item
        request = WSDRequest(
            f"offline-{concurrency}-{index}", tuple(messages), settings.max_tokens, method
        )
        prepared = orchestrator.prepare(request)
        started = time.monotonic()
        result = await run_offline(orchestrator, prepared)
        tokens = len(orchestrator.base.tokenizer.encode(result.text, add_special_tokens=False))
        elapsed = time.monotonic() - started
        # offline has nothing to stream: its first token arrives with the whole answer
        return Sample(
            ttft_s=elapsed, e2e_s=elapsed, output_tokens=tokens, accept_index=result.accept_index
        )

    samples, wall = await run_load(
        list(enumerate(prompts)), concurrency, one, f"offline c={concurrency}"
    )
    return aggregate("offline", concurrency, samples, wall)


def run_bench(settings: Settings) -> Path | None:
    """Everything `wsd bench` does.

    The peer server starts at once and loads while our engines do; measuring waits until
    it is ready. It then idles (vLLM's worker sleeps when it has nothing to do) until our
    modes are measured and our engines are shut down, and is measured alone.
    """
    config = load_config(settings.config_path)
    paths = prepare_config(config)
    peer = Peer(config, paths) if settings.peer else None
    results: list[ModeResult] = []
    floor = None
    markdown = None
    try:
        # nothing is measured while the peer is still loading
        measured, floor = bench_server(config, paths, settings, peer.wait_ready if peer else None)
        results += measured
        if peer is not None:
            results += peer.bench(settings)
    finally:
        if peer is not None:
            peer.stop()
        if results:  # what was measured is kept even when a later mode failed
            markdown = write_report(results, settings, floor)
            print(markdown.read_text())
    return markdown
