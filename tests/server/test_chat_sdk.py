"""The official OpenAI SDK against the real server and engines (what scripted engines cannot
show: real answers, sampling, switches decided by a real base model)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_wsd_response_carries_switch_metadata(client, ids):
    response = client.chat.completions.create(
        model=ids["wsd"],
        messages=QUESTION,
        max_tokens=32,
        temperature=0,
        extra_body={"wsd": {"threshold": 0.05, "window": 2}},
    )
    wsd = response.model_extra["wsd"]
    assert wsd["reason"] == "threshold"
    assert wsd["accept_index"] == 1 and wsd["window"] == 2 and wsd["threshold"] == 0.05
    assert 0 < wsd["prefix_chars"] <= len(response.choices[0].message.content)
    assert wsd["switch_latency_s"] is not None
    assert response.choices[0].model_extra["wsd"] == wsd


def test_text_parts_system_prompt_multi_turn_and_informational_fields(client, ids):
    response = client.chat.completions.create(
        model=ids["pilot"],
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": "Name a colour."}]},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Another one?"},
        ],
        max_completion_tokens=8,
        temperature=0,
        user="tester",
        metadata={"suite": "sdk"},
        store=False,
    )
    assert response.choices[0].message.content


def test_stop_string_cuts_the_answer(client, ids):
    full = (
        client.chat.completions.create(
            model=ids["pilot"], messages=QUESTION, max_tokens=16, temperature=0
        )
        .choices[0]
        .message.content
    )
    word = full.split()[2]
    cut = client.chat.completions.create(
        model=ids["pilot"], messages=QUESTION, max_tokens=16, temperature=0, stop=[word]
    ).choices[0]
    assert cut.finish_reason == "stop"
    assert word not in cut.message.content and full.startswith(cut.message.content)


def test_n_choices_with_seed(client, ids):
    response = client.chat.completions.create(
        model=ids["pilot"], messages=QUESTION, max_tokens=8, n=2, temperature=1.0, seed=3
    )
    assert [c.index for c in response.choices] == [0, 1]
    again = client.chat.completions.create(
        model=ids["pilot"], messages=QUESTION, max_tokens=8, n=2, temperature=1.0, seed=3
    )
    assert [c.message.content for c in again.choices] == [
        c.message.content for c in response.choices
    ]


def test_streamed_n_choices_have_their_own_indexes_and_one_finish_each(client, ids):
    stream = client.chat.completions.create(
        model=ids["wsd"],
        messages=QUESTION,
        max_tokens=8,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
        temperature=0,
    )
    finishes, texts, usage = {}, {0: "", 1: ""}, None
    for chunk in stream:
        if not chunk.choices:
            usage = chunk.usage
            continue
        choice = chunk.choices[0]
        texts[choice.index] += choice.delta.content or ""
        if choice.finish_reason is not None:
            assert choice.index not in finishes
            finishes[choice.index] = choice.finish_reason
    assert set(finishes) == {0, 1}
    assert texts[0] == texts[1]  # greedy: both choices are the same answer
    assert usage is not None and usage.completion_tokens == 16


async def test_async_client_streams(async_client, ids):
    stream = await async_client.chat.completions.create(
        model=ids["wsd"], messages=QUESTION, max_tokens=12, temperature=0, stream=True
    )
    text = ""
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    full = await async_client.chat.completions.create(
        model=ids["wsd"], messages=QUESTION, max_tokens=12, temperature=0
    )
    assert text == full.choices[0].message.content


@pytest.mark.parametrize("which", ["pilot", "base"])
def test_raw_completions(client, ids, which):
    full = client.completions.create(
        model=ids[which], prompt="The capital of France is", max_tokens=6, temperature=0
    )
    assert full.choices[0].text and full.usage.completion_tokens == 6
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=ids[which],
            prompt="The capital of France is",
            max_tokens=6,
            temperature=0,
            stream=True,
        )
        if c.choices
    )
    assert streamed == full.choices[0].text
