"""Per-target figures that need no judge: length, degeneration, refusals, reference match, the
WSD handoff and cost.

Which answers count: length, degeneration, the `wsd` figures and cost read every answer (a
two-turn prompt's second answer counts as an answer of its own); refusals and reference match
read each prompt's first-turn answer, since the harmful tag and the references describe the
prompt's first question. An answer with no n-gram of the size asked (fewer words than n) is
left out of that distinct-n or repeated-4-gram mean.

How words are split, which phrases make a refusal (REFUSAL_PHRASES, in the first 200
characters) and what that screen misses (refusals phrased otherwise, partial compliance, a
warning followed by the harmful content counted as a refusal, other languages), and how answers
are normalised for the reference match: evaluation/text_measures.py.

Pilot share: `prefix_chars / len(text)`, clamped to [0, 1]; an empty answer has no characters
to share and is left out (counting it as 0 or 1 would move the mean by a choice nobody made).
Base-model tokens: a wsd answer's completion tokens beyond the kept draft (`prefix_tokens`), the
base alone's completion tokens, 0 for the pilot alone, unknown (None) for other targets.
Cost figures are medians over answers, on the client's clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evaluation.records import AnswerRecord, EvalPrompt
from evaluation.stats import bootstrap_ci, mean, median, percentile
from evaluation.text_measures import (
    REFUSAL_PHRASES,
    distinct_n,
    is_refusal,
    reference_match,
    repeated_ngram_share,
    words,
)

__all__ = ["REFUSAL_PHRASES", "Estimate", "TargetMetrics", "WsdMetrics", "target_metrics"]


@dataclass(frozen=True)
class Estimate:
    """A mean over answers, its 95 % bootstrap interval and how many answers it read."""

    mean: float | None
    ci: tuple[float, float] | None
    n: int

    def to_json(self) -> dict[str, Any]:
        """{"mean", "ci": [lo, hi], "n"}; mean and ci are None when n is 0."""
        return {"mean": self.mean, "ci": list(self.ci) if self.ci else None, "n": self.n}


def estimate(values: Sequence[float]) -> Estimate:
    """The mean of `values` with its bootstrap interval (empty: no mean)."""
    if not values:
        return Estimate(None, None, 0)
    return Estimate(mean(values), bootstrap_ci(values), len(values))


@dataclass
class WsdMetrics:
    """The handoff, over the answers that carry a `wsd` object."""

    answers: int
    pilot_share: Estimate
    # median, p25, p75 over the answers that switched; no_switch_share: accept_index null (the
    # answer ended inside the draft, docs/method.md section 7)
    accept_index: dict[str, float | int | None]
    switch_reasons: dict[str, int]  # "threshold", "draft_end", "draft_limit", "none"
    pilot_tokens_wasted: Estimate
    # the settings the answers ran with, as their `wsd` objects say (None unless all agree):
    # a target sent without a threshold runs at the server's default, which only the answers know
    threshold: float | None = None
    window: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain numbers."""
        return {
            "answers": self.answers,
            "pilot_share": self.pilot_share.to_json(),
            "accept_index": dict(self.accept_index),
            "switch_reasons": dict(self.switch_reasons),
            "pilot_tokens_wasted": self.pilot_tokens_wasted.to_json(),
            "threshold": self.threshold,
            "window": self.window,
        }


