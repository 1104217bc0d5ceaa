"""Streamed chunks carry whole tokens' text: stop strings are matched by the server, which
holds back only text that may begin one (vLLM, given stop strings, holds back the last
characters of every chunk, so each token's tail arrived a token late)."""

from __future__ import annotations

import json

import httpx

Q = [{"role": "user", "content": "What is the capital of France?"}]


def stream(server, path, body):
    """The content of each chunk of a streamed response, with its logprob tokens."""
    chunks = []
    with httpx.stream("POST", f"{server.base_url}{path}", json=body, timeout=300) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choice = json.loads(line.removeprefix("data: "))["choices"][0]
            if path == "/v1/completions":
                text, tokens = choice["text"], (choice.get("logprobs") or {}).get("tokens", [])
            else:
                text = choice["delta"].get("content") or ""
                tokens = [entry["token"] for entry in (choice.get("logprobs") or {}).get(
                    "content") or []]  # fmt: skip
            if text or tokens:
                chunks.append((text, tokens))
    return chunks


def test_a_stop_string_that_cannot_match_splits_no_token(any_server, ids):
    body = {"model": ids["pilot"], "prompt": "The best way to learn is", "max_tokens": 12,
            "temperature": 0, "stream": True, "logprobs": 0}  # fmt: skip
    with_stop = stream(any_server, "/v1/completions", {**body, "stop": ["zzz"]})
    without = stream(any_server, "/v1/completions", body)
    assert [text for text, _ in with_stop] == [text for text, _ in without]
    assert len(with_stop) >= 6
    for text, tokens in with_stop:
        assert [text] == tokens  # each chunk is its token's text, whole


def test_chat_chunks_are_the_tokens_texts(any_server, ids):
    """A chat stream always carries the template's stop strings; they hold nothing back."""
    body = {"model": ids["pilot"], "messages": Q, "max_tokens": 16, "temperature": 0,
            "stream": True, "logprobs": True}  # fmt: skip
    chunks = stream(any_server, "/v1/chat/completions", body)
    if chunks and not chunks[-1][0]:  # the end-of-turn token: its entry names it, it has no text
        chunks.pop()
    assert len(chunks) >= 6
    for text, tokens in chunks:
        assert [text] == tokens
