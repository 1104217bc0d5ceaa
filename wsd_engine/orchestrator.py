"""Online Weak-to-Strong Decoding: the pilot drafts, the base scores, then takes over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum

from wsd_engine.checking import DraftChecker, EngineFailed, PromptCached, Scored
from wsd_engine.config import PromptTemplate
from wsd_engine.engines.protocol import Engine, FinishReason, GenerationDelta, SamplingSettings
from wsd_engine.request import (
    ContextLengthExceeded,
    ContinuationPlan,
    SwitchInfo,
    TextDelta,
    WSDOutcome,
    WSDRequest,
    plan_continuation,
)
from wsd_engine.stop_strings import StopStringFilter
from wsd_engine.templates import RenderedPrompt, render_prompt
from wsd_engine.tokenization import DraftTokenizer, IncrementalDecoder, StreamedDraft

logger = logging.getLogger(__name__)


class Phase(StrEnum):
    """Where a request is: drafting (pilot + scoring), continuing (base), or done."""

    PILOT = "pilot"
    BASE = "base"
    DONE = "done"


@dataclass
class _PilotDelta:
    delta: GenerationDelta


_Event = _PilotDelta | Scored | PromptCached | EngineFailed


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

    def render(self, request: WSDRequest) -> tuple[RenderedPrompt, RenderedPrompt]:
        """Pilot and base prompts; raises ContextLengthExceeded when they do not fit."""
        pilot_prompt = render_prompt(self.pilot.tokenizer, request.messages, self.pilot_template)
        base_prompt = render_prompt(self.base.tokenizer, request.messages, self.base_template)
        for engine, prompt in ((self.pilot, pilot_prompt), (self.base, base_prompt)):
            needed = len(prompt.token_ids) + request.max_tokens
            if needed > engine.max_model_len:
                raise ContextLengthExceeded(
                    f"This model's maximum context length is {engine.max_model_len} tokens "
                    f"({engine.model_name}). However, you requested {needed} tokens "
                    f"({len(prompt.token_ids)} in the messages, {request.max_tokens} in the "
                    "completion). Please reduce the length of the messages or completion."
                )
        return pilot_prompt, base_prompt

    async def run(self, request: WSDRequest) -> AsyncIterator[TextDelta | WSDOutcome]:
        """Yield the answer as it becomes final, then one WSDOutcome.

        Closing or cancelling the iteration cancels every engine request it started.
        """
        pilot_prompt, base_prompt = self.render(request)
        run = _WSDRun(self, request, pilot_prompt, base_prompt)
        try:
            async for item in run.execute():
                yield item
        finally:
            await run.cancel_background()


class _WSDRun:
    """State of one request: the draft, its scores, the stop filter, the timings."""

    def __init__(
        self,
        owner: WSDOrchestrator,
        request: WSDRequest,
        pilot_prompt: RenderedPrompt,
        base_prompt: RenderedPrompt,
    ) -> None:
        self.pilot = owner.pilot
        self.base = owner.base
        self.request = request
        self.pilot_prompt = pilot_prompt
        self.base_prompt = base_prompt
        params = request.params
        self.draft = DraftTokenizer(self.base.tokenizer)
        self.decoder = IncrementalDecoder(self.base.tokenizer)
        self.stops = StopStringFilter((*base_prompt.stop, *request.stop))
        self.phase = Phase.PILOT
        self.info = SwitchInfo()
        self.events: asyncio.Queue[_Event] = asyncio.Queue()
        self.checker = DraftChecker(
            self.base, base_prompt.token_ids, request.request_id, params, request.max_tokens,
            post=self.events.put_nowait,
        )  # fmt: skip
        self.tracker = self.checker.tracker
        self.pilot_task: asyncio.Task[None] | None = None
        self.pilot_finish: FinishReason | None = None
        self.base_finish: FinishReason | None = None
        self.streamed = StreamedDraft(self.draft, self.decoder, params.window)
        self.num_emitted = 0
        self.pilot_progress: list[tuple[int, int]] = []  # (pilot tokens, draft chars)
        self.started = time.monotonic()

    # -- the algorithm -------------------------------------------------------------------

    async def execute(self) -> AsyncIterator[TextDelta | WSDOutcome]:
        self.pilot_task = asyncio.create_task(self._read_pilot())
        self.checker.start()
        while not (self._switch_is_decided() or self._answer_is_complete()):
            await self._absorb(await self.events.get())
            self.checker.schedule(self.draft.stable_ids, self.draft.is_final)
            for piece in self._emit_draft(self._num_settled()):
                yield piece
        if not self._switch_is_decided():
            # The answer ended inside the draft (max_tokens or a stop string): no switch.
            self._stop_background()
            finish = FinishReason.STOP if self.stops.is_stopped else FinishReason.LENGTH
            async for item in self._close(finish):
                yield item
            return
        plan = self._handoff()
        for piece in self._emit_draft(plan.num_kept, is_final=True):
            yield piece
        finish = self._draft_only_finish(plan)
        if plan.base_budget and not self.stops.is_stopped:
            async for piece in self._continue_with_base(plan.num_kept, plan.base_budget):
                yield piece
            finish = self.base_finish or FinishReason.LENGTH
        async for item in self._close(FinishReason.STOP if self.stops.is_stopped else finish):
            yield item

    async def _absorb(self, event: _Event) -> None:
        if isinstance(event, EngineFailed):
            raise event.error
        if isinstance(event, Scored | PromptCached):
            self.checker.absorb(event)
            return
        delta = event.delta
        self.info.num_pilot_tokens += len(delta.token_ids)
        self.draft.append(delta.text)
        if delta.is_finished:
            self.pilot_finish = delta.finish_reason
            self.draft.finish()
        self.pilot_progress.append((self.info.num_pilot_tokens, len(self.draft.text)))
        if not self.draft.is_final and len(self.draft.stable_ids) >= self.request.max_tokens:
            # The answer's max_tokens tokens are all drafted (stable tokens never change):
            # whatever the switch, no later pilot token can reach the answer.
            self._stop_pilot()

    def _num_settled(self) -> int:
        """Draft tokens that are final answer text (stable and not beyond the switch)."""
        return min(len(self.draft.stable_ids), self.tracker.num_settled_by_score)

    def _answer_is_complete(self) -> bool:
        return self.stops.is_stopped or self.num_emitted >= self.request.max_tokens

    def _switch_is_decided(self) -> bool:
        if self.tracker.accept_index is not None:
            return True
        scoreable = min(len(self.draft.stable_ids), self.request.max_tokens)
        return self.draft.is_final and self.tracker.num_scored >= scoreable

    def _handoff(self) -> ContinuationPlan:
        """The switch: stop drafting and scoring, decide what the base model writes."""
        self.info.time_to_switch_s = time.monotonic() - self.started
        self._stop_background()
        plan = plan_continuation(
            num_draft_tokens=len(self.draft.stable_ids),
            accept_index=self.tracker.accept_index,
            pilot_finish=self.pilot_finish,
            max_tokens=self.request.max_tokens,
            continue_after_draft_end=self.request.params.continue_after_draft_end,
        )
        self.info.reason = plan.reason
        self.info.accept_index = plan.accept_index
        self.phase = Phase.BASE if plan.base_budget else Phase.DONE
        logger.debug(
            "%s: switch at %s (%s), base budget %d",
            self.request.request_id,
            self.info.accept_index,
            plan.reason,
            plan.base_budget,
        )
        return plan

    async def _continue_with_base(self, num_kept: int, budget: int) -> AsyncIterator[TextDelta]:
        switch_decided = time.monotonic()
        prompt = [*self.base_prompt.token_ids, *self.draft.stable_ids[:num_kept]]
        first = self._first_base_token(num_kept)
        if first is not None:
            # The scoring pass that decided the switch already computed the base's greedy
            # token after t_a: stream it now, the engine continues after it.
            token_id, text = first
            self.info.switch_latency_s = time.monotonic() - switch_decided
            self.num_emitted += 1
            self.base_finish = FinishReason.LENGTH
            piece = self.stops.push(text)
            if piece:
                yield self._text(piece, from_pilot=False)
            prompt.append(token_id)
            budget -= 1
            if budget == 0 or self.stops.is_stopped:
                return
        settings = SamplingSettings(
            max_tokens=budget,
            temperature=self.request.temperature,
            top_p=self.request.top_p,
            seed=self.request.engine_seed("base"),
            stop=self.stops.stop,
        )
        request_id = f"{self.request.request_id}-base"
        stream = self.base.generate(prompt, settings, request_id)
        try:
            async for delta in stream:
                if self.info.switch_latency_s is None and delta.token_ids:
                    self.info.switch_latency_s = time.monotonic() - switch_decided
                self.num_emitted += len(delta.token_ids)
                self.base_finish = delta.finish_reason
                piece = self.stops.push(delta.text)
                if piece:
                    yield self._text(piece, from_pilot=False)
                if self.stops.is_stopped:
                    return
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    def _first_base_token(self, num_kept: int) -> tuple[int, str] | None:
        """The base's first token and its text when greedy decoding already knows it.

        Only for temperature 0 (the scoring pass's top-1 is the greedy choice), for ordinary
        tokens (an end-of-text or other special token is left to the engine's own stop
        handling) that decode to complete characters and cannot start a stop string.
        """
        token_id = self.checker.greedy_after(num_kept)
        if self.request.temperature != 0 or token_id is None:
            return None
        if token_id in self.base.tokenizer.all_special_ids:
            return None
        kept = self.draft.stable_ids[:num_kept]
        before = self.decoder.decode(kept)
        after = self.decoder.decode([*kept, token_id])
        if not after.startswith(before) or after.endswith("\ufffd") or after == before:
            return None
        text = after[len(before) :]
        if self.stops.leaves_pending(text):
            # vLLM matches a stop string that starts in the prompt and ends in the output,
            # then drops it from its text: the engine has to see this token as its own output
            return None
        return token_id, text

    # -- pieces --------------------------------------------------------------------------

    def _emit_draft(self, upto: int, is_final: bool = False) -> list[TextDelta]:
        """Stream the draft text that is now final: settled tokens, or the early head."""
        text = self.streamed.advance(upto, self.request.max_tokens, is_final=is_final)
        if self.streamed.num_tokens > self.num_emitted:
            self.num_emitted = self.info.num_accepted_tokens = self.streamed.num_tokens
        piece = self.stops.push(text)
        self.info.num_accepted_chars = len(self.stops.text)
        return [self._text(piece, from_pilot=True)] if piece else []

    def _text(self, piece: str, from_pilot: bool) -> TextDelta:
        if self.info.time_to_first_token_s is None:
            self.info.time_to_first_token_s = time.monotonic() - self.started
        return TextDelta(text=piece, from_pilot=from_pilot)

    def _draft_only_finish(self, plan: ContinuationPlan) -> FinishReason:
        return (
            FinishReason.LENGTH if plan.num_kept >= self.request.max_tokens else FinishReason.STOP
        )

    async def _close(self, reason: FinishReason) -> AsyncIterator[TextDelta | WSDOutcome]:
        """Release held-back text, then the outcome."""
        piece = self.stops.flush()
        if piece:
            yield self._text(piece, from_pilot=self.phase is Phase.PILOT)
        yield self._finish(reason)

    def _finish(self, reason: FinishReason) -> WSDOutcome:
        self.phase = Phase.DONE
        self.info.num_draft_tokens = len(self.draft.stable_ids)
        self.info.num_wasted_pilot_tokens = self._wasted_pilot_tokens()
        if self.info.num_accepted_chars > len(self.stops.text):
            self.info.num_accepted_chars = len(self.stops.text)
        return WSDOutcome(
            text=self.stops.text,
            finish_reason=reason,
            num_prompt_tokens=len(self.base_prompt.token_ids),
            num_completion_tokens=self.num_emitted,
            switch=self.info,
            num_pilot_prompt_tokens=len(self.pilot_prompt.token_ids),
        )

    def _wasted_pilot_tokens(self) -> int:
        """Pilot tokens drafted beyond the text the answer kept."""
        kept_chars = len(self.decoder.text)
        needed = next(
            (tokens for tokens, chars in self.pilot_progress if chars >= kept_chars),
            self.info.num_pilot_tokens,
        )
        return max(0, self.info.num_pilot_tokens - needed)

    # -- background work -----------------------------------------------------------------

    async def _read_pilot(self) -> None:
        settings = SamplingSettings(
            max_tokens=min(
                self.request.params.draft_max_tokens,
                self.pilot.max_model_len - len(self.pilot_prompt.token_ids),
            ),
            temperature=self.request.temperature,
            top_p=self.request.top_p,
            seed=self.request.engine_seed("pilot"),
        )
        request_id = f"{self.request.request_id}-pilot"
        try:
            async for delta in self.pilot.generate(
                self.pilot_prompt.token_ids, settings, request_id
            ):
                self.events.put_nowait(_PilotDelta(delta))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.events.put_nowait(EngineFailed(exc))

    def _stop_pilot(self) -> None:
        if self.pilot_task is not None:
            self._cancel(self.pilot_task)

    def _stop_background(self) -> None:
        """Abort drafting and scoring now (the engines drop the requests on cancellation)."""
        for task in self._background_tasks():
            self._cancel(task)

    def _background_tasks(self) -> list[asyncio.Task[None]]:
        pilot = [self.pilot_task] if self.pilot_task is not None else []
        return [*pilot, *self.checker.tasks]

    def _cancel(self, task: asyncio.Task[None]) -> None:
        if not task.done():
            task.cancel()

    async def cancel_background(self) -> None:
        """Cancel drafting and scoring and wait until the engines have dropped them."""
        tasks = self._background_tasks()
        for task in tasks:
            self._cancel(task)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
