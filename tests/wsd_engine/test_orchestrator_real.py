"""Online WSD against the paper's offline procedure, on the real embedded engines."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from benchmarks.prompts import CHAT_PROMPTS
from wsd_engine.config import Role, WSDSettings
from wsd_engine.engines.engine import SamplingSettings
from wsd_engine.offline import run_offline
from wsd_engine.orchestrator import WSDOrchestrator
from wsd_engine.request import TextDelta, WSDOutcome, WSDRequest
from wsd_engine.switch_rule import SwitchReason


def engines_drain(engine_pair, timeout_s=5.0):
    """Every request of the run is gone from both engines. An abort (the pilot at the switch,
    the continuation at a stop string the server matched) reaches the engine a moment later."""
    deadline = time.monotonic() + timeout_s
    while engine_pair.num_unfinished_requests() and time.monotonic() < deadline:
        time.sleep(0.05)
    return engine_pair.num_unfinished_requests() == 0


pytestmark = pytest.mark.slow

MAX_TOKENS = 80


@pytest.fixture(scope="module")
def orchestrator(engine_pair, embedded_config):
    """An orchestrator on the session's engines, with the templates the server uses."""
    return WSDOrchestrator(
        engine_pair.pilot, engine_pair.base,
        pilot_template=embedded_config.template_for(Role.PILOT),
        base_template=embedded_config.template_for(Role.BASE),
    )  # fmt: skip


async def run_online(orchestrator, request):
    pieces, outcome = [], None
    async for item in orchestrator.run(orchestrator.prepare(request)):
        if isinstance(item, TextDelta):
            pieces.append(item.text)
        else:
            outcome = item
    assert isinstance(outcome, WSDOutcome)
    assert "".join(pieces) == outcome.text
    return outcome


def ask_server(client, model, messages, stream):
    """The server's answer through the OpenAI SDK: its text, finish reason and `wsd` object."""
    body = {
        "model": model,
        "messages": [{"role": m.role.value, "content": m.content} for m in messages],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "extra_body": {"wsd": {"draft_max_tokens": 128}},
    }
    if not stream:
        response = client.chat.completions.create(**body)
        choice = response.choices[0]
        return choice.message.content, choice.finish_reason, response.model_extra["wsd"]
    text, finish, wsd = "", None, None
    for chunk in client.chat.completions.create(**body, stream=True):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            wsd = (
                (choice.model_extra or {}).get("wsd") or (chunk.model_extra or {}).get("wsd") or wsd
            )
    return text, finish, wsd


@pytest.mark.parametrize(
    ("name", "messages"), CHAT_PROMPTS[:12], ids=[n for n, _ in CHAT_PROMPTS[:12]]
)
async def test_online_equals_offline_reference(
    orchestrator, engine_pair, live_server, ids, server_loop, name, messages
):
    """The server's greedy answers, streamed and not, through real HTTP and the OpenAI SDK,
    against the paper's offline procedure on the same engines. One request at a time: vLLM's
    batched greedy decoding on CPU is not bit-identical."""
    client = openai.OpenAI(base_url=f"{live_server.base_url}/v1", api_key="-", max_retries=0)
    request = WSDRequest(f"offline-{name}", tuple(messages), MAX_TOKENS,
                         WSDSettings(draft_max_tokens=128))  # fmt: skip
    offline = await server_loop.call(run_offline(orchestrator, orchestrator.prepare(request)))
    for stream in (False, True):
        text, finish, wsd = await asyncio.to_thread(
            ask_server, client, ids["wsd"], messages, stream
        )
        assert text == offline.text, stream
        assert finish == offline.finish_reason.value, stream
        if wsd["reason"] is not None:  # None: the answer ended inside the draft
            assert wsd["accept_index"] == offline.accept_index, stream
            assert wsd["reason"] == offline.reason.value, stream
        assert wsd["pilot_tokens"] <= offline.num_pilot_tokens
        assert engines_drain(engine_pair)


