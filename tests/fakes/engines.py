"""Scripted engines: the engine protocol without a model, for fast tests of everything above.

A scripted engine writes a fixed text, token by token (with a real or tiny tokenizer), and
scores a draft with a probability per draft position. It returns logprobs as vLLM does, refuses
what vLLM refuses, keeps count of its running requests, and can be told to fail.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import jsonschema

from wsd_engine.engines.engine import (
    EngineError,
    EngineRequestInvalid,
    EngineUnavailable,
    FinishReason,
    GenerationDelta,
    SamplingSettings,
    Scores,
    StructuredOutput,
    TokenLogprob,
)

# What vLLM 0.32 refuses when a request reaches it: the integers its engine transport
# (msgpack) carries, and its default `max_logprobs`.
VLLM_INT_RANGE = range(-(2**63), 2**64)
VLLM_MAX_LOGPROBS = 20
VLLM_MAX_SCHEMA_NESTING = 64  # objects and arrays in a structured-output schema
_ABORT_AWAITS = 3  # event-loop turns an abort takes


def vllm_refusal(
    prompt_token_ids: Sequence[int], sampling: SamplingSettings, vocab_size: int
) -> str | None:
    """vLLM's message for a request it refuses (its input processor, prompt renderer and
    SamplingParams)."""
    if not prompt_token_ids:
        return "The decoder prompt cannot be empty"
    bad_ids = [i for i in prompt_token_ids if not 0 <= i < vocab_size]
    if bad_ids:
        return f"Token id {bad_ids[0]} is out of vocabulary"
    if sampling.seed is not None and sampling.seed not in VLLM_INT_RANGE:
        return "can't serialize ints < -2**63 or > 2**64 - 1"
    if sampling.num_logprobs is not None and sampling.num_logprobs > VLLM_MAX_LOGPROBS:
        return f"Requested sample logprobs of {sampling.num_logprobs}, which is greater than max"
    return structured_refusal(sampling.structured)


def structured_refusal(structured: StructuredOutput | None) -> str | None:
    """Roughly what vLLM's structured-output backends refuse: a schema that is not a valid
    JSON Schema (an unknown type, `required` not a list, a pattern that is no regex...)."""
    if structured is None or structured.schema is None:
        return None
    schema = json.loads(structured.schema)
    if _nesting(schema) > VLLM_MAX_SCHEMA_NESTING:  # vLLM checks it first, without recursion
        return "The JSON schema is nested too deeply"
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"Grammar error: {exc.message}"
    return None


def _nesting(value: Any) -> int:
    """How deep objects and arrays nest in a JSON value (iteratively: any depth)."""
    depth, level = 0, [value] if isinstance(value, (dict, list)) else []
    while level:
        depth += 1
        children = (
            c for node in level for c in (node.values() if isinstance(node, dict) else node)
        )
        level = [child for child in children if isinstance(child, (dict, list))]
    return depth


class GenerateCall(NamedTuple):
    """One generate request a scripted engine received."""

    prompt_token_ids: list[int]
    sampling: SamplingSettings
    max_tokens: int


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
        self.generate_calls: list[GenerateCall] = []
        self.score_calls: list[tuple[int, int]] = []  # draft positions scored: [start, end)
        self.fail_after_tokens: int | None = None  # raise `failure` after this many tokens
        self.failure: type[Exception] = EngineError
        self.is_dead = False  # every call raises EngineUnavailable
        self.recovers = False  # like a remote server: is_dead may be set back to False
        self.cache_salts: dict[str, str | None] = {}  # request id -> its prefix-cache salt
        self.sessions = False  # offer scoring sessions (as the in-process engine does)
        self.session_chunks: list[tuple[str, int, int]] = []  # (session, start, end) scored
        self._prompt_lens: dict[str, int] = {}

    async def generate(
        self,
        prompt_token_ids: Sequence[int],
        sampling: SamplingSettings,
        request_id: str,
        *,
        max_tokens: int,
        cache_salt: str | None = None,
    ) -> AsyncIterator[GenerationDelta]:
        self._check_alive()
        refusal = vllm_refusal(prompt_token_ids, sampling, vocab_size=len(self.tokenizer))
        if refusal is not None:  # vLLM raises on the first step too, after a stream's 200
            raise EngineRequestInvalid(f"{self.model_name}: {refusal}")
        self.cache_salts[request_id] = cache_salt
        self.generate_calls.append(GenerateCall(list(prompt_token_ids), sampling, max_tokens))
        ids = self._script_after(prompt_token_ids)[:max_tokens]
        async with self._running(request_id):
            sent = 0
            for n, token_id in enumerate(ids, start=1):
                await asyncio.sleep(self.delay_s)
                if self.fail_after_tokens is not None and n > self.fail_after_tokens:
                    raise self.failure(f"{self.model_name}: scripted failure")
                full = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
                logprobs = self._logprobs(token_id, sampling.num_logprobs)
                finish = None
                if n == len(ids):
                    finish = FinishReason.LENGTH if n == max_tokens else FinishReason.STOP
                end = len(full)
                if not finish and full.endswith("\ufffd"):
                    end = sent  # like vLLM: an incomplete character waits for its next bytes
                yield GenerationDelta([token_id], full[sent:end], logprobs, finish)
                sent = end
            if not ids:
                yield GenerationDelta([], "", None, FinishReason.STOP)

    async def score(
        self,
        prefix_token_ids: Sequence[int],
        token_ids: Sequence[int],
        request_id: str,
        *,
        cache_salt: str | None = None,
    ) -> Scores:
        self._check_alive()
        self.cache_salts[request_id] = cache_salt
        async with self._running(request_id):
            await asyncio.sleep(self.delay_s)
            start = self._draft_position(prefix_token_ids, request_id)
            self.score_calls.append((start, start + len(token_ids)))
            first = self._script_ids()[:1] or [self.tokenizer.eos_token_id]
            return Scores(
                logprobs=[_log(self.probability(start + i)) for i in range(len(token_ids))],
                greedy_next=first * len(token_ids),
            )

    @asynccontextmanager
    async def _running(self, request_id: str) -> AsyncIterator[None]:
        """A request in the engine. One that ends early (cancelled, closed, failed) is aborted
        over a few awaits, as vLLM's abort and closing an HTTP stream are: a second
        cancellation landing in them leaves the request running, as it would on vLLM."""
        self.running.add(request_id)
        try:
            yield
        except BaseException:
            for _ in range(_ABORT_AWAITS):
                await asyncio.sleep(0)
            self.running.discard(request_id)
            raise
        self.running.discard(request_id)

    def open_scoring_session(
        self, prompt_token_ids: Sequence[int], request_id: str, *, cache_salt: str | None = None
    ) -> ScriptedSession | None:
        if not self.sessions:
            return None
        self._check_alive()
        self.cache_salts[request_id] = cache_salt
        return ScriptedSession(self, list(prompt_token_ids), request_id)

    def check_structured_output(self, structured: StructuredOutput) -> None:
        refusal = structured_refusal(structured)
        if refusal is not None:
            raise EngineRequestInvalid(f"{self.model_name}: {refusal}")

    async def check_health(self) -> None:
        self._check_alive()

    async def warm_up(self) -> None:
        return None

    def num_unfinished_requests(self) -> int:
        return len(self.running)

    def shutdown(self) -> None:
        return None

    # -- script --------------------------------------------------------------------------

    def _script_ids(self) -> list[int]:
        return list(self.tokenizer.encode(self.text, add_special_tokens=False))

    def _script_after(self, prompt_token_ids: Sequence[int]) -> list[int]:
        """The script, continued where the prompt left it (e.g. after its own first token)."""
        ids = self._script_ids()
        done = next(
            (k for k in range(len(ids), 0, -1) if list(prompt_token_ids[-k:]) == ids[:k]), 0
        )
        return ids[done:]

    def _draft_position(self, prefix_token_ids: Sequence[int], request_id: str) -> int:
        """Where in the draft a scoring pass starts. A request's first pass (and an answer's
        logprobs pass) comes right after the prompt: that fixes the prompt's length."""
        request = request_id.split("-score-")[0].removesuffix("-logprobs")
        prompt_len = self._prompt_lens.setdefault(request, len(prefix_token_ids))
        return len(prefix_token_ids) - prompt_len

    def _logprobs(self, token_id: int, num_logprobs: int | None) -> list[TokenLogprob] | None:
        if num_logprobs is None:
            return None
        top = {token_id: math.log(0.6)}
        for k in range(num_logprobs):
            top.setdefault((token_id + k + 1) % len(self.tokenizer), math.log(0.3 / (k + 1)))
        return [TokenLogprob(token_id, top[token_id], top)]

    def _check_alive(self) -> None:
        if self.is_dead:
            raise EngineUnavailable(f"{self.model_name}: engine died")


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


