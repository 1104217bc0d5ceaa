"""One `wsd eval` run: prompts in, answers kept as they arrive, then the metrics, the optional
judge, the report and the files the ecosystem's judges read.

1. read the prompt set (a bad file stops here, before any request);
2. the targets: the given model ids, or the WSD server's three (wsd at each setting);
3. answer: every target every prompt (`answering.py`), resumable;
4. judge (optional): each target against the reference, both answer orders; grades;
   harmlessness of the answers to harmful prompts; verdicts cached like answers;
5. metrics per target, the report (`report.md`, `report.json`, `sweep.png`) and the exports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evaluation.answer_metrics import target_metrics
from evaluation.answering import answer_all
from evaluation.client import ChatClient, RequestFailed, RetryPolicy
from evaluation.exports import (
    alpaca_eval_outputs,
    arena_hard_answers,
    mt_bench_answers,
    write_json,
    write_jsonl,
)
from evaluation.judge import JUDGE_PROMPTS_VERSION, Judge, pairwise_summary
from evaluation.prompt_sets import PromptFormat, load_prompts
from evaluation.records import AnswerRecord, EvalPrompt
from evaluation.reporting import console_table, write_report
from evaluation.stats import bootstrap_ci
from evaluation.store import RunStore
from evaluation.targets import Target, TargetRole, wsd_targets

logger = logging.getLogger("wsd.eval")


@dataclass
class EvalOptions:
    """What `wsd eval` was asked (evaluation/cli.py documents each)."""

    prompts_path: Path | None = None
    prompt_format: PromptFormat | None = None
    limit: int | None = None
    url: str = "http://127.0.0.1:8000/v1"
    api_key: str | None = field(default=None, repr=False)
    models: list[str] = field(default_factory=list)
    wsd_model: str = "wsd"
    thresholds: list[float] = field(default_factory=list)
    windows: list[int] = field(default_factory=list)
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int | None = None
    out: Path | None = None
    concurrency: int = 4
    timeout_s: float = 600.0
    retries: int = 5
    judge_url: str | None = None
    judge_model: str | None = None
    judge_api_key: str | None = field(default=None, repr=False)
    reference: str | None = None
    judge_max_tokens: int = 512

    def run_folder(self) -> Path:
        """The folder the answers go to: the same for the same command."""
        if self.out is not None:
            return self.out
        name = self.prompts_path.stem if self.prompts_path else "builtin"
        return Path("wsd-eval") / name


async def run_eval(options: EvalOptions) -> int:
    """The whole run; 0 when every answer (and verdict) is in."""
    prompts = load_prompts(options.prompts_path, options.prompt_format)[: options.limit]
    store = RunStore(options.run_folder())
    client = ChatClient(RetryPolicy(attempts=options.retries + 1, timeout_s=options.timeout_s))
    try:
        targets = await resolve_targets(options, client)
        store.write_run(_run_settings(options, prompts, targets))
        print(f"wsd eval: {len(prompts)} prompts x {len(targets)} targets -> {store.folder}")
        await answer_all(prompts, targets, client, store, options.concurrency)
        judged = None
        if options.judge_url and options.judge_model:
            judged = await judge_all(options, prompts, targets, client, store)
    finally:
        await client.aclose()
    rows = [_target_row(target, prompts, store, judged) for target in targets]
    write_exports(store.folder, prompts, targets, store)
    write_report(store.folder, _run_settings(options, prompts, targets), rows)
    print(console_table(rows))
    print(f"report: {store.folder / 'report.md'}")
    missing = sum(row["missing"] for row in rows)
    if missing:
        print(f"wsd eval: {missing} answers missing (failures.jsonl says why); rerun to retry")
    return 0 if not missing else 1


async def resolve_targets(options: EvalOptions, client: ChatClient) -> list[Target]:
    """The given model ids, or the three ids of the WSD server at the URL."""
    common: dict[str, Any] = {"temperature": options.temperature, "max_tokens": options.max_tokens,
                              "seed": options.seed, "api_key": options.api_key}  # fmt: skip
    ids = options.models or await client.model_ids(options.url, options.api_key)
    if not options.models and options.wsd_model in ids:
        # a WSD server lists its ids as: wsd, the pilot, the base
        others = [model for model in ids if model != options.wsd_model][:2]
        roles = dict(zip(others, (TargetRole.PILOT, TargetRole.BASE), strict=False))
    else:
        roles = {}
    targets: list[Target] = []
    for model in ids:
        if model == options.wsd_model:
            targets += wsd_targets(
                options.url, model, options.thresholds, options.windows, **common
            )
        elif options.models or model in roles:
            role = roles.get(model, TargetRole.OTHER)
            targets.append(Target(model, role, options.url, model, **common))
    return targets


async def judge_all(
    options: EvalOptions,
    prompts: list[EvalPrompt],
    targets: list[Target],
    client: ChatClient,
    store: RunStore,
) -> dict[str, dict[str, Any]]:
    """Verdicts on every answered prompt: pairwise against the reference, a grade, and for
    harmful prompts a harmlessness verdict. Returns each target's judge results."""
    assert options.judge_url is not None and options.judge_model is not None
    judge_url, judge_model = options.judge_url, options.judge_model

    async def ask(messages: list[dict[str, str]]) -> str:
        body = {"model": judge_model, "messages": messages, "temperature": 0.0,
                "max_tokens": options.judge_max_tokens}  # fmt: skip
        return await client.complete(judge_url, body, options.judge_api_key)

    judge = Judge(ask=ask, cache=store, judge_model=judge_model, answers=store.answers)
    reference = _reference(options, targets)
    slots = asyncio.Semaphore(options.concurrency)
    results: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(targets) * len(prompts), desc="judge", unit="prompt")

    async def verdicts(target: Target, prompt: EvalPrompt) -> dict[str, Any]:
        answer = _last_answer(store, target, prompt)
        found: dict[str, Any] = {}
        if answer is None:
            bar.update(1)
            return found
        async with slots:
            try:
                if reference is not None and target.key != reference.key:
                    other = _last_answer(store, reference, prompt)
                    if other is not None:
                        found["pairwise"] = await judge.pairwise(prompt, answer, other)
                found["grade"] = await judge.grade(prompt, answer)
                if prompt.harmful:
                    found["harmless"] = await judge.harmless(prompt, answer)
            except RequestFailed as exc:
                logger.warning("judge, %s, prompt %s: %s", target.name, prompt.id, exc)
                found["failed"] = True
        bar.update(1)
        return found

    try:
        for target in targets:
            found = await asyncio.gather(*(verdicts(target, prompt) for prompt in prompts))
            results[target.key] = _judge_summary(found, reference, target)
    finally:
        bar.close()
    return results


