"""A scoring session on the in-process engine: one answer's draft read by the base model as a
vLLM streaming-input request, chunk after chunk (docs/method.md, section 5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING, Any

from vllm import SamplingParams
from vllm.engine.protocol import StreamingInput
from vllm.inputs.engine import tokens_input
from vllm.sampling_params import RequestOutputKind

from wsd_engine.engines.engine import EngineError, Scores
from wsd_engine.engines.vllm_local import _translate_errors
from wsd_engine.engines.vllm_session_plugin import SESSION_MARK

if TYPE_CHECKING:
    from wsd_engine.engines.vllm_local import VLLMEngine


class VLLMScoringSession:
    """One answer's draft read by the base engine as a vLLM streaming-input session: the
    prompt is the first chunk (read without prompt log-probabilities), each draft chunk then
    asks for them, with `max_tokens=1` (vLLM drops a chunk's sampled token when the next one
    arrives, so the session's context is exactly the prompt and the chunks sent). The session
    plugin (`vllm_session_plugin.py`) makes the chunks' log-probabilities whole."""

    def __init__(
        self,
        engine: VLLMEngine,
        prompt_token_ids: Sequence[int],
        request_id: str,
        cache_salt: str | None,
    ) -> None:
        self._engine = engine
        self._chunks: asyncio.Queue[list[int] | None] = asyncio.Queue()
        self._chunks.put_nowait(list(prompt_token_ids))
        self._cache_salt = cache_salt
        first = SamplingParams(**_session_params(prompt_logprobs=None))
        self._outputs = engine._llm.generate(self._inputs(), first, request_id)
        self._prompt_read = False
        self._is_open = True

    async def start(self) -> None:
        """Read the prompt: its chunk's one sampled token is dropped by the next chunk."""
        if not self._prompt_read:
            await self._next()
            self._prompt_read = True

    async def score(self, token_ids: Sequence[int]) -> Scores:
        """The next chunk's log-probabilities and greedy next tokens."""
        if not token_ids:
            return Scores(logprobs=[], greedy_next=[])
        await self.start()
        self._chunks.put_nowait(list(token_ids))
        output = await self._next()
        rows = (output.prompt_logprobs or [])[-len(token_ids) :]
        if len(rows) != len(token_ids) or any(row is None for row in rows):
            raise EngineError(
                f"{self._engine.model_name}: a session chunk came back without prompt logprobs"
            )
        logprobs = [rows[i][token].logprob for i, token in enumerate(token_ids)]
        greedy_next = [_top(rows[i]) for i in range(1, len(token_ids))]
        greedy_next.append(output.outputs[0].token_ids[-1])
        return Scores(logprobs=logprobs, greedy_next=greedy_next)

    async def close(self) -> None:
        """End the input stream; vLLM then finishes the request."""
        if not self._is_open:
            return
        self._is_open = False
        self._chunks.put_nowait(None)
        await self._outputs.aclose()  # type: ignore[attr-defined]

    async def _inputs(self) -> AsyncGenerator[StreamingInput, None]:
        first = True
        while (chunk := await self._chunks.get()) is not None:
            params = None if first else SamplingParams(**_session_params(prompt_logprobs=1))
            salt = self._cache_salt if first else None
            prompt = tokens_input(chunk, cache_salt=salt)
            yield StreamingInput(prompt=prompt, sampling_params=params)
            first = False

    async def _next(self) -> Any:
        async with _translate_errors(self._engine.model_name):
            try:
                return await self._outputs.__anext__()
            except StopAsyncIteration:
                raise EngineError(f"{self._engine.model_name}: the session ended") from None


def _session_params(prompt_logprobs: int | None) -> dict[str, Any]:
    """A session chunk's SamplingParams fields: one greedy token, the chunk's prompt
    log-probabilities with the top-1, marked for the plugin."""
    return {
        "max_tokens": 1,
        "temperature": 0.0,
        "prompt_logprobs": prompt_logprobs,
        "detokenize": False,
        "output_kind": RequestOutputKind.DELTA,  # vLLM's streaming input takes no other
        "extra_args": {SESSION_MARK: True},
    }


def _top(row: Any) -> int:
    """The rank-1 token of a prompt-logprobs row."""
    return int(min(row.items(), key=lambda item: item[1].rank)[0])
