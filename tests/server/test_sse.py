"""Streams on the real engines: a disconnect cancels the engine work; concurrent streams."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

pytestmark = pytest.mark.slow


def test_disconnect_mid_stream_cancels_engine_work(live_server, ids, engine_pair):
    body = {
        "model": ids["wsd"],
        "messages": [{"role": "user", "content": "Write a long essay about rivers."}],
        "max_tokens": 400,
        "temperature": 0,
        "stream": True,
        "wsd": {"threshold": 1.0},
    }
    # Leave while the engines are working (drafting, or continuing on the base). Threshold
    # 1.0 makes a switch unlikely but not impossible (six tokens of probability 1.0 in fp32),
    # and right at a switch neither engine has a request for a moment: read on until one has.
    left_while_working = False
    with httpx.stream(
        "POST", f"{live_server.base_url}/v1/chat/completions", json=body, timeout=120
    ) as response:
        for line in response.iter_lines():
            text = line.replace(" ", "")
            has_content = '"content":"' in text and '"content":""' not in text
            if has_content and engine_pair.num_unfinished_requests() >= 1:
                left_while_working = True
                break
    assert left_while_working, "the answer finished before the test could disconnect"
    deadline = time.monotonic() + 1.0
    while engine_pair.num_unfinished_requests() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine_pair.num_unfinished_requests() == 0
    after = httpx.post(
        f"{live_server.base_url}/v1/chat/completions",
        json={**body, "stream": False, "max_tokens": 4},
        timeout=120,
    )
    assert after.status_code == 200 and after.json()["choices"][0]["message"]["content"]


PROMPTS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Name a primary colour.",
    "What is 2 plus 2?",
    "Which planet is known as the red planet?",
    "What do bees make?",
    "What is the boiling point of water in Celsius?",
    "Translate 'hello' into Spanish.",
]


async def test_eight_concurrent_streams(async_client, ids):
    async def one(prompt):
        stream = await async_client.chat.completions.create(
            model=ids["wsd"],
            messages=[{"role": "user", "content": prompt}],
            max_tokens=24,
            temperature=0,
            stream=True,
        )
        chunk_ids, finishes, text = set(), [], ""
        async for chunk in stream:
            chunk_ids.add(chunk.id)
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                if chunk.choices[0].finish_reason:
                    finishes.append(chunk.choices[0].finish_reason)
        return chunk_ids, finishes, text

    results = await asyncio.gather(*(one(p) for p in PROMPTS))
    sequential = []
    for prompt in PROMPTS:
        response = await async_client.chat.completions.create(
            model=ids["wsd"],
            messages=[{"role": "user", "content": prompt}],
            max_tokens=24,
            temperature=0,
        )
        sequential.append(response.choices[0].message.content)
    all_ids = [next(iter(chunk_ids)) for chunk_ids, _, _ in results]
    assert len(set(all_ids)) == 8
    for i, (chunk_ids, finishes, text) in enumerate(results):
        assert len(chunk_ids) == 1 and len(finishes) == 1
        # batched greedy decoding on CPU drifts after a few dozen characters: each answer must
        # belong to its own prompt, i.e. share a longer beginning with its own sequential answer
        # than with any other prompt's
        own = _common_prefix(text, sequential[i])
        assert own >= 8, (text, sequential[i])
        assert all(own >= _common_prefix(text, s) for j, s in enumerate(sequential) if j != i)


def _common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n
