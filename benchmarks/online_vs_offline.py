"""Online WSD against the paper's offline procedure and the base model alone, one request at a time.

    .venv/bin/python -m benchmarks.online_vs_offline [--prompts 12] [--max-tokens 128]

For each prompt (greedy): the online answer and the offline answer (they must be identical),
the accept index, pilot tokens drafted online and offline, wall times, time to first token of
online WSD and of the base model alone. Prints a table and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from tqdm import tqdm

from benchmarks.prompts import CHAT_PROMPTS
from server.settings import load_config
from wsd_engine.config import Role, WSDSettings
from wsd_engine.engines.engine import SamplingSettings
from wsd_engine.engines.pair import EnginePair
from wsd_engine.offline import run_offline
from wsd_engine.orchestrator import PreparedWSD, WSDOrchestrator
from wsd_engine.request import TextDelta, WSDOutcome, WSDRequest
from wsd_engine.stop_strings import until_stop
from wsd_engine.timeline import StreamTimeline
from wsd_engine.weights.prepare import prepare_config


async def _online(
    orchestrator: WSDOrchestrator, prepared: PreparedWSD
) -> tuple[WSDOutcome, StreamTimeline]:
    """The answer, and its timings as the orchestrator hands its pieces over."""
    timeline = StreamTimeline(time.monotonic())
    outcome = None
    async for item in orchestrator.run(prepared):
        if isinstance(item, TextDelta):
            timeline.sent(item.text, item.source, time.monotonic(), item.pilot_times)
        else:
            outcome = item
    assert outcome is not None
    return outcome, timeline


async def _base_only_ttft(orchestrator: WSDOrchestrator, prepared: PreparedWSD) -> float:
    base, prompt = orchestrator.base, prepared.base_prompt
    started = time.monotonic()
    first = None
    request_id = f"{prepared.request.request_id}-base"
    deltas = base.generate(
        prompt.token_ids, SamplingSettings(), request_id, max_tokens=prepared.max_tokens
    )
    async for delta in until_stop(deltas, prompt.stop):
        if first is None and delta.text:
            first = time.monotonic() - started
    return first if first is not None else time.monotonic() - started


async def run(pair: EnginePair, config, num_prompts: int, max_tokens: int, draft_max: int) -> list:
    orchestrator = WSDOrchestrator(
        pair.pilot, pair.base, config.template_for(Role.PILOT), config.template_for(Role.BASE)
    )
    await pair.warm_up()
    rows = []
    for name, messages in tqdm(CHAT_PROMPTS[:num_prompts], desc="prompts", unit="prompt"):
        settings = WSDSettings(draft_max_tokens=draft_max)
        online_request = WSDRequest(f"on-{name}", tuple(messages), max_tokens, settings)
        prepared = orchestrator.prepare(online_request)
        outcome, timeline = await _online(orchestrator, prepared)
        online_s = (timeline.last_sent or timeline.started) - timeline.started
        started = time.monotonic()
        offline_request = WSDRequest(f"off-{name}", tuple(messages), max_tokens, settings)
        offline = await run_offline(orchestrator, orchestrator.prepare(offline_request))
        offline_s = time.monotonic() - started
        base_ttft = await _base_only_ttft(orchestrator, prepared)
        rows.append(
            {
                "prompt": name,
                "identical": outcome.text == offline.text,
                "accept_index": outcome.report.accept_index,
                "reason": outcome.report.reason.value if outcome.report.reason else None,
                "pilot_tokens_online": outcome.report.pilot_tokens,
                "pilot_tokens_offline": offline.num_pilot_tokens,
                "online_s": round(online_s, 3),
                "offline_s": round(offline_s, 3),
                "wsd_ttft_s": round(timeline.time_to_first_chunk_s or 0.0, 3),
                "base_ttft_s": round(base_ttft, 3),
                "switch_latency_s": timeline.switch_latency_s,
            }
        )
    return rows


def summarize(rows: list[dict]) -> dict:
    """Medians and means over the prompts."""
    accepts = [r["accept_index"] for r in rows if r["accept_index"] is not None]
    median = statistics.median
    latencies = [r["switch_latency_s"] for r in rows if r["switch_latency_s"] is not None]
    return {
        "prompts": len(rows),
        "identical": sum(r["identical"] for r in rows),
        "mean_accept_index": round(statistics.mean(accepts), 1) if accepts else None,
        "pilot_tokens_online_mean": round(
            statistics.mean(r["pilot_tokens_online"] for r in rows), 1
        ),
        "pilot_tokens_offline_mean": round(
            statistics.mean(r["pilot_tokens_offline"] for r in rows), 1
        ),
        "median_online_s": round(median(r["online_s"] for r in rows), 3),
        "median_offline_s": round(median(r["offline_s"] for r in rows), 3),
        "online_over_offline": round(
            median(r["online_s"] for r in rows) / median(r["offline_s"] for r in rows), 3
        ),
        "median_wsd_ttft_s": round(median(r["wsd_ttft_s"] for r in rows), 3),
        "median_base_ttft_s": round(median(r["base_ttft_s"] for r in rows), 3),
        "median_switch_latency_s": round(median(latencies), 3) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/embedded.yaml")
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--draft-max-tokens", type=int, default=512)
    parser.add_argument("--json", help="also write rows and summary to this file")
    args = parser.parse_args()
    config = load_config(args.config)
    pair = EnginePair.start(config, prepare_config(config))
    try:
        rows = asyncio.run(run(pair, config, args.prompts, args.max_tokens, args.draft_max_tokens))
    finally:
        pair.shutdown()
    summary = summarize(rows)
    print(
        "| prompt | same | accept | reason | pilot on/off | online s | offline s | ttft wsd/base |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['prompt']} | {r['identical']} | {r['accept_index']} | {r['reason']} | "
            f"{r['pilot_tokens_online']}/{r['pilot_tokens_offline']} | {r['online_s']} | "
            f"{r['offline_s']} | {r['wsd_ttft_s']}/{r['base_ttft_s']} |"
        )
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "summary": summary}, handle, indent=2)


if __name__ == "__main__":
    main()
