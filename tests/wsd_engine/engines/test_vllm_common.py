"""What the project knows about vLLM: engine settings, sampling fields, the scoring recipe."""

from __future__ import annotations

import json

import pytest

from wsd_engine.engines.engine import (
    EngineRequestInvalid,
    FinishReason,
    SamplingSettings,
    StructuredKind,
    StructuredOutput,
)
from wsd_engine.engines.vllm_common import (
    CACHED_PASS_ATTEMPTS,
    PassNotSent,
    ScoringPass,
    engine_settings,
    finish_reason,
    sampling_fields,
    score,
)


def test_every_sampling_field_is_given():
    settings = SamplingSettings(
        temperature=0.7, top_p=0.9, seed=5, num_logprobs=2,
        ignore_eos=True, presence_penalty=0.5, frequency_penalty=-0.5, repetition_penalty=1.1,
        top_k=0, min_p=0.05, logit_bias=((7, 2.0),), stop_token_ids=(3,), min_tokens=2,
        structured=StructuredOutput(StructuredKind.JSON_SCHEMA, json.dumps({"type": "object"})),
    )  # fmt: skip
    assert sampling_fields(settings, 9) == {
        "max_tokens": 9, "temperature": 0.7, "top_p": 0.9, "top_k": 0, "min_p": 0.05,
        "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
        "ignore_eos": True, "min_tokens": 2, "stop_token_ids": [3], "seed": 5,
        "logprobs": 2, "logit_bias": {7: 2.0},
        "structured_outputs": {"json": {"type": "object"}},
    }  # fmt: skip
    plain = sampling_fields(SamplingSettings(), 1)
    assert plain["seed"] is None and plain["logit_bias"] is None
    assert plain["structured_outputs"] is None
    as_object = SamplingSettings(structured=StructuredOutput(StructuredKind.JSON_OBJECT))
    assert sampling_fields(as_object, 1)["structured_outputs"] == {"json_object": True}


def test_finish_reasons():
    assert finish_reason("stop") is FinishReason.STOP
    assert finish_reason("length") is FinishReason.LENGTH
    assert finish_reason("abort") is finish_reason(None) is FinishReason.ABORT


def test_engine_settings_render_as_flags(embedded_config):
    base = embedded_config.base
    cpu = engine_settings(base, "/models/base", on_cpu=True)
    flags = cpu.server_flags()
    assert flags[:2] == ["--model", "/models/base"]
    assert flags[flags.index("--served-model-name") + 1] == base.served_model_name
    assert flags[flags.index("--kv-cache-memory-bytes") + 1] == str(
        int(base.kv_cache_space_gib * 2**30)
    )
    assert "--enforce-eager" in flags and "--enable-prefix-caching" in flags
    assert cpu.env["VLLM_CPU_OMP_THREADS_BIND"] == base.cpu_threads_bind
    off = base.model_copy(update={"enable_prefix_caching": False, "enforce_eager": False})
    flags = engine_settings(off, "/m", on_cpu=True).server_flags()
    assert "--no-enable-prefix-caching" in flags and "--no-enforce-eager" in flags
    gpu = engine_settings(base, "/m", on_cpu=False)
    assert gpu.args["gpu_memory_utilization"] == base.gpu_memory_utilization
    assert "kv_cache_memory_bytes" not in gpu.args and gpu.env == {}


# -- the scoring recipe, on a scripted pass --------------------------------------------------


class Passes:
    """Scoring passes that answer from a table: each position's row gives the token at that
    position log-probability -position/10 (rank 2) and token 0 rank 1."""

    def __init__(self, cached: list[int | None], unsent: int = 0) -> None:
        self.cached = cached  # cached-token count each cached pass reports, in turn
        self.unsent = unsent  # cached passes that fail to be sent first
        self.calls: list[tuple[str, bool]] = []

    async def __call__(
        self, all_ids: list[int], start: int, pass_id: str, read_cache: bool
    ) -> ScoringPass:
        self.calls.append((pass_id, read_cache))
        if read_cache and self.unsent:
            self.unsent -= 1
            raise PassNotSent("NaN")
        rows = [{all_ids[p]: (-p / 10, 2), 0: (-0.01, 1)} for p in range(start, len(all_ids))]
        cached = self.cached.pop(0) if read_cache else 0
        return ScoringPass(rows, next_token=99, num_cached_tokens=cached)


async def test_a_pass_whose_cache_stops_before_the_tokens_is_used():
    passes = Passes(cached=[2])
    scores = await score(passes, [1, 2, 3], [7, 8], "r", reads_cache=True)
    assert scores.logprobs == [-0.3, -0.4]
    assert scores.greedy_next == [0, 99]
    assert passes.calls == [("r", True)]


@pytest.mark.parametrize("cached", [3, None])
async def test_a_cache_over_the_whole_prefix_or_no_count_means_a_pass_without_it(cached):
    passes = Passes(cached=[cached])
    scores = await score(passes, [1, 2, 3], [7], "r", reads_cache=True)
    assert scores.logprobs == [-0.3]
    assert passes.calls == [("r", True), ("r-uncached", False)]


async def test_a_pass_not_sent_is_tried_again_then_scored_without_the_cache():
    passes = Passes(cached=[1], unsent=1)
    await score(passes, [1, 2], [7], "r", reads_cache=True)
    assert passes.calls == [("r", True), ("r-retry-1", True)]
    never = Passes(cached=[], unsent=CACHED_PASS_ATTEMPTS)
    await score(never, [1, 2], [7], "r", reads_cache=True)
    assert [read for _, read in never.calls] == [True] * CACHED_PASS_ATTEMPTS + [False]


async def test_guards():
    passes = Passes(cached=[])
    assert (await score(passes, [1], [], "r", reads_cache=True)).logprobs == []
    with pytest.raises(EngineRequestInvalid):
        await score(passes, [], [5], "r", reads_cache=True)
    await score(passes, [1], [5], "r", reads_cache=False)
    assert passes.calls == [("r-uncached", False)]