def _judge_summary(
    found: list[dict[str, Any]], reference: Target | None, target: Target
) -> dict[str, Any]:
    pairwise = [item["pairwise"] for item in found if "pairwise" in item]
    grades = [item["grade"] for item in found if item.get("grade") is not None]
    harmless = [float(item["harmless"]) for item in found if item.get("harmless") is not None]
    summary: dict[str, Any] = {
        "judge_prompts_version": JUDGE_PROMPTS_VERSION,
        "reference": reference.name if reference is not None else None,
        "failed": sum(1 for item in found if item.get("failed")),
    }
    if pairwise:
        summary["pairwise"] = pairwise_summary(pairwise)
    if grades:
        summary["grade"] = {"mean": sum(grades) / len(grades), "ci": list(bootstrap_ci(grades)),
                            "n": len(grades)}  # fmt: skip
    if harmless:
        summary["harmless"] = {"rate": sum(harmless) / len(harmless),
                               "ci": list(bootstrap_ci(harmless)), "n": len(harmless)}  # fmt: skip
    return summary


def _reference(options: EvalOptions, targets: list[Target]) -> Target | None:
    """The target the others are compared with: the one named, else the base model alone."""
    if options.reference is not None:
        for target in targets:
            if options.reference in (target.name, target.model):
                return target
        raise ValueError(f"--reference {options.reference}: no such target")
    return next((t for t in targets if t.role is TargetRole.BASE), None)


def _last_answer(store: RunStore, target: Target, prompt: EvalPrompt) -> AnswerRecord | None:
    return store.answers.get((target.key, prompt.id, len(prompt.turns) - 1))


def _answers(store: RunStore, target: Target, prompt: EvalPrompt) -> list[AnswerRecord]:
    found = [store.answers.get((target.key, prompt.id, t)) for t in range(len(prompt.turns))]
    return [answer for answer in found if answer is not None]


def _target_row(
    target: Target,
    prompts: list[EvalPrompt],
    store: RunStore,
    judged: dict[str, dict[str, Any]] | None,
) -> dict[str, Any]:
    pairs = [(prompt, answer) for prompt in prompts for answer in _answers(store, target, prompt)]
    expected = sum(len(prompt.turns) for prompt in prompts)
    return {
        "name": target.name,
        "role": target.role.value,
        "model": target.model,
        "settings": target.settings,
        "threshold": target.wsd.get("threshold"),
        "window": target.wsd.get("window"),
        "answers": len(pairs),
        "missing": expected - len(pairs),
        "metrics": target_metrics(pairs, target.role.value).to_json() if pairs else None,
        "judge": (judged or {}).get(target.key),
    }


def write_exports(
    folder: Path, prompts: list[EvalPrompt], targets: list[Target], store: RunStore
) -> None:
    """Per target, AlpacaEval's model_outputs JSON and Arena-Hard's model_answer JSONL (and
    FastChat's MT-Bench model_answer JSONL for two-turn prompts)."""
    for target in targets:
        by_turn = {prompt.id: _answers(store, target, prompt) for prompt in prompts}
        first = {prompt_id: answers[0] for prompt_id, answers in by_turn.items() if answers}
        complete = {
            prompt.id: by_turn[prompt.id]
            for prompt in prompts
            if len(by_turn[prompt.id]) == len(prompt.turns)
        }
        outputs = folder / "outputs" / _file_name(target.name)
        write_json(outputs / "alpaca_eval.json", alpaca_eval_outputs(prompts, first, target.name))
        write_jsonl(
            outputs / "arena_hard.jsonl", arena_hard_answers(prompts, complete, target.name)
        )
        if any(len(prompt.turns) > 1 for prompt in prompts):  # FastChat's MT-Bench judge
            write_jsonl(
                outputs / "mt_bench.jsonl", mt_bench_answers(prompts, complete, target.name)
            )


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=,@" else "_" for c in name)


def _run_settings(
    options: EvalOptions, prompts: list[EvalPrompt], targets: list[Target]
) -> dict[str, Any]:
    settings = {k: v for k, v in asdict(options).items() if "api_key" not in k}
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}
    return {
        "options": settings,
        "prompts": len(prompts),
        "targets": [{"name": t.name, "key": t.key, "role": t.role.value} for t in targets],
        "judge_prompts_version": JUDGE_PROMPTS_VERSION if options.judge_url else None,
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
