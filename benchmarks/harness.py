"""`wsd bench`: online WSD against the offline procedure, the single models and plain vLLM.

One invocation, one machine, the same prompts and engines for every mode:

- wsd: the HTTP server, streamed;        - base, pilot: single models through the same server;
- offline: the paper's three stages on the same engines;
- peer: `python -m vllm.entrypoints.openai.api_server` serving the base model alone.

Writes a markdown table, a JSON file and a PNG plot to benchmarks/results/.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from tqdm import tqdm

from benchmarks.prompts import BENCH_PROMPTS
from server.background import BackgroundLoop, free_port, start_server
from wsd_engine.config import AppConfig, load_config
from wsd_engine.engines.pair import EnginePair
from wsd_engine.models.prepare import prepare_config
from wsd_engine.offline import run_offline
from wsd_engine.request import WSDParams, WSDRequest
from wsd_engine.templates import PLAIN_STOP_STRINGS, Message, render_plain_text

logger = logging.getLogger("wsd.bench")
T = TypeVar("T")
RESULTS = Path("benchmarks/results")


@dataclass
class Sample:
    """One request's measurements."""

    ttft_s: float | None
    e2e_s: float
    output_tokens: int
    gaps_s: list[float] = field(default_factory=list)
    accept_index: int | None = None
    wasted: int | None = None
    switch_latency_s: float | None = None
    switch_stall_s: float | None = None


@dataclass
class ModeResult:
    """Aggregates of one mode at one concurrency."""

    mode: str
    concurrency: int
    requests: int
    wall_s: float
    ttft_p50_s: float | None
    ttft_p90_s: float | None
    itl_p50_s: float | None
    e2e_p50_s: float
    e2e_p90_s: float
    output_tok_s: float
    req_s: float
    mean_accept_index: float | None = None
    mean_pilot_wasted: float | None = None
    switch_latency_p50_s: float | None = None
    switch_stall_p50_s: float | None = None
    main_process_cpu_s: float | None = None
    # wsd: (accept index or None, output tokens) of every request, for the engine floor
    switches: list[tuple[int | None, int]] | None = None


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def aggregate(mode: str, concurrency: int, samples: list[Sample], wall_s: float) -> ModeResult:
    """Percentiles and rates of one run."""
    ttfts = [s.ttft_s for s in samples if s.ttft_s is not None]
    gaps = [g for s in samples for g in s.gaps_s]
    accepts = [s.accept_index for s in samples if s.accept_index is not None]
    wasted = [s.wasted for s in samples if s.wasted is not None]
    latencies = [s.switch_latency_s for s in samples if s.switch_latency_s is not None]
    stalls = [s.switch_stall_s for s in samples if s.switch_stall_s is not None]
    e2e = [s.e2e_s for s in samples]
    return ModeResult(
        mode=mode,
        concurrency=concurrency,
        requests=len(samples),
        wall_s=round(wall_s, 3),
        ttft_p50_s=_round(_quantile(ttfts, 0.5)),
        ttft_p90_s=_round(_quantile(ttfts, 0.9)),
        itl_p50_s=_round(statistics.median(gaps)) if gaps else None,
        e2e_p50_s=round(statistics.median(e2e), 3),
        e2e_p90_s=round(_quantile(e2e, 0.9) or 0.0, 3),
        output_tok_s=round(sum(s.output_tokens for s in samples) / wall_s, 2),
        req_s=round(len(samples) / wall_s, 3),
        mean_accept_index=round(statistics.mean(accepts), 1) if accepts else None,
        mean_pilot_wasted=round(statistics.mean(wasted), 1) if wasted else None,
        switch_latency_p50_s=_round(_quantile(latencies, 0.5)),
        switch_stall_p50_s=_round(_quantile(stalls, 0.5)),
        switches=[(s.accept_index, s.output_tokens) for s in samples] if mode == "wsd" else None,
    )


def engine_floor_s(
    accept_index: int | None, tokens: int, pilot_ttft: float, pilot_itl: float, base_itl: float
) -> float:
    """The least time any online WSD needs for one answer on these engines: the pilot drafts
    t_0..t_a at its own pace, the base writes the rest at its own pace, and checking the draft
    and the handoff cost nothing. (Pilot and base tokens are counted alike: approximate.)
    """
    drafted = tokens if accept_index is None else min(tokens, accept_index + 1)
    return pilot_ttft + max(0, drafted - 1) * pilot_itl + (tokens - drafted) * base_itl


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# -- clients -------------------------------------------------------------------------------


