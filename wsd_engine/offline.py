"""The paper's offline procedure (draft everything, score everything, continue): the reference."""

from __future__ import annotations

from dataclasses import dataclass

from wsd_engine.engines.engine import FinishReason
from wsd_engine.orchestrator import PreparedWSD, WSDOrchestrator
from wsd_engine.sampling import continuation_sampling, draft_sampling
from wsd_engine.stop_strings import StopStringFilter, until_stop
from wsd_engine.switch_rule import SwitchReason, find_accept_index, plan_continuation


@dataclass
class OfflineResult:
    """What the three-stage procedure produced, with its intermediate figures."""

    text: str
    finish_reason: FinishReason
    accept_index: int | None
    reason: SwitchReason | None
    num_pilot_tokens: int
    num_draft_tokens: int
    draft_text: str


async def run_offline(orchestrator: WSDOrchestrator, prepared: PreparedWSD) -> OfflineResult:
    """Answer one request the way the official code does, on the orchestrator's engines."""
    pilot, base = orchestrator.pilot, orchestrator.base
    request, max_tokens = prepared.request, prepared.max_tokens
    pilot_prompt, base_prompt = prepared.pilot_prompt, prepared.base_prompt
    rid = request.request_id

    # 1. Draft: the pilot writes up to draft_max_tokens.
    draft_text, num_pilot_tokens, pilot_finish = "", 0, None
    async for delta in pilot.generate(
        pilot_prompt.token_ids, draft_sampling(request), f"{rid}-draft",
        max_tokens=prepared.draft_max_tokens,
    ):  # fmt: skip
        draft_text += delta.text
        num_pilot_tokens += len(delta.token_ids)
        pilot_finish = delta.finish_reason
    draft_text = draft_text.rstrip()

    # 2. Score: the base model's probability of every draft token (base tokenization).
    draft_ids = list(base.tokenizer.encode(draft_text, add_special_tokens=False))
    scored_ids = draft_ids[:max_tokens]
    logprobs = (await base.score(base_prompt.token_ids, scored_ids, f"{rid}-score")).logprobs
    settings = request.settings
    accept_index = find_accept_index(logprobs, settings.window, settings.threshold)

    # 3. Continue: the base model writes the rest after the accepted prefix.
    plan = plan_continuation(
        num_draft_tokens=len(draft_ids),
        accept_index=accept_index,
        pilot_finish=pilot_finish,
        max_tokens=max_tokens,
        continue_after_draft_end=settings.continue_after_draft_end,
        min_tokens=request.sampling.min_tokens,
    )
    kept_ids = draft_ids[: plan.num_kept]
    text = base.tokenizer.decode(kept_ids, skip_special_tokens=True)
    finish = FinishReason.LENGTH if plan.num_kept >= max_tokens else FinishReason.STOP
    stop = (*base_prompt.stop, *request.stop)
    if plan.base_budget:
        continuation = base.generate(
            [*base_prompt.token_ids, *kept_ids],
            continuation_sampling(request, plan.num_kept),
            f"{rid}-continue",
            max_tokens=plan.base_budget,
        )
        async for delta in until_stop(continuation, stop):
            text += delta.text
            finish = delta.finish_reason or finish

    # The official code cuts the whole text at the first stop string, draft part included.
    stops = StopStringFilter(stop)
    stops.push(text)
    if stops.is_stopped:
        finish = FinishReason.STOP
    return OfflineResult(
        text=stops.text,
        finish_reason=finish,
        accept_index=plan.accept_index,
        reason=plan.reason,
        num_pilot_tokens=num_pilot_tokens,
        num_draft_tokens=len(draft_ids),
        draft_text=draft_text,
    )
