"""The streaming policy: which draft text is final, and when."""

from __future__ import annotations

from wsd_engine.answer import AnswerStream
from wsd_engine.tokenization import DraftTokenizer

DRAFT = "Paris is the capital of France. It is known for the Eiffel Tower."


def make(tokenizer, window=6, max_tokens=64, stop=()):
    draft = DraftTokenizer(tokenizer)
    return draft, AnswerStream(draft, tokenizer, window, max_tokens, stop)


def ids(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def test_settled_tokens_stream_and_the_rest_waits(base_tokenizer):
    draft, answer = make(base_tokenizer, window=2)
    draft.append(DRAFT)
    released = answer.release_draft(num_settled=5)
    assert released == base_tokenizer.decode(ids(base_tokenizer, DRAFT)[:5])
    assert answer.num_draft_tokens == answer.num_tokens == 5
    assert answer.release_draft(num_settled=5) == ""


def test_the_early_head_streams_before_any_token_is_stable(base_tokenizer):
    draft, answer = make(base_tokenizer, window=6)
    draft.append("Paris")  # one word, no boundary yet: nothing is stable
    assert draft.stable_ids == []
    assert answer.release_draft(num_settled=6) == "Paris"
    assert answer.num_draft_tokens == 0  # text sent, no token counted yet


def test_the_early_head_never_exceeds_max_tokens(base_tokenizer):
    draft, answer = make(base_tokenizer, window=6, max_tokens=2)
    draft.append("Supercalifragilistic")
    head = answer.release_draft(num_settled=6)
    assert len(head.encode()) <= 2


def test_at_the_switch_exactly_the_kept_tokens_count(base_tokenizer):
    draft, answer = make(base_tokenizer, window=2)
    draft.append(DRAFT)
    draft.finish()
    answer.release_draft(num_settled=3)
    rest = answer.release_draft(num_settled=7, is_final=True)
    kept = base_tokenizer.decode(ids(base_tokenizer, DRAFT)[:7])
    assert answer.text == kept and kept.endswith(rest)
    assert answer.num_draft_tokens == 7 and answer.prefix_chars == len(kept)


def test_stop_strings_are_held_back_and_cut_across_the_seam(base_tokenizer):
    draft, answer = make(base_tokenizer, window=2, stop=("\n\n[User]",))
    draft.append("All good here.\n\n[Us")
    draft.finish()
    released = answer.release_draft(num_settled=100, is_final=True)
    assert released == "All good here."  # "\n\n[Us" may begin the stop string
    assert answer.add_base("er] more", num_tokens=3) == ""
    assert answer.is_stopped and answer.text == "All good here."
    assert answer.finish() == ""
    assert answer.prefix_chars == len("All good here.")


def test_a_base_token_after_the_draft_streams_only_when_safe(base_tokenizer):
    draft, answer = make(base_tokenizer, window=2, stop=("[User]",))
    draft.append(DRAFT)
    draft.finish()
    answer.release_draft(num_settled=4, is_final=True)
    word = ids(base_tokenizer, " city")[0]
    assert answer.text_after_draft(word) == base_tokenizer.decode([word])
    bracket = ids(base_tokenizer, "[")[0]
    assert answer.text_after_draft(bracket) is None  # "[" may begin "[User]"


def test_max_tokens_completes_the_answer(base_tokenizer):
    draft, answer = make(base_tokenizer, window=2, max_tokens=4)
    draft.append(DRAFT)
    answer.release_draft(num_settled=10)
    assert answer.is_complete and answer.num_tokens == 4


def stream_draft(tokenizer, text, window, max_tokens):
    """Feed a draft one character at a time, every stable token settled at once (the base
    finds the draft unlikely); returns the text streamed and the answer."""
    draft, answer = make(tokenizer, window=window, max_tokens=max_tokens)
    streamed = ""
    for char in text:
        draft.append(char)
        streamed += answer.release_draft(num_settled=len(draft.stable_ids) + window)
        if answer.is_complete:
            break
    return streamed + answer.finish(), answer


# U+A66E is outside both base vocabularies: three byte-fallback tokens <0xEA><0x99><0xAE>
RARE = "\ua66e"


def test_an_answer_ending_inside_a_character_keeps_the_streamed_head(base_tokenizer):
    # the early head streams "a"; the answer is "a" and the first byte of RARE
    streamed, answer = stream_draft(base_tokenizer, f"a{RARE} more", window=6, max_tokens=2)
    expected = base_tokenizer.decode(ids(base_tokenizer, f"a{RARE}")[:2])
    assert expected.startswith("a") and expected.endswith("\ufffd")
    assert streamed == answer.text == expected


def test_the_early_head_holds_back_characters_a_byte_run_may_garble(base_tokenizer):
    # byte-fallback tokens decode as one run: a run cut inside its second character turns
    # into one U+FFFD per byte, the whole first character included
    streamed, answer = stream_draft(base_tokenizer, f"{RARE * 2} more", window=6, max_tokens=4)
    expected = base_tokenizer.decode(ids(base_tokenizer, RARE * 2)[:4])
    assert RARE not in expected
    assert streamed == answer.text == expected


def test_a_byte_run_goes_on_across_a_special_token(base_tokenizer):
    # "<eos>" in the draft is the special token, which decoding drops before it joins bytes:
    # cut inside the second RARE, the run garbles the first one too
    draft = f"{RARE}<eos>{RARE} more"
    streamed, answer = stream_draft(base_tokenizer, draft, window=4, max_tokens=5)
    expected = base_tokenizer.decode(ids(base_tokenizer, draft)[:5], skip_special_tokens=True)
    assert RARE not in expected
    assert streamed == answer.text == expected
