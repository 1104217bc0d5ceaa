"""Prompt sets: AlpacaEval, Arena-Hard, MT-Bench, HH-RLHF dialogues, TruthfulQA, plain JSONL and
the built-in set, read into `EvalPrompt`s the way the official WSD loaders read them
(F2-Song/Weak-to-Strong-Decoding, load_data/*.py). The whole file is checked before anything
is sent: a bad record is a `DatasetError` naming the file, the line and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from enum import StrEnum
from importlib import resources
from pathlib import Path

from evaluation.prompt_fields import MISSING, DatasetError, Record
from evaluation.records import EvalPrompt

__all__ = ["BUILTIN_FILE", "DatasetError", "PromptFormat", "detect_format", "load_prompts"]

BUILTIN_FILE = "builtin_prompts.jsonl"


class PromptFormat(StrEnum):
    """The prompt set formats `load_prompts` reads."""

    ALPACA_EVAL = "alpaca_eval"
    ARENA_HARD = "arena_hard"
    MT_BENCH = "mt_bench"
    HH = "hh"
    TRUTHFULQA = "truthfulqa"
    JSONL = "jsonl"
    BUILTIN = "builtin"


def load_prompts(path: Path | None, fmt: PromptFormat | None = None) -> list[EvalPrompt]:
    """The prompts of the file at `path` in format `fmt` (default: detected from the first
    record); the built-in set when `path` is None or `fmt` is builtin."""
    if fmt is not None and fmt not in set(PromptFormat):
        choices = ", ".join(PromptFormat)
        raise ValueError(f"fmt: expected one of {choices}, got {fmt!r}")
    fmt = PromptFormat(fmt) if fmt is not None else None
    if fmt is PromptFormat.BUILTIN or path is None:
        if path is not None:
            raise DatasetError(f"{path}: fmt=builtin reads the built-in set, not a file")
        text = resources.files("evaluation").joinpath(BUILTIN_FILE).read_text(encoding="utf-8")
        return _parse(BUILTIN_FILE, text, PromptFormat.JSONL)
    return _parse(str(path), _read(path), fmt)


def detect_format(path: Path) -> PromptFormat:
    """The format of the prompt set file at `path`: a JSON list is AlpacaEval's, a JSONL file's
    is told by its first record's keys."""
    text = _read(path)
    if _is_list(text):
        return PromptFormat.ALPACA_EVAL
    first = next(_line_records(str(path), text), None)
    if first is None:
        raise DatasetError(f"{path}: empty prompt set: no records")
    return _record_format(first[0])


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the prompt set: {exc}") from None


def _is_list(text: str) -> bool:
    # A JSON list is AlpacaEval's shape; anything else is read as JSON Lines.
    return text.lstrip().startswith("[")


def _record_format(record: Record) -> PromptFormat:
    turns = record.data.get("turns")
    if isinstance(turns, list) and turns:
        if all(isinstance(turn, dict) for turn in turns):
            return PromptFormat.ARENA_HARD
        if all(isinstance(turn, str) for turn in turns):
            return PromptFormat.MT_BENCH
        record.fail("turns", "expected a list of strings (MT-Bench) or of objects (Arena-Hard)")
    for key, fmt in (
        ("raw_context", PromptFormat.HH),
        ("question", PromptFormat.TRUTHFULQA),
        ("prompt", PromptFormat.JSONL),
        ("messages", PromptFormat.JSONL),
    ):
        if key in record.data:
            return fmt
    keys = ", ".join(sorted(record.data)) or "none"
    record.fail(
        None,
        f"unknown prompt set format (keys found: {keys}); expected turns, raw_context, "
        "question, prompt or messages, or a JSON list of {instruction} objects, or name the "
        "format",
    )


