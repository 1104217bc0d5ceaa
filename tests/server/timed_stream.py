"""A streamed chat completion timed on the client's clock, and the stream figures from it."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass

import httpx


@dataclass
class TimedStream:
    """Each content chunk's text and arrival time (client clock), and the final `wsd`."""

    sent_at: float
    chunks: list[tuple[float, str]]
    wsd: dict | None

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.chunks)

    def gaps(self) -> list[float]:
        times = [at for at, _ in self.chunks]
        return [b - a for a, b in itertools.pairwise(times)]

    def switch_latency(self) -> float:
        """The longer of the gaps into the first and the second chunk of base text."""
        assert self.wsd is not None
        prefix_chars = self.wsd["prefix_chars"]
        end = 0
        previous = self.sent_at
        base_gaps = []
        for at, text in self.chunks:
            end += len(text)
            if end > prefix_chars and len(base_gaps) < 2:
                base_gaps.append(at - previous)
            previous = at
        assert base_gaps, "the answer has no base text"
        return max(base_gaps)


def timed_stream(base_url: str, body: dict) -> TimedStream:
    """POST a streamed chat completion and time each content chunk as it arrives."""
    chunks: list[tuple[float, str]] = []
    wsd = None
    sent_at = time.monotonic()
    with httpx.stream(
        "POST", f"{base_url}/v1/chat/completions", json={**body, "stream": True}, timeout=300
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            at = time.monotonic()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choice = json.loads(line[len("data: ") :])["choices"][0]
            content = choice["delta"].get("content")
            if content:
                chunks.append((at, content))
            wsd = choice.get("wsd", wsd)
    return TimedStream(sent_at, chunks, wsd)
