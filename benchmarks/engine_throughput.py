"""Engine throughput on this machine: each engine alone, then both busy at once.

    .venv/bin/python -m benchmarks.engine_throughput [--pilot-bind 0 --base-bind 1] [--tokens 64]

Prints engine start times, single-stream tokens/s and time to first token of the pilot and the
base model, and tokens/s of each while both generate at the same time (median of --repeats).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from server.settings import load_config
from wsd_engine.config import PromptTemplate
from wsd_engine.engines.engine import Engine, SamplingSettings
from wsd_engine.engines.pair import EnginePair
from wsd_engine.templates import Message, MessageRole, render_prompt
from wsd_engine.weights.prepare import prepare_config

PROMPT = [Message(MessageRole.USER, "Write a long story about a dragon who learns to bake bread.")]


async def stream(engine: Engine, template: PromptTemplate, tokens: int, tag: str) -> dict:
    prompt = render_prompt(engine.tokenizer, PROMPT, template).token_ids
    settings = SamplingSettings(ignore_eos=True)
    started = time.monotonic()
    first = None
    count = 0
    request_id = f"bench-{tag}-{time.monotonic_ns()}"
    async for delta in engine.generate(prompt, settings, request_id, max_tokens=tokens):
        count += len(delta.token_ids)
        first = first if first is not None else time.monotonic() - started
    elapsed = time.monotonic() - started
    return {"tokens_per_s": count / elapsed, "ttft_s": first, "elapsed_s": elapsed}


def _median(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


async def measure(pair: EnginePair, tokens: int, repeats: int) -> dict:
    await pair.warm_up()
    prefill = {}
    for role, engine in (("pilot", pair.pilot), ("base", pair.base)):
        ids = [engine.tokenizer.bos_token_id or 0, *range(1000, 1399)]
        started = time.monotonic()
        await engine.score(ids[:1], ids[1:], f"bench-prefill-{role}")
        prefill[f"{role}_prefill_400_tok_s"] = round(399 / (time.monotonic() - started), 1)
    pilot_t, base_t = PromptTemplate.CHAT, PromptTemplate.PLAIN
    pilot_alone = [await stream(pair.pilot, pilot_t, tokens, "p") for _ in range(repeats)]
    base_alone = [await stream(pair.base, base_t, tokens, "b") for _ in range(repeats)]
    together = [
        await asyncio.gather(
            stream(pair.pilot, pilot_t, tokens, "pt"), stream(pair.base, base_t, tokens, "bt")
        )
        for _ in range(repeats)
    ]
    return {
        **prefill,
        "pilot_alone_tok_s": _median(pilot_alone, "tokens_per_s"),
        "pilot_alone_ttft_s": _median(pilot_alone, "ttft_s"),
        "base_alone_tok_s": _median(base_alone, "tokens_per_s"),
        "base_alone_ttft_s": _median(base_alone, "ttft_s"),
        "pilot_together_tok_s": _median([p for p, _ in together], "tokens_per_s"),
        "base_together_tok_s": _median([b for _, b in together], "tokens_per_s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/embedded.yaml")
    parser.add_argument("--pilot-bind", help="override cpu_threads_bind of the pilot")
    parser.add_argument("--base-bind", help="override cpu_threads_bind of the base")
    parser.add_argument("--reserved", type=int, help="override cpu_reserved_cores of both")
    parser.add_argument("--dtype", help="override dtype of both models (e.g. float32)")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = load_config(args.config)
    updates = {}
    for role, bind in (("pilot", args.pilot_bind), ("base", args.base_bind)):
        model = getattr(config, role)
        change = {}
        if bind is not None:
            change["cpu_threads_bind"] = bind
        if args.dtype is not None:
            change["dtype"] = args.dtype
        if args.reserved is not None:
            change["cpu_reserved_cores"] = args.reserved
        updates[role] = model.model_copy(update=change)
    config = config.model_copy(update=updates)
    paths = prepare_config(config)
    started = time.monotonic()
    pair = EnginePair.start(config, paths)
    start_s = time.monotonic() - started
    try:
        result = asyncio.run(measure(pair, args.tokens, args.repeats))
    finally:
        pair.shutdown()
    result = {
        "pilot_bind": config.pilot.cpu_threads_bind,
        "base_bind": config.base.cpu_threads_bind,
        "reserved": config.pilot.cpu_reserved_cores,
        "dtype": config.pilot.dtype,
        "both_engines_start_s": round(start_s, 1),
        **result,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
