"""The report's statistics: percentiles as numpy computes them, a bootstrap that matches the
normal approximation where it should, and is deterministic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.stats import bootstrap_ci, mean, median, percentile


def test_bernoulli_interval_matches_the_normal_approximation() -> None:
    # 400 values, exactly half ones, in a fixed irregular pattern (i -> 37 i mod 400 permutes)
    values = [1.0 if (i * 37) % 400 < 200 else 0.0 for i in range(400)]
    p = mean(values)
    assert p == 0.5
    half_width = 1.96 * math.sqrt(p * (1 - p) / len(values))
    low, high = bootstrap_ci(values)
    assert abs(low - (p - half_width)) < 0.01
    assert abs(high - (p + half_width)) < 0.01


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    values = [float(i % 5) for i in range(97)]
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_constant_and_single_values_give_a_zero_width_interval() -> None:
    assert bootstrap_ci([2.5] * 50) == (2.5, 2.5)
    assert bootstrap_ci([7.0]) == (7.0, 7.0)


def test_empty_raises() -> None:
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        median([])


def test_interval_contains_the_statistic_and_narrows_with_confidence() -> None:
    values = [float(i**2 % 11) for i in range(200)]
    wide = bootstrap_ci(values, confidence=0.99)
    narrow = bootstrap_ci(values, confidence=0.5)
    assert wide[0] < narrow[0] < mean(values) < narrow[1] < wide[1]


def test_median_and_other_statistics() -> None:
    values = [float(v) for v in [1, 9, 2, 8, 3, 7, 4, 6, 5, 100]]
    low, high = bootstrap_ci(values, median, resamples=500)
    assert low <= median(values) <= high
    # any callable statistic, resampled one call at a time
    low, high = bootstrap_ci(values, max, resamples=200)
    assert low <= high <= 100.0


def test_large_samples_are_resampled_in_chunks() -> None:
    values = [float(i % 2) for i in range(20_000)]
    low, high = bootstrap_ci(values, resamples=300)
    assert low < 0.5 < high and high - low < 0.03


@pytest.mark.parametrize("q", [0, 10, 25, 50, 62.5, 75, 99, 100])
def test_percentile_agrees_with_numpy(q: float) -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_median_of_even_and_odd_counts() -> None:
    assert median([1.0, 3.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
