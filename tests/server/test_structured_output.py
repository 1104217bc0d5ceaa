"""`response_format`: the pilot and base model ids answer in JSON (any object, or following a
schema) through vLLM's structured outputs; `wsd` refuses it for now; a malformed format or a
schema the engine cannot compile is a 400 before any response starts."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest

from tests.server.test_errors import assert_error_shape
from wsd_engine.engines.engine import StructuredKind, StructuredOutput

Q = [{"role": "user", "content": "Describe a person in JSON."}]
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
JSON_OBJECT = {"type": "json_object"}


def post(server, path, body):
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=30)


def chat(model, response_format, **fields):
    return {"model": model, "messages": Q, "max_tokens": 8, "response_format": response_format,
            **fields}  # fmt: skip


def last_structured(engine):
    return engine.generate_calls[-1].sampling.structured


# -- fast: scripted engines ------------------------------------------------------------------


@pytest.mark.parametrize("which", ["pilot", "base"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_schema_reaches_the_engine(scripted_server, scripted_engines, ids, which, stream):
    spec = {**JSON_SCHEMA["json_schema"], "strict": True, "description": "a person"}
    body = chat(ids[which], {"type": "json_schema", "json_schema": spec}, stream=stream, n=2)
    assert post(scripted_server, "/v1/chat/completions", body).status_code == 200
    structured = last_structured(getattr(scripted_engines, which))
    assert structured.kind is StructuredKind.JSON_SCHEMA
    assert json.loads(structured.schema) == PERSON


@pytest.mark.parametrize("which", ["pilot", "base"])
def test_a_json_object_reaches_the_engine(scripted_server, scripted_engines, ids, which):
    response = post(scripted_server, "/v1/chat/completions", chat(ids[which], JSON_OBJECT))
    assert response.status_code == 200
    assert last_structured(getattr(scripted_engines, which)) == StructuredOutput(
        StructuredKind.JSON_OBJECT
    )


@pytest.mark.parametrize("which", ["wsd", "pilot", "base"])
def test_text_constrains_nothing(scripted_server, scripted_engines, ids, which):
    scripted_engines.base.probability = lambda i: 0.99  # wsd: the base writes too
    body = chat(ids[which], {"type": "text"}, wsd={"window": 2})
    assert post(scripted_server, "/v1/chat/completions", body).status_code == 200
    engine = scripted_engines.pilot if which == "pilot" else scripted_engines.base
    assert last_structured(engine) is None


@pytest.mark.parametrize("response_format", [JSON_OBJECT, JSON_SCHEMA])
def test_completions_take_a_response_format(scripted_server, scripted_engines, ids,
                                            response_format):  # fmt: skip
    body = {"model": ids["base"], "prompt": "A person:", "max_tokens": 8,
            "response_format": response_format}  # fmt: skip
    assert post(scripted_server, "/v1/completions", body).status_code == 200
    assert last_structured(scripted_engines.base).kind.value == response_format["type"]


@pytest.mark.parametrize("response_format", [JSON_OBJECT, JSON_SCHEMA])
@pytest.mark.parametrize("stream", [False, True])
def test_wsd_refuses_structured_output(scripted_server, ids, response_format, stream):
    body = chat(ids["wsd"], response_format, stream=stream)
    response = post(scripted_server, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert_error_shape(response.json(), param="response_format", code="unsupported_value")
    message = response.json()["error"]["message"]
    assert "wsd" in message and "pilot or base" in message


def person_format(**spec):
    return {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, **spec}}


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        ("json", "response_format"),
        ({}, "response_format.type"),
        ({"type": "xml"}, "response_format.type"),
        ({"type": "structural_tag", "format": {}}, "response_format.type"),
        ({"type": "json_schema"}, "response_format"),
        ({"type": "json_object", "json_schema": {"name": "p", "schema": {}}}, "response_format"),
        (
            {"type": "json_schema", "json_schema": {"schema": PERSON}},
            "response_format.json_schema.name",
        ),
        (person_format(name="a person"), "response_format.json_schema.name"),
        (person_format(name="x" * 65), "response_format.json_schema.name"),
        (person_format(schema=True), "response_format.json_schema.schema"),
        (person_format(schema=None), "response_format.json_schema.schema"),
        (person_format(strict="maybe"), "response_format.json_schema.strict"),
    ],
)
@pytest.mark.parametrize("which", ["wsd", "pilot"])
def test_a_malformed_response_format_is_400(scripted_server, ids, which, response_format, param):
    body = chat(ids[which], response_format, stream=True)
    response = post(scripted_server, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert_error_shape(response.json(), param=param)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "wizard"},
        {"type": "object", "required": "name"},
        {"type": "string", "pattern": "(("},
        json.loads('{"items": ' * 300 + "{}" + "}" * 300),  # vLLM: at most 64 levels
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_schema_the_engine_refuses_is_400_before_the_stream(
    scripted_server, scripted_engines, ids, schema, stream
):
    calls = len(scripted_engines.pilot.generate_calls)
    body = chat(ids["pilot"], person_format(schema=schema), stream=stream)
    response = post(scripted_server, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert_error_shape(response.json(), param="response_format")
    assert len(scripted_engines.pilot.generate_calls) == calls


def test_tools_are_refused_with_the_reason(scripted_server, ids):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    response = post(scripted_server, "/v1/chat/completions", chat(ids["pilot"], None, tools=tools))
    assert response.status_code == 400
    assert_error_shape(response.json(), param="tools", code="unsupported_field")
    assert "tool parser" in response.json()["error"]["message"]


# -- slow: the real engines ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("which", ["pilot", "base"])
def test_a_real_answer_follows_its_schema(client, ids, which):
    answer = client.chat.completions.create(
        model=ids[which],
        messages=[{"role": "user", "content": "Give the name and age of a famous person."}],
        max_tokens=48,
        temperature=0,
        response_format=JSON_SCHEMA,  # type: ignore[arg-type]
    )
    choice = answer.choices[0]
    print(f"{which}: {choice.message.content!r} ({answer.usage.completion_tokens} tokens)")
    assert choice.finish_reason == "stop"
    jsonschema.validate(json.loads(choice.message.content), PERSON)


@pytest.mark.slow
def test_a_real_answer_is_a_json_object(client, ids):
    answer = client.completions.create(
        model=ids["base"],
        prompt="A person, as JSON:",
        max_tokens=48,
        temperature=0,
        extra_body={"response_format": JSON_OBJECT},
    )
    print(f"base, json_object: {answer.choices[0].text!r}")
    assert isinstance(json.loads(answer.choices[0].text), dict)


@pytest.mark.slow
@pytest.mark.parametrize("schema", [{"type": "wizard"}, {"enum": []}])
def test_a_schema_vllm_refuses_is_400_before_the_stream(live_server, ids, schema):
    body = chat(ids["base"], person_format(schema=schema), stream=True)
    response = post(live_server, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert_error_shape(response.json(), param="response_format")
    print(response.json()["error"]["message"])
