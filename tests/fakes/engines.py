"""Scripted engines for unit tests of the orchestrator's logic (real tokenizers, no model)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from wsd_engine.engines.protocol import (
    FinishReason,
    GenerationDelta,
    SamplingSettings,
    Scores,
    TokenLogprob,
)


class ScriptedEngine:
    """Generates a fixed text token by token; scores with a per-position probability."""

    def __init__(
        self,
        name: str,
        tokenizer: Any,
        text: str = "",
        probability: Callable[[int], float] = lambda i: 0.5,
        delay_s: float = 0.0,
        max_model_len: int = 2048,
        cache_block_size: int | None = None,
    ) -> None:
        self.model_name = name
        self.tokenizer = tokenizer
        self.text = text
        self.probability = probability
        self.delay_s = delay_s
        self.max_model_len = max_model_len
        self.cache_block_size = cache_block_size
        self.running: set[str] = set()
        self.generate_calls: list[tuple[list[int], SamplingSettings]] = []
        self.score_calls: list[tuple[int, int]] = []
        self.prompt_len: int | None = None

    async def generate(
        self, prompt_token_ids: Sequence[int], sampling: SamplingSettings, request_id: str
    ) -> AsyncIterator[GenerationDelta]:
        self.generate_calls.append((list(prompt_token_ids), sampling))
        ids = self.tokenizer.encode(self.text, add_special_tokens=False)
        # the script continues where the prompt left it (e.g. after its own first token)
        done = next(
            (k for k in range(len(ids), 0, -1) if list(prompt_token_ids[-k:]) == ids[:k]), 0
        )
        ids = ids[done:]
        limit = min(sampling.max_tokens, len(ids))
        self.running.add(request_id)
        try:
            sent = ""
            for n in range(1, limit + 1):
                await asyncio.sleep(self.delay_s)
                full = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
                piece, sent = full[len(sent) :], full
                finish = None
                if n == limit:
                    finish = FinishReason.LENGTH if limit < len(ids) else FinishReason.STOP
                yield GenerationDelta(token_ids=[ids[n - 1]], text=piece, finish_reason=finish)
            if limit == 0:
                yield GenerationDelta(token_ids=[], text="", finish_reason=FinishReason.STOP)
        finally:
            self.running.discard(request_id)

    async def score(
        self, prefix_token_ids: Sequence[int], token_ids: Sequence[int], request_id: str
    ) -> Scores:
        self.running.add(request_id)
        try:
            await asyncio.sleep(self.delay_s)
            start = len(prefix_token_ids) - (self.prompt_len or 0)
            self.score_calls.append((start, start + len(token_ids)))
            first = self.tokenizer.encode(self.text, add_special_tokens=False)[:1]
            return Scores(
                logprobs=[_log(self.probability(start + i)) for i in range(len(token_ids))],
                greedy_next=(first or [self.tokenizer.eos_token_id]) * len(token_ids),
            )
        finally:
            self.running.discard(request_id)

    async def score_with_top(
        self,
        prefix_token_ids: Sequence[int],
        token_ids: Sequence[int],
        num_top: int,
        request_id: str,
    ) -> list[TokenLogprob]:
        logprobs = (await self.score(prefix_token_ids, token_ids, request_id)).logprobs
        return [TokenLogprob(t, lp, {t: lp}) for t, lp in zip(token_ids, logprobs, strict=True)]

    async def abort(self, request_id: str) -> None:
        self.running.discard(request_id)

    async def check_health(self) -> None:
        return None

    async def warm_up(self) -> None:
        return None

    def num_unfinished_requests(self) -> int:
        return len(self.running)

    def shutdown(self) -> None:
        return None


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf
