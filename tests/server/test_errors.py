"""Client mistakes come back as OpenAI error objects with the right status, never a 500."""

from __future__ import annotations

import httpx
import openai
import pytest

pytestmark = pytest.mark.slow

Q = [{"role": "user", "content": "Hi"}]


def assert_error_shape(body, param=None, code=None):
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, None),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -1}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": 0}, "top_p"),
        ({"n": 0}, "n"),
        ({"n": 1000}, "n"),
        ({"stream_options": {"include_usage": True}}, None),
        ({"top_logprobs": 50, "logprobs": True}, "top_logprobs"),
    ],
)
def test_bad_requests_are_400_with_the_sdk_error(client, ids, overrides, param):
    kwargs = {"model": ids["wsd"], "messages": Q, "max_tokens": 4, **overrides}
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(**kwargs)
    assert raised.value.status_code == 400
    assert_error_shape(raised.value.body and {"error": raised.value.body}, param=param)


def test_missing_messages_is_400(live_server, ids):
    response = httpx.post(
        f"{live_server.base_url}/v1/chat/completions", json={"model": ids["wsd"]}, timeout=30
    )
    assert response.status_code == 400
    assert_error_shape(response.json(), param="messages")


def test_malformed_json_is_400(live_server):
    response = httpx.post(
        f"{live_server.base_url}/v1/chat/completions",
        content=b'{"model": "wsd", "messages": [',
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400
    assert_error_shape(response.json())


def test_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="no-such-model", messages=Q, max_tokens=4)
    assert raised.value.body["code"] == "model_not_found"
    assert raised.value.body["param"] == "model"


@pytest.mark.parametrize("which", ["wsd", "pilot", "base"])
def test_context_length_exceeded(client, ids, which):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=ids[which], messages=Q, max_tokens=5000)
    assert raised.value.body["code"] == "context_length_exceeded"
    assert "maximum context length is 2048 tokens" in raised.value.body["message"]


def test_long_prompt_exceeds_context(client, ids):
    long = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=ids["wsd"], messages=long)
    assert raised.value.body["code"] == "context_length_exceeded"


def test_raw_completions_refuse_the_wsd_id(client, ids):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=ids["wsd"], prompt="Hello", max_tokens=4)


def test_server_still_serves_after_errors(client, ids):
    response = client.chat.completions.create(model=ids["pilot"], messages=Q, max_tokens=2)
    assert response.choices[0].finish_reason in ("stop", "length")
