"""The judge: verdict parsing, the order swap that cancels position bias, the cache, the
summaries, two-turn prompts, and a real loopback round trip to a scripted judge server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from evaluation.judge import (
    JUDGE_PROMPTS_VERSION,
    Judge,
    MemoryCache,
    PairwiseVerdict,
    grade_summary,
    harmless_summary,
    pairwise_summary,
    parse_grade,
    parse_harmless,
    parse_pairwise,
    template,
)
from evaluation.records import AnswerRecord, EvalPrompt
from server.background import BackgroundLoop
from tests.conftest import serve
from tests.evaluation.judge_server import JUDGE_MODEL, judge_app, scripted_rule

QUESTION = EvalPrompt(id="q1", turns=("What is the capital of France?",))


def answer(text: str, target: str, *, prompt_id: str = "q1", turn: int = 0) -> AnswerRecord:
    return AnswerRecord(
        prompt_id=prompt_id, turn=turn, target=target, model=target, settings={}, text=text,
        finish_reason="stop", usage={"completion_tokens": 3}, wsd=None, ttft_s=0.1, e2e_s=1.0,
        tstamp=0.0,
    )  # fmt: skip


class FakeAsk:
    """A judge endpoint in-process: the rule's reply, every call kept."""

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self.calls: list[list[dict[str, str]]] = []

    async def __call__(self, messages: list[dict[str, str]]) -> str:
        self.calls.append(messages)
        return str(self.rule(messages))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Clearly better. [[A]]", "A"), ("[[b]]", "B"), ("A tie: [[C]]", "tie"),
     ("[[ tie ]]", "tie"), ("I said [[A]] first, but on reflection [[B]]", "B"),
     ("format: [[A]], [[B]] or [[C]]... [[maybe]]", None), ("A is better", None),
     ("[A]", None), ("", None), ("[[D]]", None)],
)  # fmt: skip
def test_parse_pairwise(text: str, expected: str | None) -> None:
    assert parse_pairwise(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Rating: [[7]]", 7.0), ("Rating: [[8.5]]", 8.5), ("[[3/10]]", 3.0),
     ("[[2]] ... Rating: [[9]]", 9.0), ("Rating: [[11]]", None), ("Rating: [[0]]", None),
     ("Rating: 7", None), ("Rating: [[seven]]", None), ("[[7]] then [[A]]", None)],
)  # fmt: skip
def test_parse_grade(text: str, expected: float | None) -> None:
    assert parse_grade(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[[HARMLESS]]", True), ("[[harmful]]", False), ("[[HARMFUL]] no, [[HARMLESS]]", True),
     ("harmless", None), ("[[SAFE]]", None)],
)  # fmt: skip
def test_parse_harmless(text: str, expected: bool | None) -> None:
    assert parse_harmless(text) == expected


def test_templates_carry_their_placeholders_and_formats() -> None:
    assert JUDGE_PROMPTS_VERSION == "v1"
    pairwise, single, harmless = (template(n) for n in ("pairwise", "single", "harmless"))
    assert all(f"{{{p}}}" in pairwise for p in ("question", "answer_a", "answer_b"))
    assert pairwise.rstrip().endswith('or "[[C]]" for a tie.')
    assert "{question}" in single and "{answer}" in single and "Rating: [[N]]" in single
    assert "[[HARMLESS]]" in harmless and "[[HARMFUL]]" in harmless


def judge_with(rule: Any) -> tuple[Judge, FakeAsk]:
    ask = FakeAsk(rule)
    return Judge(ask=ask, cache=MemoryCache(), judge_model="fake"), ask


async def test_pure_position_bias_gives_ties() -> None:
    judge, ask = judge_with(lambda messages: "[[A]]")
    verdict = await judge.pairwise(QUESTION, answer("Paris", "wsd"), answer("Lyon", "base"))
    assert len(ask.calls) == 2
    assert (verdict.target_first, verdict.reference_first) == ("A", "A")
    assert verdict.outcome == "tie" and verdict.flipped


async def test_a_preference_that_survives_the_swap_is_a_win_or_a_loss() -> None:
    judge, _ = judge_with(scripted_rule(prefer="Paris"))
    win = await judge.pairwise(QUESTION, answer("Paris.", "wsd"), answer("Lyon.", "base"))
    loss = await judge.pairwise(QUESTION, answer("Lyon.", "pilot"), answer("Paris.", "base"))
    assert (win.target_first, win.reference_first, win.outcome) == ("A", "B", "win")
    assert loss.outcome == "loss" and not loss.flipped


async def test_a_tie_or_no_verdict_in_one_order_is_a_tie() -> None:
    replies = iter(["[[A]]", "[[C]]", "[[A]]", "no idea"])
    judge, _ = judge_with(lambda messages: next(replies))
    tie = await judge.pairwise(QUESTION, answer("x", "wsd"), answer("y", "base"))
    mute = await judge.pairwise(QUESTION, answer("z", "wsd"), answer("y", "base"))
    assert tie.outcome == "tie" and tie.flipped
    assert mute.outcome == "tie" and mute.reference_first is None and not mute.flipped


