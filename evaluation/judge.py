"""The optional judge: any OpenAI-compatible chat model, asked with the templates of
evaluation/judge_prompts/<JUDGE_PROMPTS_VERSION>/ (modelled on MT-Bench's judge prompts).

- pairwise: the target's answer against the reference target's, asked twice with the answers
  in both orders so that position bias cancels (evaluation/verdicts.py adds them up);
- grade: one answer rated 1 to 10;
- harmless: one answer to a harmful prompt, harmless or harmful.

A prompt's last turn is judged; for a two-turn prompt each answer block shows the earlier turns
as that target had them (its own first answer, looked up in `answers`). Every call is cached
under a key naming the kind, the judge model, the prompts version, the prompt and turn, the
targets, the order and a digest of the messages sent (so of every text shown): a rerun asks
only what was not asked before, and a changed answer or template is asked afresh.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any, Protocol, TypeVar

from evaluation.records import AnswerRecord, EvalPrompt
from evaluation.verdicts import (
    PairwiseVerdict,
    grade_summary,
    harmless_summary,
    pairwise_summary,
    parse_grade,
    parse_harmless,
    parse_pairwise,
)

__all__ = ["JUDGE_PROMPTS_VERSION", "Judge", "JudgmentCache", "MemoryCache", "PairwiseVerdict",
           "grade_summary", "harmless_summary", "pairwise_summary", "parse_grade",
           "parse_harmless", "parse_pairwise"]  # fmt: skip

JUDGE_PROMPTS_VERSION = "v1"  # a new folder of templates for any change of their wording

Ask = Callable[[list[dict[str, str]]], Awaitable[str]]
T = TypeVar("T")


class JudgmentCache(Protocol):
    """Where verdicts are kept between runs (the run folder's judgments.jsonl)."""

    def get(self, key: str) -> dict[str, Any] | None:
        """The record kept under `key`, if any."""

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Keep `record` under `key`."""


class MemoryCache:
    """A JudgmentCache in a dict (tests, one-off runs)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        """The record kept under `key`, if any."""
        return self.records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Keep `record` under `key`."""
        self.records[key] = record


@functools.cache
def template(name: str, version: str = JUDGE_PROMPTS_VERSION) -> str:
    """A judge prompt template: "pairwise", "single" or "harmless"."""
    path = resources.files("evaluation").joinpath("judge_prompts", version, f"{name}.txt")
    return path.read_text(encoding="utf-8")


class Judge:
    """Verdicts from a judge model, each asked once over all runs that share `cache`."""

    def __init__(
        self,
        ask: Ask,
        cache: JudgmentCache,
        judge_model: str,
        *,
        answers: Mapping[tuple[str, str, int], AnswerRecord] | None = None,
        prompts_version: str = JUDGE_PROMPTS_VERSION,
    ) -> None:
        self.ask = ask  # the caller sends at temperature 0
        self.cache = cache
        self.judge_model = judge_model
        # AnswerRecord.key -> answer: the earlier turns shown with a later turn's answer
        self.answers = answers or {}
        self.prompts_version = prompts_version
        self.asked = 0  # calls that reached the judge (not answered from the cache)

    async def pairwise(
        self, prompt: EvalPrompt, answer: AnswerRecord, reference: AnswerRecord
    ) -> PairwiseVerdict:
        """The target's answer against the reference's, in both orders."""
        mine, theirs = self._block(prompt, answer), self._block(prompt, reference)
        question = _question(prompt, answer.turn)
        targets = f"{answer.target} vs {reference.target}"

        def messages(a: str, b: str) -> list[dict[str, str]]:
            text = template("pairwise", self.prompts_version)
            return _user(text.format(question=question, answer_a=a, answer_b=b))

        first, second = await asyncio.gather(
            self._verdict("pairwise", prompt, answer.turn, targets, "target-first",
                          messages(mine, theirs), parse_pairwise),
            self._verdict("pairwise", prompt, answer.turn, targets, "reference-first",
                          messages(theirs, mine), parse_pairwise),
        )  # fmt: skip
        return PairwiseVerdict(prompt.id, answer.turn, answer.target, reference.target,
                               first, second)  # fmt: skip

    async def grade(self, prompt: EvalPrompt, answer: AnswerRecord) -> float | None:
        """The answer's rating from 1 to 10; None when the judge gave none."""
        return await self._single("single", prompt, answer, parse_grade)

    async def harmless(self, prompt: EvalPrompt, answer: AnswerRecord) -> bool | None:
        """True when the judge finds the answer harmless; None when it gave no verdict."""
        return await self._single("harmless", prompt, answer, parse_harmless)

    async def _single(
        self, kind: str, prompt: EvalPrompt, answer: AnswerRecord, parse: Callable[[str], T]
    ) -> T:
        text = template(kind, self.prompts_version).format(
            question=_question(prompt, answer.turn), answer=self._block(prompt, answer)
        )
        return await self._verdict(kind, prompt, answer.turn, answer.target, "-", _user(text),
                                   parse)  # fmt: skip

    async def _verdict(
        self,
        kind: str,
        prompt: EvalPrompt,
        turn: int,
        targets: str,
        order: str,
        messages: list[dict[str, str]],
        parse: Callable[[str], T],
    ) -> T:
        digest = hashlib.sha256(json.dumps(messages, ensure_ascii=False).encode()).hexdigest()
        key = "|".join([kind, self.judge_model, self.prompts_version, prompt.id, f"turn={turn}",
                        targets, order, digest[:16]])  # fmt: skip
        record = self.cache.get(key)
        if record is None:
            reply = await self.ask(messages)
            self.asked += 1
            record = {"kind": kind, "judge_model": self.judge_model,
                      "prompts_version": self.prompts_version, "prompt_id": prompt.id,
                      "turn": turn, "targets": targets, "order": order, "reply": reply,
                      "verdict": parse(reply)}  # fmt: skip
            self.cache.put(key, record)
        # parsed again from the kept reply: the same rule for old and new records
        return parse(str(record.get("reply", "")))

    def _block(self, prompt: EvalPrompt, answer: AnswerRecord) -> str:
        """The answer as the judge sees it: with the target's own earlier turns, if any."""
        if answer.turn == 0:
            return answer.text
        lines = ["[Earlier turns of this conversation]"]
        for turn in range(answer.turn):
            earlier = self.answers.get((answer.target, answer.prompt_id, turn))
            said = earlier.text if earlier else "(not available)"
            lines += [f"User: {prompt.turns[turn]}", f"Assistant: {said}", ""]
        lines += ["[Final reply, to be judged]", answer.text]
        return "\n".join(lines)


def _question(prompt: EvalPrompt, turn: int) -> str:
    """The user's message of `turn`, after the prompt's fixed earlier messages."""
    parts = []
    if prompt.history:
        earlier = [f"{m['role'].capitalize()}: {m['content']}" for m in prompt.history]
        parts += ["[Earlier conversation]", *earlier, "", "[Final user message]"]
    if turn > 0:
        parts.append(f"(Turn {turn + 1} of a conversation; each answer block shows the earlier "
                     "turns as that assistant had them.)")  # fmt: skip
    parts.append(prompt.turns[turn])
    return "\n".join(parts)


def _user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]
