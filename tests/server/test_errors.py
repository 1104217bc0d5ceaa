"""Every client mistake is an OpenAI error object with the right status, never a 500; an
engine that is gone is a 503; a failure after a stream started is an in-stream error line."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest

Q = [{"role": "user", "content": "Hi"}]


def assert_error_shape(body, param=None, code=None):
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and error["type"]
    assert error["param"] == param
    assert error["code"] == code


def post(server, path, body):
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=30)


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -1}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": 0}, "top_p"),
        ({"n": 0}, "n"),
        ({"n": 17}, "n"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ({"top_logprobs": 2}, None),
        ({"extra_body": {"wsd": {"threshold": 1.5}}}, "wsd.threshold"),
        ({"extra_body": {"wsd": {"window": 0}}}, "wsd.window"),
        ({"stop": [""]}, "stop"),
        ({"stop": ""}, "stop"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": "x" * 1001}, "stop"),
        ({"seed": 2**70}, "seed"),
        ({"seed": -(2**63) - 1}, "seed"),
        ({"seed": 2**63 - 1, "n": 2}, None),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("which", ["wsd", "pilot"])
def test_bad_chat_requests_are_400_naming_the_field(
    scripted_client, ids, which, stream, overrides, param
):
    kwargs = {"model": ids[which], "messages": Q, "max_tokens": 4, "stream": stream, **overrides}
    with pytest.raises(openai.BadRequestError) as raised:
        scripted_client.chat.completions.create(**kwargs)
    assert raised.value.status_code == 400
    assert_error_shape({"error": raised.value.body}, param=param)


def test_stream_options_without_stream_are_400(scripted_client, ids):
    with pytest.raises(openai.BadRequestError) as raised:
        scripted_client.chat.completions.create(
            model=ids["pilot"], messages=Q, stream_options={"include_usage": True}
        )
    assert_error_shape({"error": raised.value.body}, param=None)


def test_the_largest_seed_is_served(scripted_client, ids):
    answer = scripted_client.chat.completions.create(
        model=ids["pilot"], messages=Q, max_tokens=4, seed=2**63 - 1
    )
    assert answer.choices[0].message.content


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "model"),
        ({"model": "wsd"}, "messages"),
        ({"model": "wsd", "messages": "hi"}, "messages"),
    ],
)
def test_missing_or_mistyped_fields_are_400(scripted_server, body, param):
    response = post(scripted_server, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert_error_shape(response.json(), param=param)


def test_malformed_json_is_400(scripted_server):
    response = httpx.post(
        f"{scripted_server.base_url}/v1/chat/completions",
        content=b'{"model": "wsd", "messages": [',
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400
    assert_error_shape(response.json())


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_unknown_model_is_404_model_not_found(scripted_server, path):
    body = {"model": "no-such-model", "messages": Q, "prompt": "Hi", "max_tokens": 4}
    response = post(scripted_server, path, body)
    assert response.status_code == 404
    assert_error_shape(response.json(), param="model", code="model_not_found")
    assert "Available models: wsd" in response.json()["error"]["message"]


@pytest.mark.parametrize("which", ["wsd", "pilot", "base"])
def test_max_tokens_beyond_the_context(scripted_client, ids, which):
    with pytest.raises(openai.BadRequestError) as raised:
        scripted_client.chat.completions.create(model=ids[which], messages=Q, max_tokens=5000)
    assert_error_shape(
        {"error": raised.value.body}, param="messages", code="context_length_exceeded"
    )
    assert "maximum context length is 2048 tokens" in raised.value.body["message"]


@pytest.mark.parametrize("which", ["wsd", "base"])
def test_prompt_beyond_the_context(scripted_client, ids, which):
    long = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(openai.BadRequestError) as raised:
        scripted_client.chat.completions.create(model=ids[which], messages=long)
    assert raised.value.body["code"] == "context_length_exceeded"
    assert "resulted in" in raised.value.body["message"]


@pytest.mark.parametrize(
    ("overrides", "param", "code"),
    [
        ({"model": "wsd"}, "model", "model_not_supported"),
        ({"echo": True}, "echo", None),
        ({"prompt": ""}, "prompt", None),
        ({"prompt": "word " * 3000}, "prompt", "context_length_exceeded"),
        ({"logprobs": 6}, "logprobs", None),
        ({"prompt": ["Hello", ""]}, "prompt", None),
        ({"prompt": [[1, 2], []]}, "prompt", None),
        ({"prompt": [1, 10**9]}, "prompt", None),
        ({"prompt": [-1]}, "prompt", None),
        ({"stop": [""]}, "stop", None),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", None),
        ({"seed": 2**64}, "seed", None),
        ({"max_tokens": 0}, "max_tokens", None),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_bad_completion_requests_are_400(scripted_server, ids, overrides, param, code, stream):
    body = {"model": ids["base"], "prompt": "Hello", "max_tokens": 4, "stream": stream}
    body.update(overrides)
    response = post(scripted_server, "/v1/completions", body)
    assert response.status_code == 400
    assert_error_shape(response.json(), param=param, code=code)


def test_errors_are_counted_and_the_connection_is_kept(scripted_server, ids):
    with httpx.Client(base_url=scripted_server.base_url, timeout=30) as http:
        for _ in range(3):
            bad = http.post("/v1/chat/completions", json={"model": ids["wsd"], "messages": []})
            assert bad.status_code == 400
        good = http.post(
            "/v1/chat/completions", json={"model": ids["pilot"], "messages": Q, "max_tokens": 2}
        )
        assert good.status_code == 200
        metrics = http.get("/metrics").text
    assert f'wsd_request_errors_total{{model_name="{ids["wsd"]}",status="400"}}' in metrics


@pytest.mark.parametrize("which", ["wsd", "base"])
def test_an_engine_that_is_gone_is_503(own_scripted_server, ids, which):
    died = threading.Event()
    server = own_scripted_server(on_engine_death=died.set)
    server.engines.base.is_dead = True
    response = post(server, "/v1/chat/completions", {"model": ids[which], "messages": Q})
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "service_unavailable"
    health = httpx.get(f"{server.base_url}/health", timeout=10)
    assert health.status_code == 503 and "died" in health.json()["detail"]
    assert died.wait(5)


@pytest.mark.parametrize("which", ["wsd", "pilot"])
def test_a_failure_mid_stream_is_an_error_line_then_done(
    scripted_server, scripted_engines, ids, which
):
    scripted_engines.pilot.fail_after_tokens = 8
    body = {"model": ids[which], "messages": Q, "max_tokens": 64, "stream": True}
    with httpx.stream(
        "POST", f"{scripted_server.base_url}/v1/chat/completions", json=body, timeout=30
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2].removeprefix("data: "))
    assert_error_shape(error)
    assert error["error"]["type"] == "server_error"
    assert "scripted failure" in error["error"]["message"]
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-2]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)


def test_an_engine_refusal_is_400_naming_the_engines_parameter():
    from server.errors import to_openai_error
    from wsd_engine.engines.engine import EngineRequestInvalid

    error = to_openai_error(EngineRequestInvalid("base: temperature must be >= 0", "temperature"))
    assert error.status == 400 and error.param == "temperature"
    assert_error_shape(error.body(), param="temperature")


REFUSED_FIELDS = [
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ("tool_choice", "auto"),
    ("audio", {"voice": "alloy", "format": "wav"}),
    ("modalities", ["text", "audio"]),
    ("prediction", {"type": "content", "content": "x"}),
    ("functions", [{"name": "f"}]),
    ("reasoning_effort", "low"),
    ("web_search_options", {}),
    ("something_new", 1),
]


@pytest.mark.parametrize(("field", "value"), REFUSED_FIELDS)
@pytest.mark.parametrize("stream", [False, True])
def test_fields_the_server_does_not_implement_are_refused(
    scripted_server, ids, field, value, stream
):
    body = {"model": ids["wsd"], "messages": Q, "max_tokens": 4, "stream": stream, field: value}
    response = post(scripted_server, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert_error_shape(response.json(), param=field, code="unsupported_field")


@pytest.mark.parametrize("field", ["suffix", "best_of"])
def test_completion_fields_the_server_does_not_implement_are_refused(scripted_server, ids, field):
    body = {"model": ids["base"], "prompt": "Hi", "max_tokens": 4, field: 2}
    response = post(scripted_server, "/v1/completions", body)
    assert response.status_code == 400
    assert_error_shape(response.json(), param=field, code="unsupported_field")


def test_informational_and_neutral_fields_are_accepted(scripted_client, ids):
    answer = scripted_client.chat.completions.create(
        model=ids["wsd"],
        messages=Q,
        max_tokens=4,
        user="u-1",
        metadata={"team": "a"},
        store=False,
        service_tier="auto",
        parallel_tool_calls=False,
        presence_penalty=0,
        frequency_penalty=0,
        response_format={"type": "text"},
        tool_choice="none",
    )
    assert answer.choices[0].message.content
