"""/v1/completions on scripted engines: prompts as text or tokens, batches, n, usage, logprobs."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.server.conftest import BASE_TEXT


def complete(server, **body):
    response = httpx.post(f"{server.base_url}/v1/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_text_and_token_prompts(scripted_server, scripted_engines, ids):
    tokenizer = scripted_engines.base.tokenizer
    by_text = complete(scripted_server, model=ids["base"], prompt="The city", max_tokens=5)
    assert by_text["object"] == "text_completion" and by_text["id"].startswith("cmpl-")
    token_ids = tokenizer.encode("The city")
    by_ids = complete(scripted_server, model=ids["base"], prompt=token_ids, max_tokens=5)
    assert by_ids["choices"][0]["text"] == by_text["choices"][0]["text"]
    assert by_ids["usage"]["prompt_tokens"] == len(token_ids) == by_text["usage"]["prompt_tokens"]
    assert by_text["usage"]["completion_tokens"] == 5
    assert by_text["choices"][0]["finish_reason"] == "length"
    assert BASE_TEXT.startswith(by_text["choices"][0]["text"])


def test_default_max_tokens_is_16(scripted_server, ids):
    response = complete(scripted_server, model=ids["pilot"], prompt="Hello")
    assert response["usage"]["completion_tokens"] == 16


def test_batch_of_prompts_with_n(scripted_server, ids):
    response = complete(
        scripted_server, model=ids["pilot"], prompt=["Hello", "A longer second prompt"],
        max_tokens=4, n=2,
    )  # fmt: skip
    assert [c["index"] for c in response["choices"]] == [0, 1, 2, 3]
    usage = response["usage"]
    single = [
        complete(scripted_server, model=ids["pilot"], prompt=p, max_tokens=4)["usage"]
        for p in ("Hello", "A longer second prompt")
    ]
    # each prompt counts once, each of the four choices' tokens count
    assert usage["prompt_tokens"] == sum(u["prompt_tokens"] for u in single)
    assert usage["completion_tokens"] == 16


@pytest.mark.parametrize("streamed", [False, True])
def test_logprobs_in_openai_completions_format(scripted_server, ids, streamed):
    body = dict(model=ids["base"], prompt="The city", max_tokens=5, logprobs=2)
    if streamed:
        with httpx.stream(
            "POST", f"{scripted_server.base_url}/v1/completions",
            json={**body, "stream": True}, timeout=30,
        ) as response:  # fmt: skip
            lines = [line for line in response.iter_lines() if line]
        chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
        text = "".join(c["choices"][0]["text"] for c in chunks)
        tokens = [t for c in chunks if c["choices"][0]["logprobs"]
                  for t in c["choices"][0]["logprobs"]["tokens"]]  # fmt: skip
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    else:
        choice = complete(scripted_server, **body)["choices"][0]
        logprobs, text = choice["logprobs"], choice["text"]
        tokens = logprobs["tokens"]
        assert len(logprobs["token_logprobs"]) == len(tokens) == 5
        assert logprobs["text_offset"] == [sum(map(len, tokens[:i])) for i in range(5)]
        assert all(1 <= len(top) <= 2 for top in logprobs["top_logprobs"])
    assert "".join(tokens) == text


def test_stream_framing_with_usage(scripted_server, ids):
    body = dict(
        model=ids["pilot"], prompt="Hi", max_tokens=6, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    with httpx.stream(
        "POST", f"{scripted_server.base_url}/v1/completions", json=body, timeout=30
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6
    assert all(c["usage"] is None for c in chunks[:-1])
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]][-1] == "length"
