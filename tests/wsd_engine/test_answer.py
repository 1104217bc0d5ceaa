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
