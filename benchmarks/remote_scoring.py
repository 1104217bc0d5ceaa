"""The cost of a scoring pass on a remote base, through each vLLM endpoint that can score.

Starts the config's base model as a vLLM OpenAI server on loopback, then scores the same draft
after the same prompt (medians of `--repeats`):

- generate, cache read: `/inference/v1/generate` with `skip_reading_prefix_cache: false`
  (what the remote adapter does; the prompt's whole cache blocks are computed once first);
- generate, no cache: the same endpoint recomputing the whole prompt;
- completions: `/v1/completions` with `prompt_logprobs` (vLLM then never reads the cache).

    .venv/bin/python -m benchmarks.remote_scoring --prefix 400 --new 16 --repeats 5
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks.remote import serve_models, stop_servers
from server.settings import load_config
from wsd_engine.engines.vllm_remote import RemoteVLLMEngine
from wsd_engine.weights.prepare import prepare_config

logger = logging.getLogger("wsd.bench")


async def measure(engine: RemoteVLLMEngine, prefix_len: int, new: int, repeats: int) -> dict:
    """Median seconds of each way to score `new` draft tokens after a `prefix_len` prompt."""
    bos = engine.tokenizer.bos_token_id or 0
    prompt = [bos, *range(3000, 3000 + prefix_len - 1)]
    ways: dict[str, Callable[[list[int], str], Awaitable[object]]] = {
        "generate, cache read": lambda ids, rid: engine._score_generate(
            ids, prefix_len, rid, True, "salt"
        ),
        "generate, no cache": lambda ids, rid: engine._score_generate(
            ids, prefix_len, rid, False, None
        ),
        "completions (prompt_logprobs)": lambda ids, rid: engine._score_completions(
            ids, prefix_len, rid
        ),
    }
    # the prompt's blocks cached
    await engine._score_generate(prompt, 1, "prefill", False, "salt")
    results = {}
    for name, way in ways.items():
        times = []
        for repeat in range(repeats):
            draft = list(range(20_000 + new * repeat, 20_000 + new * (repeat + 1)))
            started = time.monotonic()
            await way([*prompt, *draft], f"{name}-{repeat}")
            times.append(time.monotonic() - started)
        results[name] = round(statistics.median(times), 4)
        logger.info("%s: median %.3f s (%s)", name, results[name], times)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/embedded.yaml")
    parser.add_argument("--prefix", type=int, default=400, help="prompt tokens")
    parser.add_argument("--new", type=int, default=16, help="draft tokens scored")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = load_config(args.config)
    paths = prepare_config(config)
    remote, processes = serve_models({"base": config.base}, paths, Path(tempfile.gettempdir()))
    try:
        engine = RemoteVLLMEngine.start(remote["base"], paths[config.base.served_model_name])
        results = asyncio.run(measure(engine, args.prefix, args.new, args.repeats))
    finally:
        stop_servers(processes)
    print(f"scoring {args.new} tokens after {args.prefix}, medians of {args.repeats}:")
    for name, seconds in results.items():
        print(f"  {name:32s} {seconds:.3f} s")


if __name__ == "__main__":
    main()
