"""What the orchestrator needs from an engine: the protocol every engine adapter implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol


class FinishReason(StrEnum):
    """Why an engine stopped generating."""

    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"


class EngineError(RuntimeError):
    """An engine failed while serving a request."""


class EngineUnavailable(EngineError):
    """The engine is gone or not answering (HTTP 503)."""


class EngineRequestInvalid(EngineError):
    """The engine rejected a request's parameters (HTTP 400); `param` names the one it
    named, if any."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class StructuredKind(StrEnum):
    """What form a structured output must take."""

    JSON_OBJECT = "json_object"  # any JSON object
    JSON_SCHEMA = "json_schema"  # JSON following `StructuredOutput.schema`


@dataclass(frozen=True)
class StructuredOutput:
    """A constraint on an answer's form, enforced token by token by the engine.

    The schema is kept as JSON text, not a dict, so that the settings stay hashable.
    """

    kind: StructuredKind
    schema: str | None = None  # JSON_SCHEMA only

    def __post_init__(self) -> None:
        if (self.kind is StructuredKind.JSON_SCHEMA) != (self.schema is not None):
            raise ValueError(
                f"{self.kind.value}: a schema goes with json_schema, with no other kind"
            )


@dataclass(frozen=True)
class SamplingSettings:
    """How an engine picks tokens. The budget (`max_tokens`) is given per engine request, and
    stop strings are matched by the caller, on the text (engines get none: vLLM would hold
    back the last characters of every chunk that might begin one)."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    num_logprobs: int | None = None  # alternatives per token, when logprobs are asked for
    ignore_eos: bool = False
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias) pairs
    stop_token_ids: tuple[int, ...] = ()
    min_tokens: int = 0
    structured: StructuredOutput | None = None

    @property
    def changes_logits(self) -> bool:
        """Whether the settings move the model's logits (so greedy decoding may pick another
        token than the raw top-1)."""
        penalties = (self.presence_penalty, self.frequency_penalty, self.repetition_penalty)
        return penalties != (0.0, 0.0, 1.0) or bool(self.logit_bias) or self.structured is not None

    def for_choice(self, index: int) -> SamplingSettings:
        """The settings of choice `index` of `n`: a seeded request samples choice i with
        seed + i."""
        return self if self.seed is None else replace(self, seed=self.seed + index)


@dataclass
class TokenLogprob:
    """Log-probability of a sampled token and, optionally, the top alternatives."""

    token_id: int
    logprob: float
    top: dict[int, float] = field(default_factory=dict)


@dataclass
class Scores:
    """What one scoring pass says about the tokens it scored."""

    logprobs: list[float]  # log-probability of each scored token
    greedy_next: list[int]  # the model's most likely token right after each scored token


@dataclass
class GenerationDelta:
    """New output of a streaming generation since the previous delta."""

    token_ids: list[int]
    text: str
    logprobs: list[TokenLogprob] | None = None
    finish_reason: FinishReason | None = None

    @property
    def is_finished(self) -> bool:
        """True on the last delta of a request."""
        return self.finish_reason is not None


class ScoringSession(Protocol):
    """The base engine's reading of one answer's draft, chunk after chunk: the prompt is read
    once when the session opens, and each chunk costs only its new tokens (their KV stays in
    the engine between chunks)."""

    async def start(self) -> None:
        """Read the prompt (a first chunk the engine computes without log-probabilities)."""
        ...

    async def score(self, token_ids: Sequence[int]) -> Scores:
        """Log-probabilities of the next draft tokens, after everything read so far, and the
        model's most likely token after each; one chunk at a time."""
        ...

    async def close(self) -> None:
        """End the session (its full KV blocks stay in the prefix cache)."""
        ...


class Engine(Protocol):
    """One model behind one engine: the in-process vLLM adapter (`vllm_local.py`) and the
    remote one (a vLLM server over HTTP, `vllm_remote.py`) implement it."""

    @property
    def model_name(self) -> str:
        """Served model id."""
        ...

    @property
    def max_model_len(self) -> int:
        """Context length in tokens."""
        ...

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer."""
        ...

    @property
    def cache_block_size(self) -> int | None:
        """Tokens per prefix-cache block, or None when the engine does not cache prefixes.

        Only whole blocks are cached: a request whose tokens end mid-block leaves the next
        request with the same prefix to recompute that partial block.
        """
        ...

    def generate(
        self,
        prompt_token_ids: Sequence[int],
        sampling: SamplingSettings,
        request_id: str,
        *,
        max_tokens: int,
        cache_salt: str | None = None,
    ) -> AsyncIterator[GenerationDelta]:
        """Stream up to `max_tokens` tokens; closing or cancelling the consumer aborts the
        request.

        Requests with a `cache_salt` share prefix-cache blocks only with requests of the same
        salt.
        """
        ...

    def check_structured_output(self, structured: StructuredOutput) -> None:
        """Raise EngineRequestInvalid when the engine cannot enforce `structured` (e.g. a
        schema it cannot compile), so a request is refused before its response starts.
        Blocking: compiling a schema is CPU work."""
        ...

    async def score(
        self,
        prefix_token_ids: Sequence[int],
        token_ids: Sequence[int],
        request_id: str,
        *,
        cache_salt: str | None = None,
    ) -> Scores:
        """Log-probability of each of `token_ids` given the prefix and the tokens before it,
        and the model's most likely token after each of them (one forward pass)."""
        ...

    def open_scoring_session(
        self, prompt_token_ids: Sequence[int], request_id: str, *, cache_salt: str | None = None
    ) -> ScoringSession | None:
        """A scoring session that starts by reading the prompt, or None when the engine scores
        with independent passes only (`score`)."""
        ...

    @property
    def recovers(self) -> bool:
        """Whether the engine may come back by itself after failing (a remote server that
        restarts): its failures are then not fatal to the process."""
        ...

    async def check_health(self) -> None:
        """Raise EngineUnavailable when the engine cannot serve."""
        ...

    async def warm_up(self) -> None:
        """Run a tiny request so the first real one does not pay for lazy set-up."""
        ...

    def num_unfinished_requests(self) -> int:
        """Requests the engine is still working on."""
        ...

    def shutdown(self) -> None:
        """Stop the engine and every process it started."""
        ...
