"""The in-process vLLM adapter on the real embedded models."""

from __future__ import annotations

import asyncio
import json
import time

import psutil
import pytest

from wsd_engine.config import PromptTemplate
from wsd_engine.engines.engine import (
    FinishReason,
    SamplingSettings,
    StructuredKind,
    StructuredOutput,
)
from wsd_engine.templates import Message, MessageRole, render_prompt

pytestmark = pytest.mark.slow

QUESTION = [Message(MessageRole.USER, "Name three colours of the rainbow.")]


async def collect(engine, prompt_ids, settings, request_id, max_tokens):
    tokens, text, logprobs, finish = [], "", [], None
    async for delta in engine.generate(prompt_ids, settings, request_id, max_tokens=max_tokens):
        tokens += delta.token_ids
        text += delta.text
        if delta.logprobs is not None:
            logprobs += [entry.logprob for entry in delta.logprobs]
        finish = delta.finish_reason
    return tokens, text, logprobs, finish


async def test_both_engines_answer_in_one_process(engine_pair, server_loop):
    pilot_prompt = render_prompt(engine_pair.pilot.tokenizer, QUESTION, PromptTemplate.CHAT)
    base_prompt = render_prompt(engine_pair.base.tokenizer, QUESTION, PromptTemplate.PLAIN)
    settings = SamplingSettings()

    async def together():
        return await asyncio.gather(
            collect(engine_pair.pilot, pilot_prompt.token_ids, settings, "both-pilot", 16),
            collect(engine_pair.base, base_prompt.token_ids, settings, "both-base", 16),
        )

    (p_tokens, p_text, _, p_finish), (b_tokens, b_text, _, b_finish) = await server_loop.call(
        together()
    )
    assert p_tokens and p_text.strip()
    assert b_tokens and b_text.strip()
    assert p_finish in (FinishReason.STOP, FinishReason.LENGTH)
    assert b_finish in (FinishReason.STOP, FinishReason.LENGTH)
    assert engine_pair.pilot.max_model_len == 2048


async def test_greedy_pilot_generation_is_deterministic(engine_pair, server_loop):
    prompt = render_prompt(engine_pair.pilot.tokenizer, QUESTION, PromptTemplate.CHAT)
    settings = SamplingSettings()
    pilot = engine_pair.pilot
    first = await server_loop.call(collect(pilot, prompt.token_ids, settings, "det-1", 32))
    second = await server_loop.call(collect(pilot, prompt.token_ids, settings, "det-2", 32))
    assert first[0] == second[0]
    assert first[1] == second[1]


@pytest.mark.parametrize("role", ["pilot", "base"])
async def test_scoring_matches_generation_logprobs(engine_pair, server_loop, role):
    engine = getattr(engine_pair, role)
    template = PromptTemplate.CHAT if role == "pilot" else PromptTemplate.PLAIN
    prompt = render_prompt(engine.tokenizer, QUESTION, template)
    settings = SamplingSettings(num_logprobs=0, ignore_eos=True)
    tokens, _, generated_logprobs, _ = await server_loop.call(
        collect(engine, prompt.token_ids, settings, f"gen-{role}", 24)
    )
    assert len(tokens) == 24
    scores = await server_loop.call(engine.score(prompt.token_ids, tokens, f"score-{role}"))
    scored = scores.logprobs
    assert len(scored) == len(tokens)
    for position, (a, b) in enumerate(zip(scored, generated_logprobs, strict=True)):
        assert abs(a - b) <= 1e-2, f"token {position}: scored {a}, generated {b}"
    # the generation was greedy: the pass's top-1 after each token is the next generated one
    assert scores.greedy_next[:-1] == tokens[1:]
    # scoring a different continuation gives different numbers (the check is not vacuous)
    other = await server_loop.call(
        engine.score(prompt.token_ids, list(reversed(tokens)), f"score-rev-{role}")
    )
    # reading the prefix cache (now warm for this sequence) gives the same numbers
    again = await server_loop.call(engine.score(prompt.token_ids, tokens, f"score-again-{role}"))
    assert max(abs(a - b) for a, b in zip(again.logprobs, scored, strict=True)) <= 1e-2
    assert again.greedy_next == scores.greedy_next
    # scoring only a tail after a cached prefix agrees with scoring it all at once
    half = len(tokens) // 2
    tail = await server_loop.call(
        engine.score([*prompt.token_ids, *tokens[:half]], tokens[half:], f"score-tail-{role}")
    )
    assert max(abs(a - b) for a, b in zip(tail.logprobs, scored[half:], strict=True)) <= 1e-2
    assert tail.greedy_next == scores.greedy_next[half:]
    # the greedy token after the last scored one is what generation writes next
    longer, *_ = await server_loop.call(
        collect(engine, prompt.token_ids, SamplingSettings(ignore_eos=True), "g25", 25)
    )
    assert scores.greedy_next[-1] == longer[24]
    assert other.logprobs != scored


