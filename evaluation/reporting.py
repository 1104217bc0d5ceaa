"""The run's report: report.md (tables), report.json (everything), sweep.png (the threshold
sweep), and a short table for the console.

`targets`, one dict per target (evaluation/run.py builds them):

    {
      "name": str,                 # e.g. "wsd@threshold=0.8", "gemma-3-270m"
      "role": "wsd" | "pilot" | "base" | "other",
      "model": str,                # the model id asked
      "settings": dict,            # the request settings (Target.settings)
      "threshold": float | None,   # the `wsd` extension sent (None: the server's default, then
      "window": int | None,        #   read from the answers' `wsd` objects when they agree)
      "answers": int,              # answers in (every turn)
      "missing": int,              # answers expected but not in
      "metrics": dict | None,      # TargetMetrics.to_json(); None without answers
      "judge": dict | None,        # None without a judge, else:
        # {"judge_prompts_version": str, "reference": str | None (the reference target's name),
        #  "failed": int, and when there are verdicts:
        #  "pairwise": verdicts.pairwise_summary(...),   (absent for the reference itself)
        #  "grade": {"mean", "ci", "n"}, "harmless": {"rate", "ci", "n"}}
    }

`run` is the run's settings (run.json): "options" (with "judge_model"), "prompts",
"judge_prompts_version", "written"; any other keys are kept in report.json as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluation.judge import JUDGE_PROMPTS_VERSION
from evaluation.report_tables import (
    fmt,
    handoff_section,
    judge_section,
    summary_section,
    sweep_section,
)
from evaluation.sweep import dig, plot_sweep, sweep_rows


def write_report(folder: Path, run: dict[str, Any], targets: list[dict[str, Any]]) -> str:
    """Write report.md, report.json and (with a wsd target) sweep.png; returns the markdown."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = sweep_rows(targets)
    png = folder / "sweep.png"
    png.unlink(missing_ok=True)  # a rerun without wsd targets must not show an old plot
    no_plot = plot_sweep(rows, png)
    markdown = "\n".join(_markdown(run, targets, rows, no_plot)) + "\n"
    (folder / "report.md").write_text(markdown, encoding="utf-8")
    document = {
        "run": run,
        "judge_prompts_version": _version(run, targets),
        "targets": targets,
        "sweep": rows,
        "sweep_png": None if no_plot else png.name,
    }
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    (folder / "report.json").write_text(text + "\n", encoding="utf-8")
    return markdown


def console_table(targets: list[dict[str, Any]]) -> str:
    """A short fixed-width table: answers, length, degeneration, pilot share, cost, win rate."""
    head = ("target", "n", "tokens", "dist-3", "refuse-h", "pilot", "e2e p50", "tok/s", "win")
    lines = [head]
    for target in targets:
        m = target.get("metrics") or {}
        lines.append(
            (
                target["name"],
                str(target.get("answers", dig(m, "answers") or 0)),
                fmt(dig(m, "length", "completion_tokens", "mean"), 1),
                fmt(dig(m, "degeneration", "distinct_3", "mean")),
                fmt(dig(m, "refusals", "harmful", "mean")),
                fmt(dig(m, "wsd", "pilot_share", "mean")),
                fmt(dig(m, "cost", "e2e_p50_s")),
                fmt(dig(m, "cost", "output_tok_s_p50"), 1),
                fmt(dig(target, "judge", "pairwise", "win_rate")),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    widths[0] = min(widths[0], 40)  # long names are cut, not the columns pushed off screen
    out = []
    for line in lines:
        cells = [line[0][: widths[0]].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        out.append("  ".join(cells))
    return "\n".join(out)


def _markdown(
    run: dict[str, Any],
    targets: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    no_plot: str | None,
) -> list[str]:
    judged = any(target.get("judge") for target in targets)
    judge = f"{dig(run, 'options', 'judge_model')}, prompts {_version(run, targets)}"
    lines = [
        "# wsd eval report",
        "",
        f"Prompts: {run.get('prompts', '?')} · targets: {len(targets)} · "
        f"judge: {judge if judged else 'none'} · written: {run.get('written', '?')}",
        "",
    ]
    lines += summary_section(targets)
    lines += handoff_section(targets)
    if judged:
        lines += judge_section(targets, judge)
    return lines + sweep_section(rows, no_plot)


def _version(run: dict[str, Any], targets: list[dict[str, Any]]) -> str | None:
    found = [dig(t, "judge", "judge_prompts_version") for t in targets]
    return (
        run.get("judge_prompts_version")
        or next((v for v in found if v), None)
        or (JUDGE_PROMPTS_VERSION if any(t.get("judge") for t in targets) else None)
    )
