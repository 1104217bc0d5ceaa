"""The streamed answer on odd drafts: never an error, always the offline procedure's answer.

Sampling at a high temperature makes the pilot write partial UTF-8 bytes, characters outside
the base vocabulary (byte-fallback tokens), whitespace runs and special tokens' text; a small
max_tokens ends the answer inside the early head or inside a character. A scripted pilot
writes such token ids, detokenized as vLLM does, and the online answer (streamed piece by
piece) must equal the three-stage offline procedure's on the same engines.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers.decoders import DecodeStream

from tests.conftest import Tokenizers
from tests.fakes.engines import ScriptedEngine
from wsd_engine.config import WSDSettings
from wsd_engine.engines.engine import FinishReason, GenerationDelta, SamplingSettings
from wsd_engine.offline import run_offline
from wsd_engine.orchestrator import WSDOrchestrator
from wsd_engine.request import TextDelta, WSDOutcome, WSDRequest
from wsd_engine.templates import Message, MessageRole

RARE = "\ua66e"  # outside both base vocabularies: three byte-fallback tokens
PILOT_PIECES = st.sampled_from(
    [
        "a", "Paris", " is", " the", ".", ",", "?!", " ", "  ", "   ", "\n", "\n\n", "\t",
        "\r\n", "\u3000", "\xa0", RARE, f" {RARE}", "ж", "🙂", "日本", "\ufffd", "\u2581",
        "<eos>", "<e", "os>", "[Us", "er]", "x",
    ]
)  # fmt: skip
# Lone non-ASCII bytes of the pilot's byte-level alphabet: lead bytes without their
# continuation, stray continuation bytes. (No ASCII: the base's continuation starts with a
# word no draft contains, see CONTINUATIONS.)
STRAY_BYTES = st.integers(0x80, 0xFF)
STOPS = st.lists(st.sampled_from(["x", "\n\n", RARE, "a\u3000", "s>", "Then"]), max_size=2)
# The base's scripted continuation, after the kept draft (empty: end of text at once).
CONTINUATIONS = st.sampled_from(["", "Then more.", "Then\n\n[User] next", f"Then {RARE}x"])


class TokenPilot(ScriptedEngine):
    """A pilot that writes given token ids, detokenized the way vLLM does it: the text of an
    incomplete character waits for the bytes that complete it (a stray byte becomes U+FFFD)."""

    def __init__(self, tokenizer: Any, token_ids: Sequence[int], pauses: Sequence[int]):
        super().__init__("pilot", tokenizer)
        self.token_ids = list(token_ids)
        self.pauses = list(pauses)  # event-loop turns before each token: other interleavings

    async def generate(  # type: ignore[override]
        self,
        prompt_token_ids: Sequence[int],
        sampling: SamplingSettings,
        request_id: str,
        *,
        max_tokens: int,
        cache_salt: str | None = None,
    ) -> AsyncIterator[GenerationDelta]:
        ids = self.token_ids[:max_tokens]
        stream = DecodeStream(skip_special_tokens=True)
        for n, token_id in enumerate(ids, start=1):
            for _ in range(self.pauses[n % len(self.pauses)] if self.pauses else 0):
                await asyncio.sleep(0)
            text = stream.step(self.tokenizer.backend_tokenizer, token_id) or ""
            finish = None
            if n == len(ids):
                finish = FinishReason.LENGTH if n == max_tokens else FinishReason.STOP
            yield GenerationDelta([token_id], text, None, finish)
        if not ids:
            yield GenerationDelta([], "", None, FinishReason.STOP)


def byte_token_ids(tokenizer: Any) -> list[int]:
    """The byte-level tokenizer's token for each single byte (GPT-2's byte-to-character map)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = (b for b in range(256) if b not in printable)
    chars = {**{b: chr(b) for b in printable}, **{b: chr(256 + k) for k, b in enumerate(others)}}
    return list(tokenizer.convert_tokens_to_ids([chars[b] for b in range(256)]))


@st.composite
def pilot_token_ids(draw: st.DrawFn, tokenizer: Any) -> list[int]:
    """Token ids of pilot pieces (multi-byte characters split into byte tokens) and bytes."""
    byte_ids = byte_token_ids(tokenizer)
    parts = draw(st.lists(st.one_of(PILOT_PIECES, STRAY_BYTES), max_size=12))
    ids: list[int] = []
    for part in parts:
        if isinstance(part, int):
            ids.append(byte_ids[part])
        else:
            ids += tokenizer.encode(part, add_special_tokens=False)
    return ids


@dataclass(frozen=True)
class Case:
    """One request on scripted engines."""

    pilot_ids: list[int]
    pauses: list[int]
    probabilities: list[float]  # the base's probability of draft token i, cycled
    continuation: str
    request: WSDRequest

    def orchestrator(self, tokenizers: Tokenizers) -> WSDOrchestrator:
        """Fresh engines playing this case."""
        pilot = TokenPilot(tokenizers.pilot, self.pilot_ids, self.pauses)
        probabilities = self.probabilities
        base = ScriptedEngine(
            "base", tokenizers.base, self.continuation,
            lambda i: probabilities[i % len(probabilities)],
        )  # fmt: skip
        return WSDOrchestrator(pilot, base)


@st.composite
def cases(draw: st.DrawFn, tokenizers: Tokenizers) -> Case:
    settings = WSDSettings(
        threshold=draw(st.sampled_from([0.0, 0.6, 0.8, 1.0])),
        window=draw(st.integers(1, 6)),
        draft_max_tokens=draw(st.sampled_from([2, 512])),
    )
    request = WSDRequest(
        request_id="req",
        messages=(Message(MessageRole.USER, "Say something odd."),),
        max_tokens=draw(st.integers(1, 8)),
        settings=settings,
        sampling=SamplingSettings(temperature=draw(st.sampled_from([0.0, 2.0]))),
        stop=tuple(draw(STOPS)),
    )
    return Case(
        pilot_ids=draw(pilot_token_ids(tokenizers.pilot)),
        pauses=draw(st.lists(st.integers(0, 3), max_size=6)),
        probabilities=draw(
            st.lists(st.sampled_from([0.05, 0.5, 0.9, 1.0]), min_size=1, max_size=10)
        ),
        continuation=draw(CONTINUATIONS),
        request=request,
    )


async def answer_online(orchestrator: WSDOrchestrator, req: WSDRequest) -> tuple[str, WSDOutcome]:
    """The text as streamed, and the outcome."""
    streamed, outcome = "", None
    async for item in orchestrator.run(orchestrator.prepare(req)):
        if isinstance(item, TextDelta):
            streamed += item.text
        else:
            outcome = item
    assert isinstance(outcome, WSDOutcome)
    return streamed, outcome


def test_the_streamed_answer_is_the_offline_answer(tokenizers):
    @settings(
        max_examples=int(os.environ.get("WSD_HYPOTHESIS_EXAMPLES", "150")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(tokenizers))
    def check(case: Case) -> None:
        streamed, online = asyncio.run(answer_online(case.orchestrator(tokenizers), case.request))
        orchestrator = case.orchestrator(tokenizers)
        offline = asyncio.run(run_offline(orchestrator, orchestrator.prepare(case.request)))
        assert streamed == online.text == offline.text
        assert online.finish_reason is offline.finish_reason

    check()
