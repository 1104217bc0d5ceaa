"""When a reader gets each piece of one answer: the stream's gaps, the handoff, the draft's lag.

Fed by the server with the moment each piece of text is sent, where it is sent (for a
non-streamed response, when the piece arrives); docs/metrics.md has the definitions.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from wsd_engine.config import Role

# The gaps into the first and into the second chunk of base text make the switch latency:
# the first base token may come at once from the scoring pass that decided the switch, the
# second waits for the base engine.
_SWITCH_CHUNKS = 2


@dataclass
class StreamTimeline:
    """The timings of one answer's content chunks, as sent."""

    started: float
    first_sent: float | None = None
    last_sent: float | None = None
    last_gap_s: float | None = None  # between the last two content chunks
    max_gap_s: float | None = None  # longest gap between two consecutive content chunks
    base_gaps: list[float] = field(default_factory=list)  # into the first base chunks
    base_pace: list[float] = field(default_factory=list)  # between later base chunks
    draft_lags: list[float] = field(default_factory=list)  # per pilot token sent

    def sent(self, text: str, source: Role, at: float, pilot_times: Sequence[float] = ()) -> None:
        """A content chunk left at `at`; `pilot_times` are the moments the pilot produced the
        draft tokens this chunk completes."""
        if not text:
            return
        gap = at - (self.started if self.last_sent is None else self.last_sent)
        if self.last_sent is None:
            self.first_sent = at
        else:
            self.last_gap_s = gap
            self.max_gap_s = gap if self.max_gap_s is None else max(self.max_gap_s, gap)
        if source is Role.BASE:
            if len(self.base_gaps) < _SWITCH_CHUNKS:
                self.base_gaps.append(gap)
            else:
                self.base_pace.append(gap)
        self.draft_lags.extend(at - produced for produced in pilot_times)
        self.last_sent = at

    @property
    def time_to_first_chunk_s(self) -> float | None:
        """From the start to the first content chunk."""
        return None if self.first_sent is None else self.first_sent - self.started

    @property
    def switch_latency_s(self) -> float | None:
        """The longer of the gaps into the first and the second chunk of base text."""
        return max(self.base_gaps) if self.base_gaps else None

    @property
    def draft_lag_p50_s(self) -> float | None:
        """Median time from the pilot producing a token to its text being sent."""
        return statistics.median(self.draft_lags) if self.draft_lags else None


@dataclass
class PilotProgress:
    """How far the pilot's draft had got, and when: one entry per pilot delta."""

    tokens: list[int] = field(default_factory=list)  # pilot tokens so far
    chars: list[int] = field(default_factory=list)  # draft characters so far
    times: list[float] = field(default_factory=list)
    num_reported: int = 0  # deltas whose tokens `newly_sent` has reported

    @property
    def num_tokens(self) -> int:
        return self.tokens[-1] if self.tokens else 0

    def add(self, num_tokens: int, num_chars: int, at: float) -> None:
        """The pilot's draft now holds `num_tokens` tokens and `num_chars` characters."""
        self.tokens.append(num_tokens)
        self.chars.append(num_chars)
        self.times.append(at)

    def _first_covering(self, num_chars: int) -> int | None:
        return next((i for i, chars in enumerate(self.chars) if chars >= num_chars), None)

    def produced_at(self, num_chars: int) -> float | None:
        """When the pilot had produced the first `num_chars` characters of the draft."""
        index = self._first_covering(num_chars)
        return None if index is None else self.times[index]

    def tokens_beyond(self, num_chars: int) -> int:
        """Pilot tokens drafted after the first `num_chars` characters were complete."""
        index = self._first_covering(num_chars)
        return 0 if index is None else self.num_tokens - self.tokens[index]

    def newly_sent(self, sent_chars: int) -> tuple[float, ...]:
        """When the pilot produced each token whose text now lies within the first
        `sent_chars` characters sent, each token reported once."""
        first = last = self.num_reported
        while last < len(self.chars) and self.chars[last] <= sent_chars:
            last += 1
        self.num_reported = last
        times: list[float] = []
        previous = self.tokens[first - 1] if first else 0
        for tokens, when in zip(self.tokens[first:last], self.times[first:last], strict=True):
            times += [when] * (tokens - previous)
            previous = tokens
        return tuple(times)
