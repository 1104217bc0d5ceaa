"""The report: tables in threshold order, report.json as written, the sweep plot when there is
a sweep, and a clear word when there is none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaluation.answer_metrics import target_metrics
from evaluation.judge import JUDGE_PROMPTS_VERSION
from evaluation.records import AnswerRecord, EvalPrompt
from evaluation.reporting import console_table, write_report
from evaluation.verdicts import PairwiseVerdict, pairwise_summary

PROMPTS = [EvalPrompt(id=str(i), turns=(f"question {i}",), harmful=i % 3 == 0,
                      references=("paris",) if i % 2 else ()) for i in range(12)]  # fmt: skip
RUN = {"options": {"judge_model": "judge-x"}, "prompts": len(PROMPTS), "written": "2025-01-01",
       "judge_prompts_version": JUDGE_PROMPTS_VERSION}  # fmt: skip


def target(name: str, role: str, threshold: float | None = None, *, judged: bool) -> dict[str, Any]:
    """A target dict as evaluation/run.py builds it, on made-up answers."""
    share = 0.0 if threshold is None else threshold / 2
    pairs = []
    for prompt in PROMPTS:
        text = f"The answer to {prompt.id} is paris, and paris it stays " * (2 if share else 1)
        info = None
        if role == "wsd":
            info = {"accept_index": int(10 * share), "reason": "threshold", "prefix_tokens": 2,
                    "prefix_chars": int(len(text) * share), "pilot_tokens_wasted": 1,
                    "threshold": threshold, "window": 4}  # fmt: skip
        record = AnswerRecord(prompt.id, 0, f"{name}#0", name, {}, text, "stop",
                              {"completion_tokens": 20}, info, 0.05, 1.0 + share, 0.0)  # fmt: skip
        pairs.append((prompt, record))
    judge = None
    if judged:
        wins = int(12 * share)
        verdicts = [PairwiseVerdict(p.id, 0, name, "base", *(("A", "B") if i < wins else
                    ("B", "A"))) for i, p in enumerate(PROMPTS)]  # fmt: skip
        judge = {"judge_prompts_version": JUDGE_PROMPTS_VERSION, "reference": "base", "failed": 0,
                 "grade": {"mean": 6.5, "ci": [6.0, 7.0], "n": 12},
                 "harmless": {"rate": 0.75, "ci": [0.5, 1.0], "n": 4}}  # fmt: skip
        if role != "base":
            judge["pairwise"] = pairwise_summary(verdicts)
    return {"name": name, "role": role, "model": name, "settings": {"temperature": 0.0},
            "threshold": threshold, "window": 4 if role == "wsd" else None,
            "answers": len(pairs), "missing": 0,
            "metrics": target_metrics(pairs, role).to_json(), "judge": judge}  # fmt: skip


def sweep(judged: bool) -> list[dict[str, Any]]:
    # the thresholds out of order: the report sorts them
    return [target(f"wsd@threshold={t}", "wsd", t, judged=judged) for t in (0.9, 0.5, 0.7)] + [
        target("pilot", "pilot", judged=judged), target("base", "base", judged=judged),
    ]  # fmt: skip


@pytest.mark.parametrize("judged", [True, False])
def test_report_with_a_sweep(tmp_path: Path, judged: bool) -> None:
    targets = sweep(judged)
    markdown = write_report(tmp_path, RUN, targets)
    assert (tmp_path / "report.md").read_text() == markdown
    sweep_table = markdown[markdown.index("## Threshold sweep") :]
    rows = [line for line in sweep_table.splitlines() if line.startswith("| ")][2:]
    assert [row.split(" | ")[0] for row in rows] == [
        "| 0.5", "| 0.7", "| 0.9", "| pilot alone", "| base alone",
    ]  # fmt: skip
    assert "## Summary" in markdown and "## WSD handoff" in markdown
    assert ("## Judge" in markdown) is judged
    assert ("win rate vs base" in markdown) is judged
    if judged:
        assert f"judge-x, prompts {JUDGE_PROMPTS_VERSION}" in markdown
    png = tmp_path / "sweep.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "![threshold sweep](sweep.png)" in markdown
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["targets"] == targets and report["run"] == RUN
    assert [row["threshold"] for row in report["sweep"]][:3] == [0.5, 0.7, 0.9]
    assert report["sweep_png"] == "sweep.png"


def test_report_without_wsd_targets(tmp_path: Path) -> None:
    (tmp_path / "sweep.png").write_bytes(b"an old plot")
    targets = [target("pilot", "pilot", judged=False), target("base", "base", judged=False)]
    markdown = write_report(tmp_path, {**RUN, "judge_prompts_version": None}, targets)
    assert not (tmp_path / "sweep.png").exists()
    assert "No wsd target in this run" in markdown and "No sweep plot" in markdown
    assert "judge: none" in markdown and "## WSD handoff" not in markdown
    assert json.loads((tmp_path / "report.json").read_text())["sweep_png"] is None


def test_a_target_without_answers_reports_blanks(tmp_path: Path) -> None:
    empty = {"name": "wsd", "role": "wsd", "model": "wsd", "settings": {}, "threshold": 0.8,
             "window": 4, "answers": 0, "missing": 12, "metrics": None, "judge": None}  # fmt: skip
    markdown = write_report(tmp_path, RUN, [empty])
    assert "| wsd | wsd | 0 +12 |" in markdown
    assert "No sweep plot: no wsd target with answers in this run." in markdown
    assert not (tmp_path / "sweep.png").exists()


def test_console_table() -> None:
    table = console_table(sweep(judged=True))
    lines = table.splitlines()
    assert lines[0].split() == ["target", "n", "tokens", "dist-3", "refuse-h", "pilot",
                                "e2e", "p50", "tok/s", "win"]  # fmt: skip
    assert len(lines) == 6 and len({len(line) for line in lines}) == 1  # fixed width
    assert lines[-1].startswith("base ") and lines[-1].rstrip().endswith("–")
