"""Per-token views of a WSD answer: the logprobs of the model that wrote each token, and the
base model's scores of the draft (the `return_scores` extension).

An answer mixes two tokenizations: the pilot's tokens up to the switch, the base model's
after it. Each token's text is the text it adds to the decoded sequence, so the pieces of
one model's tokens concatenate to that model's text; the pieces are then laid over the
answer text, which they cover exactly (a token cut by the switch or by a stop string keeps
only its characters inside the answer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wsd_engine.config import Role
from wsd_engine.engines.engine import TokenLogprob

# Tokens of left context when decoding one token's text: enough for a byte-fallback run or a
# multi-token character to be decoded whole.
_CONTEXT_TOKENS = 8


@dataclass(frozen=True)
class AnswerLogprob:
    """One answer token with the log-probabilities of the model that produced it."""

    text: str  # the answer characters this token covers
    source: Role
    logprob: TokenLogprob


@dataclass(frozen=True)
class ScoredToken:
    """A draft token (base tokenization) with the base model's score, for charts."""

    token: str
    probability: float
    window_mean: float | None  # geometric mean of the window ending here (null: not full yet)


def token_pieces(
    tokenizer: Any, token_ids: Sequence[int], context_ids: Sequence[int] = ()
) -> list[str]:
    """The text each token adds after `context_ids` and the tokens before it.

    Decoding a token alone loses what depends on its neighbours (a leading space, the bytes of
    a character split over tokens); a token's text here is the difference between decoding a
    short left context with and without it, where a character still incomplete counts once
    it is complete. The pieces concatenate to the decoded text of `token_ids` after the
    context; when a tokenizer breaks that (checked), exact prefix decoding is used instead.
    """
    ids = [*context_ids[-_CONTEXT_TOKENS:], *token_ids]
    offset = len(ids) - len(token_ids)
    pieces = []
    for i in range(offset, len(ids)):
        start = max(0, i - _CONTEXT_TOKENS)
        before = _complete_text(tokenizer, ids[start:i])
        after = _complete_text(tokenizer, ids[start : i + 1])
        pieces.append(after[len(before) :] if after.startswith(before) else "")
    whole = _decode(tokenizer, ids)[len(_decode(tokenizer, ids[:offset])) :]
    if "".join(pieces) == whole:
        return pieces
    return _exact_pieces(tokenizer, ids, offset)


def _exact_pieces(tokenizer: Any, ids: list[int], offset: int) -> list[str]:
    """Pieces from decoding every prefix: always concatenates right, costs O(n^2)."""
    pieces = []
    previous = _decode(tokenizer, ids[:offset])
    for end in range(offset + 1, len(ids) + 1):
        text = _complete_text(tokenizer, ids[:end]) if end < len(ids) else _decode(tokenizer, ids)
        pieces.append(text[len(previous) :] if text.startswith(previous) else "")
        previous = text if text.startswith(previous) else previous
    return pieces


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return str(tokenizer.decode(list(ids), skip_special_tokens=True))


def _complete_text(tokenizer: Any, ids: Sequence[int]) -> str:
    """Decoded text without a trailing incomplete character."""
    return _decode(tokenizer, ids).rstrip("\ufffd")


def answer_logprobs(
    tokenizers: tuple[Any, Any],
    answer: str,
    prefix_chars: int,
    kept_draft_ids: Sequence[int],
    generated: tuple[Sequence[TokenLogprob], Sequence[TokenLogprob]],
) -> list[AnswerLogprob]:
    """The answer's logprobs entries from the (pilot, base) tokens generated, with the
    (pilot, base) tokenizers; the base continued after the kept draft's base tokens."""
    pilot_tokenizer, base_tokenizer = tokenizers
    pilot, base = generated
    pilot_pieces = token_pieces(pilot_tokenizer, [entry.token_id for entry in pilot])
    base_pieces = token_pieces(
        base_tokenizer, [entry.token_id for entry in base], context_ids=kept_draft_ids
    )
    return lay_over_answer(
        answer,
        prefix_chars,
        list(zip(pilot_pieces, pilot, strict=True)),
        list(zip(base_pieces, base, strict=True)),
    )


def lay_over_answer(
    answer: str,
    prefix_chars: int,
    pilot: Sequence[tuple[str, TokenLogprob]],
    base: Sequence[tuple[str, TokenLogprob]],
) -> list[AnswerLogprob]:
    """The answer's tokens: the pilot's up to `prefix_chars`, then the base model's.

    Each token covers the next `len(piece)` answer characters, clipped at the end of its
    model's part; tokens past their part are left out, except text-less tokens (an
    end-of-sequence token) at the very end of the answer.
    """
    result = []
    position = 0
    for piece, logprob in pilot:
        if position >= prefix_chars and (piece or base):
            break
        end = min(position + len(piece), prefix_chars)
        result.append(AnswerLogprob(answer[position:end], Role.PILOT, logprob))
        position = end
    position = prefix_chars
    for piece, logprob in base:
        if position >= len(answer) and piece:
            break
        end = min(position + len(piece), len(answer))
        result.append(AnswerLogprob(answer[position:end], Role.BASE, logprob))
        position = end
    return result


def scored_tokens(
    tokenizer: Any, draft_ids: Sequence[int], logprobs: Sequence[float], window: int
) -> list[ScoredToken]:
    """The scored draft tokens with their base probabilities and window means."""
    pieces = token_pieces(tokenizer, draft_ids[: len(logprobs)])
    result = []
    for end, (piece, logprob) in enumerate(zip(pieces, logprobs, strict=True)):
        mean = None
        if end >= window - 1:
            mean = math.exp(math.fsum(logprobs[end - window + 1 : end + 1]) / window)
        result.append(ScoredToken(piece, math.exp(logprob), mean))
    return result
