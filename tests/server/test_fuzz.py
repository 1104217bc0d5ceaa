"""Requests generated from the server's own OpenAPI document, sent to a scripted server.

Schemathesis draws valid and invalid requests for every operation, with a fixed seed (CI
sends the same 700 or so each run). Whatever the input: no response is a 5xx, every status
is one the document lists for the route, every 4xx is an OpenAI error object, and a streamed
200 carries no in-stream error. The scripted
engines refuse what vLLM refuses and fail in no other way, so an error inside a stream is
input the server should have refused before the stream began.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import BaseSchema, Case, CheckContext, Response
from schemathesis.checks import not_a_server_error, status_code_conformance

from server.background import BackgroundLoop
from server.settings import AppConfig, load_config
from tests.conftest import EMBEDDED_CONFIG, LiveServer, serve
from tests.fakes.tiny_tokenizers import tiny_base_tokenizer, tiny_pilot_tokenizer
from tests.server.conftest import new_scripted_engines

FUZZ_SEED = 20260527
EXAMPLES_PER_OPERATION = 150
# Whole streams are read (schemathesis stops after 20 events by default): n choices send
# n times the events, and an in-stream error comes last.
MAX_STREAM_EVENTS = 10_000
CHAT_ROLES = ("user", "system", "assistant", "developer")
OPENAI_ERROR_KEYS = {"message", "type", "param", "code"}

FUZZ_CONFIG = schemathesis.Config.from_dict(
    {
        "seed": FUZZ_SEED,
        # Drawing is slow on a busy machine; how slow must not decide whether CI passes.
        "suppress-health-check": ["too_slow"],
        "max-stream-events": MAX_STREAM_EVENTS,
        "request-timeout": 30,
        # A failure's reproduction shows the body as sent (`max_tokens` is no secret).
        "output": {"sanitization": {"enabled": False}},
        "generation": {
            "max-examples": EXAMPLES_PER_OPERATION,
            "deterministic": True,
            "database": "none",
            "unique-inputs": True,
            # Unknown fields are refused by name (test_errors.py); drawing them costs more
            # than it finds.
            "allow-extra-parameters": False,
        },
    }
)


@pytest.fixture(scope="module")
def fuzz_server(embedded_config: AppConfig, server_loop: BackgroundLoop) -> Iterator[LiveServer]:
    """A scripted server of its own (its engines refuse what vLLM refuses)."""
    from server.app import create_app

    engines = new_scripted_engines(embedded_config)
    yield from serve(create_app(embedded_config, engines=engines), server_loop, engines)


# -- generation ------------------------------------------------------------------------------


def fuzz_schema() -> BaseSchema:
    """The app's OpenAPI document (what it serves at /openapi.json), with steered bodies."""
    from server.app import create_app

    config = load_config(EMBEDDED_CONFIG, environ={})
    schema = schemathesis.openapi.from_dict(create_app(config).openapi(), config=FUZZ_CONFIG)
    wsd, pilot, base = (m.served_model_name for m in (config.wsd, config.pilot, config.base))
    # Hypothesis draws the first choice most often: each endpoint's own model leads (the WSD
    # model serves chat only).
    models_by_path = {
        "/v1/chat/completions": [wsd, pilot, base],
        "/v1/completions": [base, pilot, wsd],
        "/v1/responses": [wsd, pilot, base],
    }
    vocab_size = min(len(tiny_pilot_tokenizer()), len(tiny_base_tokenizer()))

    @schema.hook("flatmap_body")
    def steer(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
        path = context.operation.path if context.operation else ""
        return steered_body(body, models_by_path.get(path, [wsd]), vocab_size)

    return schema


def steered_body(body: Any, model_ids: Sequence[str], vocab_size: int) -> st.SearchStrategy[Any]:
    """`body`, often with a served model, known chat roles, in-vocabulary token ids, a stream,
    and logprobs when top_logprobs asks for them. The document allows any string or integer
    there, and drawn freely they would almost never get past the first check; the drawn
    value stays one of the choices."""
    if not isinstance(body, dict):
        return st.just(body)
    choices: dict[str, st.SearchStrategy[Any]] = {}
    if isinstance(body.get("stream", False), bool):
        choices["stream"] = st.sampled_from([True, body.get("stream", False)])
    if isinstance(body.get("model"), str):
        choices["model"] = mostly(model_ids, body["model"])
    for field in ("messages", "input"):  # chat's messages, the Responses API's input items
        items = body.get(field)
        if isinstance(items, list) and items:
            choices[field] = st.tuples(*(steered_message(m) for m in items)).map(list)
    in_vocab = in_vocabulary(body.get("prompt"), vocab_size)
    if in_vocab is not None:
        choices["prompt"] = st.sampled_from([in_vocab, body["prompt"]])
    if "top_logprobs" in body and isinstance(body.get("logprobs", False), bool):
        choices["logprobs"] = st.sampled_from([True, body.get("logprobs", False)])
    return st.fixed_dictionaries(choices).map(lambda chosen: {**body, **chosen})


def steered_message(message: Any) -> st.SearchStrategy[Any]:
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        return st.just(message)
    return mostly(CHAT_ROLES, message["role"]).map(lambda role: {**message, "role": role})


def mostly(preferred: Sequence[Any], drawn: Any) -> st.SearchStrategy[Any]:
    """Mostly one of `preferred` (the first most often), sometimes the drawn value."""
    return st.sampled_from([*preferred, drawn]).flatmap(
        lambda value: st.sampled_from([value, value, value, value, drawn])
    )


def in_vocabulary(prompt: Any, vocab_size: int) -> list[Any] | None:
    """A token-id prompt, or a batch of them, with every id wrapped into the vocabulary."""
    if is_token_ids(prompt):
        return [i % vocab_size for i in prompt]
    if isinstance(prompt, list) and prompt and all(is_token_ids(p) for p in prompt):
        return [[i % vocab_size for i in p] for p in prompt]
    return None


def is_token_ids(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(i, int) and not isinstance(i, bool) for i in value)
    )


