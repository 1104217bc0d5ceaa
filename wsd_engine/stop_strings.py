"""Stop strings, matched on the text by us, never by an engine: across the pilot-to-base seam
of a WSD answer, and on a single model's stream, whose chunks then carry whole tokens' text
(vLLM, given stop strings, holds back the last characters of every chunk that might begin one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import replace

from wsd_engine.engines.engine import FinishReason, GenerationDelta


class StopStringFilter:
    """Streams text, holding back what might start a stop string, and cuts at the first one.

    The whole answer (draft part and continuation) goes through one filter, so a stop
    string that straddles the seam is found just like one inside either part.
    """

    def __init__(self, stop: Iterable[str]) -> None:
        self.stop = tuple(s for s in stop if s)
        self._max_len = max((len(s) for s in self.stop), default=0)
        self._text = ""
        self._sent = 0
        self.is_stopped = False

    @property
    def text(self) -> str:
        """The answer so far, cut at the stop string once one has been seen."""
        return self._text

    def push(self, text: str) -> str:
        """Add text; returns the part that is now safe to send (never part of a stop string)."""
        if self.is_stopped or not text:
            return ""
        search_from = max(0, len(self._text) - self._max_len + 1)
        self._text += text
        cut = self._first_stop(search_from)
        if cut is not None:
            self._text = self._text[:cut]
            self.is_stopped = True
            return self._release(len(self._text))
        return self._release(len(self._text) - self._held_back())

    def leaves_pending(self, text: str) -> bool:
        """Whether pushing `text` would leave text held back as a possible stop string start."""
        probe = StopStringFilter(self.stop)
        probe._text = self._text[-self._max_len :] if self._max_len else ""
        probe.push(text)
        return not probe.is_stopped and probe._held_back() > 0

    def flush(self) -> str:
        """The answer is complete: release what was held back."""
        return self._release(len(self._text))

    def _first_stop(self, search_from: int) -> int | None:
        hits = [i for s in self.stop if (i := self._text.find(s, search_from)) >= 0]
        return min(hits) if hits else None

    def _held_back(self) -> int:
        """Length of the longest suffix that is a proper prefix of some stop string."""
        for length in range(min(self._max_len - 1, len(self._text)), 0, -1):
            suffix = self._text[-length:]
            if any(s.startswith(suffix) for s in self.stop):
                return length
        return 0

    def _release(self, end: int) -> str:
        end = max(end, self._sent)
        piece = self._text[self._sent : end]
        self._sent = end
        return piece


async def until_stop(
    deltas: AsyncIterator[GenerationDelta], stop: Iterable[str]
) -> AsyncIterator[GenerationDelta]:
    """An engine's deltas with the text that may be sent: held back only while it may begin a
    stop string, cut at the first one. The delta with the stop string is the last (finish
    reason stop), and closing the engine's stream aborts its request."""
    stops = StopStringFilter(stop)
    try:
        async for delta in deltas:
            if not stops.stop:
                yield delta
                continue
            text = stops.push(delta.text)
            if stops.is_stopped:
                yield replace(delta, text=text, finish_reason=FinishReason.STOP)
                return
            if delta.finish_reason is not None:
                text += stops.flush()
            yield replace(delta, text=text)
    finally:
        await deltas.aclose()  # type: ignore[attr-defined]
