"""The paper's switch rule and what follows from it: where the draft ends, what the base writes.

Steps 5 and 6 of the method (docs/method.md): the accept index is the first index whose
window of base probabilities has a geometric mean at or above the threshold; the answer keeps
draft tokens t_0..t_a and the base model writes at most `max_tokens - (a + 1)` more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from wsd_engine.engines.engine import FinishReason


class SwitchReason(StrEnum):
    """Why the answer's draft part ends where it does."""

    THRESHOLD = "threshold"  # a window of base probabilities reached the threshold
    DRAFT_END = "draft_end"  # the pilot finished before any window passed: whole draft kept
    DRAFT_LIMIT = "draft_limit"  # draft_max_tokens reached before any window passed


def window_passes(logprobs: Sequence[float], threshold: float) -> bool:
    """True when the geometric mean of the window's probabilities reaches the threshold."""
    if threshold <= 0.0:
        return True
    mean_logprob = math.fsum(logprobs) / len(logprobs)
    return math.exp(mean_logprob) >= threshold


def find_accept_index(logprobs: Sequence[float], window: int, threshold: float) -> int | None:
    """First index i >= window-1 whose window [i-window+1, i] passes; None when none does.

    `logprobs[i]` is the base model's log-probability of draft token i. The caller keeps the
    whole draft when this returns None.
    """
    for end in range(window - 1, len(logprobs)):
        if window_passes(logprobs[end - window + 1 : end + 1], threshold):
            return end
    return None


class SwitchTracker:
    """Incremental switch rule: feed scored draft tokens in order, learn the accept index."""

    def __init__(self, window: int, threshold: float) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.window = window
        self.threshold = threshold
        self.logprobs: list[float] = []
        self.accept_index: int | None = None

    @property
    def num_scored(self) -> int:
        """Draft tokens whose base log-probability is known."""
        return len(self.logprobs)

    @property
    def num_settled_by_score(self) -> int:
        """Draft tokens that belong to the answer whatever the later scores are.

        Token i is kept unless a window ending before i passes. A window that still holds
        scored tokens cannot pass when even probability 1 for its unscored tokens leaves its
        geometric mean below the threshold; once the earliest window that could still pass
        ends at j, every accept index is at least j, so tokens 0..j are kept.
        """
        if self.accept_index is not None:
            return self.accept_index + 1
        scored = self.num_scored
        end = max(scored, self.window - 1)
        while end < scored + self.window - 1:
            start = end - self.window + 1
            best_case = [*self.logprobs[start:], *[0.0] * (end + 1 - scored)]
            if window_passes(best_case, self.threshold):
                break
            end += 1
        return end + 1

    def extend(self, logprobs: Sequence[float]) -> int | None:
        """Add the next scored tokens; returns the accept index once a window passes."""
        if self.accept_index is not None:
            return self.accept_index
        for logprob in logprobs:
            self.logprobs.append(logprob)
            end = len(self.logprobs) - 1
            if end >= self.window - 1 and window_passes(
                self.logprobs[end - self.window + 1 :], self.threshold
            ):
                self.accept_index = end
                break
        return self.accept_index


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
    min_tokens: int = 0,
) -> ContinuationPlan:
    """Keep t_0..t_a (the whole draft when no window passed), continue with the rest (an
    answer of at least `min_tokens` tokens in all)."""
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
    # a draft that ends before min_tokens does not end the answer
    stops_here = (
        reason is SwitchReason.DRAFT_END and not continue_after_draft_end and num_kept >= min_tokens
    )
    budget = 0 if stops_here and num_kept > 0 else max_tokens - num_kept
    return ContinuationPlan(num_kept, budget, reason, accept_index)
