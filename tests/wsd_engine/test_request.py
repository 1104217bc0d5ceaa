import pytest

from wsd_engine.config import Role, WSDConfig
from wsd_engine.engines.protocol import FinishReason
from wsd_engine.request import (
    ContextLengthExceeded,
    WSDInfo,
    WSDOutcome,
    WSDParams,
    WSDRequest,
    completion_budget,
)


def test_engine_seeds_are_distinct_and_reproducible():
    r = WSDRequest(request_id="r", messages=(), max_tokens=8, seed=42)
    assert r.engine_seed(Role.PILOT) == WSDRequest("x", (), 1, seed=42).engine_seed(Role.PILOT)
    assert r.engine_seed(Role.PILOT) != r.engine_seed(Role.BASE)
    assert WSDRequest("r", (), 8).engine_seed(Role.PILOT) is None


def test_each_choice_has_its_own_id_and_seed():
    r = WSDRequest(request_id="r", messages=(), seed=42)
    assert r.for_choice(1).request_id == "r-1" and r.for_choice(1).seed == 43
    assert WSDRequest("r", ()).for_choice(2).seed is None


def test_params_from_config_with_overrides():
    p = WSDParams.from_config(WSDConfig(), threshold=0.5, window=None)
    assert (p.threshold, p.window, p.draft_max_tokens) == (0.5, 6, 512)


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


def test_tokens_by_role_splits_the_answer_between_the_engines():
    info = WSDInfo(threshold=0.8, window=6, pilot_tokens=30, prefix_tokens=12)
    outcome = WSDOutcome("text", FinishReason.STOP, 40, 50, 35, info)
    assert outcome.tokens_by_role() == {Role.PILOT: (35, 30), Role.BASE: (40, 38)}
