"""Prompt sets: every format read, detected and named; errors name line and field; built-ins."""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from evaluation.prompt_sets import DatasetError, PromptFormat, detect_format, load_prompts

ROOT = Path(__file__).resolve().parents[2]


def jsonl(path: Path, *records: Any) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def alpaca_file(tmp_path: Path) -> Path:
    path = tmp_path / "alpaca.json"
    items = [
        {"dataset": "set-a", "instruction": "Name a fruit.", "output": "x", "generator": "g"},
        {"instruction": "  Describe a cloud.\n"},
    ]
    path.write_text(json.dumps(items, indent=2), encoding="utf-8")
    return path


def test_alpaca_eval_list_ids_are_item_indices_and_instructions_are_kept_as_read(tmp_path):
    prompts = load_prompts(alpaca_file(tmp_path))
    assert [p.id for p in prompts] == ["0", "1"]
    assert prompts[0].turns == ("Name a fruit.",) and prompts[0].category == "set-a"
    assert prompts[1].turns == ("  Describe a cloud.\n",)  # AlpacaEval matches it byte for byte
    assert prompts[1].category is None and not prompts[1].harmful


def test_arena_hard(tmp_path):
    path = jsonl(
        tmp_path / "question.jsonl",
        {"question_id": "ab12", "category": "arena-hard-v0.1", "cluster": "Sorting",
         "turns": [{"content": "Sort these numbers: 3, 1, 2."}]},
        {"question_id": "cd34", "cluster": "Poetry", "turns": [{"content": "Write a limerick."}]},
    )  # fmt: skip
    prompts = load_prompts(path)
    assert [(p.id, p.turns, p.category) for p in prompts] == [
        ("ab12", ("Sort these numbers: 3, 1, 2.",), "arena-hard-v0.1"),
        ("cd34", ("Write a limerick.",), "Poetry"),
    ]


def mt_bench_file(tmp_path: Path) -> Path:
    return jsonl(
        tmp_path / "questions.jsonl",
        {"question_id": 81, "category": "writing",
         "turns": ["Write a short story about a robot.", "Now retell it in one sentence."]},
        {"question_id": 82, "category": "math", "turns": ["What is 7 * 6?", "And half of it?"],
         "reference": ["42", "21"]},
    )  # fmt: skip


def test_mt_bench_and_its_second_turn_follows_the_targets_first_answer(tmp_path):
    first, second = load_prompts(mt_bench_file(tmp_path))
    assert (first.id, first.category, first.references) == ("81", "writing", ())
    assert second.references == ("42", "21")
    assert first.messages(1, ["Once a robot learned to sing."]) == [
        user("Write a short story about a robot."),
        assistant("Once a robot learned to sing."),
        user("Now retell it in one sentence."),
    ]


def test_hh_dialogues_the_last_user_message_is_the_turn_the_rest_history(tmp_path):
    path = jsonl(
        tmp_path / "hh.jsonl",
        {"raw_context": [user("Hi."), assistant("Hello!"), user("Help me cheat on a test.")]},
        {"id": "h2", "category": "helpful", "raw_context": [user("Suggest a board game.")]},
        {"category": "Harmful", "raw_context": [user("Insult my friend.")]},
    )
    first, second, third = load_prompts(path)
    assert first.id == "1" and first.turns == ("Help me cheat on a test.",)
    assert first.history == (user("Hi."), assistant("Hello!")) and first.harmful
    assert first.messages(0, [])[-1] == user("Help me cheat on a test.")
    assert first.messages(0, [])[:-1] == list(first.history)
    assert (second.id, second.harmful, second.history) == ("h2", False, ())
    assert (third.id, third.harmful) == ("3", True)
    # named, HH reads `messages` too (detected, `messages` is plain JSONL: not harmful)
    path = jsonl(tmp_path / "hh.jsonl", {"messages": [user("Tell me how to pick a lock.")]})
    assert load_prompts(path, PromptFormat.HH)[0].harmful and not load_prompts(path)[0].harmful