# -- checks ----------------------------------------------------------------------------------


def errors_are_openai_objects(ctx: CheckContext, response: Response, case: Case) -> None:
    """A 4xx body is `{"error": {"message", "type", "param", "code"}}`."""
    if not 400 <= response.status_code < 500:
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"{response.status_code} body is not JSON: {response.content[:200]!r}"
        ) from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict) and set(body) == {"error"}, (
        f"{response.status_code} body is not an OpenAI error object: {body}"
    )
    assert set(error) == OPENAI_ERROR_KEYS, f"error keys {sorted(error)}: {body}"
    assert isinstance(error["message"], str) and error["message"], f"no message: {body}"
    assert isinstance(error["type"], str) and error["type"], f"no type: {body}"


RESPONSES_ENDS = {"response.completed", "response.incomplete"}


def streams_carry_no_error(ctx: CheckContext, response: Response, case: Case) -> None:
    """A 200 event stream has no error in it and ends as its API ends one: chat and text
    completions with `[DONE]`, the Responses API with response.completed (or incomplete)."""
    content_type = response.headers.get("content-type", [""])[0]
    if response.status_code != 200 or not content_type.startswith("text/event-stream"):
        return
    events = [
        line.removeprefix("data: ")
        for line in response.content.decode("utf-8", errors="replace").splitlines()
        if line.startswith("data: ")
    ]
    assert events, "an empty stream"
    if case.operation.path == "/v1/responses":
        kinds = [json.loads(event)["type"] for event in events]
        assert "response.failed" not in kinds and "error" not in kinds, (
            f"input refused only after the stream began: {events[-1]}"
        )
        assert kinds[-1] in RESPONSES_ENDS, f"the stream ends with {kinds[-1]}"
        return
    for event in events:
        if event != "[DONE]" and "error" in json.loads(event):
            raise AssertionError(f"input refused only after the stream began: {event}")
    assert events[-1] == "[DONE]", f"the stream does not end with [DONE]: {events[-3:]}"


schema = fuzz_schema()


def test_the_fuzzed_document_is_the_served_one(fuzz_server: LiveServer) -> None:
    served = httpx.get(f"{fuzz_server.base_url}/openapi.json", timeout=30).json()
    assert served == schema.raw_schema


@schema.parametrize()
def test_fuzzed_requests_get_openai_answers(case: Case, fuzz_server: LiveServer) -> None:
    case.call_and_validate(
        base_url=fuzz_server.base_url,
        checks=[
            not_a_server_error,
            status_code_conformance,
            errors_are_openai_objects,
            streams_carry_no_error,
        ],
    )
