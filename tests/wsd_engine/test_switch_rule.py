import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsd_engine.engines.engine import FinishReason
from wsd_engine.switch_rule import (
    SwitchReason,
    SwitchTracker,
    find_accept_index,
    plan_continuation,
    window_passes,
)


def lp(*probs: float) -> list[float]:
    return [math.log(p) if p > 0 else -math.inf for p in probs]


def test_passes_at_first_possible_index():
    assert find_accept_index(lp(0.9, 0.9, 0.9), window=3, threshold=0.8) == 2


def test_no_window_passes_returns_none():
    assert find_accept_index(lp(0.5, 0.9, 0.9, 0.5, 0.9, 0.9), window=3, threshold=0.8) is None


def test_first_passing_window_wins_over_later_ones():
    probs = lp(0.1, 0.9, 0.9, 0.9, 0.99, 0.99)
    # windows end at 2: (.1,.9,.9) fails; end at 3: (.9,.9,.9) = 0.9 passes.
    assert find_accept_index(probs, window=3, threshold=0.8) == 3


def test_geometric_not_arithmetic_mean():
    # arithmetic mean (0.5 + 1 + 1) / 3 = 0.83 would pass; geometric 0.5^(1/3) = 0.79 fails
    assert find_accept_index(lp(0.5, 1.0, 1.0), window=3, threshold=0.8) is None
    assert find_accept_index(lp(0.52, 1.0, 1.0), window=3, threshold=0.8) == 2


def test_zero_probability_blocks_its_windows():
    probs = lp(1.0, 0.0, 1.0, 1.0, 1.0)
    assert find_accept_index(probs, window=2, threshold=0.5) == 3


def test_draft_shorter_than_window_never_passes():
    assert find_accept_index(lp(1.0, 1.0), window=6, threshold=0.1) is None
    assert find_accept_index([], window=1, threshold=0.0) is None


def test_threshold_zero_passes_first_full_window_even_with_zero_probabilities():
    assert find_accept_index(lp(0.0, 0.0, 0.0), window=2, threshold=0.0) == 1


def test_threshold_one_needs_certainty():
    assert find_accept_index(lp(1.0, 0.999999, 1.0, 1.0), window=2, threshold=1.0) == 3
    assert find_accept_index(lp(0.999, 0.999), window=2, threshold=1.0) is None


def test_window_one_is_per_token():
    assert find_accept_index(lp(0.2, 0.85, 0.9), window=1, threshold=0.8) == 1


def test_window_passes_exact_boundary():
    assert window_passes(lp(0.8, 0.8), 0.8)
    assert not window_passes(lp(0.8, 0.79), 0.8)


@pytest.mark.parametrize("chunks", [[6], [1, 1, 1, 1, 1, 1], [2, 4], [5, 1]])
def test_tracker_matches_pure_rule_for_any_chunking(chunks):
    probs = lp(0.3, 0.95, 0.9, 0.9, 0.95, 0.99)
    tracker = SwitchTracker(window=3, threshold=0.8)
    position = 0
    for size in chunks:
        tracker.extend(probs[position : position + size])
        position += size
    assert tracker.accept_index == find_accept_index(probs, 3, 0.8) == 3


def test_tracker_settles_first_window_before_scoring():
    tracker = SwitchTracker(window=6, threshold=0.8)
    assert tracker.num_settled_by_score == 6
    tracker.extend(lp(0.1, *[0.99] * 5))
    # the window ending at 5 failed, so token 6 is kept whatever follows; the window ending at
    # 6 could still pass (five scored 0.99 and an unscored token of probability up to 1)
    assert tracker.num_settled_by_score == 7
    tracker.extend(lp(0.99))
    assert tracker.accept_index == 6
    assert tracker.num_settled_by_score == 7


def test_tracker_settles_past_the_scored_tokens_when_no_window_can_pass():
    tracker = SwitchTracker(window=6, threshold=0.8)
    tracker.extend(lp(*[0.9] * 4, 0.1, 0.9))
    # 0.1 sinks every window holding token 4 (0.1 ** (1/6) < 0.8 even if the rest are 1):
    # the windows ending at 6..9 cannot pass, so the accept index is at least 10
    assert tracker.num_settled_by_score == 11
    tracker.extend(lp(0.9))
    assert tracker.num_settled_by_score == 11


@settings(max_examples=300, deadline=None)
@given(
    probs=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40),
    cuts=st.lists(st.integers(1, 8), max_size=20),
    window=st.integers(1, 8),
    threshold=st.floats(0.0, 1.0),
)
def test_settled_tokens_are_always_in_the_offline_answer(probs, cuts, window, threshold):
    logprobs = lp(*probs)
    accept = find_accept_index(logprobs, window, threshold)
    kept = len(logprobs) if accept is None else accept + 1
    tracker = SwitchTracker(window, threshold)
    position = 0
    for size in [*cuts, len(logprobs)]:
        if tracker.accept_index is not None or position >= len(logprobs):
            break
        assert min(tracker.num_settled_by_score, len(logprobs)) <= kept
        tracker.extend(logprobs[position : position + size])
        position += size
    assert min(tracker.num_settled_by_score, len(logprobs)) <= kept


def test_tracker_ignores_scores_after_accepting():
    tracker = SwitchTracker(window=2, threshold=0.5)
    assert tracker.extend(lp(0.9, 0.9, 0.1)) == 1
    assert tracker.extend(lp(0.9)) == 1
    assert tracker.num_scored == 2


@pytest.mark.parametrize(("window", "threshold"), [(0, 0.8), (6, -0.1), (6, 1.5)])
def test_tracker_rejects_bad_settings(window, threshold):
    with pytest.raises(ValueError):
        SwitchTracker(window=window, threshold=threshold)


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


def test_a_draft_ending_before_min_tokens_is_continued():
    assert plan(continue_after_draft_end=False, min_tokens=51).base_budget == 78
    assert plan(continue_after_draft_end=False, min_tokens=50).base_budget == 0


@pytest.mark.parametrize(("accept", "max_tokens"), [(9, 10), (9, 5), (None, 50), (None, 20)])
def test_max_tokens_inside_the_draft(accept, max_tokens):
    p = plan(accept_index=accept, max_tokens=max_tokens)
    assert (p.num_kept, p.base_budget) == (max_tokens, 0)


def test_empty_draft_lets_the_base_model_answer():
    p = plan(num_draft_tokens=0, continue_after_draft_end=False)
    assert (p.num_kept, p.base_budget, p.reason) == (0, 128, SwitchReason.DRAFT_END)
    assert p.accept_index is None
