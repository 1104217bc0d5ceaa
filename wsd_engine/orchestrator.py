"""Online Weak-to-Strong Decoding: the pilot drafts, the base model checks, then takes over.

A request runs in four phases (docs/method.md):

1. draft: the pilot streams its draft, and the draft's base tokenization grows with it;
2. check: the base model scores the stable draft tokens, pass after pass (`DraftChecker`),
   and draft text that is final streams to the client (`AnswerStream`);
3. switch: a window passes, or the draft ends: drafting and checking stop, and the plan says
   how many draft tokens the answer keeps;
4. continue: the base model writes the rest after the kept draft.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from wsd_engine.answer import AnswerStream
from wsd_engine.checking import DraftChecker, EngineFailed, PromptCached, Scored
from wsd_engine.config import PromptTemplate, Role
from wsd_engine.engines.protocol import (
    Engine,
    FinishReason,
    GenerationDelta,
    SamplingSettings,
    TokenLogprob,
)
from wsd_engine.request import TextDelta, WSDInfo, WSDOutcome, WSDRequest, completion_budget
from wsd_engine.switch_rule import ContinuationPlan, plan_continuation
from wsd_engine.templates import RenderedPrompt, render_prompt
from wsd_engine.tokenization import DraftTokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedWSD:
    """A WSD request rendered for both models and checked against both contexts."""

    request: WSDRequest
    pilot_prompt: RenderedPrompt
    base_prompt: RenderedPrompt
    max_tokens: int  # in base tokens

    def for_choice(self, index: int) -> PreparedWSD:
        """The same prompts for choice `index` of `n` (its own request id and seed)."""
        return replace(self, request=self.request.for_choice(index))


class WSDOrchestrator:
    """Runs WSD requests on a pilot engine and a base engine."""

    def __init__(
        self,
        pilot: Engine,
        base: Engine,
        pilot_template: PromptTemplate = PromptTemplate.CHAT,
        base_template: PromptTemplate = PromptTemplate.PLAIN,
    ) -> None:
        self.pilot = pilot
        self.base = base
        self.pilot_template = pilot_template
        self.base_template = base_template

    @property
    def max_model_len(self) -> int:
        """The context both engines offer."""
        return min(self.pilot.max_model_len, self.base.max_model_len)

    def prepare(self, request: WSDRequest) -> PreparedWSD:
        """Render both prompts and fix max_tokens; raises ContextLengthExceeded (naming the
        smaller context) when the request does not fit either engine."""
        pilot_prompt = render_prompt(self.pilot.tokenizer, request.messages, self.pilot_template)
        base_prompt = render_prompt(self.base.tokenizer, request.messages, self.base_template)
        max_tokens = min(
            completion_budget(len(prompt.token_ids), request.max_tokens, engine.max_model_len)
            for engine, prompt in ((self.pilot, pilot_prompt), (self.base, base_prompt))
        )
        return PreparedWSD(request, pilot_prompt, base_prompt, max_tokens)

    async def run(self, prepared: PreparedWSD) -> AsyncIterator[TextDelta | WSDOutcome]:
        """Yield the answer as it becomes final, then one WSDOutcome.

        Closing or cancelling the iteration cancels every engine request it started.
        """
        run = _WSDRun(self.pilot, self.base, prepared)
        try:
            async for item in run.execute():
                yield item
        finally:
            await run.cancel_background()

    async def score_answer(
        self, prepared: PreparedWSD, text: str, num_top: int
    ) -> list[TokenLogprob]:
        """The base model's log-probability of each token of an answer, with alternatives."""
        answer_ids = list(self.base.tokenizer.encode(text, add_special_tokens=False))
        return await self.base.score_with_top(
            prepared.base_prompt.token_ids,
            answer_ids,
            max(num_top, 1),
            f"{prepared.request.request_id}-logprobs",
        )


@dataclass
class _PilotDelta:
    delta: GenerationDelta


_Event = _PilotDelta | Scored | PromptCached | EngineFailed


