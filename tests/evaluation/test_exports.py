"""The exports have the official field sets, are valid JSON / JSON Lines, and reruns give
byte-identical files.

Field sets, from the judges' own code:
- AlpacaEval (alpaca_eval 0.6, alpaca_eval/main.py, `get_completions`): model outputs keep
  `columns_to_keep = ["dataset", "instruction", "output", "generator"]`; the file is read by
  `utils.load_or_convert_to_dataframe` (`pd.read_json` of a .json list of records), outputs are
  paired with the reference outputs on `instruction`, `utils.get_generator_name` reads
  `generator`.
- Arena-Hard-Auto v0.1 (lmarena/arena-hard-auto, gen_answer.py): `{"question_id", "answer_id",
  "model_id", "choices": [{"index", "turns": [{"content", "token_len"}]}], "tstamp"}`.
- FastChat MT-Bench (lm-sys/FastChat, fastchat/llm_judge/gen_model_answer.py): the same fields,
  but `turns` is a list of strings (fastchat/llm_judge/common.py formats
  `answer["choices"][0]["turns"][0]` into the judge prompt).
"""

from __future__ import annotations

import json
from pathlib import Path

from evaluation.exports import (
    alpaca_eval_outputs,
    arena_hard_answers,
    mt_bench_answers,
    write_json,
    write_jsonl,
)
from evaluation.prompt_sets import load_prompts
from evaluation.records import AnswerRecord, EvalPrompt

ALPACA_FIELDS = {"instruction", "output", "generator"}
MODEL_ANSWER_FIELDS = {"question_id", "answer_id", "model_id", "choices", "tstamp"}


def answer(prompt_id: str, text: str, turn: int = 0, tokens: int = 5) -> AnswerRecord:
    return AnswerRecord(
        prompt_id=prompt_id, turn=turn, target="wsd@threshold=0.8", model="wsd",
        settings={"temperature": 0.0}, text=text, finish_reason="stop",
        usage={"prompt_tokens": 9, "completion_tokens": tokens, "total_tokens": 9 + tokens},
        wsd=None, ttft_s=0.1, e2e_s=0.5, tstamp=1_700_000_000.25 + turn,
    )  # fmt: skip


def alpaca_prompts(tmp_path: Path) -> list[EvalPrompt]:
    path = tmp_path / "alpaca.json"
    items = [
        {"dataset": "set-a", "instruction": " Name a fruit.", "output": "o", "generator": "g"},
        {"dataset": "set-b", "instruction": "Name a colour."},
        {"instruction": "Name a river."},
    ]
    path.write_text(json.dumps(items), encoding="utf-8")
    return load_prompts(path)


def test_alpaca_eval_records_have_alpaca_evals_fields_and_instructions_as_read(tmp_path):
    prompts = alpaca_prompts(tmp_path)
    answers = {"0": answer("0", "An apple."), "2": answer("2", "The Nile — long.")}
    records = alpaca_eval_outputs(prompts, answers, "wsd@threshold=0.8")
    assert records == [
        {"dataset": "set-a", "instruction": " Name a fruit.", "output": "An apple.",
         "generator": "wsd@threshold=0.8"},
        {"instruction": "Name a river.", "output": "The Nile — long.",
         "generator": "wsd@threshold=0.8"},
    ]  # fmt: skip
    assert set(records[0]) == ALPACA_FIELDS | {"dataset"} and set(records[1]) == ALPACA_FIELDS


def test_alpaca_eval_file_is_one_json_list_byte_identical_on_rerun(tmp_path):
    prompts = load_prompts(None)
    answers = {p.id: answer(p.id, f"Answer to {p.id}: H₂O") for p in prompts}
    first, second = tmp_path / "one" / "alpaca_eval.json", tmp_path / "two.json"
    write_json(first, alpaca_eval_outputs(prompts, answers, "gemma"))
    write_json(second, alpaca_eval_outputs(load_prompts(None), dict(answers), "gemma"))
    assert first.read_bytes() == second.read_bytes()
    assert "H₂O" in first.read_text(encoding="utf-8")  # UTF-8, not \u escapes
    records = json.loads(first.read_text(encoding="utf-8"))
    assert isinstance(records, list) and len(records) == 24
    assert all(set(record) == ALPACA_FIELDS for record in records)
    assert [r["instruction"] for r in records] == [p.turns[0] for p in prompts]


