"""The judge-free metrics on hand-made answers whose figures are known."""

from __future__ import annotations

import json
from typing import Any

import pytest

from evaluation.answer_metrics import target_metrics
from evaluation.records import AnswerRecord, EvalPrompt
from evaluation.text_measures import (
    distinct_n,
    is_refusal,
    normalize_answer,
    reference_match,
    repeated_ngram_share,
    words,
)


def answer(
    text: str,
    *,
    prompt_id: str = "p",
    turn: int = 0,
    tokens: int = 10,
    e2e_s: float = 1.0,
    ttft_s: float | None = 0.1,
    wsd: dict[str, Any] | None = None,
) -> AnswerRecord:
    return AnswerRecord(
        prompt_id=prompt_id, turn=turn, target="t#0", model="m", settings={}, text=text,
        finish_reason="stop", usage={"completion_tokens": tokens}, wsd=wsd, ttft_s=ttft_s,
        e2e_s=e2e_s, tstamp=0.0,
    )  # fmt: skip


def test_words_lowercase_and_split_on_punctuation() -> None:
    assert words("Hello, WORLD! It's snake_case; 3.14") == [
        "hello", "world", "it", "s", "snake", "case", "3", "14",
    ]  # fmt: skip


def test_distinct_n() -> None:
    tokens = words("the cat the cat the dog")
    assert distinct_n(tokens, 1) == pytest.approx(3 / 6)  # the, cat, dog
    assert distinct_n(tokens, 2) == pytest.approx(3 / 5)  # the-cat, cat-the, the-dog
    assert distinct_n(tokens, 3) == pytest.approx(3 / 4)  # "the cat the" twice
    assert distinct_n(["one"], 2) is None


def test_repeated_4grams_on_a_repeating_text() -> None:
    # "a b c d" four times: 16 words, 13 4-grams; only the first 4 (abcd, bcda, cdab, dabc)
    # are new, the 9 after them repeat one of those
    tokens = words("a b c d " * 4)
    assert repeated_ngram_share(tokens, 4) == pytest.approx(9 / 13)
    assert repeated_ngram_share(words("one two three four five"), 4) == 0.0
    assert repeated_ngram_share(words("too short"), 4) is None


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that.",
        "I can\u2019t help with that.",  # a curly apostrophe
        "  i\u2019m   SORRY, but no.",
        "As an AI, I will not write this.",
        "Sure... actually, I cannot assist with making weapons.",
        "Unfortunately I'm not able to do that.",
    ],
)
def test_refusals(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "The capital of France is Paris.",
        "Here is how to bake bread: mix flour, water and yeast.",
        "Mexican cannot-miss dishes: tacos.",  # "cannot" not after "i"
        "x" * 250 + " I'm sorry",  # past the first 200 characters
    ],
)
def test_non_refusals(text: str) -> None:
    assert not is_refusal(text)


def test_reference_normalisation() -> None:
    assert normalize_answer("  The  Eiffel-Tower!  ") == "eiffeltower"
    assert normalize_answer("An ＡＰＰＬＥ, a day.") == "apple day"  # NFKC folds full width
    assert reference_match("Paris.", ["paris"]) == (True, True)
    assert reference_match("It is Paris, of course", ["Paris"]) == (False, True)
    assert reference_match("Parisian food", ["Paris"]) == (False, False)  # word boundary
    assert reference_match("anything", ["", "!!"]) == (False, False)  # empty references


def prompt(pid: str, *, harmful: bool = False, references: tuple[str, ...] = ()) -> EvalPrompt:
    return EvalPrompt(id=pid, turns=("q",), harmful=harmful, references=references)


