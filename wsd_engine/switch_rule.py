"""The paper's switch rule: the first window whose geometric-mean probability reaches gamma."""

from __future__ import annotations

import math
from collections.abc import Sequence


def window_passes(logprobs: Sequence[float], threshold: float) -> bool:
    """True when the geometric mean of the window's probabilities reaches the threshold."""
    if threshold <= 0.0:
        return True
    mean_logprob = math.fsum(logprobs) / len(logprobs)
    return math.exp(mean_logprob) >= threshold


def find_accept_index(logprobs: Sequence[float], window: int, threshold: float) -> int | None:
    """First index i >= window-1 whose window [i-window+1, i] passes; None when none does.

    `logprobs[i]` is the base model's log-probability of draft token i. The caller keeps the
    whole draft when this returns None (DESIGN.md section 2, step 5).
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

        Token i is kept unless a window ending before i passes; while no window has passed,
        every window ending before i has been checked once tokens 0..i-1 are scored.
        """
        if self.accept_index is not None:
            return self.accept_index + 1
        return max(self.num_scored + 1, self.window)

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
