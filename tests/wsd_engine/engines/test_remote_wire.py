"""The remote adapter's wire formats (pure translation; the real servers are in tests/remote)."""

from __future__ import annotations

import pytest

from wsd_engine.config import ModelConfig
from wsd_engine.engines.engine import EngineRequestInvalid, EngineUnavailable, FinishReason
from wsd_engine.engines.remote_wire import _error_from_body, delta_from_chunk, scoring_pass
from wsd_engine.engines.vllm_server import as_remote, vllm_server_command


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


def test_a_scoring_response_becomes_the_rows_after_the_prefix():
    rows = [None, {"5": {"logprob": -1.0, "rank": 1}},
            {"6": {"logprob": -0.5, "rank": 2}, "8": {"logprob": -0.2, "rank": 1}},
            {"7": {"logprob": -0.1, "rank": 1}}]  # fmt: skip
    payload = {"prompt_logprobs": rows, "usage": {"prompt_tokens_details": {"cached_tokens": 1}}}
    scored = scoring_pass(payload, start=2, next_token=42)
    assert scored.rows == [{6: (-0.5, 2), 8: (-0.2, 1)}, {7: (-0.1, 1)}]
    assert (scored.next_token, scored.num_cached_tokens) == (42, 1)
    assert scoring_pass({"prompt_logprobs": rows}, 2, 42).num_cached_tokens is None


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
