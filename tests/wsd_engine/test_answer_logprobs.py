"""Per-token views of a WSD answer: token texts, logprobs laid over the answer, draft scores."""

from __future__ import annotations

import math

import pytest

from wsd_engine.answer_logprobs import lay_over_answer, scored_tokens, token_pieces
from wsd_engine.config import Role
from wsd_engine.engines.engine import TokenLogprob
from wsd_engine.switch_rule import find_accept_index

TEXTS = [
    "Paris is the capital of France.",
    "  leading spaces, then\n\nparagraphs\tand tabs ",
    "Café déjà vu: naïve façade — “quotes”",
    "Emoji 🙂🚀 and CJK 東京都 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "x" * 40 + " 1234567890 " + "ab" * 30,
]


@pytest.mark.parametrize("which", ["pilot", "base"])
@pytest.mark.parametrize("text", TEXTS)
def test_pieces_concatenate_to_the_decoded_text(tokenizers, which, text):
    tokenizer = getattr(tokenizers, which)
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = token_pieces(tokenizer, ids)
    assert len(pieces) == len(ids)
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("text", TEXTS)
def test_pieces_after_a_context_are_the_text_it_adds(base_tokenizer, text):
    ids = base_tokenizer.encode(text, add_special_tokens=False)
    cut = len(ids) // 2
    while "\ufffd" in base_tokenizer.decode(ids[:cut]):
        cut -= 1  # a context that ends inside a character has no text of its own yet
    pieces = token_pieces(base_tokenizer, ids[cut:], context_ids=ids[:cut])
    head = base_tokenizer.decode(ids[:cut], skip_special_tokens=True)
    assert head + "".join(pieces) == base_tokenizer.decode(ids, skip_special_tokens=True)


def test_a_special_token_adds_no_text(base_tokenizer):
    ids = [*base_tokenizer.encode("Hello", add_special_tokens=False), base_tokenizer.eos_token_id]
    assert token_pieces(base_tokenizer, ids)[-1] == ""


def _entries(pieces):
    return [(piece, TokenLogprob(i, -0.1 * (i + 1))) for i, piece in enumerate(pieces)]


def test_tokens_are_laid_over_the_answer_and_clipped_at_the_switch():
    answer = "Hello world, said the base."
    pilot = _entries(["Hel", "lo", " wor", "ld!", " More"])
    base = _entries(["ld", ",", " said", " the", " base", ".", ""])
    laid = lay_over_answer(answer, len("Hello wor"), pilot, base)
    assert [entry.text for entry in laid] == [
        "Hel", "lo", " wor", "ld", ",", " said", " the", " base", ".", "",
    ]  # fmt: skip
    assert [entry.source for entry in laid] == [Role.PILOT] * 3 + [Role.BASE] * 7
    assert "".join(entry.text for entry in laid) == answer


def test_a_token_cut_by_the_switch_keeps_its_characters_inside_the_answer():
    laid = lay_over_answer("Hello there", 4, _entries(["Hello"]), _entries(["o", " there"]))
    assert [(e.text, e.source) for e in laid] == [
        ("Hell", Role.PILOT), ("o", Role.BASE), (" there", Role.BASE),
    ]  # fmt: skip


def test_a_stop_string_cuts_the_tokens_after_it():
    laid = lay_over_answer("Paris is", 5, _entries(["Paris"]), _entries([" is", " nice", ""]))
    assert [e.text for e in laid] == ["Paris", " is"]


def test_an_answer_inside_the_draft_keeps_the_pilot_end_token():
    laid = lay_over_answer("Done.", 5, _entries(["Done", ".", ""]), [])
    assert [e.text for e in laid] == ["Done", ".", ""]
    assert {e.source for e in laid} == {Role.PILOT}


def test_scored_tokens_carry_probabilities_and_window_means(base_tokenizer):
    ids = base_tokenizer.encode("one two three four five six", add_special_tokens=False)
    logprobs = [math.log(p) for p in (0.1, 0.9, 0.2, 0.8, 0.95, 0.99)][: len(ids)]
    scored = scored_tokens(base_tokenizer, ids, logprobs, window=3)
    assert "".join(s.token for s in scored) == base_tokenizer.decode(ids[: len(logprobs)])
    assert [s.window_mean is None for s in scored[:2]] == [True, True]
    for end, token in enumerate(scored):
        assert token.probability == pytest.approx(math.exp(logprobs[end]))
        if end >= 2:
            expected = math.prod(math.exp(lp) for lp in logprobs[end - 2 : end + 1]) ** (1 / 3)
            assert token.window_mean == pytest.approx(expected)
    # the chart's first point at or above the threshold is the switch rule's accept index
    accept = find_accept_index(logprobs, 3, 0.6)
    first = next(i for i, s in enumerate(scored) if s.window_mean and s.window_mean >= 0.6)
    assert first == accept
