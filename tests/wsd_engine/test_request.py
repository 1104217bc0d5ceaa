import pytest

from wsd_engine.config import Role, WSDConfig
from wsd_engine.engines.engine import FinishReason, SamplingSettings
from wsd_engine.request import (
    ContextLengthExceeded,
    RequestError,
    RunReport,
    WSDOutcome,
    WSDRequest,
    check_vocabulary,
    completion_budget,
)


def test_each_choice_has_its_own_ids_and_seed():
    r = WSDRequest(request_id="r", messages=(), sampling=SamplingSettings(seed=42))
    assert r.for_choice(0, 1) is r  # one choice: the request's own id (`r-pilot`, ...)
    second = r.for_choice(1, 3)
    assert second.request_id == "r-1" and second.sampling.seed == 43
    assert second.cache_salt != r.cache_salt != r.for_choice(2, 3).cache_salt
    assert WSDRequest("r", ()).for_choice(2, 3).sampling.seed is None


def test_requests_never_share_a_cache_salt():
    assert WSDRequest("same", ()).cache_salt != WSDRequest("same", ()).cache_salt


def test_the_config_defaults_are_a_requests_settings():
    config = WSDConfig(threshold=0.5)
    defaults = config.defaults()
    assert (defaults.threshold, defaults.window, defaults.draft_max_tokens) == (0.5, 6, 512)
    assert not hasattr(defaults, "served_model_name")


def test_completion_budget_takes_what_fits_or_names_the_limit():
    assert completion_budget(10, 20, 100) == 20
    assert completion_budget(10, None, 100) == 90
    with pytest.raises(ContextLengthExceeded) as raised:
        completion_budget(10, 95, 100, param="prompt")
    assert raised.value.param == "prompt" and raised.value.code == "context_length_exceeded"
    assert "maximum context length is 100 tokens" in str(raised.value)
    assert "105 tokens (10 in the prompt, 95 in the completion)" in str(raised.value)
    with pytest.raises(ContextLengthExceeded, match="your messages resulted in 100 tokens"):
        completion_budget(100, None, 100)


def test_the_vocabulary_check_names_the_first_id_outside():
    check_vocabulary([0, 5, 9], 10, "m", param="prompt")
    with pytest.raises(RequestError, match="token id 10 is outside m's vocabulary") as raised:
        check_vocabulary([3, 10, -1], 10, "m", param="stop_token_ids")
    assert raised.value.param == "stop_token_ids"
    with pytest.raises(RequestError, match="token id -1"):
        check_vocabulary([-1], 10, "m", param="tokens")


def test_tokens_by_role_splits_the_answer_between_the_engines():
    report = RunReport(threshold=0.8, window=6, pilot_tokens=30, prefix_tokens=12)
    outcome = WSDOutcome("text", FinishReason.STOP, 40, 50, 35, report)
    assert outcome.tokens_by_role() == {Role.PILOT: (35, 30), Role.BASE: (40, 38)}
