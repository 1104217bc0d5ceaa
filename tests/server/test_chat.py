"""/v1/chat/completions on scripted engines: responses, SSE framing, n, usage, the wsd object,
logprobs, stop strings and disconnects, each streamed and not."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.server.conftest import BASE_TEXT, PILOT_TEXT, wait_idle
from tests.server.timed_stream import timed_stream

Q = [{"role": "user", "content": "Tell me about Paris."}]
SWITCH_EARLY = {"wsd": {"threshold": 0.05, "window": 2}}  # every window of p=0.5 passes


def sse_events(response):
    events = []
    for line in response.iter_lines():
        if not line:
            continue
        assert line.startswith("data: "), line
        payload = line.removeprefix("data: ")
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def stream(server, body):
    url = f"{server.base_url}/v1/chat/completions"
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_events(response)


def streamed_text(chunks, index=0):
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in chunks
        if c["choices"] and c["choices"][0]["index"] == index
    )


@pytest.mark.parametrize("which", ["wsd", "pilot", "base"])
def test_stream_equals_non_stream(any_client, ids, which):
    kwargs = dict(model=ids[which], messages=Q, max_tokens=24, temperature=0)
    full = any_client.chat.completions.create(**kwargs)
    choice = full.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert full.id.startswith("chatcmpl-") and full.model == ids[which]
    assert full.usage.completion_tokens > 0 and full.usage.prompt_tokens > 0
    assert full.usage.total_tokens == full.usage.prompt_tokens + full.usage.completion_tokens
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in any_client.chat.completions.create(**kwargs, stream=True)
        if chunk.choices
    )
    assert streamed == choice.message.content


def test_wsd_answer_is_the_draft_then_the_base_model(scripted_client, ids):
    response = scripted_client.chat.completions.create(
        model=ids["wsd"], messages=Q, max_tokens=100, temperature=0
    )
    # no window passes (p = 0.5): the whole draft is kept and the base model continues
    assert response.choices[0].message.content == PILOT_TEXT + BASE_TEXT
    assert response.choices[0].finish_reason == "stop"
    wsd = response.model_extra["wsd"]
    assert wsd["reason"] == "draft_end" and wsd["prefix_chars"] == len(PILOT_TEXT)
    assert wsd["accept_index"] == wsd["draft_tokens"] - 1 == wsd["prefix_tokens"] - 1
    assert wsd["threshold"] == 0.8 and wsd["window"] == 6
    assert response.choices[0].model_extra["wsd"] == wsd


@pytest.mark.parametrize("streamed", [False, True])
def test_wsd_object_at_a_threshold_switch(scripted_server, ids, streamed):
    body = {"model": ids["wsd"], "messages": Q, "max_tokens": 40, **SWITCH_EARLY}
    if streamed:
        chunks = stream(scripted_server, body)[:-1]
        wsd, text = chunks[-1]["choices"][0]["wsd"], streamed_text(chunks)
        assert all("wsd" not in c["choices"][0] for c in chunks[:-1])
    else:
        response = httpx.post(
            f"{scripted_server.base_url}/v1/chat/completions", json=body, timeout=30
        ).json()
        wsd, text = response["wsd"], response["choices"][0]["message"]["content"]
        assert response["choices"][0]["wsd"] == wsd
    assert wsd["reason"] == "threshold" and wsd["accept_index"] == 1 and wsd["prefix_tokens"] == 2
    assert wsd["window"] == 2 and wsd["threshold"] == 0.05
    assert PILOT_TEXT.startswith(text[: wsd["prefix_chars"]]) and wsd["prefix_chars"] > 0
    assert text[wsd["prefix_chars"] :] == BASE_TEXT[: len(text) - wsd["prefix_chars"]]
    assert wsd["switch_latency_s"] is not None and wsd["time_to_switch_s"] is not None
    assert wsd["pilot_tokens"] >= 2 and wsd["pilot_tokens_wasted"] <= wsd["pilot_tokens"]


def test_wsd_object_when_the_answer_ends_inside_the_draft(any_client, ids):
    response = any_client.chat.completions.create(
        model=ids["wsd"], messages=Q, max_tokens=3, temperature=0
    )
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 3
    wsd = response.model_extra["wsd"]
    assert wsd["reason"] is None and wsd["accept_index"] is None and wsd["prefix_tokens"] == 3
    assert wsd["prefix_chars"] == len(response.choices[0].message.content)
    assert response.choices[0].logprobs is None


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_framing(any_server, ids, include_usage):
    body = {"model": ids["wsd"], "messages": Q, "max_tokens": 30, "temperature": 0}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    events = stream(any_server, body)
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    if include_usage:
        usage_chunk = chunks.pop()
        assert usage_chunk["choices"] == [] and 0 < usage_chunk["usage"]["completion_tokens"] <= 30
        assert all(c["usage"] is None for c in chunks)
    else:
        assert all("usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in chunks[1:-1])
    last = chunks[-1]["choices"][0]
    assert last["finish_reason"] in ("stop", "length") and last["delta"] == {}
    assert 0 < last["wsd"]["prefix_chars"] <= len(streamed_text(chunks))


@pytest.mark.parametrize("which", ["wsd", "base"])
def test_n_choices_streamed_and_not(scripted_server, scripted_client, ids, which):
    kwargs = dict(model=ids[which], messages=Q, max_tokens=12, n=3, temperature=0)
    full = scripted_client.chat.completions.create(**kwargs)
    assert [c.index for c in full.choices] == [0, 1, 2]
    texts = {c.message.content for c in full.choices}
    assert len(texts) == 1  # greedy scripted engines: the same answer three times
    # usage: the prompt counts once, every choice's tokens count
    assert full.usage.completion_tokens == 36
    assert full.usage.total_tokens == full.usage.prompt_tokens + 36
    body = {**kwargs, "stream_options": {"include_usage": True}}
    events = stream(scripted_server, {**body, "messages": Q})[:-1]
    usage = events.pop()["usage"]
    assert usage == full.usage.model_dump(exclude_none=True)
    openings = [c for c in events if c["choices"][0]["delta"].get("role")]
    assert [c["choices"][0]["index"] for c in openings] == [0, 1, 2]
    finishes = [c["choices"][0]["index"] for c in events if c["choices"][0]["finish_reason"]]
    assert sorted(finishes) == [0, 1, 2]
    assert [streamed_text(events, i) for i in range(3)] == [texts.pop()] * 3


def test_wsd_usage_counts_base_tokens(scripted_client, scripted_engines, ids):
    response = scripted_client.chat.completions.create(
        model=ids["wsd"], messages=Q, max_tokens=100, temperature=0
    )
    base = scripted_engines.base.tokenizer
    answer_tokens = len(base.encode(PILOT_TEXT, add_special_tokens=False)) + len(
        base.encode(BASE_TEXT, add_special_tokens=False)
    )
    assert response.usage.completion_tokens == answer_tokens
    prompt = "\n\n[User]\nTell me about Paris.\n\n[Assistant]\n"
    assert response.usage.prompt_tokens == 1 + len(base.encode(prompt, add_special_tokens=False))


@pytest.mark.parametrize("which", ["wsd", "base"])
@pytest.mark.parametrize("streamed", [False, True])
def test_logprobs_cover_the_answer(any_server, ids, which, streamed):
    body = {
        "model": ids[which], "messages": Q, "max_tokens": 8, "temperature": 0,
        "logprobs": True, "top_logprobs": 2,
    }  # fmt: skip
    if streamed:
        chunks = stream(any_server, body)[:-1]
        text = streamed_text(chunks)
        entries = [e for c in chunks if c["choices"][0]["logprobs"]
                   for e in c["choices"][0]["logprobs"]["content"]]  # fmt: skip
    else:
        response = httpx.post(
            f"{any_server.base_url}/v1/chat/completions", json=body, timeout=120
        ).json()
        text = response["choices"][0]["message"]["content"]
        entries = response["choices"][0]["logprobs"]["content"]
    assert entries and "".join(e["token"] for e in entries) == text
    for entry in entries:
        assert entry["logprob"] <= 0 and bytes(entry["bytes"]).decode() == entry["token"]
        assert 1 <= len(entry["top_logprobs"]) <= 2
        ranked = [top["logprob"] for top in entry["top_logprobs"]]
        assert ranked == sorted(ranked, reverse=True)


def test_stop_string_applies_across_the_pilot_to_base_seam(scripted_client, ids):
    # "capital" is in the draft; " two" only in the base model's part
    draft_cut = scripted_client.chat.completions.create(
        model=ids["wsd"], messages=Q, max_tokens=100, stop=["capital"]
    )
    assert draft_cut.choices[0].message.content == "Paris is the "
    assert draft_cut.choices[0].finish_reason == "stop"
    base_cut = scripted_client.chat.completions.create(
        model=ids["wsd"], messages=Q, max_tokens=100, stop=" two"
    )
    assert base_cut.choices[0].message.content == PILOT_TEXT + " The city has about"
    assert base_cut.choices[0].finish_reason == "stop"


def test_seeds_give_each_choice_its_own_seed(scripted_client, scripted_engines, ids):
    calls = scripted_engines.base.generate_calls
    before = len(calls)
    scripted_client.chat.completions.create(
        model=ids["base"], messages=Q, max_tokens=2, n=2, seed=7, temperature=0.5
    )
    seeds = sorted(settings.seed for _, settings, _ in calls[before:])
    assert seeds == [7, 8]
    assert {settings.temperature for _, settings, _ in calls[before:]} == {0.5}


def test_temperature_defaults_greedy_for_wsd_and_one_for_single_models(
    scripted_client, scripted_engines, ids
):
    calls = scripted_engines.pilot.generate_calls
    before = len(calls)
    scripted_client.chat.completions.create(model=ids["wsd"], messages=Q, max_tokens=2)
    scripted_client.chat.completions.create(model=ids["pilot"], messages=Q, max_tokens=2)
    assert [settings.temperature for _, settings, _ in calls[before:]] == [0.0, 1.0]


def test_a_client_that_leaves_a_stream_cancels_the_engine_work(
    scripted_server, scripted_engines, ids
):
    scripted_engines.pilot.delay_s = scripted_engines.base.delay_s = 0.05
    body = {"model": ids["wsd"], "messages": Q, "max_tokens": 100, "stream": True}
    with httpx.stream(
        "POST", f"{scripted_server.base_url}/v1/chat/completions", json=body, timeout=30
    ) as response:
        for line in response.iter_lines():
            if '"content":"P' in line.replace(" ", ""):
                assert scripted_engines.num_unfinished_requests() >= 1
                break
    assert wait_idle(scripted_engines) == 0


def test_a_client_that_leaves_before_the_response_cancels_the_engine_work(
    scripted_server, scripted_engines, ids
):
    scripted_engines.pilot.delay_s = scripted_engines.base.delay_s = 0.05
    body = {"model": ids["wsd"], "messages": Q, "max_tokens": 100}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{scripted_server.base_url}/v1/chat/completions", json=body, timeout=0.5)
    assert wait_idle(scripted_engines) == 0


def test_stream_timings_match_the_client_clock(scripted_server, scripted_engines, ids):
    scripted_engines.base.delay_s = 0.15  # each scoring pass and each base token
    body = {
        "model": ids["wsd"],
        "messages": Q,
        "max_tokens": 12,
        "temperature": 0,
        "wsd": {"threshold": 0.05, "window": 2},
    }
    timed = timed_stream(scripted_server.base_url, body)
    wsd = timed.wsd
    assert wsd["reason"] == "threshold"
    assert wsd["switch_latency_s"] == pytest.approx(timed.switch_latency(), abs=0.05)
    assert wsd["switch_latency_s"] >= 0.1  # the second base chunk waits for a base token
    assert wsd["max_stream_gap_s"] == pytest.approx(max(timed.gaps()), abs=0.05)
    assert wsd["decision_lag_s"] >= 0.1  # at least the scoring pass that decided
    assert 0 <= wsd["handoff_s"] < wsd["switch_latency_s"]
    assert wsd["draft_lag_s"] > 0