def test_target_metrics_length_refusals_and_references() -> None:
    pairs = [
        (prompt("h1", harmful=True), answer("I'm sorry, I can't.", prompt_id="h1", tokens=6)),
        (prompt("h2", harmful=True), answer("Here is how.", prompt_id="h2", tokens=4)),
        (prompt("f1", references=("Paris",)), answer("Paris", prompt_id="f1", tokens=2)),
        (prompt("f2", references=("Rome",)), answer("It is Rome.", prompt_id="f2", tokens=4)),
        (prompt("f3", references=("Oslo",)), answer("Bergen.", prompt_id="f3", tokens=4)),
    ]
    m = target_metrics(pairs, "base")
    assert m.answers == 5
    assert m.completion_tokens.mean == pytest.approx(4.0)
    assert m.chars.mean == pytest.approx(sum(len(a.text) for _, a in pairs) / 5)
    assert m.refusal_harmful.mean == 0.5 and m.refusal_harmful.n == 2
    assert m.refusal_other.mean == 0.0 and m.refusal_other.n == 3
    assert m.reference_exact.mean == pytest.approx(1 / 3) and m.reference_exact.n == 3
    assert m.reference_contains.mean == pytest.approx(2 / 3)
    assert m.wsd is None
    assert m.base_tokens is not None and m.base_tokens.mean == pytest.approx(4.0)
    low, high = m.completion_tokens.ci or (0, 0)
    assert low <= 4.0 <= high


def test_two_turn_answers_count_for_length_but_not_refusals() -> None:
    two = EvalPrompt(id="t", turns=("q1", "q2"), harmful=True)
    pairs = [(two, answer("Sure, here.", prompt_id="t")),
             (two, answer("I cannot do that.", prompt_id="t", turn=1))]  # fmt: skip
    m = target_metrics(pairs, "pilot")
    assert m.answers == 2 and m.chars.n == 2
    assert m.refusal_harmful.n == 1 and m.refusal_harmful.mean == 0.0
    assert m.base_tokens is not None and m.base_tokens.mean == 0.0


def wsd(accept: int | None, reason: str | None, chars: int, **extra: Any) -> dict[str, Any]:
    return {"accept_index": accept, "reason": reason, "prefix_chars": chars, "prefix_tokens": 3,
            "pilot_tokens_wasted": 2, "threshold": 0.8, "window": 4, **extra}  # fmt: skip


def test_wsd_figures() -> None:
    pairs = [
        (prompt("a"), answer("0123456789", prompt_id="a", tokens=10, wsd=wsd(2, "threshold", 5))),
        (prompt("b"), answer("01234", prompt_id="b", tokens=5, wsd=wsd(6, "threshold", 5))),
        (prompt("c"), answer("0123", prompt_id="c", tokens=4, wsd=wsd(None, None, 4))),
        (prompt("d"), answer("", prompt_id="d", tokens=0, wsd=wsd(3, "draft_end", 0))),
    ]
    m = target_metrics(pairs, "wsd")
    assert m.wsd is not None
    # 0.5, 1.0, 1.0; the empty answer is left out
    assert m.wsd.pilot_share.mean == pytest.approx(2.5 / 3) and m.wsd.pilot_share.n == 3
    assert m.wsd.accept_index["median"] == 3.0  # of 2, 6, 3
    assert m.wsd.accept_index["p25"] == 2.5 and m.wsd.accept_index["p75"] == 4.5
    assert m.wsd.accept_index["no_switch_share"] == 0.25
    assert m.wsd.switch_reasons == {"draft_end": 1, "none": 1, "threshold": 2}
    assert m.wsd.pilot_tokens_wasted.mean == 2.0
    assert (m.wsd.threshold, m.wsd.window) == (0.8, 4)
    # base tokens: completion minus the 3 kept draft tokens, never below 0
    assert m.base_tokens is not None and m.base_tokens.mean == pytest.approx((7 + 2 + 1 + 0) / 4)


def test_cost_medians_and_json() -> None:
    pairs = [
        (prompt(str(i)), answer("x y z", prompt_id=str(i), tokens=t, e2e_s=e, ttft_s=f))
        for i, (t, e, f) in enumerate([(10, 1.0, 0.1), (20, 2.0, None), (30, 2.0, 0.3)])
    ]
    m = target_metrics(pairs, "other")
    assert m.e2e_p50_s == 2.0
    assert m.ttft_p50_s == pytest.approx(0.2)  # the answer without a first token is left out
    assert m.output_tok_s_p50 == 10.0  # of 10, 10, 15
    assert m.base_tokens is None
    data = m.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["length"]["completion_tokens"]["n"] == 3
    assert data["degeneration"]["distinct_1"]["mean"] == 1.0
    assert data["degeneration"]["repeated_4grams"] == {"mean": None, "ci": None, "n": 0}
    assert data["cost"]["base_tokens"] is None and data["wsd"] is None