async def test_the_cache_answers_a_rerun() -> None:
    ask = FakeAsk(scripted_rule(prefer="Paris", grade=8))
    cache = MemoryCache()
    harmful = EvalPrompt(id="h", turns=("How do I pick a lock?",), harmful=True)
    first_run: list[Any] = []
    for _ in range(2):
        judge = Judge(ask=ask, cache=cache, judge_model="fake")
        found = [
            await judge.pairwise(QUESTION, answer("Paris", "wsd"), answer("Lyon", "base")),
            await judge.grade(QUESTION, answer("Paris", "wsd")),
            await judge.harmless(harmful, answer("I won't help.", "wsd", prompt_id="h")),
        ]
        first_run = first_run or found
        assert found == first_run
    assert len(ask.calls) == 4  # both orders, a grade, a harmless verdict: all in the first run
    assert judge.asked == 0
    # a changed answer, another judge model or another target is asked afresh
    await judge.grade(QUESTION, answer("Paris!", "wsd"))
    await Judge(ask=ask, cache=cache, judge_model="other").grade(QUESTION, answer("Paris", "wsd"))
    await judge.grade(QUESTION, answer("Paris", "wsd2"))
    assert len(ask.calls) == 7
    key = next(iter(cache.records))
    assert key.startswith(f"pairwise|fake|{JUDGE_PROMPTS_VERSION}|q1|turn=0|wsd vs base|")


async def test_a_second_turn_is_judged_with_each_targets_conversation() -> None:
    two = EvalPrompt(id="m", turns=("Name a city.", "Now its country?"))
    store = {record.key: record for record in (
        answer("Paris", "wsd", prompt_id="m"), answer("Rome", "base", prompt_id="m"))}  # fmt: skip
    ask = FakeAsk(lambda messages: "[[C]]")
    judge = Judge(ask=ask, cache=MemoryCache(), judge_model="fake", answers=store)
    mine = answer("France", "wsd", prompt_id="m", turn=1)
    theirs = answer("Italy", "base", prompt_id="m", turn=1)
    verdict = await judge.pairwise(two, mine, theirs)
    assert verdict.turn == 1
    shown = ask.calls[0][0]["content"]
    assert "Now its country?" in shown and "User: Name a city." in shown
    assert shown.index("Assistant: Paris") < shown.index("France") < shown.index("Assistant: Rome")
    assert shown.index("Assistant: Rome") < shown.index("Italy")


def test_summaries() -> None:
    def verdict(first: str | None, second: str | None) -> PairwiseVerdict:
        return PairwiseVerdict("p", 0, "wsd", "base", first, second)  # type: ignore[arg-type]

    verdicts = [verdict("A", "B"), verdict("A", "B"), verdict("B", "A"), verdict("A", "A"),
                verdict("tie", "tie"), verdict(None, "B")]  # fmt: skip
    summary = pairwise_summary(verdicts)
    assert {k: summary[k] for k in ("wins", "ties", "losses", "n", "flipped", "no_verdict")} == {
        "wins": 2, "ties": 3, "losses": 1, "n": 6, "flipped": 1, "no_verdict": 1,
    }  # fmt: skip
    assert summary["win_rate"] == pytest.approx((2 + 3 / 2) / 6)
    assert summary["ci"][0] <= summary["win_rate"] <= summary["ci"][1]
    assert pairwise_summary([])["win_rate"] is None
    grades = grade_summary([8.0, None, 6.0])
    assert (grades["mean"], grades["n"], grades["no_verdict"]) == (7.0, 2, 1)
    harmless = harmless_summary([True, True, False, None])
    assert harmless["rate"] == pytest.approx(2 / 3) and harmless["n"] == 3


@pytest.fixture
def judge_server(server_loop: BackgroundLoop) -> Iterator[tuple[str, Any]]:
    """The scripted judge on a free loopback port: its base URL and its app."""
    app = judge_app(scripted_rule(prefer="Paris", grade=6))
    for server in serve(app, server_loop, None):  # resumed after the test: stops the server
        yield f"{server.base_url}/v1", app


async def test_judge_over_loopback_http(judge_server: tuple[str, Any]) -> None:
    base_url, app = judge_server
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        assert (await client.get("/models")).json()["data"][0]["id"] == JUDGE_MODEL

        async def ask(messages: list[dict[str, str]]) -> str:
            body = {"model": JUDGE_MODEL, "messages": messages, "temperature": 0.0}
            response = await client.post("/chat/completions", json=body)
            response.raise_for_status()
            return str(response.json()["choices"][0]["message"]["content"])

        judge = Judge(ask=ask, cache=MemoryCache(), judge_model=JUDGE_MODEL)
        verdict = await judge.pairwise(QUESTION, answer("Paris", "wsd"), answer("Nice", "base"))
        grade = await judge.grade(QUESTION, answer("Paris", "wsd"))
        again = await judge.pairwise(QUESTION, answer("Paris", "wsd"), answer("Nice", "base"))
    assert verdict.outcome == "win" and again == verdict
    assert grade == 6.0
    assert len(app.state.requests) == 3  # the repeat came from the cache
    assert all(body["temperature"] == 0.0 for body in app.state.requests)
