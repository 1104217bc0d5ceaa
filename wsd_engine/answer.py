"""The streaming policy: which text of a WSD answer is final, and when it may be sent.

The answer is the kept draft (base tokens t_0..t_a, decoded) followed by the base model's
continuation, cut at the first stop string. Draft text is final once its base tokens are
*settled*: stable (no later re-tokenization of the growing draft can change them) and not
beyond the switch (every window ending before them has been scored and failed). Before any
token is settled, the *early head* is final too: draft text that certainly lies inside the
first `window` base tokens, which every answer keeps. Text that might begin a stop string is
held back until it cannot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from wsd_engine.stop_strings import StopStringFilter
from wsd_engine.tokenization import DraftTokenizer, IncrementalDecoder, StabilityViolation


class AnswerStream:
    """The answer of one WSD request as it becomes final, with its accounting."""

    def __init__(
        self,
        draft: DraftTokenizer,
        tokenizer: Any,
        window: int,
        max_tokens: int,
        stop: Iterable[str],
    ) -> None:
        self.draft = draft
        self.window = window
        self.max_tokens = max_tokens
        self._decoder = IncrementalDecoder(tokenizer)
        self._stops = StopStringFilter(stop)
        self._draft_sent = ""  # draft text handed to the stop filter
        self.num_tokens = 0  # answer tokens so far (base tokenization)
        self.num_draft_tokens = 0  # settled draft tokens in the answer
        self.prefix_chars = 0  # answer characters that came from the draft

    @property
    def text(self) -> str:
        """The answer so far (cut at a stop string once one has been seen)."""
        return self._stops.text

    @property
    def kept_draft_text(self) -> str:
        """The decoded settled draft tokens."""
        return self._decoder.text

    @property
    def is_stopped(self) -> bool:
        """A stop string has been seen: nothing more is added."""
        return self._stops.is_stopped

    @property
    def is_complete(self) -> bool:
        """Stopped, or max_tokens tokens written."""
        return self.is_stopped or self.num_tokens >= self.max_tokens

    def release_draft(self, num_settled: int, is_final: bool = False) -> str:
        """Text that became final now that `num_settled` draft tokens are settled.

        With `is_final` the draft part is complete (the switch): exactly those tokens are kept,
        and the early head no longer applies.
        """
        upto = min(num_settled, self.max_tokens, len(self.draft.stable_ids))
        # max_tokens kept: the answer's draft part ends here too, a cut character included
        is_last = is_final or upto == self.max_tokens
        if upto > self.num_draft_tokens or is_last:
            self.num_draft_tokens = max(upto, self.num_draft_tokens)
            kept = self.draft.stable_ids[: self.num_draft_tokens]
            self._decoder.advance(kept, is_final=is_last)
            self.num_tokens = max(self.num_tokens, self.num_draft_tokens)
        final_text = self._decoder.text
        if not is_last:
            early = self._early_head(min(self.window, self.max_tokens))
            if len(early) > len(final_text):
                final_text = early
        released = self._stops.push(self._unsent_draft(final_text, is_last))
        self.prefix_chars = len(self._stops.text)
        return released

    def add_base(self, text: str, num_tokens: int) -> str:
        """Add base-model output; returns the text that may be sent now."""
        self.num_tokens += num_tokens
        return self._stops.push(text)

    def finish(self) -> str:
        """The answer is complete: release what was held back."""
        self.prefix_chars = min(self.prefix_chars, len(self._stops.text))
        return self._stops.flush()

    def text_after_draft(self, token_id: int) -> str | None:
        """The text a base token adds right after the kept draft, when it can be streamed
        ahead of the engine: it decodes to whole characters and cannot begin a stop string
        (such a token is left to the engine, whose output the stop filter then reads)."""
        kept = self.draft.stable_ids[: self.num_draft_tokens]
        before = self._decoder.decode(kept)
        after = self._decoder.decode([*kept, token_id])
        if not after.startswith(before) or after.endswith("\ufffd") or after == before:
            return None
        text = after[len(before) :]
        return None if self._stops.leaves_pending(text) else text

    def _unsent_draft(self, final_text: str, is_last: bool) -> str:
        """The part of the final draft text not sent yet.

        Settled text and the early head are both prefixes of every possible answer, so either
        may be shorter than what the other already sent, until the draft part is complete.
        Anything else means a rule is broken.
        """
        if final_text.startswith(self._draft_sent):
            piece = final_text[len(self._draft_sent) :]
            self._draft_sent = final_text
            return piece
        if not is_last and self._draft_sent.startswith(final_text):
            return ""
        raise StabilityViolation("draft text already streamed is not a prefix of the answer")

    def _early_head(self, limit: int) -> str:
        """Draft text certainly inside the first `limit` base tokens, whatever they turn out to be.

        Tokens past the stable cut may still change, but each covers at least one UTF-8 byte,
        so the bytes right after the cut fit in the remaining first-window tokens. Left out:
        trailing whitespace (the finished draft is stripped), text that may begin a special
        token, and text whose decoding later tokens may change (the answer may end inside the
        next character); nothing at all when the text does not survive the round trip through
        base tokens.
        """
        budget = limit - len(self.draft.stable_ids)
        if budget <= 0 or self.draft.is_final:
            return ""
        head = self.draft.stable_text
        tail = self.draft.text.rstrip()[len(head) :]
        taken = 0
        for index, char in enumerate(tail):
            taken += len(char.encode())
            if taken > budget:
                tail = tail[:index]
                break
        candidate = head + tail
        if self._round_trip(candidate) is None:
            return ""
        candidate = candidate[: len(candidate) - self.draft.special_token_start(candidate)]
        candidate_ids = self._round_trip(candidate)
        return "" if candidate_ids is None else self._decoder.sealed_text(candidate_ids)

    def _round_trip(self, text: str) -> list[int] | None:
        """The base tokens of `text` when they decode back to it (no special token's text, no
        character the decoder writes differently)."""
        token_ids = self.draft.encode(text)
        return token_ids if self._decoder.decode(token_ids) == text else None