class ScriptedSession:
    """A scoring session on a scripted engine: the draft read chunk by chunk, the same
    probabilities a pass gives; a running request from the prompt's reading to its close."""

    def __init__(self, engine: ScriptedEngine, prompt_token_ids: list[int], request_id: str):
        self.engine = engine
        self.request_id = request_id
        self.num_prompt = len(prompt_token_ids)
        self.num_read = 0  # draft tokens read
        self.is_closed = False
        self.is_started = False

    async def start(self) -> None:
        if not self.is_started:
            self.engine._check_alive()
            self.engine.running.add(self.request_id)
            self.is_started = True
            await asyncio.sleep(self.engine.delay_s)

    async def score(self, token_ids: Sequence[int]) -> Scores:
        await self.start()
        self.engine._check_alive()
        if self.is_closed:
            raise EngineError(f"{self.engine.model_name}: the session ended")
        await asyncio.sleep(self.engine.delay_s)
        start = self.num_read
        self.num_read += len(token_ids)
        self.engine.session_chunks.append((self.request_id, start, self.num_read))
        first = self.engine._script_ids()[:1] or [self.engine.tokenizer.eos_token_id]
        probability = self.engine.probability
        return Scores(
            logprobs=[_log(probability(start + i)) for i in range(len(token_ids))],
            greedy_next=first * len(token_ids),
        )

    async def close(self) -> None:
        for _ in range(_ABORT_AWAITS):  # as an abort takes a few turns of the loop
            await asyncio.sleep(0)
        self.is_closed = True
        self.engine.running.discard(self.request_id)
