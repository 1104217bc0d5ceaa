"""Checking the draft on the base engine, one scoring step at a time: chunks of a scoring
session (each costs only its new tokens), or cache-aware passes where there is no session."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wsd_engine.cancellation import cancel_and_wait, cancel_once
from wsd_engine.engines.engine import Engine, SamplingSettings, Scores, ScoringSession
from wsd_engine.request import WSDRequest
from wsd_engine.switch_rule import SwitchTracker


@dataclass
class Scored:
    """A scoring pass finished."""

    scores: Scores


@dataclass
class PromptCached:
    """The base prompt's KV blocks are in the prefix cache."""


@dataclass
class EngineFailed:
    """Background engine work failed; the request fails with this error."""

    error: BaseException


class DraftChecker:
    """Scores the stable draft on the base engine and feeds the switch rule.

    With a scoring session (the in-process engine, `wsd.scoring: session`), the prompt is read
    once when the request starts and each step sends every stable, unscored draft token as one
    chunk: its KV stays in the engine, so a chunk costs its new tokens whatever its place in a
    cache block.

    Without one, a scoring pass is a prompt-logprobs request, and the engine computes
    log-probabilities (a full-vocabulary projection and softmax) for every position, which costs
    far more than the forward pass. So the prompt is prefilled without them first, every pass
    reads the prefix cache, and while the engine has other work a pass ends one token past a
    cache block boundary: no pass recomputes a partial block another pass already scored.
    An idle engine scores everything stable at once, for the earliest switch.

    A cached position has no logits, so a pass must not find the position before its first
    token cached. The request's passes (and its continuation) therefore share cache blocks
    only with each other (the request's cache salt): a block another request
    computed over the same tokens, e.g. an identical greedy request, would force a full
    rescoring without the cache. No pass ends exactly on a block boundary for the same reason.
    """

    def __init__(
        self,
        base: Engine,
        prompt_ids: Sequence[int],
        request: WSDRequest,
        max_tokens: int,
        post: Callable[[Any], None],
        session: ScoringSession | None = None,
    ) -> None:
        self.base = base
        self.session = session
        self._closing: asyncio.Task[None] | None = None
        self.prompt_ids = list(prompt_ids)
        self.request_id = request.request_id
        self.cache_salt = request.cache_salt
        self.max_tokens = max_tokens
        self.post = post
        self._tracker = SwitchTracker(request.settings.window, request.settings.threshold)
        self.greedy_next: list[int] = []  # the base's greedy token after each scored token
        self.prompt_cached = False
        self.in_flight = False
        self.num_passes = 0
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def accept_index(self) -> int | None:
        """The switch rule's accept index, once a window has passed."""
        return self._tracker.accept_index

    @property
    def num_scored(self) -> int:
        """Draft tokens scored so far."""
        return self._tracker.num_scored

    @property
    def scored_logprobs(self) -> list[float]:
        """The base model's log-probability of each scored draft token, in order."""
        return list(self._tracker.logprobs)

    @property
    def num_settled(self) -> int:
        """Draft tokens the answer keeps whatever later scores say (see SwitchTracker)."""
        return self._tracker.num_settled_by_score

    def start(self) -> None:
        """Read the prompt: into the session, or into the prefix cache, whole KV blocks and all
        but its last token (the first pass needs that one's logits for the first draft
        token)."""
        if self.session is not None:
            self._run(self._read_prompt)
            return
        block = self.base.cache_block_size
        if block is None or len(self.prompt_ids) <= block:
            self.prompt_cached = True
            return
        self._run(self._prefill)

    def schedule(self, stable_ids: Sequence[int], draft_is_final: bool) -> None:
        """Start the next pass over the stable, unscored tokens if none is running."""
        if self.in_flight or not self.prompt_cached or self._tracker.accept_index is not None:
            return
        start = self._tracker.num_scored
        end = min(len(stable_ids), self.max_tokens)
        if end <= start:
            return
        block = None if self.session is not None else self.base.cache_block_size
        more_to_come = not draft_is_final and end < self.max_tokens
        if block and more_to_come and self.base.num_unfinished_requests() > 0:
            # the cache then ends right before the pass's last token, whose logits the next
            # pass needs (a cached position has none)
            aligned = (len(self.prompt_ids) + end - 1) // block * block + 1 - len(self.prompt_ids)
            if aligned <= start:
                return
            end = aligned
        elif block and more_to_come and (len(self.prompt_ids) + end) % block == 0:
            # a pass that fills its last block would leave the next pass's first logits cached
            if end == start + 1:
                return  # wait for the next stable token
            end -= 1
        self.num_passes += 1
        self.in_flight = True
        done, new = list(stable_ids[:start]), list(stable_ids[start:end])
        self._run(lambda: self._score(done, new))

    def absorb(self, event: Scored | PromptCached) -> None:
        """Take in a finished pass or the cached prompt."""
        if isinstance(event, PromptCached):
            self.prompt_cached = True
            return
        self.in_flight = False
        self._tracker.extend(event.scores.logprobs)
        self.greedy_next.extend(event.scores.greedy_next)

    def greedy_after(self, num_kept: int) -> int | None:
        """The base's greedy token after the first `num_kept` draft tokens, if scored."""
        return self.greedy_next[num_kept - 1] if 0 < num_kept <= len(self.greedy_next) else None

    def stop(self) -> None:
        """No more scoring: cancel the step in flight, and end the session once that step has
        let go of it (in a task of its own, which `stopped` waits for)."""
        for task in self.tasks:
            cancel_once(task)
        if self.session is not None and self._closing is None:
            self._closing = asyncio.create_task(self._close_session())

    async def stopped(self) -> None:
        """Wait until the session has ended, without cancelling its close (a close cut short
        would leave the session waiting for input in the engine)."""
        if self._closing is not None:
            await asyncio.wait([self._closing])

    async def _close_session(self) -> None:
        await cancel_and_wait(self.tasks)
        assert self.session is not None
        await self.session.close()

    def _run(self, work: Callable[[], Awaitable[Any]]) -> None:
        # the coroutine is made inside the task: a task cancelled before it starts leaves
        # no never-awaited coroutine behind
        self.tasks.append(asyncio.create_task(self._posting(work)))

    async def _posting(self, work: Callable[[], Awaitable[Any]]) -> None:
        try:
            self.post(await work())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.post(EngineFailed(exc))

    async def _prefill(self) -> PromptCached:
        async for _ in self.base.generate(
            self.prompt_ids[:-1], SamplingSettings(), f"{self.request_id}-prefill",
            max_tokens=1, cache_salt=self.cache_salt,
        ):  # fmt: skip
            pass
        return PromptCached()

    async def _read_prompt(self) -> PromptCached:
        assert self.session is not None
        await self.session.start()
        return PromptCached()

    async def _score(self, done: list[int], new: list[int]) -> Scored:
        if self.session is not None:
            return Scored(await self.session.score(new))
        request_id = f"{self.request_id}-score-{self.num_passes}"
        prefix = [*self.prompt_ids, *done]
        return Scored(await self.base.score(prefix, new, request_id, cache_salt=self.cache_salt))
