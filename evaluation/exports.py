"""The answer files the ecosystem's judges read unchanged: AlpacaEval's `model_outputs` JSON,
Arena-Hard-Auto's (v0.1) `model_answer` JSONL and FastChat's MT-Bench `model_answer` JSONL.
The same answers give byte-identical files: ids are derived, not drawn, and every writer keeps
the records' order."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from evaluation.records import AnswerRecord, EvalPrompt

# answer_id = uuid5(this, "model_id/question_id"): the same on every rerun, unlike the
# official writers' random shortuuid, which no judge reads beyond keeping it
ANSWER_ID_NAMESPACE = uuid.UUID("5b0f6d52-3c1e-4f43-9d8e-2f6a3c7e9b10")


def alpaca_eval_outputs(
    prompts: list[EvalPrompt], answers: dict[str, AnswerRecord], generator: str
) -> list[dict[str, Any]]:
    """AlpacaEval `model_outputs` records (`instruction`, `output`, `generator`, and `dataset`
    when the prompt's record had one), in the prompts' order; prompts without an answer are
    left out. `answers` maps a prompt id to its turn-0 answer."""
    records: list[dict[str, Any]] = []
    for prompt in prompts:
        answer = answers.get(prompt.id)
        if answer is None:
            continue
        record: dict[str, Any] = {}
        dataset = prompt.source.get("dataset")
        if isinstance(dataset, str):
            record["dataset"] = dataset
        # for AlpacaEval input the first turn is the record's instruction as read: AlpacaEval
        # pairs a model's outputs with the reference outputs by this exact string
        record["instruction"] = prompt.turns[0]
        record["output"] = answer.text
        record["generator"] = generator
        records.append(record)
    return records


def arena_hard_answers(
    prompts: list[EvalPrompt], answers_by_turn: dict[str, list[AnswerRecord]], model_id: str
) -> list[dict[str, Any]]:
    """Arena-Hard-Auto `model_answer` records, one per prompt answered in every turn: each
    turn is `{"content", "token_len"}` (token_len: the target's completion tokens)."""
    return _model_answers(
        prompts,
        answers_by_turn,
        model_id,
        lambda answer: {"content": answer.text, "token_len": answer.completion_tokens},
    )


def mt_bench_answers(
    prompts: list[EvalPrompt], answers_by_turn: dict[str, list[AnswerRecord]], model_id: str
) -> list[dict[str, Any]]:
    """FastChat's MT-Bench `model_answer` records: Arena-Hard's fields, but each turn is the
    answer's text itself (FastChat's judge formats `choices[0]["turns"][i]` into its prompt)."""
    return _model_answers(prompts, answers_by_turn, model_id, lambda answer: answer.text)


def _model_answers(
    prompts: list[EvalPrompt],
    answers_by_turn: dict[str, list[AnswerRecord]],
    model_id: str,
    turn_of: Callable[[AnswerRecord], Any],
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for prompt in prompts:
        answers = sorted(answers_by_turn.get(prompt.id, []), key=lambda answer: answer.turn)
        # a partial multi-turn answer would be judged as if the model had stopped talking
        if [answer.turn for answer in answers] != list(range(len(prompt.turns))):
            continue
        # the file's own question_id, of its own type: MT-Bench's are numbers, and the judges
        # join answers to questions on it
        question_id = prompt.source.get("question_id", prompt.id)
        records.append(
            {
                "question_id": question_id,
                "answer_id": str(uuid.uuid5(ANSWER_ID_NAMESPACE, f"{model_id}/{question_id}")),
                "model_id": model_id,
                "choices": [{"index": 0, "turns": [turn_of(answer) for answer in answers]}],
                "tstamp": answers[-1].tstamp,
            }
        )
    return records


def write_json(path: Path, records: Any) -> None:
    """Write `records` as one JSON document (UTF-8, indented), atomically."""
    _write_atomically(path, json.dumps(records, ensure_ascii=False, indent=2) + "\n")


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Write `records` as JSON Lines (UTF-8, one object a line), atomically."""
    _write_atomically(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _write_atomically(path: Path, text: str) -> None:
    # a temporary file next to the target, then a rename: a reader (or an interrupted run)
    # sees the old file or the new one, never half of one
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's file is the owner's alone; an export is not
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
