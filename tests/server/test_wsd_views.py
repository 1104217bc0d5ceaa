"""The per-token views of a WSD answer: logprobs of the model that wrote each token, and the
opt-in `return_scores` extension (the base model's scores of the draft up to the switch)."""

from __future__ import annotations

import math

import httpx
import pytest

from tests.server.test_chat import Q, stream, streamed_text

SWITCH = {"threshold": 0.05, "window": 2}  # passes early on the scripted and the real models


def answer(server, body, streamed):
    """(text, logprobs entries, wsd object) of choice 0."""
    if streamed:
        chunks = stream(server, body)[:-1]
        entries = [e for c in chunks if c["choices"] and c["choices"][0].get("logprobs")
                   for e in c["choices"][0]["logprobs"]["content"]]  # fmt: skip
        wsd = next(c["choices"][0]["wsd"] for c in chunks if c["choices"][0].get("wsd"))
        return streamed_text(chunks), entries, wsd
    url = f"{server.base_url}/v1/chat/completions"
    response = httpx.post(url, json=body, timeout=300)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    content = choice["logprobs"]["content"] if choice["logprobs"] else []
    return choice["message"]["content"], content, choice["wsd"]


@pytest.mark.parametrize("streamed", [False, True])
def test_greedy_wsd_logprobs_are_the_generating_models_top_choice(any_server, ids, streamed):
    body = {
        "model": ids["wsd"], "messages": Q, "max_tokens": 24, "temperature": 0,
        "logprobs": True, "top_logprobs": 3, "wsd": SWITCH,
    }  # fmt: skip
    text, entries, wsd = answer(any_server, body, streamed)
    assert wsd["reason"] == "threshold" and 0 < wsd["prefix_chars"] < len(text)
    sources = wsd["logprobs_source"]
    assert len(sources) == len(entries)
    num_pilot = sources.count("pilot")
    assert num_pilot and sources == ["pilot"] * num_pilot + ["base"] * (len(sources) - num_pilot)
    tokens = [entry["token"] for entry in entries]
    assert "".join(tokens) == text
    assert "".join(tokens[:num_pilot]) == text[: wsd["prefix_chars"]]
    for entry in entries:
        # greedy: the chosen token is the top-1 of the distribution it was drawn from
        best = entry["top_logprobs"][0]["logprob"]
        assert entry["logprob"] == pytest.approx(best, abs=1e-4)


def test_logprobs_source_is_left_out_without_logprobs(scripted_server, ids):
    body = {"model": ids["wsd"], "messages": Q, "max_tokens": 24, "wsd": SWITCH}
    _, entries, wsd = answer(scripted_server, body, streamed=False)
    assert entries == [] and "logprobs_source" not in wsd and "scored_tokens" not in wsd


@pytest.mark.parametrize("streamed", [False, True])
def test_return_scores_gives_the_draft_scores_up_to_the_switch(any_server, ids, streamed):
    threshold, window = SWITCH["threshold"], SWITCH["window"]
    body = {
        "model": ids["wsd"], "messages": Q, "max_tokens": 24, "temperature": 0,
        "wsd": {**SWITCH, "return_scores": True},
    }  # fmt: skip
    text, _, wsd = answer(any_server, body, streamed)
    scored = wsd["scored_tokens"]
    assert wsd["reason"] == "threshold"
    assert len(scored) == wsd["accept_index"] + 1 == wsd["prefix_tokens"]
    assert "".join(token["token"] for token in scored) == text[: wsd["prefix_chars"]]
    for end, token in enumerate(scored):
        assert 0 < token["probability"] <= 1
        if end < window - 1:
            assert token["window_mean"] is None
            continue
        probabilities = [t["probability"] for t in scored[end - window + 1 : end + 1]]
        assert token["window_mean"] == pytest.approx(math.prod(probabilities) ** (1 / window))
        # the switch is the first window at or above the threshold
        assert (token["window_mean"] >= threshold) == (end == wsd["accept_index"])


def test_return_scores_without_a_switch_covers_the_scored_draft(scripted_server, ids):
    body = {
        "model": ids["wsd"], "messages": Q, "max_tokens": 100,
        "wsd": {"threshold": 1.0, "return_scores": True},
    }  # fmt: skip
    _, _, wsd = answer(scripted_server, body, streamed=False)
    assert wsd["reason"] in ("draft_end", "draft_limit")
    assert len(wsd["scored_tokens"]) == wsd["draft_tokens"]
    assert all(t["window_mean"] is None or t["window_mean"] < 1.0 for t in wsd["scored_tokens"])
