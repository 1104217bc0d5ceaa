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
