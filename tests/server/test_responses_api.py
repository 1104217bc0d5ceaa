"""/v1/responses with the real OpenAI SDK, on scripted engines (and the real ones where the
assertions hold on both): every model id, streamed and not, stored responses, refusals."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.server.conftest import BASE_TEXT, PILOT_TEXT, wait_idle

EVENT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
CLOSING = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


def raw_events(server, body):
    """(event line, data) of each event of a streamed response."""
    events = []
    url = f"{server.base_url}/v1/responses"
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=120) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                assert data["type"] == kind
                events.append(data)
    return events


@pytest.mark.parametrize("which", ["wsd", "pilot", "base"])
def test_a_response_for_every_model_id(any_client, ids, which):
    response = any_client.responses.create(
        model=ids[which], input="What is the capital of France?", max_output_tokens=200,
        temperature=0,
    )  # fmt: skip
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == ids[which]
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_") and message.status == "completed"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    assert response.output_text and response.output_text == message.content[0].text
    usage = response.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert response.temperature == 0 and response.top_p == 1.0
    wsd = (response.model_extra or {}).get("wsd")
    assert (wsd is not None) == (which == "wsd")


@pytest.mark.parametrize("which", ["wsd", "pilot", "base"])
def test_the_event_stream(any_server, ids, which):
    body = {"model": ids[which], "input": "Tell me about Paris.", "max_output_tokens": 200,
            "temperature": 0}  # fmt: skip
    events = raw_events(any_server, body)
    kinds = [event["type"] for event in events]
    assert kinds[:4] == EVENT_ORDER
    deltas = [event for event in events if event["type"] == "response.output_text.delta"]
    assert deltas and kinds[4 : 4 + len(deltas)] == ["response.output_text.delta"] * len(deltas)
    # a real model may write until max_output_tokens: then the stream ends incomplete
    end = "response.completed" if events[-1]["response"]["status"] == "completed" else (
        "response.incomplete"
    )  # fmt: skip
    assert kinds[4 + len(deltas) :] == [*CLOSING, end]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    final = events[-1]["response"]
    text = "".join(event["delta"] for event in deltas)
    assert final["output"][0]["content"][0]["text"] == text
    assert events[-4]["text"] == text  # output_text.done
    assert final["usage"]["output_tokens"] > 0
    assert final["status"] == "completed" or final["incomplete_details"] == {
        "reason": "max_output_tokens"
    }
    assert {event["response"]["id"] for event in events if "response" in event} == {final["id"]}
    item_id = final["output"][0]["id"]
    assert {event["item_id"] for event in deltas} == {item_id}


def test_the_sdk_streams_both_ways(any_client, ids):
    kwargs = dict(model=ids["wsd"], input="Tell me about Paris.", max_output_tokens=200,
                  temperature=0)  # fmt: skip
    plain = any_client.responses.create(**kwargs)
    text = "".join(
        event.delta
        for event in any_client.responses.create(**kwargs, stream=True)
        if event.type == "response.output_text.delta"
    )
    assert text == plain.output_text
    with any_client.responses.stream(**kwargs) as stream:
        events = list(stream)
    last = events[-1]
    assert last.type in ("response.completed", "response.incomplete")
    assert last.response.output_text == plain.output_text
    if last.type == "response.completed":  # the helper's final response needs a completed one
        assert stream.get_final_response().output_text == plain.output_text


@pytest.mark.parametrize("streamed", [False, True])
def test_max_output_tokens_makes_it_incomplete(scripted_server, ids, streamed):
    body = {"model": ids["pilot"], "input": "Hi", "max_output_tokens": 3}
    if streamed:
        events = raw_events(scripted_server, body)
        assert events[-1]["type"] == "response.incomplete"
        response = events[-1]["response"]
    else:
        response = httpx.post(f"{scripted_server.base_url}/v1/responses", json=body,
                              timeout=30).json()  # fmt: skip
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"
    assert response["usage"]["output_tokens"] == 3


def test_previous_response_id_carries_the_conversation(scripted_client, scripted_engines, ids):
    client, pilot = scripted_client, scripted_engines.pilot
    first = client.responses.create(
        model=ids["pilot"], input="First question?", instructions="Be brief.", max_output_tokens=5
    )
    second = client.responses.create(
        model=ids["pilot"], input="Second question?", previous_response_id=first.id,
        max_output_tokens=5,
    )  # fmt: skip
    third = client.responses.create(
        model=ids["pilot"], previous_response_id=second.id, max_output_tokens=5,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Third?"}]}],
    )  # fmt: skip
    assert third.previous_response_id == second.id
    prompt = pilot.tokenizer.decode(pilot.generate_calls[-1].prompt_token_ids)
    order = ["First question?", first.output_text, "Second question?", second.output_text,
             "Third?"]  # fmt: skip
    at = 0
    for part in order:  # the whole history, in order
        at = prompt.index(part, at) + len(part)
    assert "Be brief." not in prompt  # the first turn's instructions are not carried over


def test_stored_responses_retrieve_delete_and_input_items(scripted_client, ids):
    client = scripted_client
    created = client.responses.create(
        model=ids["base"], max_output_tokens=4,
        input=[{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}],
    )  # fmt: skip
    assert client.responses.retrieve(created.id).output_text == created.output_text
    items = client.responses.input_items.list(created.id, order="asc")
    assert [(item.role, item.content[0].text) for item in items.data] == [
        ("system", "Be kind."), ("user", "Hi"),
    ]  # fmt: skip
    newest = client.responses.input_items.list(created.id, limit=1)
    assert [item.role for item in newest.data] == ["user"] and newest.has_more
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.retrieve(created.id)
    assert missing.value.body["code"] == "response_not_found"
    unstored = client.responses.create(model=ids["base"], input="Hi", max_output_tokens=2,
                                       store=False)  # fmt: skip
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model=ids["base"], input="Hi", previous_response_id="resp_x")
    assert unknown.value.body["param"] == "previous_response_id"


def test_the_store_is_bounded(own_scripted_server, ids):
    server = own_scripted_server(response_store_size=2)
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="x", max_retries=0)
    made = [client.responses.create(model=ids["base"], input=f"Q{i}", max_output_tokens=2)
            for i in range(3)]  # fmt: skip
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made[0].id)  # evicted, the oldest
    assert client.responses.retrieve(made[2].id).id == made[2].id
    off = own_scripted_server(response_store_size=0)
    client = openai.OpenAI(base_url=f"{off.base_url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="keeps no responses"):
        client.responses.create(model=ids["base"], input="Hi", previous_response_id="resp_x")


def test_stored_responses_expire(own_scripted_server, ids):
    server = own_scripted_server(response_store_max_age_s=0.2)
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="x", max_retries=0)
    made = client.responses.create(model=ids["base"], input="Q", max_output_tokens=2)
    time.sleep(0.3)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tools", [{"type": "function", "name": "f", "parameters": {}}]),
        ("reasoning", {"effort": "high"}),
        ("background", True),
        ("include", ["message.output_text.logprobs"]),
        ("prompt", {"id": "pmpt_1"}),
        ("conversation", "conv_1"),
        ("truncation", "auto"),
        ("top_logprobs", 3),
    ],
)
def test_what_is_not_supported_is_refused_by_name(scripted_server, ids, field, value):
    body = {"model": ids["pilot"], "input": "Hi", field: value}
    response = httpx.post(f"{scripted_server.base_url}/v1/responses", json=body, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == field and error["code"] == "unsupported_field"
    assert error["message"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": [{"role": "wizard", "content": "x"}]}, "input.0.role"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
         "input.0.content"),
        ({"input": "Hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "Hi", "temperature": 3}, "temperature"),
        ({"input": "Hi", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"input": "Hi", "text": {"format": {"type": "json_schema"}}}, "text.format"),
        ({"input": "Hi", "text": {"format": {"type": "json_schema", "name": "has space",
                                             "schema": {}}}}, "text.format.name"),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_naming_the_field(scripted_server, ids, body, param):
    response = httpx.post(f"{scripted_server.base_url}/v1/responses",
                          json={"model": ids["pilot"], **body}, timeout=30)  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith(param)


def test_no_ops_are_accepted(scripted_client, ids):
    response = scripted_client.responses.create(
        model=ids["pilot"], input="Hi", max_output_tokens=2, tools=[], tool_choice="none",
        parallel_tool_calls=False, truncation="disabled", metadata={"run": "7"}, user="u1",
    )  # fmt: skip
    assert response.metadata == {"run": "7"} and response.user == "u1"
    assert response.parallel_tool_calls is False


def test_structured_output_for_single_models_only(scripted_server, ids):
    url = f"{scripted_server.base_url}/v1/responses"
    json_object = {"format": {"type": "json_object"}}
    refused = httpx.post(url, json={"model": ids["wsd"], "input": "Hi", "text": json_object},
                         timeout=30)  # fmt: skip
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsupported_value"
    schema = {"format": {"type": "json_schema", "name": "x", "schema": {"type": "nope"}}}
    bad = httpx.post(url, json={"model": ids["pilot"], "input": "Hi", "text": schema}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "response_format"


def test_the_wsd_extension_reaches_the_method(scripted_client, ids):
    response = scripted_client.responses.create(
        model=ids["wsd"], input="Tell me about Paris.", max_output_tokens=200,
        extra_body={"wsd": {"threshold": 0.05, "window": 2}},
    )  # fmt: skip
    wsd = response.model_extra["wsd"]
    assert wsd["reason"] == "threshold" and wsd["window"] == 2
    assert response.output_text.startswith(PILOT_TEXT[: wsd["prefix_chars"]])
    assert response.output_text.endswith(BASE_TEXT.split()[-1])


def test_a_client_that_leaves_the_stream_cancels_the_engine_work(
    scripted_server, scripted_engines, ids
):
    scripted_engines.pilot.delay_s = scripted_engines.base.delay_s = 0.05
    body = {"model": ids["wsd"], "input": "Hi", "max_output_tokens": 100, "stream": True}
    with httpx.stream(
        "POST", f"{scripted_server.base_url}/v1/responses", json=body, timeout=30
    ) as response:
        for line in response.iter_lines():
            if "response.output_text.delta" in line:
                assert scripted_engines.num_unfinished_requests() >= 1
                break
    assert wait_idle(scripted_engines) == 0


def test_an_engine_failure_after_the_start_is_response_failed(scripted_server, scripted_engines,
                                                             ids):  # fmt: skip
    scripted_engines.pilot.fail_after_tokens = 3
    events = raw_events(scripted_server, {"model": ids["pilot"], "input": "Hi"})
    assert events[-1]["type"] == "response.failed"
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["message"]


@pytest.mark.slow
@pytest.mark.parametrize("streamed", [False, True])
def test_a_greedy_wsd_response_is_the_chat_answer(client, ids, streamed):
    question = "How do I bake a simple chocolate cake?"
    chat = client.chat.completions.create(
        model=ids["wsd"], messages=[{"role": "user", "content": question}], max_tokens=64,
        temperature=0,
    )  # fmt: skip
    kwargs = dict(model=ids["wsd"], input=question, max_output_tokens=64, temperature=0)
    if streamed:
        with client.responses.stream(**kwargs) as stream:
            text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    else:
        text = client.responses.create(**kwargs).output_text
    assert text == chat.choices[0].message.content
