"""Online Weak-to-Strong Decoding: prepare a request for both models, then run it.

`WSDOrchestrator.prepare` renders the prompts and fixes the token budget; `.run` streams one
answer, whose four phases live in `wsd_engine/run.py` (docs/method.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from wsd_engine.config import PromptTemplate, ScoringMode
from wsd_engine.engines.engine import Engine
from wsd_engine.request import TextDelta, WSDOutcome, WSDRequest, completion_budget
from wsd_engine.run import WSDRun
from wsd_engine.templates import RenderedPrompt, render_prompt


@dataclass(frozen=True)
class PreparedWSD:
    """A WSD request rendered for both models and checked against both contexts."""

    request: WSDRequest
    pilot_prompt: RenderedPrompt
    base_prompt: RenderedPrompt
    max_tokens: int  # the answer's budget, in base tokens
    draft_max_tokens: int  # the draft's budget, in pilot tokens (what the pilot's context allows)

    def for_choice(self, index: int, num_choices: int) -> PreparedWSD:
        """The same prompts for choice `index` of `num_choices` (its own ids and seed)."""
        return replace(self, request=self.request.for_choice(index, num_choices))


class WSDOrchestrator:
    """Runs WSD requests on a pilot engine and a base engine."""

    def __init__(
        self,
        pilot: Engine,
        base: Engine,
        pilot_template: PromptTemplate = PromptTemplate.CHAT,
        base_template: PromptTemplate = PromptTemplate.PLAIN,
        scoring: ScoringMode = ScoringMode.SESSION,
        pilot_max_lead: int | None = None,
    ) -> None:
        self.pilot = pilot
        self.base = base
        self.pilot_template = pilot_template
        self.base_template = base_template
        self.scoring = scoring
        self.pilot_max_lead = pilot_max_lead

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
        pilot_room = self.pilot.max_model_len - len(pilot_prompt.token_ids)
        draft_max_tokens = min(request.settings.draft_max_tokens, pilot_room)
        return PreparedWSD(request, pilot_prompt, base_prompt, max_tokens, draft_max_tokens)

    async def run(self, prepared: PreparedWSD) -> AsyncIterator[TextDelta | WSDOutcome]:
        """Yield the answer as it becomes final, then one WSDOutcome.

        Closing or cancelling the iteration cancels every engine request it started.
        """
        run = WSDRun(
            self.pilot, self.base, prepared, self.scoring is ScoringMode.SESSION,
            pilot_max_lead=self.pilot_max_lead,
        )  # fmt: skip
        try:
            async for item in run.execute():
                yield item
        finally:
            await run.cancel_background()