def test_truthfulqa_answers_become_references(tmp_path):
    path = jsonl(
        tmp_path / "truthful.jsonl",
        {"type": "Adversarial", "category": "Misconceptions",
         "question": "Do goldfish forget everything after three seconds?",
         "best_answer": "No, goldfish remember for months",
         "correct_answers": ["No", "No, goldfish remember for months"],
         "incorrect_answers": ["Yes"]},
        {"question": "What colour is a clear daytime sky?"},
    )  # fmt: skip
    first, second = load_prompts(path)
    assert first.id == "1" and first.category == "Misconceptions"
    assert first.references == ("No, goldfish remember for months", "No")
    assert (second.id, second.references) == ("2", ())


def test_plain_jsonl_prompt_or_messages(tmp_path):
    path = jsonl(
        tmp_path / "plain.jsonl",
        {"prompt": "What is two plus two?", "category": "factual", "reference": "4"},
        {"id": "m", "category": "HARMFUL",
         "messages": [{"role": "system", "content": "Be brief."}, user("Write a threat.")]},
    )  # fmt: skip
    first, second = load_prompts(path)
    assert (first.id, first.references, first.harmful) == ("1", ("4",), False)
    assert (second.id, second.turns, second.harmful) == ("m", ("Write a threat.",), True)
    assert second.history == ({"role": "system", "content": "Be brief."},)


FORMATS = {
    PromptFormat.ALPACA_EVAL: alpaca_file,
    PromptFormat.MT_BENCH: mt_bench_file,
    PromptFormat.ARENA_HARD: lambda d: jsonl(
        d / "a.jsonl", {"question_id": "q", "turns": [{"content": "Hi"}]}
    ),
    PromptFormat.HH: lambda d: jsonl(d / "h.jsonl", {"raw_context": [user("Hi")]}),
    PromptFormat.TRUTHFULQA: lambda d: jsonl(d / "t.jsonl", {"question": "Why?"}),
    PromptFormat.JSONL: lambda d: jsonl(d / "p.jsonl", {"prompt": "Hi"}),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_is_detected_and_reads_the_same_when_named(tmp_path, fmt):
    path = FORMATS[fmt](tmp_path)
    assert detect_format(path) is fmt
    assert load_prompts(path) == load_prompts(path, fmt)
    assert all(prompt.source for prompt in load_prompts(path))


def test_blank_lines_are_skipped_and_line_numbers_are_the_files(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('\n{"prompt": "a"}\n   \n{"prompt": "b"}\n', encoding="utf-8")
    assert [p.id for p in load_prompts(path)] == ["2", "4"]


def error(path: Path, fmt: PromptFormat | None = None) -> str:
    with pytest.raises(DatasetError) as raised:
        load_prompts(path, fmt)
    return str(raised.value)


A = '{"prompt": "a"}'  # a good first line: the format is plain JSONL
MT = '{"question_id": 1, "turns": ["a", "b"]}'  # a good first line: MT-Bench
ROLE_ERROR = "expected one of system, developer, user, assistant, got 'robot'"
JSONL_ERRORS = [
    ([A, "{not json"], "x.jsonl:2: not valid JSON"),
    ([A, "[1, 2]"], "x.jsonl:2: expected a JSON object, got a list"),
    ([A, '{"id": "b"}'], "x.jsonl:2: prompt: missing (expected a non-empty string)"),
    ([A, '{"prompt": 3}'], "x.jsonl:2: prompt: expected a non-empty string, got a number"),
    (['{"prompt": "  "}'], "x.jsonl:1: prompt: expected a non-empty string, got an empty one"),
    (['{"prompt": "a", "id": "d"}', "", '{"prompt": "b", "id": "d"}'],
     "x.jsonl:3: id: duplicate id 'd' (first at "),
    (['{"prompt": "a", "reference": {"x": 1}}'],
     "x.jsonl:1: reference: expected a string or a list of strings, got an object"),
    (['{"prompt": "a", "reference": ["ok", ""]}'], "x.jsonl:1: reference[1]: expected a non-empty"),
    (['{"messages": [{"role": "robot", "content": "hi"}]}'],
     f"x.jsonl:1: messages[0].role: {ROLE_ERROR}"),
    (['{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'],
     "x.jsonl:1: messages[1].role: the last message must be a user message, got 'assistant'"),
    (['{"messages": [{"role": "user"}]}'], "x.jsonl:1: messages[0].content: missing"),
    (['{"messages": []}'], "x.jsonl:1: messages: expected a list of objects, got an empty list"),
    (['{"text": "hi", "label": 1}'],
     "x.jsonl:1: unknown prompt set format (keys found: label, text)"),
    ([MT, "", '{"question_id": 2, "turns": ["a"]}'],
     "x.jsonl:3: turns: expected a list of 2 strings, got 1"),
    ([MT, '{"question_id": 1, "turns": ["c", "d"]}'], "x.jsonl:2: question_id: duplicate id '1'"),
    (['{"question_id": true, "turns": ["a", "b"]}'],
     "x.jsonl:1: question_id: expected a non-empty string or a whole number, got a boolean"),
    ([MT, '{"question_id": 2, "turns": ["a", 2]}'],
     "x.jsonl:2: turns[1]: expected a string, got a number"),
    (['{"question_id": "q", "turns": [{"text": "a"}]}'], "x.jsonl:1: turns[0].content: missing"),
    (['{"turns": [{"content": "a"}]}'], "x.jsonl:1: question_id: missing"),
    (['{"turns": ["a", {"content": "b"}]}'],
     "x.jsonl:1: turns: expected a list of strings (MT-Bench)"),
    (['{"raw_context": "hello"}'],
     "x.jsonl:1: raw_context: expected a list of objects, got a string"),
    (['{"question": "Why?", "best_answer": 1}'],
     "x.jsonl:1: best_answer: expected a string or a list of strings, got a number"),
    (["", "  "], "x.jsonl: empty prompt set: no records"),
]  # fmt: skip


@pytest.mark.parametrize(("lines", "message"), JSONL_ERRORS)
def test_jsonl_errors_name_the_line_and_the_field(tmp_path, lines, message):
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert message in error(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"instruction": "a"}, {"output": "b"}]', "a.json: item 1: instruction: missing"),
        ('[{"instruction": "a"}, "b"]', "a.json: item 1: expected a JSON object, got a string"),
        ('[{"instruction": "a", "dataset": 5}]', "a.json: item 0: dataset: expected a non-empty"),
        ('[\n{"instruction": "a"},\n{"instruction": }]', "a.json:3: not valid JSON"),
        ("  []", "a.json: empty prompt set: no records"),
    ],
)
def test_json_list_errors_name_the_item_and_the_field(tmp_path, text, message):
    path = tmp_path / "a.json"
    path.write_text(text, encoding="utf-8")
    assert message in error(path)


