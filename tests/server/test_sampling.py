"""Sampling fields beyond temperature and top_p: validated, then handed to the engine(s) that
take them (for `wsd`: the shaping ones to both engines, the token-id ones to the base only)."""

from __future__ import annotations

import httpx
import pytest

from tests.server.test_errors import assert_error_shape

Q = [{"role": "user", "content": "Hi"}]
SHAPING = {
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "repetition_penalty": 1.2,
    "top_k": 5,
    "min_p": 0.1,
    "ignore_eos": True,
}
TOKEN_IDS = {"logit_bias": {"7": 3.5, "9": -100}, "stop_token_ids": [11, 12]}
EXPECTED_TOKEN_IDS = {"logit_bias": ((7, 3.5), (9, -100.0)), "stop_token_ids": (11, 12)}


def post(server, path, body):
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=30)


def last_settings(engine):
    return engine.generate_calls[-1].sampling


@pytest.mark.parametrize("which", ["pilot", "base"])
def test_a_single_model_takes_every_setting(scripted_server, scripted_engines, ids, which):
    engine = getattr(scripted_engines, which)
    body = {"model": ids[which], "messages": Q, "max_tokens": 8, "min_tokens": 3}
    response = post(scripted_server, "/v1/chat/completions", {**body, **SHAPING, **TOKEN_IDS})
    assert response.status_code == 200
    settings = last_settings(engine)
    for name, value in {**SHAPING, **EXPECTED_TOKEN_IDS, "min_tokens": 3}.items():
        assert getattr(settings, name) == value, name


def test_completions_take_every_setting(scripted_server, scripted_engines, ids):
    body = {"model": ids["base"], "prompt": "Once", "max_tokens": 8, "min_tokens": 2}
    assert post(scripted_server, "/v1/completions", {**body, **SHAPING, **TOKEN_IDS}).is_success
    settings = last_settings(scripted_engines.base)
    for name, value in {**SHAPING, **EXPECTED_TOKEN_IDS, "min_tokens": 2}.items():
        assert getattr(settings, name) == value, name


def test_wsd_gives_shaping_to_both_and_token_ids_to_the_base(
    scripted_server, scripted_engines, ids
):
    scripted_engines.base.probability = lambda i: 0.99  # switch at the first window
    body = {"model": ids["wsd"], "messages": Q, "max_tokens": 40, **SHAPING, **TOKEN_IDS}
    body["wsd"] = {"window": 2}
    answer = post(scripted_server, "/v1/chat/completions", body).json()
    assert answer["choices"][0]["wsd"]["reason"] == "threshold"
    pilot, base = last_settings(scripted_engines.pilot), last_settings(scripted_engines.base)
    for name, value in SHAPING.items():
        assert getattr(pilot, name) == value and getattr(base, name) == value, name
    assert pilot.logit_bias == () and pilot.stop_token_ids == ()
    assert base.logit_bias == EXPECTED_TOKEN_IDS["logit_bias"]
    assert base.stop_token_ids == EXPECTED_TOKEN_IDS["stop_token_ids"]


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"presence_penalty": 3.0}, "presence_penalty"),
        ({"frequency_penalty": -2.5}, "frequency_penalty"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"top_k": -2}, "top_k"),
        ({"min_p": 1.5}, "min_p"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"logit_bias": {"1": 101}}, "logit_bias"),
        ({"logit_bias": {str(i): 1 for i in range(301)}}, "logit_bias"),
        ({"logit_bias": {"1000000": 1}}, "logit_bias"),
        ({"stop_token_ids": [10**9]}, "stop_token_ids"),
        ({"stop_token_ids": [-1]}, "stop_token_ids.0"),
        ({"min_tokens": -1}, "min_tokens"),
        ({"min_tokens": 9}, "min_tokens"),
    ],
)
@pytest.mark.parametrize("which", ["wsd", "pilot"])
def test_bad_sampling_fields_are_400(scripted_server, ids, which, overrides, param):
    body = {"model": ids[which], "messages": Q, "max_tokens": 8, "stream": True, **overrides}
    response = post(scripted_server, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert_error_shape(response.json(), param=param)


def test_wsd_min_tokens_go_to_the_base_for_the_rest_of_the_answer(
    scripted_server, scripted_engines, ids
):
    scripted_engines.base.probability = lambda i: 0.99  # switch at the first window: 2 kept
    body = {"model": ids["wsd"], "messages": Q, "max_tokens": 40, "min_tokens": 30}
    answer = post(scripted_server, "/v1/chat/completions", {**body, "wsd": {"window": 2}}).json()
    assert answer["choices"][0]["wsd"]["prefix_tokens"] == 2
    pilot, base = last_settings(scripted_engines.pilot), last_settings(scripted_engines.base)
    assert pilot.min_tokens == 0
    # the answer holds the 2 kept draft tokens and the shortcut's first base token
    assert base.min_tokens == 30 - 3


def test_the_first_base_token_is_left_to_the_engine_when_logits_move(
    scripted_server, scripted_engines, ids
):
    """At temperature 0 the first base token normally comes from the scoring pass's top-1;
    a bias or penalty can change the engine's choice, so then the engine picks it."""
    scripted_engines.base.probability = lambda i: 0.99
    body = {"model": ids["wsd"], "messages": Q, "max_tokens": 40, "wsd": {"window": 2}}
    post(scripted_server, "/v1/chat/completions", body)
    plain_prompt, _, plain_max_tokens = scripted_engines.base.generate_calls[-1]
    post(scripted_server, "/v1/chat/completions", {**body, "repetition_penalty": 1.1})
    moved_prompt, _, moved_max_tokens = scripted_engines.base.generate_calls[-1]
    assert len(moved_prompt) == len(plain_prompt) - 1  # the shortcut's token is not there
    assert moved_max_tokens == plain_max_tokens + 1
