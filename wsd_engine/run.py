"""One WSD request in flight: the pilot drafts, the base model checks, then takes over.

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
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsd_engine.answer import AnswerStream
from wsd_engine.answer_logprobs import answer_logprobs, scored_tokens
from wsd_engine.cancellation import cancel_and_wait, cancel_once
from wsd_engine.checking import DraftChecker, EngineFailed, PromptCached, Scored
from wsd_engine.config import Role
from wsd_engine.engines.engine import Engine, FinishReason, GenerationDelta, TokenLogprob
from wsd_engine.request import RunReport, TextDelta, WSDOutcome
from wsd_engine.sampling import continuation_sampling, draft_sampling
from wsd_engine.switch_rule import ContinuationPlan, SwitchReason, plan_continuation
from wsd_engine.timeline import PilotProgress
from wsd_engine.tokenization import DraftTokenizer

if TYPE_CHECKING:
    from wsd_engine.orchestrator import PreparedWSD

logger = logging.getLogger(__name__)


@dataclass
class _PilotDelta:
    delta: GenerationDelta


_Event = _PilotDelta | Scored | PromptCached | EngineFailed


class WSDRun:
    """One request in flight: the draft, its checks, the answer, and its report."""

    def __init__(
        self,
        pilot: Engine,
        base: Engine,
        prepared: PreparedWSD,
        use_session: bool = True,
        pilot_max_lead: int | None = None,
    ) -> None:
        self.pilot = pilot
        self.base = base
        self.prepared = prepared
        self.request = request = prepared.request
        settings = request.settings
        self.draft = DraftTokenizer(base.tokenizer)
        self.answer = AnswerStream(
            self.draft,
            base.tokenizer,
            settings.window,
            prepared.max_tokens,
            stop=(*prepared.base_prompt.stop, *request.stop),
        )
        self.events: asyncio.Queue[_Event] = asyncio.Queue()
        session = None
        if use_session:
            session = base.open_scoring_session(
                prepared.base_prompt.token_ids, f"{request.request_id}-session",
                cache_salt=request.cache_salt,
            )  # fmt: skip
        self.checker = DraftChecker(
            base, prepared.base_prompt.token_ids, request, prepared.max_tokens,
            post=self.events.put_nowait, session=session,
        )  # fmt: skip
        self.report = RunReport(threshold=settings.threshold, window=settings.window)
        self.pilot_task: asyncio.Task[None] | None = None
        self.pilot_max_lead = pilot_max_lead if self._can_pace(session is not None) else None
        self.pilot_may_run = asyncio.Event()
        self.pilot_may_run.set()
        self.pilot_finish: FinishReason | None = None
        self.base_finish: FinishReason | None = None
        self.pilot_progress = PilotProgress()
        self.started = time.monotonic()
        self.decided_at: float | None = None
        self.finish = FinishReason.LENGTH
        self.base_started = False
        self.pilot_logprobs: list[TokenLogprob] = []  # when the request asks for logprobs
        self.base_logprobs: list[TokenLogprob] = []

    async def execute(self) -> AsyncIterator[TextDelta | WSDOutcome]:
        """The answer's text as it becomes final, then the outcome."""
        async for delta in self._answer():
            yield delta
        outcome = self._outcome()
        if self.request.sampling.num_logprobs is not None or self.request.return_scores:
            # decoding every token's text is CPU work: off the event loop
            await asyncio.to_thread(self._add_token_views, outcome)
        yield outcome

    async def _answer(self) -> AsyncIterator[TextDelta]:
        async for delta in self._draft_and_check():
            yield delta
        if not self._switch_is_decided():
            # The answer ended inside the draft (max_tokens or a stop string): no switch.
            self._stop_background()
            self.finish = FinishReason.LENGTH
        else:
            async for delta in self._switch_and_continue():
                yield delta
        # release held-back text; a stop string overrides the finish reason
        piece = self.answer.finish()
        if piece:
            yield self._text(piece, Role.BASE if self.base_started else Role.PILOT)
        if self.answer.is_stopped:
            self.finish = FinishReason.STOP

    async def _switch_and_continue(self) -> AsyncIterator[TextDelta]:
        plan = self._switch()
        kept = self.answer.release_draft(plan.num_kept, is_final=True)
        self._time_decision(plan)
        if kept:
            yield self._text(kept, Role.PILOT)
        self.finish = (
            FinishReason.LENGTH if plan.num_kept >= self.prepared.max_tokens else FinishReason.STOP
        )
        if plan.base_budget and not self.answer.is_stopped:
            async for text in self._continue(plan):
                self.base_started = True
                if text:
                    yield self._text(text, Role.BASE)
            self.finish = self.base_finish or FinishReason.LENGTH

    # -- phases 1 and 2: draft and check ---------------------------------------------------

    async def _draft_and_check(self) -> AsyncIterator[TextDelta]:
        """Draft and score until the switch is decided or the answer is complete."""
        self.pilot_task = asyncio.create_task(self._read_pilot())
        self.checker.start()
        while not (self._switch_is_decided() or self.answer.is_complete):
            self._absorb(await self.events.get())
            self.checker.schedule(self.draft.stable_ids, self.draft.is_final)
            self._pace_pilot()
            piece = self.answer.release_draft(self.checker.num_settled)
            if piece:
                yield self._text(piece, Role.PILOT)

    def _absorb(self, event: _Event) -> None:
        if isinstance(event, EngineFailed):
            raise event.error
        if isinstance(event, Scored | PromptCached):
            self.checker.absorb(event)
            return
        delta = event.delta
        self.report.pilot_tokens += len(delta.token_ids)
        self.pilot_logprobs += delta.logprobs or []
        self.draft.append(delta.text)
        if delta.is_finished:
            self.pilot_finish = delta.finish_reason
            self.draft.finish()
        self.pilot_progress.add(self.report.pilot_tokens, len(self.draft.text), time.monotonic())
        if not self.draft.is_final and len(self.draft.stable_ids) >= self.prepared.max_tokens:
            # The answer's max_tokens tokens are all drafted (stable tokens never change):
            # whatever the switch, no later pilot token can reach the answer.
            self._stop_pilot()

    def _can_pace(self, has_session: bool) -> bool:
        """Whether a paused and resumed draft is the draft the pilot would write in one go.
        Only with a session, which scores every stable token it is given, so that a paused
        pilot always gets its lead back (passes may wait for more draft); not with penalties
        (vLLM counts them over a request's own output, which a resumed request has not
        written) nor with a seeded sampled draft (a resumed request restarts its seed)."""
        sampling = draft_sampling(self.request)
        seeded = sampling.temperature != 0 and sampling.seed is not None
        return has_session and not sampling.changes_logits and not seeded

    def _pace_pilot(self) -> None:
        """Hold the pilot while its draft is far ahead of the checks, release it at half."""
        if self.pilot_max_lead is None:
            return
        checkable = min(len(self.draft.stable_ids), self.prepared.max_tokens)
        lead = checkable - self.checker.num_scored
        if lead >= self.pilot_max_lead:
            self.pilot_may_run.clear()
        elif lead <= self.pilot_max_lead // 2:
            self.pilot_may_run.set()

    def _switch_is_decided(self) -> bool:
        if self.checker.accept_index is not None:
            return True
        scoreable = min(len(self.draft.stable_ids), self.prepared.max_tokens)
        return self.draft.is_final and self.checker.num_scored >= scoreable

    # -- phase 3: the switch -----------------------------------------------------------------

    def _switch(self) -> ContinuationPlan:
        """The handoff: stop drafting and checking, decide what the base model writes."""
        self.decided_at = time.monotonic()
        self.report.time_to_switch_s = self.decided_at - self.started
        self._stop_background()
        plan = plan_continuation(
            num_draft_tokens=len(self.draft.stable_ids),
            accept_index=self.checker.accept_index,
            pilot_finish=self.pilot_finish,
            max_tokens=self.prepared.max_tokens,
            continue_after_draft_end=self.request.settings.continue_after_draft_end,
            min_tokens=self.request.sampling.min_tokens,
        )
        self.report.reason = plan.reason
        self.report.accept_index = plan.accept_index
        logger.debug(
            "%s: switch at %s (%s), base budget %d",
            self.request.request_id, plan.accept_index, plan.reason, plan.base_budget,
        )  # fmt: skip
        return plan

    def _time_decision(self, plan: ContinuationPlan) -> None:
        """Decision lag: from the pilot producing t_a, the last token of the window that
        passed, to the decision (the kept draft, t_0..t_a, is decoded by now)."""
        if plan.reason is not SwitchReason.THRESHOLD or self.decided_at is None:
            return
        produced = self.pilot_progress.produced_at(len(self.answer.kept_draft_text))
        if produced is not None:
            self.report.decision_lag_s = max(0.0, self.decided_at - produced)

    # -- phase 4: continue -------------------------------------------------------------------

    async def _continue(self, plan: ContinuationPlan) -> AsyncIterator[str]:
        """The base model writes the rest after t_0..t_a; yields the text that may be sent."""
        switch_decided = self.decided_at or time.monotonic()
        prompt = [*self.prepared.base_prompt.token_ids, *self.draft.stable_ids[: plan.num_kept]]
        budget = plan.base_budget
        self.base_finish = FinishReason.LENGTH
        first = self._first_base_token()
        if first is not None:
            # The scoring pass that decided the switch already computed the base's greedy
            # token after t_a: stream it now, the engine continues after it.
            token_id, text = first
            self.report.handoff_s = time.monotonic() - switch_decided
            yield self.answer.add_base(text, 1)
            prompt.append(token_id)
            budget -= 1
            if budget == 0 or self.answer.is_stopped:
                return
        # the session's end reaches the engine first: its full KV blocks are then in the prefix
        # cache, where the continuation's prefill finds them
        await self.checker.stopped()
        # the answer's own stop filter ends the stream at a stop string (the engine aborts)
        sampling = continuation_sampling(self.request, self.answer.num_tokens)
        stream = self.base.generate(
            prompt, sampling, f"{self.request.request_id}-base", max_tokens=budget,
            cache_salt=self.request.cache_salt,  # the blocks its scoring passes computed
        )  # fmt: skip
        try:
            async for delta in stream:
                if self.report.handoff_s is None and delta.token_ids:
                    self.report.handoff_s = time.monotonic() - switch_decided
                self.base_finish = delta.finish_reason
                self.base_logprobs += delta.logprobs or []
                yield self.answer.add_base(delta.text, len(delta.token_ids))
                if self.answer.is_stopped:
                    return
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    def _first_base_token(self) -> tuple[int, str] | None:
        """The base's first token and its text when greedy decoding already knows it: only
        at temperature 0 with nothing that moves the logits (the scoring pass's top-1 is then
        the greedy choice), and only for an ordinary token (end-of-text, other special tokens
        and stop token ids are left to the engine)."""
        sampling = continuation_sampling(self.request, self.answer.num_tokens)
        if sampling.temperature != 0 or sampling.changes_logits:
            return None  # penalties and biases move the base's choice off the raw top-1
        if sampling.num_logprobs is not None:
            return None  # its logprobs come from the engine
        token_id = self.checker.greedy_after(self.answer.num_draft_tokens)
        if token_id is None or token_id in self.base.tokenizer.all_special_ids:
            return None
        if token_id in sampling.stop_token_ids:
            return None
        text = self.answer.text_after_draft(token_id)
        return None if text is None else (token_id, text)

    # -- the end -------------------------------------------------------------------------------

    def _text(self, piece: str, source: Role) -> TextDelta:
        # draft lag: the pilot tokens whose text the answer now holds in full
        sent = () if self.base_started else self.pilot_progress.newly_sent(len(self.answer.text))
        return TextDelta(piece, source, sent)

    def _outcome(self) -> WSDOutcome:
        report = self.report
        report.draft_tokens = len(self.draft.stable_ids)
        report.prefix_tokens = self.answer.num_draft_tokens
        report.prefix_chars = self.answer.prefix_chars
        # pilot tokens drafted beyond the text the answer kept
        report.pilot_tokens_wasted = self.pilot_progress.tokens_beyond(
            len(self.answer.kept_draft_text)
        )
        return WSDOutcome(
            text=self.answer.text,
            finish_reason=self.finish,
            num_prompt_tokens=len(self.prepared.base_prompt.token_ids),
            num_completion_tokens=self.answer.num_tokens,
            num_pilot_prompt_tokens=len(self.prepared.pilot_prompt.token_ids),
            report=report,
        )

    def _add_token_views(self, outcome: WSDOutcome) -> None:
        """The per-token views the request asked for: logprobs of the model that wrote each
        token, and the base model's scores of the draft up to the switch."""
        if self.request.sampling.num_logprobs is not None:
            outcome.logprobs = answer_logprobs(
                (self.pilot.tokenizer, self.base.tokenizer),
                outcome.text,
                self.report.prefix_chars,
                self.draft.stable_ids[: self.answer.num_draft_tokens],
                (self.pilot_logprobs, self.base_logprobs),
            )
            self.report.logprobs_source = [entry.source for entry in outcome.logprobs]
        if self.request.return_scores:
            logprobs = self.checker.scored_logprobs
            if self.checker.accept_index is not None:
                logprobs = logprobs[: self.checker.accept_index + 1]
            self.report.scored_tokens = scored_tokens(
                self.base.tokenizer, self.draft.stable_ids, logprobs, self.request.settings.window
            )

    # -- background work ---------------------------------------------------------------------

    async def _read_pilot(self) -> None:
        """Draft until the pilot finishes; while pacing holds it, its request is aborted and a
        new one later continues from the tokens drafted so far (on the pilot's prefix cache)."""
        drafted: list[int] = []
        budget = self.prepared.draft_max_tokens
        sampling = draft_sampling(self.request)
        try:
            for part in itertools.count():
                request_id = f"{self.request.request_id}-pilot" + (f"-{part}" if part else "")
                stream = self.pilot.generate(
                    [*self.prepared.pilot_prompt.token_ids, *drafted],
                    sampling, request_id, max_tokens=budget - len(drafted),
                )  # fmt: skip
                try:
                    async for delta in stream:
                        drafted += delta.token_ids
                        self.events.put_nowait(_PilotDelta(delta))
                        if not (delta.is_finished or self.pilot_may_run.is_set()):
                            break
                    else:
                        return  # the draft is finished (a stream read to its end has let go)
                finally:
                    await stream.aclose()  # type: ignore[attr-defined]
                self.report.pilot_pauses += 1
                logger.debug("%s: pilot paused after %d tokens", request_id, len(drafted))
                await self.pilot_may_run.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.events.put_nowait(EngineFailed(exc))

    def _stop_pilot(self) -> None:
        if self.pilot_task is not None:
            cancel_once(self.pilot_task)

    def _background_tasks(self) -> list[asyncio.Task[None]]:
        pilot = [self.pilot_task] if self.pilot_task is not None else []
        return [*pilot, *self.checker.tasks]

    def _stop_background(self) -> None:
        """Abort drafting and scoring now (the engines drop the requests on cancellation)."""
        if self.pilot_task is not None:
            cancel_once(self.pilot_task)
        self.checker.stop()

    async def cancel_background(self) -> None:
        """Cancel drafting and scoring and wait until the engines have dropped them."""
        self.checker.stop()
        await cancel_and_wait(self._background_tasks())
        await self.checker.stopped()