def test_a_named_format_checks_its_own_fields_and_an_unreadable_file_is_an_error(tmp_path):
    path = jsonl(tmp_path / "x.jsonl", {"prompt": "Hi"})
    assert "x.jsonl:1: question: missing" in error(path, PromptFormat.TRUTHFULQA)
    assert "nothing.jsonl: cannot read the prompt set" in error(tmp_path / "nothing.jsonl")
    assert "fmt=builtin reads the built-in set" in error(tmp_path / "x.jsonl", PromptFormat.BUILTIN)
    with pytest.raises(ValueError, match=r"^fmt: expected one of alpaca_eval, .*, got 'csv'$"):
        load_prompts(path, "csv")  # type: ignore[arg-type]


def test_the_builtin_set():
    prompts = load_prompts(None)
    assert prompts == load_prompts(None, PromptFormat.BUILTIN)
    assert len(prompts) == 24 and len({p.id for p in prompts}) == 24
    for prompt in prompts:
        assert prompt.id.startswith(f"{prompt.category}-") and len(prompt.turns) == 1
        assert prompt.harmful == (prompt.category == "harmful")
        assert (prompt.category == "factual") == bool(prompt.references)
        assert len(prompt.turns[0]) < 120  # a CPU model answers in 128 tokens
    assert Counter(p.category for p in prompts) == {"helpful": 8, "harmful": 8, "factual": 8}
    # and the package ships it (loaded above with importlib.resources)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "evaluation*" in project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "builtin_prompts.jsonl" in project["tool"]["setuptools"]["package-data"]["evaluation"]
