"""Orchestrator logic on scripted engines (tiny tokenizers; the embedded ones when slow)."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.engines import ScriptedEngine
from wsd_engine.config import WSDSettings
from wsd_engine.engines.engine import FinishReason, SamplingSettings
from wsd_engine.orchestrator import WSDOrchestrator
from wsd_engine.request import ContextLengthExceeded, TextDelta, WSDOutcome, WSDRequest
from wsd_engine.switch_rule import SwitchReason
from wsd_engine.templates import Message, MessageRole

DRAFT = "Paris is the capital of France. It is known for the Eiffel Tower and fine food."


def make(
    pilot_tokenizer,
    base_tokenizer,
    draft=DRAFT,
    probability=lambda i: 0.5,
    continuation=" More from the base model.",
    delay_s=0.0,
):
    pilot = ScriptedEngine("pilot", pilot_tokenizer, draft, delay_s=delay_s)
    base = ScriptedEngine("base", base_tokenizer, continuation, probability, delay_s=delay_s)
    return WSDOrchestrator(pilot, base), pilot, base


def request(max_tokens=64, stop=(), temperature=0.0, **params):
    return WSDRequest(
        request_id="req",
        messages=(Message(MessageRole.USER, "Tell me about Paris."),),
        max_tokens=max_tokens,
        settings=WSDSettings(**params),
        sampling=SamplingSettings(temperature=temperature),
        stop=stop,
    )


async def run(orchestrator, req):
    pieces, outcome = [], None
    async for item in orchestrator.run(orchestrator.prepare(req)):
        if isinstance(item, TextDelta):
            pieces.append(item)
        else:
            outcome = item
    assert isinstance(outcome, WSDOutcome)
    assert "".join(p.text for p in pieces) == outcome.text
    return pieces, outcome


def base_ids(base_tokenizer, text):
    return base_tokenizer.encode(text, add_special_tokens=False)


async def test_switch_at_first_passing_window(pilot_tokenizer, base_tokenizer):
    orch, _pilot, base = make(
        pilot_tokenizer, base_tokenizer, probability=lambda i: 0.9 if i >= 4 else 0.1
    )
    pieces, outcome = await run(orch, request(window=3, threshold=0.8))
    ids = base_ids(base_tokenizer, DRAFT)
    assert outcome.report.accept_index == 6 and outcome.report.reason is SwitchReason.THRESHOLD
    expected_prefix = base_tokenizer.decode(ids[:7])
    assert outcome.text == expected_prefix + " More from the base model."
    # greedy: the switch's scoring pass already gave the first base token, streamed at once;
    # the engine continues after t_0..t_a and that token
    first = base_ids(base_tokenizer, " More from the base model.")[0]
    prompt, _, max_tokens = base.generate_calls[-1]
    assert prompt[-8:] == [*ids[:7], first]
    assert max_tokens == 64 - 8
    assert pieces[0].text and expected_prefix.startswith(pieces[0].text)
    assert outcome.report.prefix_chars == len(expected_prefix)
    assert outcome.num_completion_tokens == 7 + len(
        base_ids(base_tokenizer, " More from the base model.")
    )
    assert outcome.report.handoff_s is not None


async def test_sampling_leaves_the_first_base_token_to_the_engine(pilot_tokenizer, base_tokenizer):
    orch, _pilot, base = make(
        pilot_tokenizer, base_tokenizer, probability=lambda i: 0.9 if i >= 4 else 0.1
    )
    _, outcome = await run(orch, request(window=3, threshold=0.8, temperature=0.7))
    ids = base_ids(base_tokenizer, DRAFT)
    prompt, _, max_tokens = base.generate_calls[-1]
    assert prompt[-7:] == ids[:7] and max_tokens == 64 - 7
    assert outcome.text == base_tokenizer.decode(ids[:7]) + " More from the base model."


async def test_no_pass_keeps_whole_draft_then_continues(pilot_tokenizer, base_tokenizer):
    orch, _pilot, _base = make(pilot_tokenizer, base_tokenizer)
    _, outcome = await run(orch, request())
    assert outcome.report.reason is SwitchReason.DRAFT_END
    assert outcome.text == DRAFT + " More from the base model."
    assert outcome.report.accept_index == len(base_ids(base_tokenizer, DRAFT)) - 1
    assert outcome.report.pilot_tokens_wasted == 0


async def test_option_ends_answer_with_draft(pilot_tokenizer, base_tokenizer):
    orch, _, base = make(pilot_tokenizer, base_tokenizer)
    _, outcome = await run(orch, request(continue_after_draft_end=False))
    assert outcome.text == DRAFT and outcome.finish_reason is FinishReason.STOP
    assert base.generate_calls == []


async def test_draft_limit(pilot_tokenizer, base_tokenizer):
    orch, _, _ = make(pilot_tokenizer, base_tokenizer)
    _, outcome = await run(orch, request(draft_max_tokens=5))
    assert outcome.report.reason is SwitchReason.DRAFT_LIMIT
    assert outcome.report.pilot_tokens == 5


async def test_max_tokens_inside_the_draft(pilot_tokenizer, base_tokenizer):
    orch, _pilot, base = make(pilot_tokenizer, base_tokenizer)
    _, outcome = await run(orch, request(max_tokens=4))
    assert outcome.text == base_tokenizer.decode(base_ids(base_tokenizer, DRAFT)[:4])
    assert outcome.finish_reason is FinishReason.LENGTH
    assert outcome.num_completion_tokens == 4
    assert base.generate_calls == []
    assert max(end for _, end in base.score_calls) <= 4


async def test_pilot_stops_once_max_tokens_are_drafted(pilot_tokenizer, base_tokenizer):
    # a slow base: without the stop the pilot drafts its whole script meanwhile
    pilot = ScriptedEngine("pilot", pilot_tokenizer, DRAFT, delay_s=0.001)
    base = ScriptedEngine("base", base_tokenizer, " More.", lambda i: 0.5, delay_s=0.3)
    orch = WSDOrchestrator(pilot, base)
    # more than the first window (always kept), so the answer waits for scores
    _, outcome = await run(orch, request(max_tokens=9))
    assert outcome.text == base_tokenizer.decode(base_ids(base_tokenizer, DRAFT)[:9])
    assert outcome.report.pilot_tokens < len(pilot_tokenizer.encode(DRAFT)) - 4


async def test_stop_string_inside_the_draft(pilot_tokenizer, base_tokenizer):
    orch, _, base = make(pilot_tokenizer, base_tokenizer)
    _, outcome = await run(orch, request(stop=("capital",)))
    assert outcome.text == "Paris is the "
    assert outcome.finish_reason is FinishReason.STOP
    assert base.generate_calls == []


async def test_stop_string_across_the_seam(pilot_tokenizer, base_tokenizer):
    orch, _, _ = make(
        pilot_tokenizer,
        base_tokenizer,
        draft="All good here.\n\n[Us",
        continuation="er]\nWhat else?",
    )
    _, outcome = await run(orch, request())
    assert outcome.text == "All good here."
    assert outcome.finish_reason is FinishReason.STOP


async def test_empty_draft_base_answers_alone(pilot_tokenizer, base_tokenizer):
    orch, _, base = make(pilot_tokenizer, base_tokenizer, draft="   ")
    _, outcome = await run(orch, request())
    assert outcome.text == " More from the base model."
    assert outcome.report.accept_index is None and outcome.report.prefix_chars == 0
    assert base.generate_calls[-1].max_tokens == 64


async def test_first_window_streams_before_any_score(pilot_tokenizer, base_tokenizer):
    # scoring never passes; the first `window` tokens stream as soon as they are stable
    orch, _pilot, base = make(pilot_tokenizer, base_tokenizer, delay_s=0.01)
    req = request(window=6)
    stream = orch.run(orch.prepare(req))
    first = await anext(stream)
    assert isinstance(first, TextDelta) and DRAFT.startswith(first.text)
    assert base.score_calls == [] or base.score_calls[0][0] == 0
    await stream.aclose()


async def test_prompt_too_long_names_the_limit(pilot_tokenizer, base_tokenizer):
    orch, _pilot, base = make(pilot_tokenizer, base_tokenizer)
    base.max_model_len = 40
    with pytest.raises(ContextLengthExceeded, match="maximum context length is 40 tokens"):
        orch.prepare(request(max_tokens=30))


async def test_no_max_tokens_takes_the_rest_of_the_smaller_context(pilot_tokenizer, base_tokenizer):
    orch, pilot, base = make(pilot_tokenizer, base_tokenizer)
    prompts = orch.prepare(request(max_tokens=None))
    pilot_len, base_len = len(prompts.pilot_prompt.token_ids), len(prompts.base_prompt.token_ids)
    base.max_model_len = base_len + 100
    pilot.max_model_len = pilot_len + 200
    assert orch.prepare(request(max_tokens=None)).max_tokens == 100
    pilot.max_model_len = pilot_len + 50
    assert orch.prepare(request(max_tokens=None)).max_tokens == 50


async def test_closing_the_stream_cancels_every_engine_request(pilot_tokenizer, base_tokenizer):
    orch, pilot, base = make(pilot_tokenizer, base_tokenizer, delay_s=0.02)
    req = request()

    async def consume():
        async for _ in orch.run(orch.prepare(req)):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    assert pilot.running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert not pilot.running and not base.running


async def test_first_pilot_token_streams_before_its_word_is_stable(pilot_tokenizer, base_tokenizer):
    # "Paris" alone has no word boundary yet, but it lies inside the first `window` base
    # tokens, which the answer always keeps
    orch, pilot, base = make(pilot_tokenizer, base_tokenizer, delay_s=0.05)
    req = request(window=6)
    stream = orch.run(orch.prepare(req))
    first = await anext(stream)
    assert first.text == "Paris"
    assert pilot.generate_calls and len(base.score_calls) == 0
    await stream.aclose()


async def test_early_head_respects_max_tokens(pilot_tokenizer, base_tokenizer):
    orch, _, _ = make(pilot_tokenizer, base_tokenizer, draft="Supercalifragilistic words follow")
    _, outcome = await run(orch, request(max_tokens=2))
    ids = base_ids(base_tokenizer, "Supercalifragilistic words follow")
    assert outcome.text == base_tokenizer.decode(ids[:2])


async def test_an_answer_ending_inside_a_rare_character_is_the_offline_answer(
    pilot_tokenizer, base_tokenizer
):
    # U+A66E is three byte-fallback tokens for the base: at max_tokens 2 the answer ends
    # inside it, right after the early head was streamed (seen at temperature 2.0)
    draft = "a\ua66e more words"
    orch, _, _ = make(pilot_tokenizer, base_tokenizer, draft=draft)
    _, outcome = await run(orch, request(max_tokens=2, temperature=2.0))
    assert outcome.text == base_tokenizer.decode(base_ids(base_tokenizer, draft)[:2])
    assert outcome.finish_reason is FinishReason.LENGTH


async def test_busy_base_scores_up_to_cache_block_boundaries(pilot_tokenizer, base_tokenizer):
    # a long draft the base never accepts: every token is scored, pass after pass
    draft = " ".join(["Paris has many old streets, bridges and small squares."] * 4)
    orch, _pilot, base = make(
        pilot_tokenizer, base_tokenizer, draft=draft, probability=lambda i: 0.1, delay_s=0.002
    )
    base.cache_block_size = 8
    base.running.add("another user's request")  # the base engine is busy
    req = request(max_tokens=128)
    prompt = orch.prepare(req).base_prompt.token_ids
    _, outcome = await run(orch, req)
    # the prompt was cached first, all but its last token (the first pass computes that one)
    assert base.generate_calls[0][0] == prompt[:-1]
    assert base.generate_calls[0].max_tokens == 1
    calls = base.score_calls
    assert len(calls) >= 3
    assert [start for start, _ in calls] == [0, *[end for _, end in calls[:-1]]]
    # every pass but the last (the finished draft) leaves the cache one token short of its end
    for _, end in calls[:-1]:
        assert (len(prompt) + end - 1) % 8 == 0
    assert calls[-1][1] == outcome.report.draft_tokens


async def test_idle_base_scores_every_stable_token_at_once(pilot_tokenizer, base_tokenizer):
    draft = " ".join(["Paris has many old streets, bridges and small squares."] * 4)
    orch, _pilot, base = make(
        pilot_tokenizer, base_tokenizer, draft=draft, probability=lambda i: 0.1, delay_s=0.002
    )
    base.cache_block_size = 8
    req = request(max_tokens=128)
    prompt = orch.prepare(req).base_prompt.token_ids
    await run(orch, req)
    ends = [end for _, end in base.score_calls]
    assert any((len(prompt) + end - 1) % 8 for end in ends[:-1])
    # no pass but the last fills its last block: the next pass needs that block's last logits
    assert all((len(prompt) + end) % 8 for end in ends[:-1])


async def test_base_work_shares_cache_blocks_only_within_the_request(
    pilot_tokenizer, base_tokenizer
):
    orch, pilot, base = make(pilot_tokenizer, base_tokenizer, probability=lambda i: 0.9)
    base.cache_block_size = 8
    req = request(window=3, threshold=0.8)
    await run(orch, req)
    assert base.score_calls and base.generate_calls[-1].max_tokens > 1  # it continued
    # prefill, passes and continuation: one salt, the request's own
    assert set(base.cache_salts.values()) == {req.cache_salt}
    assert all(rid.startswith("req-") for rid in base.cache_salts)  # ids name the request
    assert set(pilot.cache_salts.values()) == {None}


@pytest.mark.parametrize(
    "continuation",
    ["", "\n\n[User] Next question"],
    ids=["end-of-text", "may-start-a-stop-string"],
)
async def test_first_base_token_the_engine_must_see_goes_through_the_engine(
    pilot_tokenizer, base_tokenizer, continuation
):
    # the base's greedy choice after the switch is end-of-text, or text a stop string may
    # start with: nothing is emitted ahead of the engine
    orch, _pilot, base = make(
        pilot_tokenizer, base_tokenizer, probability=lambda i: 0.9 if i >= 4 else 0.1,
        continuation=continuation,
    )  # fmt: skip
    _, outcome = await run(orch, request(window=3, threshold=0.8))
    ids = base_ids(base_tokenizer, DRAFT)
    assert base.generate_calls[-1][0][-7:] == ids[:7]
    assert outcome.text == base_tokenizer.decode(ids[:7])
    assert outcome.finish_reason is FinishReason.STOP


async def test_a_session_scores_the_draft_chunk_by_chunk(pilot_tokenizer, base_tokenizer):
    """With a scoring session, each step sends every stable, unscored draft token (no block
    alignment: a chunk costs its new tokens), the answer is the one passes give, and the
    session ends at the switch."""
    probability = lambda i: 0.9 if i >= 4 else 0.1  # noqa: E731
    answers = []
    for sessions in (False, True):
        orch, _pilot, base = make(pilot_tokenizer, base_tokenizer, probability=probability,
                                  delay_s=0.001)  # fmt: skip
        base.cache_block_size = 8
        base.sessions = sessions
        base.running.add("another user's request")  # busy: passes would align to blocks
        _, outcome = await run(orch, request(window=3, threshold=0.8))
        base.running.discard("another user's request")
        answers.append(outcome.text)
        if sessions:
            assert base.score_calls == []
            chunks = base.session_chunks
            assert chunks and [start for _, start, _ in chunks] == [
                0, *[end for _, _, end in chunks[:-1]]
            ]  # fmt: skip
            assert {name for name, _, _ in chunks} == {"req-session"}
            assert base.num_unfinished_requests() == 0  # the session ended
    assert answers[0] == answers[1]


async def test_a_cancelled_request_ends_its_session(pilot_tokenizer, base_tokenizer):
    orch, pilot, base = make(pilot_tokenizer, base_tokenizer, delay_s=0.01)
    base.sessions = True

    async def consume():
        async for _ in orch.run(orch.prepare(request(max_tokens=200, threshold=1.0))):
            pass

    task = asyncio.create_task(consume())
    for _ in range(200):
        await asyncio.sleep(0.005)
        if base.session_chunks:
            break
    assert "req-session" in base.running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert base.num_unfinished_requests() == 0 and pilot.num_unfinished_requests() == 0


async def test_a_paced_pilot_resumes_from_its_own_tokens(pilot_tokenizer, base_tokenizer):
    """With `pilot_max_lead`, a pilot far ahead of the checks is aborted and continued later
    by a new request from the tokens it drafted; the answer is the one an unpaced run gives."""
    answers = []
    for max_lead in (None, 4):
        pilot = ScriptedEngine("pilot", pilot_tokenizer, DRAFT, delay_s=0.001)
        base = ScriptedEngine("base", base_tokenizer, " More.", lambda i: 0.1, delay_s=0.02)
        base.sessions = True
        orch = WSDOrchestrator(pilot, base, pilot_max_lead=max_lead)
        prepared = orch.prepare(request(threshold=0.99))
        _, outcome = await run(orch, request(threshold=0.99))
        answers.append(outcome.text)
        calls = pilot.generate_calls
        if max_lead is None:
            assert len(calls) == 1
            continue
        assert len(calls) > 2  # paused and resumed more than once
        assert outcome.report.pilot_pauses == len(calls) - 1
        prompt = list(prepared.pilot_prompt.token_ids)
        drafted = pilot_tokenizer.encode(DRAFT, add_special_tokens=False)
        budget = prepared.draft_max_tokens
        for call in calls:
            assert call.prompt_token_ids[: len(prompt)] == prompt
            done = call.prompt_token_ids[len(prompt) :]
            assert done == drafted[: len(done)]  # each resumes where the last one stopped
            assert call.max_tokens == budget - len(done)
        assert pilot.num_unfinished_requests() == 0 and base.num_unfinished_requests() == 0
    assert answers[0] == answers[1] == DRAFT + " More."


async def test_no_pacing_where_a_resumed_draft_would_differ(pilot_tokenizer, base_tokenizer):
    """Penalties count a request's own output and a seed restarts with each request: the
    pilot then drafts in one request; scoring passes (no session) never pace either."""
    cases = [
        (True, SamplingSettings(temperature=0.0, frequency_penalty=0.5)),
        (True, SamplingSettings(temperature=0.7, seed=3)),
        (False, SamplingSettings(temperature=0.0)),
    ]
    for sessions, sampling in cases:
        pilot = ScriptedEngine("pilot", pilot_tokenizer, DRAFT, delay_s=0.001)
        base = ScriptedEngine("base", base_tokenizer, " More.", lambda i: 0.1, delay_s=0.02)
        base.sessions = sessions
        orch = WSDOrchestrator(pilot, base, pilot_max_lead=4)
        req = WSDRequest(
            request_id="req", messages=(Message(MessageRole.USER, "Tell me about Paris."),),
            max_tokens=64, settings=WSDSettings(threshold=0.99), sampling=sampling,
        )  # fmt: skip
        _, outcome = await run(orch, req)
        assert len(pilot.generate_calls) == 1, (sessions, sampling)
        assert outcome.report.pilot_pauses == 0
