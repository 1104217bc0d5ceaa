"""The remote adapter's wire formats (pure translation; the real servers are in tests/remote)."""

from __future__ import annotations

import json

import pytest

from wsd_engine.config import ModelConfig
from wsd_engine.engines.protocol import (
    EngineRequestInvalid,
    EngineUnavailable,
    FinishReason,
    SamplingSettings,
    StructuredKind,
    StructuredOutput,
)
from wsd_engine.engines.remote_wire import (
    _error_from_body,
    completion_fields,
    delta_from_chunk,
    scores_from_rows,
    stopped_at_strings,
)
from wsd_engine.engines.vllm_server import as_remote, vllm_server_command


def test_every_sampling_field_is_sent():
    settings = SamplingSettings(
        max_tokens=9, temperature=0.7, top_p=0.9, seed=5, stop=("\n",), num_logprobs=2,
        ignore_eos=True, presence_penalty=0.5, frequency_penalty=-0.5, repetition_penalty=1.1,
        top_k=0, min_p=0.05, logit_bias=((7, 2.0),), stop_token_ids=(3,), min_tokens=2,
        structured=StructuredOutput(StructuredKind.JSON_SCHEMA, json.dumps({"type": "object"})),
    )  # fmt: skip
    fields = completion_fields(settings)
    assert fields == {
        "max_tokens": 9, "temperature": 0.7, "top_p": 0.9, "top_k": -1, "min_p": 0.05,
        "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
        "ignore_eos": True, "min_tokens": 2, "stop_token_ids": [3], "seed": 5,
        "logprobs": 2, "logit_bias": {"7": 2.0},
        "structured_outputs": {"json": {"type": "object"}},
    }  # fmt: skip
    assert "seed" not in completion_fields(SamplingSettings(max_tokens=1))


def test_a_completion_chunk_becomes_a_delta_with_token_id_logprobs():
    chunk = {
        "text": " Paris", "finish_reason": "length", "token_ids": [12, 13],
        "logprobs": {
            "tokens": ["token_id:12", "token_id:13"], "token_logprobs": [-0.1, -2.0],
            "top_logprobs": [{"token_id:12": -0.1, "token_id:9": -3.0}, {"token_id:4": -0.5}],
        },
    }  # fmt: skip
    delta = delta_from_chunk(chunk)
    assert (delta.token_ids, delta.text, delta.finish_reason) == ([12, 13], " Paris",
                                                                  FinishReason.LENGTH)  # fmt: skip
    assert [entry.token_id for entry in delta.logprobs] == [12, 13]
    assert delta.logprobs[0].top == {12: -0.1, 9: -3.0}
    assert delta.logprobs[1].top == {4: -0.5, 13: -2.0}  # the chosen token is always there
    assert delta_from_chunk({"text": "", "finish_reason": None}).logprobs is None


def test_scores_read_the_rows_after_the_prefix():
    rows = [None, {"5": {"logprob": -1.0, "rank": 1}},
            {"6": {"logprob": -0.5, "rank": 2}, "8": {"logprob": -0.2, "rank": 1}},
            {"7": {"logprob": -0.1, "rank": 1}}]  # fmt: skip
    scores = scores_from_rows({"prompt_logprobs": rows, "next_token": 42}, [6, 7], start=2)
    assert scores.logprobs == [-0.5, -0.1]
    assert scores.greedy_next == [7, 42]


def test_server_errors_map_onto_the_engine_protocol():
    invalid = _error_from_body(
        {"error": {"message": "bad", "param": "logit_bias", "code": 400}}, "m", 500
    )
    assert isinstance(invalid, EngineRequestInvalid) and invalid.param == "logit_bias"
    assert isinstance(_error_from_body({"message": "x"}, "m", 503), EngineUnavailable)


def test_a_local_model_as_a_remote_one(embedded_config):
    base = embedded_config.base
    remote = as_remote(base, "http://127.0.0.1:8202")
    assert remote.is_remote and remote.tokenizer == base.embedded.value
    assert remote.served_model_name == base.served_model_name
    command = vllm_server_command(base, "/models/base", port=8202)
    argv = command.argv
    assert argv[argv.index("--served-model-name") + 1] == base.served_model_name
    assert {"--enable-scale-out", "--enable-prompt-tokens-details"} <= set(argv)
    assert argv[argv.index("--kv-cache-memory-bytes") + 1] == str(
        int(base.kv_cache_space_gib * 2**30)
    )
    assert command.env["VLLM_CPU_OMP_THREADS_BIND"] == base.cpu_threads_bind


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"url": "http://h:1"}, "'url' needs 'tokenizer'"),
        ({"url": "http://h:1", "tokenizer": "t", "path": "/m"}, "exactly one"),
        ({"path": "/m", "tokenizer": "t"}, "'tokenizer' goes with 'url'"),
        ({"url": "h:1", "tokenizer": "t"}, "url"),
    ],
)
def test_remote_model_configs_are_checked(fields, problem):
    with pytest.raises(ValueError, match=problem):
        ModelConfig(served_model_name="m", **fields)


def test_stop_strings_are_applied_to_the_streamed_text():
    from wsd_engine.engines.protocol import GenerationDelta
    from wsd_engine.stop_strings import StopStringFilter

    stops = StopStringFilter(("\n[User]", "###"))
    pieces = ["Paris is", " nice.\n", "[Us", "er] more"]
    out = [stopped_at_strings(GenerationDelta([i], p), stops) for i, p in enumerate(pieces)]
    assert [d.text for d in out] == ["Paris is", " nice.", "", ""]
    assert out[-1].finish_reason is FinishReason.STOP and out[-2].finish_reason is None
    free = StopStringFilter(("###",))
    last = stopped_at_strings(GenerationDelta([1], "a #", finish_reason=FinishReason.LENGTH), free)
    assert last.text == "a #"  # held-back text is released at the end