def _parse(name: str, text: str, fmt: PromptFormat | None) -> list[EvalPrompt]:
    is_list = _is_list(text)
    records = list(_list_records(name, text) if is_list else _line_records(name, text))
    if not records:
        raise DatasetError(f"{name}: empty prompt set: no records")
    if fmt is None:
        fmt = PromptFormat.ALPACA_EVAL if is_list else _record_format(records[0][0])
    parse = _PARSERS[fmt]
    prompts: list[EvalPrompt] = []
    seen: dict[str, str] = {}
    for record, default_id in records:
        prompt, id_field = parse(record, default_id)
        if prompt.id in seen:
            record.fail(id_field, f"duplicate id {prompt.id!r} (first at {seen[prompt.id]})")
        seen[prompt.id] = record.where
        prompts.append(prompt)
    return prompts


def _line_records(name: str, text: str) -> Iterator[tuple[Record, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON: {exc.msg}") from None
        yield Record.of(where, data), str(number)


def _list_records(name: str, text: str) -> Iterator[tuple[Record, str]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{name}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    # the item index is the official AlpacaEval loader's line_index, the prompt's id
    for index, data in enumerate(items):
        yield Record.of(f"{name}: item {index}", data), str(index)


# Each parser returns the prompt and the name of the field its id came from.
Parsed = tuple[EvalPrompt, str]


def _alpaca_eval(record: Record, default_id: str) -> Parsed:
    category = record.optional_string("dataset")
    turn = record.string("instruction")
    return EvalPrompt(default_id, (turn,), category=category, source=record.data), "instruction"


def _arena_hard(record: Record, default_id: str) -> Parsed:
    question_id = record.identifier("question_id")
    turns = record.items("turns", dict)
    texts = tuple(
        record.string(f"turns[{index}].content", turn.get("content", MISSING))
        for index, turn in enumerate(turns)
    )
    category = record.optional_string("category") or record.optional_string("cluster")
    prompt = EvalPrompt(question_id, texts, category=category, source=record.data)
    return prompt, "question_id"


def _mt_bench(record: Record, default_id: str) -> Parsed:
    question_id = record.identifier("question_id")
    turns = record.items("turns", str, count=2)
    texts = tuple(record.string(f"turns[{i}]", turn) for i, turn in enumerate(turns))
    prompt = EvalPrompt(
        question_id,
        texts,
        category=record.optional_string("category"),
        references=record.references("reference"),
        source=record.data,
    )
    return prompt, "question_id"


def _hh(record: Record, default_id: str) -> Parsed:
    key = "messages" if "messages" in record.data else "raw_context"
    history, turn = record.dialogue(key)
    category = record.optional_string("category")
    # HH-RLHF's red-team dialogues carry no category: they are the harmful prompts
    harmful = category is None or category.lower() == "harmful"
    prompt_id, id_field = record.optional_id(default_id)
    prompt = EvalPrompt(
        prompt_id, (turn,), history, category=category, harmful=harmful, source=record.data
    )
    return prompt, id_field


def _truthfulqa(record: Record, default_id: str) -> Parsed:
    question = record.string("question")
    references = record.references("best_answer") + record.references("correct_answers")
    prompt_id, id_field = record.optional_id(default_id)
    prompt = EvalPrompt(
        prompt_id,
        (question,),
        category=record.optional_string("category"),
        references=tuple(dict.fromkeys(references)),  # the best answer first, once
        source=record.data,
    )
    return prompt, id_field


def _jsonl(record: Record, default_id: str) -> Parsed:
    if "prompt" in record.data or "messages" not in record.data:
        history: tuple[dict[str, str], ...] = ()
        turn = record.string("prompt")
    else:
        history, turn = record.dialogue("messages")
    category = record.optional_string("category")
    prompt_id, id_field = record.optional_id(default_id)
    prompt = EvalPrompt(
        prompt_id,
        (turn,),
        history,
        category=category,
        references=record.references("reference"),
        harmful=category is not None and category.lower() == "harmful",
        source=record.data,
    )
    return prompt, id_field


_PARSERS: dict[PromptFormat, Callable[[Record, str], Parsed]] = {
    PromptFormat.ALPACA_EVAL: _alpaca_eval,
    PromptFormat.ARENA_HARD: _arena_hard,
    PromptFormat.MT_BENCH: _mt_bench,
    PromptFormat.HH: _hh,
    PromptFormat.TRUTHFULQA: _truthfulqa,
    PromptFormat.JSONL: _jsonl,
}
