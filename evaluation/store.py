"""The run folder: answers and judge verdicts appended one line each as they arrive, so an
interrupted run loses only what was in flight and a rerun of the same command skips what is
done."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evaluation.records import AnswerRecord

logger = logging.getLogger("wsd.eval")

ANSWERS = "answers.jsonl"
JUDGMENTS = "judgments.jsonl"
FAILURES = "failures.jsonl"
RUN = "run.json"


class RunStore:
    """One run folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.answers: dict[tuple[str, str, int], AnswerRecord] = {
            record.key: record
            for record in (AnswerRecord(**line) for line in _read_lines(folder / ANSWERS))
        }
        self._judgments = {line["key"]: line["record"] for line in _read_lines(folder / JUDGMENTS)}

    def add_answer(self, record: AnswerRecord) -> None:
        """Keep an answer (one line, on disk before this returns)."""
        self.answers[record.key] = record
        _append(self.folder / ANSWERS, asdict(record))

    def add_failure(self, record: dict[str, Any]) -> None:
        """A request that failed for good (not done: a rerun tries it again)."""
        _append(self.folder / FAILURES, record)

    def get(self, key: str) -> dict[str, Any] | None:
        """A cached judge verdict (the judge's `JudgmentCache`)."""
        return self._judgments.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Keep a judge verdict."""
        self._judgments[key] = record
        _append(self.folder / JUDGMENTS, {"key": key, "record": record})

    def write_run(self, run: dict[str, Any]) -> None:
        """The command's settings, for the report (rewritten by each rerun)."""
        (self.folder / RUN).write_text(json.dumps(run, indent=2, ensure_ascii=False))


def _append(path: Path, record: dict[str, Any]) -> None:
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with path.open("a", encoding="utf-8") as file:
        file.write(line)
        file.flush()
        os.fsync(file.fileno())


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file; a last line cut short by a killed run is dropped."""
    if not path.exists():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            if number != len(lines):
                raise
            logger.warning("%s: line %d was cut short (an interrupted run); dropped", path, number)
    return records
