"""The report's markdown sections: the summary, the WSD handoff, the judge's verdicts and the
threshold sweep (evaluation/report.py documents the target dicts they read)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from evaluation.sweep import dig

SUMMARY_HEAD = ("target", "role", "n", "tokens", "chars", "distinct-3", "rep. 4-grams",
                "refusals harmful", "refusals other", "ref. match", "pilot share",
                "accept idx p50", "e2e p50 s", "TTFT p50 s", "tok/s")  # fmt: skip
HANDOFF_HEAD = ("target", "answers", "accept idx p25", "p50", "p75", "no switch",
                "switch reasons", "pilot tokens wasted", "base tokens")  # fmt: skip
JUDGE_HEAD = ("target", "reference", "wins", "ties", "losses", "n", "win rate", "flipped",
              "no verdict", "grade", "harmless", "failed")  # fmt: skip
SWEEP_HEAD = ("threshold", "window", "target", "win rate", "distinct-3", "ref. match",
              "pilot share", "accept idx p50", "no switch", "e2e p50 s", "base tokens")  # fmt: skip


def summary_section(targets: list[dict[str, Any]]) -> list[str]:
    """One row per target: answers, length, degeneration, refusals, reference match, cost."""
    rows = []
    for target in targets:
        m = target.get("metrics") or {}
        missing = target.get("missing") or 0
        n = f"{target.get('answers', m.get('answers', 0))}" + (f" +{missing}" if missing else "")
        rows.append([target["name"], str(target.get("role", "")), n,
                     fmt_estimate(dig(m, "length", "completion_tokens"), 1),
                     fmt_estimate(dig(m, "length", "chars"), 0),
                     fmt_estimate(dig(m, "degeneration", "distinct_3")),
                     fmt_estimate(dig(m, "degeneration", "repeated_4grams")),
                     fmt_estimate(dig(m, "refusals", "harmful")),
                     fmt_estimate(dig(m, "refusals", "other")),
                     fmt_estimate(dig(m, "reference_match", "contains")),
                     fmt_estimate(dig(m, "wsd", "pilot_share")),
                     fmt(dig(m, "wsd", "accept_index", "median"), 0),
                     fmt(dig(m, "cost", "e2e_p50_s")), fmt(dig(m, "cost", "ttft_p50_s")),
                     fmt(dig(m, "cost", "output_tok_s_p50"), 1)])  # fmt: skip
    note = ("Means with their 95 % bootstrap interval in brackets; n: answers in (each turn "
            "counts), answers missing after `+`. Refusals: a phrase screen of the first 200 "
            "characters (evaluation/text_measures.py says what it misses); ref. match: the "
            "answer contains a reference, over the prompts that have one; cost: medians on the "
            "client's clock.")  # fmt: skip
    return ["## Summary", "", *table(SUMMARY_HEAD, rows), "", note, ""]


def handoff_section(targets: list[dict[str, Any]]) -> list[str]:
    """The wsd targets' switch: accept index quartiles, reasons, wasted and base tokens."""
    rows = []
    for target in targets:
        wsd = dig(target, "metrics", "wsd")
        if not wsd:
            continue
        index = wsd["accept_index"]
        reasons = ", ".join(f"{k} {v}" for k, v in wsd["switch_reasons"].items())
        rows.append([target["name"], str(wsd["answers"]), fmt(index["p25"], 0),
                     fmt(index["median"], 0), fmt(index["p75"], 0),
                     fmt(index["no_switch_share"]), reasons,
                     fmt_estimate(wsd["pilot_tokens_wasted"], 1),
                     fmt_estimate(dig(target, "metrics", "cost", "base_tokens"), 1)])  # fmt: skip
    if not rows:
        return []
    note = ("Accept index: the last draft token kept, in base tokens, over the answers that "
            "switched; no switch: the answer ended inside the draft.")  # fmt: skip
    return ["## WSD handoff", "", *table(HANDOFF_HEAD, rows), "", note, ""]


def judge_section(targets: list[dict[str, Any]], judge_name: str) -> list[str]:
    """Win/tie/loss against the reference target, win rate, mean grade, harmless rate."""
    rows = []
    for target in targets:
        judge = target.get("judge") or {}
        pairwise = judge.get("pairwise") or {}
        harmless = judge.get("harmless") or {}
        rows.append([target["name"], str(judge.get("reference") or "–"),
                     *(str(pairwise.get(k, "–")) for k in ("wins", "ties", "losses", "n")),
                     fmt_estimate({"mean": pairwise.get("win_rate"), "ci": pairwise.get("ci")}),
                     str(pairwise.get("flipped", "–")), str(pairwise.get("no_verdict", "–")),
                     fmt_estimate(judge.get("grade"), 2),
                     fmt_estimate({"mean": harmless.get("rate"), "ci": harmless.get("ci")}),
                     str(judge.get("failed") or 0)])  # fmt: skip
    note = (f"Judge: {judge_name}. Pairwise: each answer against the reference target's, "
            "asked in both orders; a win or a loss only when both orders agree, a tie otherwise "
            "(`flipped`: the orders chose differently; `no verdict`: a reply had none). Win rate "
            "= (wins + ties / 2) / n. Grade: 1 to 10. Harmless: the share of the answers to "
            "harmful prompts the judge found harmless.")  # fmt: skip
    return ["## Judge", "", *table(JUDGE_HEAD, rows), "", note, ""]


def sweep_section(rows: list[dict[str, Any]], no_plot: str | None) -> list[str]:
    """The wsd settings in threshold order, the pilot alone and the base alone, the plot."""
    lines = ["## Threshold sweep", ""]
    if not any(row["role"] == "wsd" for row in rows):
        lines += ["No wsd target in this run: no sweep.", ""]
    else:
        reference = next((row["reference"] for row in rows if row["reference"]), None)
        quality = f"win rate vs {reference}" if reference else "win rate"
        head = (*SWEEP_HEAD[:3], quality, *SWEEP_HEAD[4:])
        lines += [*table(head, [_sweep_row(row) for row in rows]), ""]
    lines += [f"No sweep plot: {no_plot}." if no_plot else "![threshold sweep](sweep.png)", ""]
    return lines


def _sweep_row(row: dict[str, Any]) -> list[str]:
    label = {"pilot": "pilot alone", "base": "base alone"}.get(row["role"])
    threshold = label or ("default" if row["threshold"] is None else f"{row['threshold']:g}")
    window = "" if row["window"] is None else str(row["window"])
    rates = [fmt(row[k]) for k in ("win_rate", "distinct_3", "reference_contains", "pilot_share")]
    index = fmt(row["accept_index_median"], 0)
    cost = [fmt(row["no_switch_share"]), fmt(row["e2e_p50_s"]), fmt(row["base_tokens"], 1)]
    return [threshold, window, row["name"], *rates, index, *cost]


def table(head: Iterable[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines."""
    head = list(head)

    def line(cells: Iterable[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(head), line("---" for _ in head), *(line(row) for row in rows)]


def fmt_estimate(estimate: dict[str, Any] | None, digits: int = 3) -> str:
    """A mean with its interval, "0.412 [0.380, 0.445]"; "–" without a mean."""
    if not estimate or estimate.get("mean") is None:
        return "–"
    ci = estimate.get("ci")
    interval = f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else ""
    return f"{estimate['mean']:.{digits}f}{interval}"


def fmt(value: float | None, digits: int = 3) -> str:
    """A number to `digits` places; "–" for None."""
    return "–" if value is None else f"{value:.{digits}f}"
