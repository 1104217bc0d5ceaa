import pytest

from wsd_engine.config import WSDConfig
from wsd_engine.engines.protocol import FinishReason
from wsd_engine.request import SwitchReason, WSDParams, WSDRequest, plan_continuation


def plan(**kw):
    args = dict(
        num_draft_tokens=50,
        accept_index=None,
        pilot_finish=FinishReason.STOP,
        max_tokens=128,
        continue_after_draft_end=True,
    )
    args.update(kw)
    return plan_continuation(**args)


def test_threshold_switch_keeps_prefix_and_continues_with_remaining_budget():
    p = plan(accept_index=9)
    assert (p.num_kept, p.base_budget, p.reason) == (10, 118, SwitchReason.THRESHOLD)
    assert p.accept_index == 9


def test_no_pass_keeps_whole_draft_then_base_continues():
    p = plan()
    assert (p.num_kept, p.base_budget, p.reason) == (50, 78, SwitchReason.DRAFT_END)
    assert p.accept_index == 49  # the last draft index


def test_draft_limit_reason_when_pilot_hit_its_budget():
    assert plan(pilot_finish=FinishReason.LENGTH).reason is SwitchReason.DRAFT_LIMIT


def test_option_to_end_the_answer_with_the_draft():
    p = plan(continue_after_draft_end=False)
    assert (p.num_kept, p.base_budget) == (50, 0)
    # a draft cut by the limit is unfinished: the base model still continues
    assert plan(continue_after_draft_end=False, pilot_finish=FinishReason.LENGTH).base_budget == 78


@pytest.mark.parametrize(("accept", "max_tokens"), [(9, 10), (9, 5), (None, 50), (None, 20)])
def test_max_tokens_inside_the_draft(accept, max_tokens):
    p = plan(accept_index=accept, max_tokens=max_tokens)
    assert (p.num_kept, p.base_budget) == (max_tokens, 0)


def test_empty_draft_lets_the_base_model_answer():
    p = plan(num_draft_tokens=0, continue_after_draft_end=False)
    assert (p.num_kept, p.base_budget, p.reason) == (0, 128, SwitchReason.DRAFT_END)
    assert p.accept_index is None


def test_engine_seeds_are_distinct_and_reproducible():
    r = WSDRequest(request_id="r", messages=(), max_tokens=8, seed=42)
    assert r.engine_seed("pilot") == WSDRequest("x", (), 1, seed=42).engine_seed("pilot")
    assert r.engine_seed("pilot") != r.engine_seed("base")
    assert WSDRequest("r", (), 8).engine_seed("pilot") is None


def test_params_from_config_with_overrides():
    p = WSDParams.from_config(WSDConfig(), threshold=0.5, window=None)
    assert (p.threshold, p.window, p.draft_max_tokens) == (0.5, 6, 512)
