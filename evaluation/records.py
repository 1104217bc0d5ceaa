"""What an evaluation run reads and writes: prompts, and one answer per prompt, turn and target.

A prompt's `turns` are the user messages asked in order; a target answers each after its own
previous answers (MT-Bench's second turn follows the target's first answer, as the official
loader does). `history` holds the messages before the first turn (an HH-RLHF dialogue's earlier
exchanges, a system prompt).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EvalPrompt:
    """One prompt of a prompt set."""

    id: str  # unique in its set: the file's question_id, or the line number
    turns: tuple[str, ...]  # the user messages, asked one after the other
    history: tuple[dict[str, str], ...] = ()  # {"role", "content"} messages before the first turn
    category: str | None = None
    references: tuple[str, ...] = ()  # acceptable answers (factual prompts)
    harmful: bool = False  # a prompt a safe assistant should refuse or answer harmlessly
    source: dict[str, Any] = field(default_factory=dict, compare=False)  # the record as read

    def messages(self, turn: int, earlier_answers: list[str]) -> list[dict[str, str]]:
        """The chat messages of turn `turn`, after the target's own answers to the earlier
        turns."""
        messages = list(self.history)
        for index in range(turn):
            messages.append({"role": "user", "content": self.turns[index]})
            messages.append({"role": "assistant", "content": earlier_answers[index]})
        messages.append({"role": "user", "content": self.turns[turn]})
        return messages


@dataclass
class AnswerRecord:
    """One answer, as appended to the run folder's answers.jsonl when it arrives."""

    prompt_id: str
    turn: int
    target: str  # the target's name, e.g. "wsd@threshold=0.8" or "gemma-3-270m"
    model: str
    settings: dict[str, Any]  # temperature, max_tokens, seed, the `wsd` extension sent
    text: str
    finish_reason: str | None
    usage: dict[str, int]  # prompt_tokens, completion_tokens, total_tokens
    wsd: dict[str, Any] | None  # the response's `wsd` object (wsd targets)
    ttft_s: float | None  # request sent to the first content chunk, client clock
    e2e_s: float  # request sent to the last byte, client clock
    tstamp: float  # when the answer was complete (Unix seconds)

    @property
    def key(self) -> tuple[str, str, int]:
        """What makes an answer done: its target, prompt and turn."""
        return (self.target, self.prompt_id, self.turn)

    @property
    def completion_tokens(self) -> int:
        return int(self.usage.get("completion_tokens", 0))
