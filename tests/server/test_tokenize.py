"""GET /v1/models/{id}, POST /tokenize and POST /detokenize (vLLM's shapes)."""

from __future__ import annotations

import httpx
import pytest

from tests.server.test_errors import assert_error_shape
from wsd_engine.config import Role
from wsd_engine.templates import Message, MessageRole, render_prompt

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]


def post(server, path, body):
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=30)


def test_each_listed_model_can_be_retrieved(scripted_client):
    listed = scripted_client.models.list().data
    for card in listed:
        retrieved = scripted_client.models.retrieve(card.id)
        assert retrieved.id == card.id and retrieved.object == "model"
        assert retrieved.model_extra["max_model_len"] == card.model_extra["max_model_len"]


def test_an_unknown_model_is_404(scripted_server):
    response = httpx.get(f"{scripted_server.base_url}/v1/models/no-such-model", timeout=10)
    assert response.status_code == 404
    assert_error_shape(response.json(), param="model", code="model_not_found")


@pytest.mark.parametrize("which", ["pilot", "base"])
def test_tokenize_a_prompt(scripted_server, scripted_engines, ids, which):
    tokenizer = getattr(scripted_engines, which).tokenizer
    body = {"model": ids[which], "prompt": "Hello world", "return_token_strs": True}
    result = post(scripted_server, "/tokenize", body).json()
    expected = tokenizer.encode("Hello world", add_special_tokens=True)
    assert result["tokens"] == expected and result["count"] == len(expected)
    assert result["max_model_len"] == 2048
    assert result["token_strs"] == tokenizer.convert_ids_to_tokens(expected)
    plain = post(scripted_server, "/tokenize", {**body, "add_special_tokens": False}).json()
    assert plain["tokens"] == tokenizer.encode("Hello world", add_special_tokens=False)
    assert post(scripted_server, "/tokenize", {"prompt": "Hi"}).json()["token_strs"] is None


@pytest.mark.parametrize("which", ["wsd", "pilot", "base"])
def test_tokenized_messages_are_what_usage_counts(scripted_server, scripted_client, ids, which):
    result = post(scripted_server, "/tokenize", {"model": ids[which], "messages": MESSAGES})
    assert result.status_code == 200
    answer = scripted_client.chat.completions.create(
        model=ids[which], messages=MESSAGES, max_tokens=2
    )
    assert result.json()["count"] == answer.usage.prompt_tokens


def test_the_wsd_id_tokenizes_as_the_base_model(scripted_server, scripted_engines, embedded_config):
    messages = [Message(MessageRole.SYSTEM, "Be brief."), Message(MessageRole.USER, "Hi there")]
    template = embedded_config.template_for(Role.BASE)
    expected = render_prompt(scripted_engines.base.tokenizer, messages, template)
    default = post(scripted_server, "/tokenize", {"messages": MESSAGES}).json()
    assert default["tokens"] == expected.token_ids


@pytest.mark.parametrize("which", ["wsd", "pilot", "base"])
def test_detokenize_reverses_tokenize(scripted_server, ids, which):
    tokens = post(scripted_server, "/tokenize", {"model": ids[which], "prompt": "Good day"})
    text = post(scripted_server, "/detokenize", {"model": ids[which], **tokens.json()})
    assert text.status_code == 200 and text.json()["prompt"].endswith("Good day")


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/tokenize", {"prompt": "a", "messages": MESSAGES}, None),
        ("/tokenize", {}, None),
        (
            "/tokenize",
            {"messages": MESSAGES, "add_generation_prompt": False},
            "add_generation_prompt",
        ),
        (
            "/tokenize",
            {"messages": MESSAGES, "continue_final_message": True},
            "continue_final_message",
        ),
        ("/tokenize", {"messages": MESSAGES, "add_special_tokens": True}, "add_special_tokens"),
        ("/detokenize", {"tokens": [1, 10**9]}, "tokens"),
        ("/detokenize", {"tokens": [-1]}, "tokens.0"),
    ],
)
def test_bad_tokenizer_requests_are_400(scripted_server, path, body, param):
    response = post(scripted_server, path, body)
    assert response.status_code == 400
    assert_error_shape(response.json(), param=param)


def test_unknown_model_on_tokenize_is_404(scripted_server):
    response = post(scripted_server, "/tokenize", {"model": "nope", "prompt": "a"})
    assert response.status_code == 404
    assert_error_shape(response.json(), param="model", code="model_not_found")
