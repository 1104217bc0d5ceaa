"""The draft text, as it grows, in the base model's tokens, with a stability guarantee."""

from __future__ import annotations

import bisect
import functools
import re
from typing import Any

_LAST_WORDS = re.compile(r"\s+\S+\s*$")
# SentencePiece-style byte fallback: a character outside the vocabulary becomes one token per
# UTF-8 byte, and the decoder decodes each run of such tokens as one byte string.
_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")
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

    def special_token_start(self, text: str) -> int:
        """Length of the longest end of `text` that may begin a special token's text.

        The tokenizer reads a special token's text in the draft as that token, which decodes
        to nothing: text that may begin one may vanish from the answer.
        """
        specials = _special_token_texts(self._tokenizer)
        longest = max(map(len, specials), default=0)
        for length in range(min(longest, len(text)), 0, -1):
            end = text[-length:]
            index = bisect.bisect_left(specials, end)
            if index < len(specials) and specials[index].startswith(end):
                return length
        return 0

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

    def sealed_text(self, token_ids: list[int]) -> str:
        """The start of the tokens' text that no token appended later can change.

        Decoding a token list is not decoding its prefixes one after the other: a character
        cut at the end decodes to U+FFFD (byte-level BPE), and a run of byte-fallback tokens
        decodes as one byte string, so a run that ends inside a character becomes one U+FFFD
        per byte, the whole characters before the cut included. Special tokens are dropped
        before that, so a run goes on across them. A trailing run of byte and special tokens
        and trailing U+FFFD wait for the tokens after them.
        """
        end = len(token_ids)
        while end and self._may_continue_a_byte_run(token_ids[end - 1]):
            end -= 1
        return self.decode(token_ids[:end]).rstrip("\ufffd")

    def advance(self, token_ids: list[int], is_final: bool = False) -> str:
        """New text since the last call: the sealed text, or with `is_final` (no token follows)
        all of it, a cut character decoded to U+FFFD as the answer has it."""
        full = self.decode(token_ids) if is_final else self.sealed_text(token_ids)
        if not full.startswith(self.text):
            raise StabilityViolation("decoded text of a token prefix changed")
        piece = full[len(self.text) :]
        self.text = full
        return piece

    def _may_continue_a_byte_run(self, token_id: int) -> bool:
        token = self._tokenizer.convert_ids_to_tokens(token_id)
        return bool(_BYTE_TOKEN.fullmatch(token)) or self.decode([token_id]) == ""


@functools.lru_cache(maxsize=8)
def _special_token_texts(tokenizer: Any) -> tuple[str, ...]:
    """The texts of a tokenizer's special tokens, sorted (Gemma 3 has over 6,000)."""
    added = tokenizer.added_tokens_decoder.values()
    return tuple(sorted(token.content for token in added if token.special))
