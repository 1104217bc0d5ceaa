"""What a scoring step costs the base engine, against a plain request over the same tokens.

    .venv/bin/python -m benchmarks.scoring_cost [--prefix 400] [--new 1,4,8,32] [--repeats 5]

A prefix is cached first; then, for each number of new tokens, a scoring pass (prompt
log-probabilities, reading the prefix cache, as `wsd.scoring: passes` sends them), a resumed
chunk of a scoring session over the same prefix (`wsd.scoring: session`: only the new tokens
are computed), and a plain one-token generation over a prompt of the same shape with other new
tokens. Prints medians of --repeats, and one decode step for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from benchmarks.measure import EngineFloor
from server.settings import load_config
from wsd_engine.engines.engine import Engine, SamplingSettings
from wsd_engine.engines.vllm_local import VLLMEngine
from wsd_engine.weights.prepare import prepare_config

# 12 whole 32-token blocks and 16 more: the average partial block a pass recomputes
FLOOR_PREFIX_TOKENS = 400


async def _generate(engine: Engine, ids: list[int], tokens: int, request_id: str) -> float:
    started = time.monotonic()
    settings = SamplingSettings(ignore_eos=True)
    async for _ in engine.generate(ids, settings, request_id, max_tokens=tokens):
        pass
    return time.monotonic() - started


async def measure(engine: Engine, prefix_len: int, news: list[int], repeats: int) -> dict:
    await engine.warm_up()
    bos = engine.tokenizer.bos_token_id or 0
    prefix = [bos, *range(2000, 2000 + prefix_len - 1)]
    await _generate(engine, prefix, 1, "cost-prefix")
    rows, fresh = [], 10_000
    for new in news:
        scoring, plain = [], []
        for repeat in range(repeats):
            draft = list(range(fresh, fresh + new))
            other = list(range(fresh + new, fresh + 2 * new))
            fresh += 2 * new
            started = time.monotonic()
            await engine.score(prefix, draft, f"cost-score-{new}-{repeat}")
            scoring.append(time.monotonic() - started)
            plain.append(
                await _generate(engine, [*prefix, *other], 1, f"cost-plain-{new}-{repeat}")
            )
        chunks = await _session_chunks(engine, prefix, new, repeats, f"cost-session-{new}")
        rows.append(
            {
                "new_tokens": new,
                "scoring_pass_s": round(statistics.median(scoring), 3),
                "session_chunk_s": round(statistics.median(chunks), 3) if chunks else None,
                "plain_request_s": round(statistics.median(plain), 3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    one = statistics.median([await _generate(engine, prefix, 1, f"cost-d1-{r}") for r in range(3)])
    many = statistics.median(
        [await _generate(engine, prefix, 17, f"cost-d17-{r}") for r in range(3)]
    )
    return {"prefix_tokens": prefix_len, "rows": rows, "decode_step_s": round((many - one) / 16, 3)}


async def _session_chunks(
    engine: Engine, prefix: list[int], new: int, repeats: int, request_id: str
) -> list[float]:
    """Seconds of each of `repeats` resumed chunks of `new` tokens in one scoring session
    (none when the engine has no sessions)."""
    session = engine.open_scoring_session(prefix, request_id)
    if session is None:
        return []
    times = []
    try:
        await session.start()
        await session.score([30_000])  # the first resumed chunk: the prompt's logits kept
        for repeat in range(repeats):
            started = time.monotonic()
            await session.score(list(range(31_000 + new * repeat, 31_000 + new * (repeat + 1))))
            times.append(time.monotonic() - started)
    finally:
        await session.close()
    return times


async def switch_floor(engine: Engine, repeats: int = 5) -> EngineFloor:
    """The scoring step that decides a switch at c=1, 4 new tokens (a resumed session chunk
    where the engine offers sessions, else a pass that recomputes 16 positions of the last
    partial cache block), and one decode step; medians of `repeats`."""
    bos = engine.tokenizer.bos_token_id or 0
    prefix = [bos, *range(3000, 3000 + FLOOR_PREFIX_TOKENS - 1)]
    await _generate(engine, prefix, 1, "floor-prefix")
    passes = await _session_chunks(engine, prefix, 4, repeats, "floor-session")
    for repeat in range(0 if passes else repeats):
        draft = list(range(20_000 + 4 * repeat, 20_004 + 4 * repeat))
        started = time.monotonic()
        await engine.score(prefix, draft, f"floor-score-{repeat}")
        passes.append(time.monotonic() - started)
    one = [await _generate(engine, prefix, 1, f"floor-d1-{r}") for r in range(repeats)]
    many = [await _generate(engine, prefix, 17, f"floor-d17-{r}") for r in range(repeats)]
    step = (statistics.median(many) - statistics.median(one)) / 16
    return EngineFloor(round(statistics.median(passes), 4), round(step, 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", help="a config file or a shipped config's name")
    parser.add_argument("--prefix", type=int, default=400)
    parser.add_argument("--new", default="1,4,8,32", help="comma-separated new-token counts")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    config = load_config(args.config)
    paths = prepare_config(config)
    engine = VLLMEngine.start(config.base, paths[config.base.served_model_name])
    news = [int(n) for n in args.new.split(",")]

    async def run() -> dict:
        return await measure(engine, args.prefix, news, args.repeats)

    try:
        result = asyncio.run(run())
    finally:
        engine.shutdown()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
