"""What `wsd bench` measures: its settings, one request's sample, the aggregates, the load."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from benchmarks.prompts import BENCH_PROMPTS
from wsd_engine.templates import Message

RESULTS = Path("benchmarks/results")


def default_results_dir() -> Path:
    """benchmarks/results when run from the source tree, else ./wsd-bench-results."""
    return RESULTS if RESULTS.parent.is_dir() else Path("wsd-bench-results")


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
    label: str = "bench"  # results go to <out_dir>/<label>.{md,json,png}
    out_dir: Path = RESULTS

    def prompts(self, concurrency: int) -> list[list[Message]]:
        """The prompts one concurrency level sends (the same for every mode)."""
        count = self.num_prompts or max(self.min_requests, self.waves * concurrency)
        return [BENCH_PROMPTS[i % len(BENCH_PROMPTS)] for i in range(count)]


def chat_body(model: str, messages: list[Message], settings: Settings) -> dict[str, Any]:
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


@dataclass
class Sample:
    """One request's measurements."""

    ttft_s: float | None
    e2e_s: float
    output_tokens: int
    gaps_s: list[float] = field(default_factory=list)
    accept_index: int | None = None
    wasted: int | None = None
    switch_latency_s: float | None = None  # client clock: gaps into the first two base chunks
    continuation_gaps_s: list[float] = field(default_factory=list)  # between later base chunks
    handoff_s: float | None = None  # the server's: decision to the first base token
    decision_lag_s: float | None = None  # the server's
    draft_lag_s: float | None = None  # the server's, p50 of the request


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
    switch_latency_p90_s: float | None = None
    handoff_p50_s: float | None = None
    decision_lag_p50_s: float | None = None
    draft_lag_p50_s: float | None = None
    max_stream_gap_p50_s: float | None = None
    continuation_itl_p50_s: float | None = None  # wsd: the base's pace after the handoff
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

    def p50(attr: str) -> float | None:
        values = [getattr(s, attr) for s in samples if getattr(s, attr) is not None]
        return _round(_quantile(values, 0.5))

    max_gaps = [max(s.gaps_s) for s in samples if s.gaps_s]
    continuation = [g for s in samples for g in s.continuation_gaps_s]
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
        switch_latency_p90_s=_round(_quantile(latencies, 0.9)),
        handoff_p50_s=p50("handoff_s"),
        decision_lag_p50_s=p50("decision_lag_s"),
        draft_lag_p50_s=p50("draft_lag_s"),
        max_stream_gap_p50_s=_round(_quantile(max_gaps, 0.5)),
        continuation_itl_p50_s=_round(statistics.median(continuation)) if continuation else None,
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
        sample.switch_latency_s = switch_latency(arrivals, wsd.get("prefix_chars"))
        sample.continuation_gaps_s = continuation_gaps(arrivals, wsd.get("prefix_chars"))
        sample.handoff_s = wsd.get("handoff_s")
        sample.decision_lag_s = wsd.get("decision_lag_s")
        sample.draft_lag_s = wsd.get("draft_lag_s")
    return sample


def switch_latency(arrivals: list[tuple[float, int]], prefix_chars: int | None) -> float | None:
    """The pause a reader sees at the switch: the longer of the gaps into the first and the
    second chunk of base text (the first base token may come at once from the scoring pass
    that decided the switch; the second waits for the base engine)."""
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


def continuation_gaps(arrivals: list[tuple[float, int]], prefix_chars: int | None) -> list[float]:
    """The gaps between chunks of base text after the first two (those are the switch)."""
    if prefix_chars is None:
        return []
    first_base = next((i for i, (_, chars) in enumerate(arrivals) if chars > prefix_chars), None)
    if first_base is None:
        return []
    later = [t for t, _ in arrivals[first_base + 1 :]]
    return [b - a for a, b in itertools.pairwise(later)]


@dataclass
class EngineFloor:
    """The least switch latency the base engine allows, measured on it while idle.

    The gap into the first base chunk holds at least the scoring pass that decided the switch
    (a pass over the last partial cache block and a few new tokens); the gap into the second
    at least one decode step. The switch latency is the longer of the two.
    """

    scoring_pass_s: float
    decode_step_s: float

    @property
    def switch_latency_s(self) -> float:
        return max(self.scoring_pass_s, self.decode_step_s)


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