async def test_a_paced_pilot_keeps_online_equal_to_offline(engine_pair, server_loop):
    """With pacing (a lead of 2 tokens pauses the pilot many times per answer), each resumed
    pilot request continues the draft from its own token ids: greedy answers stay the
    offline procedure's, and no request is left on either engine."""
    paced = WSDOrchestrator(engine_pair.pilot, engine_pair.base, pilot_max_lead=2)
    settings = WSDSettings(draft_max_tokens=128)
    pauses = []
    for name, messages in CHAT_PROMPTS[:3]:
        request = WSDRequest(f"paced-{name}", tuple(messages), MAX_TOKENS, settings)
        online = await server_loop.call(run_online(paced, request))
        offline = await server_loop.call(run_offline(paced, paced.prepare(request)))
        assert online.text == offline.text, name
        if online.report.reason is not None:  # None: the answer ended inside the draft
            assert online.report.accept_index == offline.accept_index, name
        pauses.append(online.report.pilot_pauses)
        assert engines_drain(engine_pair)
    assert sum(pauses) >= len(pauses), pauses  # the pilot did wait


@pytest.mark.parametrize("kind", ["penalties", "token-ids", "min-tokens"])
async def test_sampling_options_keep_online_equal_to_offline(
    orchestrator, engine_pair, server_loop, kind
):
    """Penalties and biases move the base's greedy choice off the scoring pass's top-1: the
    online handoff must then leave the first base token to the engine, as offline does; and
    both give the base the answer's missing min_tokens (a stop string may still end the answer
    sooner, so only the equality is checked here)."""
    min_tokens = 46 if kind == "min-tokens" else 0
    sampling = SamplingSettings(min_tokens=min_tokens)
    if kind == "penalties":
        sampling = SamplingSettings(repetition_penalty=1.3, presence_penalty=0.5, top_k=20)
    elif kind == "token-ids":
        encode = engine_pair.base.tokenizer.encode
        (the,), (period,) = (encode(t, add_special_tokens=False) for t in (" the", "."))
        sampling = SamplingSettings(logit_bias=((the, 4.0),), stop_token_ids=(period,))
    name, messages = CHAT_PROMPTS[1]
    settings = WSDSettings(draft_max_tokens=128, threshold=0.3)

    def request(kind):
        return WSDRequest(f"{kind}-{name}-opts", tuple(messages), 48, settings, sampling)

    online = await server_loop.call(run_online(orchestrator, request("online")))
    offline = await server_loop.call(
        run_offline(orchestrator, orchestrator.prepare(request("offline")))
    )
    assert online.report.reason == SwitchReason.THRESHOLD  # the base wrote part of the answer
    assert online.text == offline.text
    assert online.finish_reason == offline.finish_reason
    assert engines_drain(engine_pair)


async def test_switch_happens_and_pilot_is_aborted_early(orchestrator, engine_pair, server_loop):
    # a low threshold passes at the first window: the pilot is stopped right after it
    settings = WSDSettings(threshold=0.05, window=2)
    request = WSDRequest("early", tuple(CHAT_PROMPTS[1][1]), 64, settings)
    outcome = await server_loop.call(run_online(orchestrator, request))
    assert outcome.report.reason is SwitchReason.THRESHOLD
    assert outcome.report.accept_index is not None and outcome.report.accept_index < 10
    assert outcome.report.pilot_tokens < 40
    assert outcome.report.handoff_s is not None
    assert engines_drain(engine_pair)


async def test_seeded_sampling_is_reproducible(orchestrator, server_loop):
    def request(rid):
        sampling = SamplingSettings(temperature=0.9, seed=7)
        return WSDRequest(rid, tuple(CHAT_PROMPTS[4][1]), 48, sampling=sampling)

    first = await server_loop.call(run_online(orchestrator, request("seed-1")))
    second = await server_loop.call(run_online(orchestrator, request("seed-2")))
    assert first.text == second.text


async def test_cancelled_mid_draft_leaves_no_running_requests(
    orchestrator, engine_pair, server_loop
):
    request = WSDRequest("cancel", tuple(CHAT_PROMPTS[1][1]), 256, WSDSettings(threshold=1.0))

    async def scenario():
        started = asyncio.Event()

        async def consume():
            async for item in orchestrator.run(orchestrator.prepare(request)):
                if isinstance(item, TextDelta):
                    started.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), timeout=60)
        pilot_running = engine_pair.pilot.num_unfinished_requests()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 1.0
        while engine_pair.num_unfinished_requests() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return pilot_running, engine_pair.num_unfinished_requests()

    pilot_running, remaining = await server_loop.call(scenario())
    assert pilot_running == 1
    assert remaining == 0
