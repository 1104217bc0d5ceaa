"""A WSD request, what it produces, and the rule that decides what the base model continues."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

from wsd_engine.config import WSDConfig
from wsd_engine.engines.protocol import FinishReason
from wsd_engine.templates import Message


class SwitchReason(StrEnum):
    """Why the answer's draft part ends where it does."""

    THRESHOLD = "threshold"  # a window of base probabilities reached the threshold
    DRAFT_END = "draft_end"  # the pilot finished before any window passed: whole draft kept
    DRAFT_LIMIT = "draft_limit"  # draft_max_tokens reached before any window passed


class RequestError(ValueError):
    """A request cannot be served as given; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class ContextLengthExceeded(RequestError):
    """Prompt plus requested tokens do not fit a model's context."""

    def __init__(self, message: str, param: str = "messages") -> None:
        super().__init__(message, param=param, code="context_length_exceeded")


@dataclass(frozen=True)
class WSDParams:
    """Method settings for one request (server defaults unless the request overrides them)."""

    threshold: float = 0.8
    window: int = 6
    draft_max_tokens: int = 512
    continue_after_draft_end: bool = True

    @classmethod
    def from_config(cls, config: WSDConfig, **overrides: object) -> WSDParams:
        """Server defaults with per-request overrides (None means: keep the default)."""
        values: dict[str, object] = {
            "threshold": config.threshold,
            "window": config.window,
            "draft_max_tokens": config.draft_max_tokens,
            "continue_after_draft_end": config.continue_after_draft_end,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class WSDRequest:
    """One chat completion to answer with Weak-to-Strong Decoding."""

    request_id: str
    messages: tuple[Message, ...]
    max_tokens: int
    params: WSDParams = field(default_factory=WSDParams)
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def engine_seed(self, role: str) -> int | None:
        """A seed of its own for each engine, derived from the request's seed."""
        if self.seed is None:
            return None
        digest = hashlib.sha256(f"{self.seed}:{role}".encode()).digest()
        return int.from_bytes(digest[:8], "big") >> 1


@dataclass
class SwitchInfo:
    """Where and when the answer switched from the pilot's draft to the base model."""

    accept_index: int | None = None
    reason: SwitchReason | None = None
    num_pilot_tokens: int = 0
    num_wasted_pilot_tokens: int = 0
    num_draft_tokens: int = 0
    num_accepted_tokens: int = 0
    num_accepted_chars: int = 0
    time_to_first_token_s: float | None = None
    time_to_switch_s: float | None = None
    switch_latency_s: float | None = None


@dataclass
class TextDelta:
    """A piece of the answer that is final and may be streamed."""

    text: str
    from_pilot: bool


@dataclass
class WSDOutcome:
    """The finished answer with its accounting."""

    text: str
    finish_reason: FinishReason
    num_prompt_tokens: int
    num_completion_tokens: int
    switch: SwitchInfo
    num_pilot_prompt_tokens: int = 0


@dataclass(frozen=True)
class ContinuationPlan:
    """How many draft tokens the answer keeps and what the base model still writes."""

    num_kept: int
    base_budget: int
    reason: SwitchReason | None
    accept_index: int | None  # the switch rule's index, else the last draft index


def plan_continuation(
    *,
    num_draft_tokens: int,
    accept_index: int | None,
    pilot_finish: FinishReason | None,
    max_tokens: int,
    continue_after_draft_end: bool,
) -> ContinuationPlan:
    """DESIGN.md section 2, step 6: keep t_0..t_a, continue with max_tokens - (a + 1)."""
    if accept_index is not None:
        reason: SwitchReason | None = SwitchReason.THRESHOLD
        num_kept = accept_index + 1
    else:
        reason = (
            SwitchReason.DRAFT_LIMIT
            if pilot_finish is FinishReason.LENGTH
            else SwitchReason.DRAFT_END
        )
        num_kept = num_draft_tokens
        accept_index = num_draft_tokens - 1 if num_draft_tokens else None
    if num_kept >= max_tokens:
        return ContinuationPlan(max_tokens, 0, reason, accept_index)
    stops_here = reason is SwitchReason.DRAFT_END and not continue_after_draft_end
    budget = 0 if stops_here and num_kept > 0 else max_tokens - num_kept
    return ContinuationPlan(num_kept, budget, reason, accept_index)