async def test_scoring_an_empty_continuation_returns_nothing(engine_pair, server_loop):
    empty = await server_loop.call(engine_pair.base.score([2, 108], [], "score-empty"))
    assert empty.logprobs == [] and empty.greedy_next == []


async def _wait_idle(pair, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while pair.num_unfinished_requests() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return pair.num_unfinished_requests()


async def test_cancelling_the_consumer_aborts_the_request(engine_pair, server_loop):
    engine = engine_pair.base
    settings = SamplingSettings(ignore_eos=True)

    async def scenario():
        started = asyncio.Event()

        async def consume():
            async for _ in engine.generate(
                [2, 108, 236840], settings, "cancel-me", max_tokens=1000
            ):
                started.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), timeout=30)
        running = engine.num_unfinished_requests()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return running, await _wait_idle(engine_pair, timeout_s=1.0)

    running, remaining = await server_loop.call(scenario())
    assert running == 1
    assert remaining == 0


def test_shutdown_leaves_no_child_process(embedded_config, model_paths, engine_pair):
    from wsd_engine.engines.vllm_local import VLLMEngine

    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    model = embedded_config.pilot.model_copy(update={"served_model_name": "shutdown-probe"})
    engine = VLLMEngine.start(model, model_paths[embedded_config.pilot.served_model_name])
    started = {child.pid for child in me.children(recursive=True)} - before
    assert started, "the engine should run its core in a child process"
    engine.shutdown()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [
            pid
            for pid in started
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, f"engine processes left behind: {alive}"


def test_engine_args_carry_the_scheduler_budget(embedded_config, tmp_path):
    from wsd_engine.engines.vllm_local import engine_args

    base = embedded_config.base
    assert engine_args(base, tmp_path).max_num_batched_tokens is None  # vLLM's default
    budget = base.model_copy(update={"max_num_batched_tokens": 256})
    assert engine_args(budget, tmp_path).max_num_batched_tokens == 256


async def test_a_request_vllm_refuses_names_the_parameter(engine_pair, server_loop):
    from wsd_engine.engines.engine import EngineRequestInvalid

    async def refused():
        settings = SamplingSettings(temperature=-1.0)
        with pytest.raises(EngineRequestInvalid) as raised:
            await collect(engine_pair.base, [2, 100], settings, "refused-temperature", 4)
        return raised.value

    error = await server_loop.call(refused())
    assert error.param == "temperature"
    assert engine_pair.base.model_name in str(error)


def test_every_sampling_setting_reaches_vllm():
    # sampled: with temperature 0 vLLM turns top_k and min_p off (they cannot change the argmax)
    from vllm.sampling_params import RequestOutputKind

    from wsd_engine.engines.vllm_local import _sampling_params

    settings = SamplingSettings(
        temperature=0.7, presence_penalty=0.5, frequency_penalty=-0.5,
        repetition_penalty=1.2, top_k=5, min_p=0.1, logit_bias=((7, 3.5),),
        stop_token_ids=(11,), min_tokens=2, ignore_eos=True,
    )  # fmt: skip
    params = _sampling_params(settings, 9, RequestOutputKind.DELTA)
    assert params.max_tokens == 9
    assert (params.presence_penalty, params.frequency_penalty) == (0.5, -0.5)
    assert (params.repetition_penalty, params.top_k, params.min_p) == (1.2, 5, 0.1)
    assert params.logit_bias == {7: 3.5} and params.stop_token_ids == [11]
    assert params.min_tokens == 2 and params.ignore_eos
    assert not params.stop  # stop strings are matched by the server, on the text


def test_a_structured_output_reaches_vllm():
    from vllm.sampling_params import RequestOutputKind

    from wsd_engine.engines.vllm_local import _sampling_params

    schema = '{"type": "object", "properties": {"a": {"type": "integer"}}}'
    as_schema = StructuredOutput(StructuredKind.JSON_SCHEMA, schema)
    delta = RequestOutputKind.DELTA
    params = _sampling_params(SamplingSettings(structured=as_schema), 4, delta)
    assert params.structured_outputs.json == json.loads(schema)
    as_object = StructuredOutput(StructuredKind.JSON_OBJECT)
    params = _sampling_params(SamplingSettings(structured=as_object), 4, delta)
    assert params.structured_outputs.json_object is True
    assert _sampling_params(SamplingSettings(), 4, delta).structured_outputs is None


def test_the_server_flags_are_the_in_process_engine_arguments(embedded_config, tmp_path):
    """vLLM's own parser reads the server command's flags into the engine arguments the
    in-process adapter uses: one translation, two renderings."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from wsd_engine.engines.vllm_common import engine_settings
    from wsd_engine.engines.vllm_local import engine_args

    for model in (embedded_config.pilot, embedded_config.base):
        settings = engine_settings(model, tmp_path, on_cpu=True)
        parser = AsyncEngineArgs.add_cli_args(FlexibleArgumentParser())
        parsed = AsyncEngineArgs.from_cli_args(parser.parse_args(settings.server_flags()))
        in_process = engine_args(model, tmp_path)
        for name in settings.args:
            assert getattr(parsed, name) == getattr(in_process, name), name


async def test_a_logit_bias_changes_the_output(engine_pair, server_loop):
    base = engine_pair.base
    prompt = render_prompt(base.tokenizer, QUESTION, PromptTemplate.PLAIN).token_ids
    (forced,) = base.tokenizer.encode(" banana", add_special_tokens=False)
    plain = SamplingSettings()
    biased = SamplingSettings(logit_bias=((forced, 100.0),))
    tokens, _, _, _ = await server_loop.call(collect(base, prompt, plain, "bias-off", 3))
    forced_tokens, _, _, _ = await server_loop.call(collect(base, prompt, biased, "bias-on", 3))
    assert tokens[0] != forced and forced_tokens == [forced] * 3


async def test_a_scoring_session_is_exact(engine_pair, server_loop):
    """The session plugin at work: resumed chunks give, at every position, the
    log-probabilities and the top-1 of a fresh pass over the same tokens (the first token of
    each chunk included, whose row comes from the previous chunk's last logits)."""
    base = engine_pair.base
    assert base.sessions_work  # the warm-up found the plugin active and exact
    prompt = render_prompt(base.tokenizer, QUESTION, PromptTemplate.PLAIN).token_ids
    text = (
        " Red, orange and yellow are three of the seven colours of the rainbow, which also has"
        " green, blue, indigo and violet, in that order from the outside in."
    )
    draft = base.tokenizer.encode(text, add_special_tokens=False)
    sizes = [7, 4, 1, 2, 7, 1, 4]
    assert sum(sizes) <= len(draft)

    async def by_session():
        session = base.open_scoring_session(prompt, "session-exact", cache_salt="exact")
        scored, at = [], 0
        try:
            await session.start()
            for size in sizes:
                scored.append(await session.score(draft[at : at + size]))
                at += size
        finally:
            await session.close()
        return scored

    chunks = await server_loop.call(by_session())
    n = sum(sizes)
    fresh = await server_loop.call(base.score(prompt, draft[:n], "session-exact-pass"))
    logprobs = [value for chunk in chunks for value in chunk.logprobs]
    greedy = [token for chunk in chunks for token in chunk.greedy_next]
    assert len(logprobs) == n
    assert max(abs(a - b) for a, b in zip(logprobs, fresh.logprobs, strict=True)) <= 1e-4
    assert greedy == fresh.greedy_next
    assert (
        engine_pair.num_unfinished_requests() == 0
        or await server_loop.call(_wait_idle(engine_pair)) == 0
    )