class _WSDRun:
    """One request in flight: the draft, its checks, the answer, the timings."""

    def __init__(self, pilot: Engine, base: Engine, prepared: PreparedWSD) -> None:
        self.pilot = pilot
        self.base = base
        self.prepared = prepared
        self.request = request = prepared.request
        params = request.params
        self.draft = DraftTokenizer(base.tokenizer)
        self.answer = AnswerStream(
            self.draft,
            base.tokenizer,
            params.window,
            prepared.max_tokens,
            stop=(*prepared.base_prompt.stop, *request.stop),
        )
        self.events: asyncio.Queue[_Event] = asyncio.Queue()
        self.checker = DraftChecker(
            base, prepared.base_prompt.token_ids, request.request_id, params,
            prepared.max_tokens, post=self.events.put_nowait,
        )  # fmt: skip
        self.info = WSDInfo(threshold=params.threshold, window=params.window)
        self.pilot_task: asyncio.Task[None] | None = None
        self.pilot_finish: FinishReason | None = None
        self.base_finish: FinishReason | None = None
        self.pilot_progress: list[tuple[int, int]] = []  # (pilot tokens, draft chars)
        self.started = time.monotonic()

    async def execute(self) -> AsyncIterator[TextDelta | WSDOutcome]:
        async for delta in self._draft_and_check():
            yield delta
        if not self._switch_is_decided():
            # The answer ended inside the draft (max_tokens or a stop string): no switch.
            self._stop_background()
            for item in self._close(FinishReason.LENGTH):
                yield item
            return
        plan = self._switch()
        kept = self.answer.release_draft(plan.num_kept, is_final=True)
        if kept:
            yield self._text(kept)
        finish = (
            FinishReason.LENGTH if plan.num_kept >= self.prepared.max_tokens else FinishReason.STOP
        )
        if plan.base_budget and not self.answer.is_stopped:
            async for text in self._continue(plan):
                if text:
                    yield self._text(text)
            finish = self.base_finish or FinishReason.LENGTH
        for item in self._close(finish):
            yield item

    # -- phases 1 and 2: draft and check ---------------------------------------------------

    async def _draft_and_check(self) -> AsyncIterator[TextDelta]:
        """Draft and score until the switch is decided or the answer is complete."""
        self.pilot_task = asyncio.create_task(self._read_pilot())
        self.checker.start()
        while not (self._switch_is_decided() or self.answer.is_complete):
            self._absorb(await self.events.get())
            self.checker.schedule(self.draft.stable_ids, self.draft.is_final)
            piece = self.answer.release_draft(self.checker.num_settled)
            if piece:
                yield self._text(piece)

    def _absorb(self, event: _Event) -> None:
        if isinstance(event, EngineFailed):
            raise event.error
        if isinstance(event, Scored | PromptCached):
            self.checker.absorb(event)
            return
        delta = event.delta
        self.info.pilot_tokens += len(delta.token_ids)
        self.draft.append(delta.text)
        if delta.is_finished:
            self.pilot_finish = delta.finish_reason
            self.draft.finish()
        self.pilot_progress.append((self.info.pilot_tokens, len(self.draft.text)))
        if not self.draft.is_final and len(self.draft.stable_ids) >= self.prepared.max_tokens:
            # The answer's max_tokens tokens are all drafted (stable tokens never change):
            # whatever the switch, no later pilot token can reach the answer.
            self._stop_pilot()

    def _switch_is_decided(self) -> bool:
        if self.checker.accept_index is not None:
            return True
        scoreable = min(len(self.draft.stable_ids), self.prepared.max_tokens)
        return self.draft.is_final and self.checker.num_scored >= scoreable

    # -- phase 3: the switch -----------------------------------------------------------------

    def _switch(self) -> ContinuationPlan:
        """The handoff: stop drafting and checking, decide what the base model writes."""
        self.info.time_to_switch_s = time.monotonic() - self.started
        self._stop_background()
        plan = plan_continuation(
            num_draft_tokens=len(self.draft.stable_ids),
            accept_index=self.checker.accept_index,
            pilot_finish=self.pilot_finish,
            max_tokens=self.prepared.max_tokens,
            continue_after_draft_end=self.request.params.continue_after_draft_end,
        )
        self.info.reason = plan.reason
        self.info.accept_index = plan.accept_index
        logger.debug(
            "%s: switch at %s (%s), base budget %d",
            self.request.request_id, plan.accept_index, plan.reason, plan.base_budget,
        )  # fmt: skip
        return plan

    # -- phase 4: continue -------------------------------------------------------------------

    async def _continue(self, plan: ContinuationPlan) -> AsyncIterator[str]:
        """The base model writes the rest after t_0..t_a; yields the text that may be sent."""
        switch_decided = time.monotonic()
        prompt = [*self.prepared.base_prompt.token_ids, *self.draft.stable_ids[: plan.num_kept]]
        budget = plan.base_budget
        self.base_finish = FinishReason.LENGTH
        first = self._first_base_token()
        if first is not None:
            # The scoring pass that decided the switch already computed the base's greedy
            # token after t_a: stream it now, the engine continues after it.
            token_id, text = first
            self.info.switch_latency_s = time.monotonic() - switch_decided
            yield self.answer.add_base(text, 1)
            prompt.append(token_id)
            budget -= 1
            if budget == 0 or self.answer.is_stopped:
                return
        settings = SamplingSettings(
            max_tokens=budget,
            temperature=self.request.temperature,
            top_p=self.request.top_p,
            seed=self.request.engine_seed(Role.BASE),
            stop=self.answer.stop,
        )
        stream = self.base.generate(prompt, settings, f"{self.request.request_id}-base")
        try:
            async for delta in stream:
                if self.info.switch_latency_s is None and delta.token_ids:
                    self.info.switch_latency_s = time.monotonic() - switch_decided
                self.base_finish = delta.finish_reason
                yield self.answer.add_base(delta.text, len(delta.token_ids))
                if self.answer.is_stopped:
                    return
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    def _first_base_token(self) -> tuple[int, str] | None:
        """The base's first token and its text when greedy decoding already knows it: only
        at temperature 0 (the scoring pass's top-1 is the greedy choice), and only for an
        ordinary token (end-of-text and other special tokens are left to the engine)."""
        if self.request.temperature != 0:
            return None
        token_id = self.checker.greedy_after(self.answer.num_draft_tokens)
        if token_id is None or token_id in self.base.tokenizer.all_special_ids:
            return None
        text = self.answer.text_after_draft(token_id)
        return None if text is None else (token_id, text)

    # -- the end -------------------------------------------------------------------------------

    def _text(self, piece: str) -> TextDelta:
        if self.info.time_to_first_token_s is None:
            self.info.time_to_first_token_s = time.monotonic() - self.started
        return TextDelta(piece)

    def _close(self, finish: FinishReason) -> list[TextDelta | WSDOutcome]:
        """Release held-back text, then the outcome (a stop string overrides `finish`)."""
        piece = self.answer.finish()
        items: list[TextDelta | WSDOutcome] = [self._text(piece)] if piece else []
        items.append(self._outcome(FinishReason.STOP if self.answer.is_stopped else finish))
        return items

    def _outcome(self, finish: FinishReason) -> WSDOutcome:
        info = self.info
        info.draft_tokens = len(self.draft.stable_ids)
        info.prefix_tokens = self.answer.num_draft_tokens
        info.prefix_chars = self.answer.prefix_chars
        info.pilot_tokens_wasted = self._wasted_pilot_tokens()
        return WSDOutcome(
            text=self.answer.text,
            finish_reason=finish,
            num_prompt_tokens=len(self.prepared.base_prompt.token_ids),
            num_completion_tokens=self.answer.num_tokens,
            num_pilot_prompt_tokens=len(self.prepared.pilot_prompt.token_ids),
            wsd=info,
        )

    def _wasted_pilot_tokens(self) -> int:
        """Pilot tokens drafted beyond the text the answer kept."""
        kept_chars = len(self.answer.kept_draft_text)
        needed = next(
            (tokens for tokens, chars in self.pilot_progress if chars >= kept_chars),
            self.info.pilot_tokens,
        )
        return max(0, self.info.pilot_tokens - needed)

    # -- background work ---------------------------------------------------------------------

    async def _read_pilot(self) -> None:
        pilot_room = self.pilot.max_model_len - len(self.prepared.pilot_prompt.token_ids)
        settings = SamplingSettings(
            max_tokens=min(self.request.params.draft_max_tokens, pilot_room),
            temperature=self.request.temperature,
            top_p=self.request.top_p,
            seed=self.request.engine_seed(Role.PILOT),
        )
        prompt = self.prepared.pilot_prompt.token_ids
        try:
            async for delta in self.pilot.generate(
                prompt, settings, f"{self.request.request_id}-pilot"
            ):
                self.events.put_nowait(_PilotDelta(delta))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.events.put_nowait(EngineFailed(exc))

    def _stop_pilot(self) -> None:
        if self.pilot_task is not None and not self.pilot_task.done():
            self.pilot_task.cancel()

    def _background_tasks(self) -> list[asyncio.Task[None]]:
        pilot = [self.pilot_task] if self.pilot_task is not None else []
        return [*pilot, *self.checker.tasks]

    def _stop_background(self) -> None:
        """Abort drafting and scoring now (the engines drop the requests on cancellation)."""
        for task in self._background_tasks():
            if not task.done():
                task.cancel()

    async def cancel_background(self) -> None:
        """Cancel drafting and scoring and wait until the engines have dropped them."""
        self._stop_background()
        for task in self._background_tasks():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
