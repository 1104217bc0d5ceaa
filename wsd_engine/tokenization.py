"""The draft text, as it grows, in the base model's tokens, with a stability guarantee."""

from __future__ import annotations

import re
from typing import Any

_LAST_WORDS = re.compile(r"\s+\S+\s*$")
# Text without whitespace (digit runs, CJK, long URLs) has no word boundary to cut at; there
# a token boundary this many characters before the end is used instead.
_DEEP_CUT_MARGIN_CHARS = 32


class StabilityViolation(RuntimeError):
    """A token declared stable changed: the stability rule does not hold for this tokenizer."""


class DraftTokenizer:
    """Tokenizes a growing draft text with the base tokenizer.

    `stable_ids` is a prefix of every later tokenization: those tokens may be scored and
    streamed. Byte-level and SentencePiece-style BPE never merge a token across the start of
    a whitespace run that precedes a word followed by more text, so the cut is placed before
    the last word (and its leading whitespace); the cut is only used when tokenizing the text
    up to it gives exactly the first tokens of the whole text. Long runs without whitespace
    are cut at a token boundary well before their end instead.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.text = ""
        self.stable_ids: list[int] = []
        self._stable_chars = 0
        self.is_final = False

    @property
    def stable_text(self) -> str:
        """The text the stable tokens cover."""
        return self.text[: self._stable_chars]

    def encode(self, text: str) -> list[int]:
        """Base token ids of a text fragment, without special tokens."""
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def append(self, text: str) -> list[int]:
        """Add pilot text; returns the base tokens that just became stable."""
        if self.is_final:
            raise RuntimeError("the draft is already final")
        self.text += text
        cut = self._candidate_cut()
        if cut <= self._stable_chars:
            return []
        head_ids = self.encode(self.text[:cut])
        if self.encode(self.text)[: len(head_ids)] != head_ids:
            return []  # an unusual boundary: wait for more text
        return self._commit(head_ids, cut)

    def finish(self, strip_trailing_whitespace: bool = True) -> list[int]:
        """The draft is complete: every remaining token becomes stable and is returned."""
        if strip_trailing_whitespace:
            self.text = self.text.rstrip()
        self.is_final = True
        return self._commit(self.encode(self.text), len(self.text))

    def _candidate_cut(self) -> int:
        match = _LAST_WORDS.search(self.text)
        word_cut = match.start() if match else 0
        if len(self.text) - word_cut <= 2 * _DEEP_CUT_MARGIN_CHARS:
            return word_cut
        return max(word_cut, self._token_boundary_before(len(self.text) - _DEEP_CUT_MARGIN_CHARS))

    def _token_boundary_before(self, limit: int) -> int:
        """End offset of the last token that ends at or before `limit` characters."""
        encoding = self._tokenizer(self.text, add_special_tokens=False, return_offsets_mapping=True)
        ends = [end for _, end in encoding["offset_mapping"] if end <= limit]
        return max(ends, default=0)

    def _commit(self, ids: list[int], cut: int) -> list[int]:
        if ids[: len(self.stable_ids)] != self.stable_ids:
            raise StabilityViolation(
                f"stable tokens changed at text length {cut}: the stability rule failed"
            )
        new_ids = ids[len(self.stable_ids) :]
        self.stable_ids = ids
        self._stable_chars = cut
        return new_ids


class IncrementalDecoder:
    """Decodes a growing list of base tokens into text pieces that never change later."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.text = ""

    def decode(self, token_ids: list[int]) -> str:
        """Full text of the tokens (special tokens skipped)."""
        return str(self._tokenizer.decode(token_ids, skip_special_tokens=True))

    def advance(self, token_ids: list[int], is_final: bool = False) -> str:
        """New text since the last call; an incomplete character waits unless `is_final`."""
        full = self.decode(token_ids)
        if not is_final and full.endswith("\ufffd"):
            return ""
        if not full.startswith(self.text):
            raise StabilityViolation("decoded text of a token prefix changed")
        piece = full[len(self.text) :]
        self.text = full
        return piece


class StreamedDraft:
    """The draft text that is final and may be streamed, and how much of it was sent.

    Final text is the decoded settled tokens or, before any token is settled, the early head:
    draft text certainly inside the first `window` base tokens, which every answer keeps.
    """

    def __init__(self, draft: DraftTokenizer, decoder: IncrementalDecoder, window: int) -> None:
        self.draft = draft
        self.decoder = decoder
        self.window = window
        self.num_tokens = 0  # settled draft tokens decoded so far
        self.sent = ""

    def advance(self, upto: int, limit: int, is_final: bool = False) -> str:
        """Text that became final now that `upto` tokens are settled (at most `limit`)."""
        upto = min(upto, limit, len(self.draft.stable_ids))
        if upto > self.num_tokens or is_final:
            self.num_tokens = max(upto, self.num_tokens)
            self.decoder.advance(self.draft.stable_ids[: self.num_tokens], is_final=is_final)
        final_text = self.decoder.text
        if not is_final:
            early = self._early_head(min(self.window, limit))
            if len(early) > len(final_text):
                final_text = early
        if not final_text.startswith(self.sent):
            raise StabilityViolation("draft text already streamed is not a prefix of the answer")
        piece = final_text[len(self.sent) :]
        self.sent = max(final_text, self.sent, key=len)
        return piece

    def _early_head(self, limit: int) -> str:
        """Draft text certainly inside the first `limit` base tokens.

        Tokens past the stable cut may still change, but each covers at least one UTF-8
        byte, so the bytes right after the cut fit in the remaining first-window tokens.
        Trailing whitespace is left out: the finished draft is stripped.
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
        # the answer is decoded from base tokens: only text that survives the round trip
        if self.decoder.decode(self.draft.encode(candidate)) != candidate:
            return ""
        return candidate