async def stream_chat(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Sample:
    """One streamed chat request; times every content chunk."""
    started = time.monotonic()
    arrivals: list[tuple[float, int]] = []  # (time, characters so far) per content chunk
    tokens, wsd, chars = 0, None, 0
    async with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices", []):
                text = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
                if text:
                    chars += len(text)
                    arrivals.append((time.monotonic(), chars))
                wsd = choice.get("wsd") or wsd
    times = [t for t, _ in arrivals]
    sample = Sample(
        ttft_s=times[0] - started if times else None,
        e2e_s=time.monotonic() - started,
        output_tokens=tokens,
        gaps_s=[b - a for a, b in itertools.pairwise(times)],
    )
    if wsd:
        sample.accept_index = wsd.get("accept_index")
        sample.wasted = wsd.get("pilot_tokens_wasted")
        sample.switch_latency_s = wsd.get("switch_latency_s")
        sample.switch_stall_s = switch_stall(arrivals, wsd.get("prefix_chars"))
    return sample


def switch_stall(arrivals: list[tuple[float, int]], prefix_chars: int | None) -> float | None:
    """The longest pause a reader sees around the switch: the gaps into the first and the
    second chunk of base text (the handoff itself may be hidden in either)."""
    if prefix_chars is None:
        return None
    first_base = next((i for i, (_, chars) in enumerate(arrivals) if chars > prefix_chars), None)
    if first_base is None or first_base == 0:
        return None
    gaps = [
        arrivals[i][0] - arrivals[i - 1][0]
        for i in (first_base, first_base + 1)
        if i < len(arrivals)
    ]
    return max(gaps)


async def run_load(
    requests: list[Any], concurrency: int, send: Any, desc: str
) -> tuple[list[Sample], float]:
    """Send every request with at most `concurrency` in flight; returns samples and wall time."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    samples: list[Sample] = []
    bar = tqdm(total=len(requests), desc=desc, unit="req", leave=False)

    async def worker() -> None:
        while not queue.empty():
            item = queue.get_nowait()
            samples.append(await send(item))
            bar.update()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    bar.close()
    return samples, time.monotonic() - started


# -- the in-process server -----------------------------------------------------------------


@dataclass
class Settings:
    """What one bench invocation runs."""

    concurrencies: list[int]
    num_prompts: int | None  # requests per level; None: max(min_requests, 2 x concurrency)
    max_tokens: int
    modes: list[str]
    config_path: str
    peer: bool
    draft_max_tokens: int | None = None  # None: the config's
    min_requests: int = 8
    waves: int = 2  # requests per level are at least `waves` x concurrency
    label: str = "bench"  # results go to benchmarks/results/<label>.{md,json,png}

    def prompts(self, concurrency: int) -> list[list[Message]]:
        """The prompts one concurrency level sends (the same for every mode)."""
        count = self.num_prompts or max(self.min_requests, self.waves * concurrency)
        return [BENCH_PROMPTS[i % len(BENCH_PROMPTS)] for i in range(count)]


def _chat_body(model: str, messages: list[Message], settings: Settings) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role.value, "content": m.content} for m in messages],
        "max_tokens": settings.max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if settings.draft_max_tokens:
        body["wsd"] = {"draft_max_tokens": settings.draft_max_tokens}
    return body


def bench_server(
    config: AppConfig,
    paths: dict[str, Path],
    settings: Settings,
    before_measuring: Callable[[], None] | None = None,
) -> list[ModeResult]:
    """wsd, base, pilot through the HTTP server; offline on the same engines."""
    import uvicorn

    from server.app import create_app

    loop = BackgroundLoop()
    pair = EnginePair.start(config, paths)
    port = free_port()
    app = create_app(config, paths, engines=pair)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    results: list[ModeResult] = []
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
    finally:
        pair.shutdown()
        loop.stop()
    return results


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
            [_chat_body(model, p, settings) for p in prompts],
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
    orchestrator = app.state.registry.orchestrator
    params = WSDParams.from_config(config.wsd, draft_max_tokens=settings.draft_max_tokens)

    async def one(item: tuple[int, list[Message]]) -> Sample:
        index, messages = item
        request = WSDRequest(
            f"offline-{concurrency}-{index}", tuple(messages), settings.max_tokens, params
        )
        started = time.monotonic()
        result = await run_offline(orchestrator, request)
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
        _wait_ready(f"http://127.0.0.1:{self.port}/health", self.process)

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


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the peer vLLM server exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError("the peer vLLM server did not become ready")


# -- report --------------------------------------------------------------------------------


def ratios(results: list[ModeResult]) -> dict[str, float | None]:
    """The targets of the benchmark issue, as ratios of medians from this run."""
    by = {(r.mode, r.concurrency): r for r in results}

    def get(mode: str, c: int, attr: str) -> float | None:
        result = by.get((mode, c))
        return None if result is None else getattr(result, attr)

    def div(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else round(a / b, 3)

    c1 = min(r.concurrency for r in results)
    cmax = max(r.concurrency for r in results)
    wsd = by.get(("wsd", c1))
    overhead = None
    if wsd and wsd.main_process_cpu_s is not None:
        overhead = round(wsd.main_process_cpu_s / wsd.wall_s, 3)
    floor = None
    pilot_ttft, pilot_itl = get("pilot", c1, "ttft_p50_s"), get("pilot", c1, "itl_p50_s")
    base_itl = get("base", c1, "itl_p50_s")
    if wsd and wsd.switches and pilot_ttft and pilot_itl and base_itl:
        floor = statistics.median(
            engine_floor_s(a, n, pilot_ttft, pilot_itl, base_itl) for a, n in wsd.switches
        )
    return {
        "wsd_e2e_over_offline_e2e": div(
            get("wsd", c1, "e2e_p50_s"), get("offline", c1, "e2e_p50_s")
        ),
        "engine_floor_e2e_over_offline_e2e": div(floor, get("offline", c1, "e2e_p50_s")),
        "wsd_e2e_over_engine_floor_e2e": div(get("wsd", c1, "e2e_p50_s"), floor),
        "wsd_ttft_over_pilot_ttft": div(
            get("wsd", c1, "ttft_p50_s"), get("pilot", c1, "ttft_p50_s")
        ),
        "wsd_ttft_over_base_ttft": div(get("wsd", c1, "ttft_p50_s"), get("base", c1, "ttft_p50_s")),
        "handoff_over_base_itl": div(
            get("wsd", c1, "switch_latency_p50_s"), get("base", c1, "itl_p50_s")
        ),
        "switch_stall_over_base_itl": div(
            get("wsd", c1, "switch_stall_p50_s"), get("base", c1, "itl_p50_s")
        ),
        f"wsd_tok_s_over_peer_tok_s_at_c{cmax}": div(
            get("wsd", cmax, "output_tok_s"), get("peer", cmax, "output_tok_s")
        ),
        "orchestration_cpu_share_c1": overhead,
    }


def write_report(results: list[ModeResult], settings: Settings, out_dir: Path = RESULTS) -> Path:
    """Markdown table, JSON and a PNG plot; returns the markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d")
    machine = f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    summary = ratios(results)
    payload = {"date": stamp, "machine": machine, "settings": asdict(settings),
               "results": [asdict(r) for r in results], "ratios": summary}  # fmt: skip
    (out_dir / f"{settings.label}.json").write_text(json.dumps(payload, indent=2))
    draft = settings.draft_max_tokens or "config default"
    lines = [
        f"Date {stamp}; machine: {machine}; max_tokens {settings.max_tokens}; greedy; "
        f"draft_max_tokens {draft}. Times in seconds.",
        "",
        "| mode | conc | requests | ttft p50 | ttft p90 | itl p50 | e2e p50 | e2e p90 "
        "| out tok/s | req/s | accept | wasted | handoff p50 | switch stall p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.mode} | {r.concurrency} | {r.requests} | {r.ttft_p50_s} | {r.ttft_p90_s} | "
            f"{r.itl_p50_s} | {r.e2e_p50_s} | {r.e2e_p90_s} | {r.output_tok_s} | {r.req_s} | "
            f"{_blank(r.mean_accept_index)} | {_blank(r.mean_pilot_wasted)} | "
            f"{_blank(r.switch_latency_p50_s)} | {_blank(r.switch_stall_p50_s)} |"
        )
    lines += ["", "| ratio | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary.items()]
    markdown = out_dir / f"{settings.label}.md"
    markdown.write_text("\n".join(lines) + "\n")
    _plot(results, out_dir / f"{settings.label}.png")
    return markdown


def _blank(value: float | None) -> str:
    return "" if value is None else str(value)


def _plot(results: list[ModeResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for mode in sorted({r.mode for r in results}):
        rows = sorted((r for r in results if r.mode == mode), key=lambda r: r.concurrency)
        xs = [r.concurrency for r in rows]
        left.plot(xs, [r.e2e_p50_s for r in rows], marker="o", label=mode)
        right.plot(xs, [r.output_tok_s for r in rows], marker="o", label=mode)
    left.set(xlabel="concurrency", ylabel="end-to-end p50 (s)", title="Latency")
    right.set(xlabel="concurrency", ylabel="output tokens/s", title="Throughput")
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    markdown = None
    try:
        # nothing is measured while the peer is still loading
        results += bench_server(config, paths, settings, peer.wait_ready if peer else None)
        if peer is not None:
            results += peer.bench(settings)
    finally:
        if peer is not None:
            peer.stop()
        if results:  # what was measured is kept even when a later mode failed
            markdown = write_report(results, settings)
            print(markdown.read_text())
    return markdown