def mt_bench_prompts(tmp_path: Path) -> list[EvalPrompt]:
    path = tmp_path / "question.jsonl"
    lines = [
        {"question_id": 81, "category": "writing", "turns": ["Write a haiku.", "Now a title."]},
        {"question_id": 82, "category": "math", "turns": ["What is 2 + 2?", "Times 3?"]},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return load_prompts(path)


def test_arena_hard_records_have_arena_hards_fields_one_turn_entry_per_turn(tmp_path):
    prompts = mt_bench_prompts(tmp_path)
    by_turn = {
        "81": [answer("81", "Title", turn=1, tokens=2), answer("81", "Leaves fall", tokens=4)],
        "82": [answer("82", "4")],  # turn 1 missing: left out
    }
    (record,) = arena_hard_answers(prompts, by_turn, "gemma-3-270m")
    assert set(record) == MODEL_ANSWER_FIELDS
    assert record["question_id"] == 81  # the file's own id and type: the judges join on it
    assert record["model_id"] == "gemma-3-270m" and record["tstamp"] == by_turn["81"][0].tstamp
    (choice,) = record["choices"]
    assert set(choice) == {"index", "turns"} and choice["index"] == 0
    assert choice["turns"] == [
        {"content": "Leaves fall", "token_len": 4},
        {"content": "Title", "token_len": 2},
    ]
    assert all(set(turn) == {"content", "token_len"} for turn in choice["turns"])


def test_mt_bench_records_are_fastchats_turns_as_strings(tmp_path):
    prompts = mt_bench_prompts(tmp_path)
    by_turn = {"82": [answer("82", "4"), answer("82", "12", turn=1)]}
    (record,) = mt_bench_answers(prompts, by_turn, "gemma-3-270m")
    assert set(record) == MODEL_ANSWER_FIELDS and record["question_id"] == 82
    assert record["choices"] == [{"index": 0, "turns": ["4", "12"]}]
    assert (
        record["answer_id"] == arena_hard_answers(prompts, by_turn, "gemma-3-270m")[0]["answer_id"]
    )


def test_answer_ids_are_stable_and_differ_per_model_and_question():
    prompts = load_prompts(None)[:3]
    by_turn = {p.id: [answer(p.id, "x")] for p in prompts}
    ids = [r["answer_id"] for r in arena_hard_answers(prompts, by_turn, "a")]
    assert ids == [r["answer_id"] for r in arena_hard_answers(prompts, by_turn, "a")]
    assert len(set(ids)) == 3
    assert set(ids).isdisjoint(r["answer_id"] for r in arena_hard_answers(prompts, by_turn, "b"))
    assert [r["question_id"] for r in arena_hard_answers(prompts, by_turn, "a")] == [
        p.id for p in prompts
    ]


def test_arena_hard_file_is_one_json_object_a_line_byte_identical_on_rerun(tmp_path):
    prompts = load_prompts(None)
    by_turn = {p.id: [answer(p.id, f"Réponse {p.id}\nsecond line")] for p in prompts}
    path = tmp_path / "outputs" / "arena_hard.jsonl"
    write_jsonl(path, arena_hard_answers(prompts, by_turn, "wsd"))
    written = path.read_bytes()
    write_jsonl(path, arena_hard_answers(load_prompts(None), dict(by_turn), "wsd"))
    assert path.read_bytes() == written
    lines = written.decode("utf-8").splitlines()
    assert len(lines) == 24 and "Réponse" in lines[0]
    assert all(set(json.loads(line)) == MODEL_ANSWER_FIELDS for line in lines)
    assert [p.name for p in path.parent.iterdir()] == ["arena_hard.jsonl"]  # no temp files left


def test_writes_replace_an_existing_file_whole(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old and much longer content than the new one", encoding="utf-8")
    write_json(path, [])
    assert path.read_text(encoding="utf-8") == "[]\n"
    write_jsonl(path, [])
    assert path.read_bytes() == b""
