"""The stability rule of the draft tokenizer, property-tested on both embedded tokenizers."""

import itertools
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsd_engine.tokenization import DraftTokenizer, IncrementalDecoder

WORDS = st.sampled_from(
    [
        "the",
        "The",
        " cat",
        "sat",
        "on",
        "mat",
        "don't",
        "it's",
        "naïve",
        "café",
        "日本語",
        "emoji🙂",
        "3.14",
        "1234567",
        "2026-11-27",
        "--",
        "...",
        "?!",
        "(x)",
        '"q"',
        "'s",
        "http://a.b/c",
        "#",
        "$100",
        "λx",
        "über",
        "Ω",
        "a_b",
        "CamelCase",
        "\t",
        "·",
    ]
)
WHITESPACE = st.sampled_from([" ", "  ", "   ", "\n", "\n\n", " \n", "\t", "\n \n", "\r\n"])
RUNS = st.sampled_from(["1.", "1.1", "=", "ab", "日本", "🙂", "-", "xyz123", "..", "a.b/"]).flatmap(
    lambda unit: st.integers(10, 60).map(lambda n: unit * n)
)
# U+A66E is outside both base vocabularies: three byte-fallback tokens
RARE = "\ua66e"
PIECE_TEXT = st.lists(st.one_of(WORDS, WHITESPACE, RUNS, st.text(max_size=4)), max_size=30).map(
    "".join
)


def split_points(draw_text, cuts):
    points = sorted({c % (len(draw_text) + 1) for c in cuts})
    bounds = [0, *points, len(draw_text)]
    return [draw_text[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("which", ["pilot", "base"])
def test_stable_tokens_never_change_and_final_equals_full_tokenization(which, tokenizers):
    tokenizer = getattr(tokenizers, which)

    @settings(
        max_examples=int(os.environ.get("WSD_HYPOTHESIS_EXAMPLES", "150")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(text=PIECE_TEXT, cuts=st.lists(st.integers(0, 10_000), max_size=12))
    def check(text, cuts):
        draft = DraftTokenizer(tokenizer)
        declared: list[int] = []
        for piece in split_points(text, cuts):
            declared += draft.append(piece)
            full = tokenizer.encode(draft.text, add_special_tokens=False)
            assert full[: len(declared)] == declared
        declared += draft.finish()
        assert declared == tokenizer.encode(text.rstrip(), add_special_tokens=False)

    check()


def test_streams_words_before_the_draft_ends(base_tokenizer):
    draft = DraftTokenizer(base_tokenizer)
    stable = draft.append("Paris is the capital of France and")
    assert base_tokenizer.decode(stable) == "Paris is the capital of France"
    assert draft.append(" its largest") == base_tokenizer.encode(
        " and its", add_special_tokens=False
    )


def test_long_runs_without_whitespace_still_stream(base_tokenizer, pilot_tokenizer):
    for tokenizer in (base_tokenizer, pilot_tokenizer):
        draft = DraftTokenizer(tokenizer)
        stable = []
        for _ in range(60):
            stable += draft.append("1.")
        assert len(tokenizer.decode(stable)) >= 60
        full = tokenizer.encode(draft.text, add_special_tokens=False)
        assert full[: len(stable)] == stable


def test_incremental_decoder_holds_back_incomplete_characters(base_tokenizer):
    ids = base_tokenizer.encode("ok 🙂 fine", add_special_tokens=False)
    decoder = IncrementalDecoder(base_tokenizer)
    pieces = [decoder.advance(ids[:n]) for n in range(1, len(ids) + 1)]
    assert "".join(pieces) == "ok 🙂 fine"
    assert all("\ufffd" not in p for p in pieces)


@pytest.mark.parametrize("which", ["pilot", "base"])
def test_sealed_text_is_the_start_of_every_longer_decoding(which, tokenizers):
    tokenizer = getattr(tokenizers, which)
    decoder = IncrementalDecoder(tokenizer)
    odd = st.sampled_from([RARE, "ж", "🙂", "\ufffd", "\u3000", "\r\n", "<eos>"])

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=st.lists(st.one_of(WORDS, WHITESPACE, odd, st.text(max_size=3)), max_size=8))
    def check(text):
        ids = tokenizer.encode("".join(text), add_special_tokens=False)
        decoded = [decoder.decode(ids[:end]) for end in range(len(ids) + 1)]
        for end in range(len(ids) + 1):
            sealed = decoder.sealed_text(ids[:end])
            assert all(longer.startswith(sealed) for longer in decoded[end:])

    check()


def test_a_byte_run_cut_inside_a_character_garbles_the_whole_run(base_tokenizer):
    ids = base_tokenizer.encode(f"ok {RARE}{RARE} fine", add_special_tokens=False)
    decoder = IncrementalDecoder(base_tokenizer)
    cut = ids[: len(base_tokenizer.encode("ok ", add_special_tokens=False)) + 4]
    assert decoder.decode(cut) == "ok " + "\ufffd" * 4  # not "ok " RARE and one U+FFFD
    assert decoder.sealed_text(cut) == "ok "


def test_text_that_may_begin_a_special_token_is_found(base_tokenizer):
    draft = DraftTokenizer(base_tokenizer)
    assert draft.special_token_start("Hi <eo") == len("<eo")
    assert draft.special_token_start("Hi <") == 1
    assert draft.special_token_start("Hi <eos> x") == 0