@dataclass
class TargetMetrics:
    """Everything the report shows of one target without a judge."""

    role: str
    answers: int
    completion_tokens: Estimate
    chars: Estimate
    distinct: dict[int, Estimate]  # n -> distinct-n, n = 1, 2, 3
    repeated_4grams: Estimate
    refusal_harmful: Estimate
    refusal_other: Estimate
    reference_exact: Estimate
    reference_contains: Estimate
    wsd: WsdMetrics | None
    e2e_p50_s: float | None
    ttft_p50_s: float | None
    output_tok_s_p50: float | None
    base_tokens: Estimate | None  # None when the role does not say who wrote the tokens

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: {"mean", "ci", "n"} for every mean, numbers or None elsewhere."""
        return {
            "role": self.role,
            "answers": self.answers,
            "length": {"completion_tokens": self.completion_tokens.to_json(),
                       "chars": self.chars.to_json()},
            "degeneration": {
                **{f"distinct_{n}": value.to_json() for n, value in self.distinct.items()},
                "repeated_4grams": self.repeated_4grams.to_json(),
            },
            "refusals": {"harmful": self.refusal_harmful.to_json(),
                         "other": self.refusal_other.to_json()},
            "reference_match": {"exact": self.reference_exact.to_json(),
                                "contains": self.reference_contains.to_json()},
            "wsd": self.wsd.to_json() if self.wsd else None,
            "cost": {
                "e2e_p50_s": self.e2e_p50_s,
                "ttft_p50_s": self.ttft_p50_s,
                "output_tok_s_p50": self.output_tok_s_p50,
                "base_tokens": self.base_tokens.to_json() if self.base_tokens else None,
            },
        }  # fmt: skip


def target_metrics(pairs: Sequence[tuple[EvalPrompt, AnswerRecord]], role: str) -> TargetMetrics:
    """The figures of one target's answers; `role` is "wsd", "pilot", "base" or "other"."""
    role = str(role)
    answers = [answer for _, answer in pairs]
    first = [(prompt, answer) for prompt, answer in pairs if answer.turn == 0]
    tokenised = [words(answer.text) for answer in answers]
    refusals = {
        flag: [float(is_refusal(a.text)) for p, a in first if p.harmful is flag]
        for flag in (True, False)
    }
    matches = [reference_match(a.text, p.references) for p, a in first if p.references]
    e2e = [a.e2e_s for a in answers]
    ttft = [a.ttft_s for a in answers if a.ttft_s is not None]
    speed = [a.completion_tokens / a.e2e_s for a in answers if a.e2e_s > 0]
    return TargetMetrics(
        role=role,
        answers=len(answers),
        completion_tokens=estimate([float(a.completion_tokens) for a in answers]),
        chars=estimate([float(len(a.text)) for a in answers]),
        distinct={n: estimate(_present(distinct_n(t, n) for t in tokenised)) for n in (1, 2, 3)},
        repeated_4grams=estimate(_present(repeated_ngram_share(t, 4) for t in tokenised)),
        refusal_harmful=estimate(refusals[True]),
        refusal_other=estimate(refusals[False]),
        reference_exact=estimate([float(exact) for exact, _ in matches]),
        reference_contains=estimate([float(contains) for _, contains in matches]),
        wsd=wsd_metrics(answers),
        e2e_p50_s=median(e2e) if e2e else None,
        ttft_p50_s=median(ttft) if ttft else None,
        output_tok_s_p50=median(speed) if speed else None,
        base_tokens=_base_tokens(answers, role),
    )


def wsd_metrics(answers: Sequence[AnswerRecord]) -> WsdMetrics | None:
    """The handoff figures of the answers with a `wsd` object; None when none has one."""
    infos = [(answer, answer.wsd) for answer in answers if answer.wsd]
    if not infos:
        return None
    shares = _present(_pilot_share(answer.text, info) for answer, info in infos)
    indices = _present(_number(info.get("accept_index")) for _, info in infos)
    reasons = Counter(str(info.get("reason") or "none") for _, info in infos)
    wasted = _present(_number(info.get("pilot_tokens_wasted")) for _, info in infos)
    return WsdMetrics(
        answers=len(infos),
        pilot_share=estimate(shares),
        accept_index={
            "median": median(indices) if indices else None,
            "p25": percentile(indices, 25) if indices else None,
            "p75": percentile(indices, 75) if indices else None,
            "n": len(indices),
            "no_switch_share": 1.0 - len(indices) / len(infos),
        },
        switch_reasons=dict(sorted(reasons.items())),
        pilot_tokens_wasted=estimate(wasted),
        threshold=_shared(info.get("threshold") for _, info in infos),
        window=_shared(info.get("window") for _, info in infos),
    )


def _base_tokens(answers: Sequence[AnswerRecord], role: str) -> Estimate | None:
    """Tokens the base model generated per answer: a wsd answer's completion beyond the kept
    draft, the base alone's whole completion, none for the pilot alone."""
    if role == "wsd":
        kept = [
            (a.completion_tokens, int(a.wsd.get("prefix_tokens") or 0)) for a in answers if a.wsd
        ]
        return estimate([float(max(0, total - prefix)) for total, prefix in kept])
    if role == "base":
        return estimate([float(a.completion_tokens) for a in answers])
    if role == "pilot":
        return estimate([0.0 for _ in answers])
    return None


def _pilot_share(text: str, info: dict[str, Any]) -> float | None:
    chars = info.get("prefix_chars")
    if not text or chars is None:
        return None
    return min(1.0, max(0.0, chars / len(text)))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _shared(values: Any) -> Any:
    found = set(values)
    return found.pop() if len(found) == 1 else None


def _present(values: Any) -> list[float]:
    return [value for value in values if value is not None]
