"""Small statistics for the report: mean, median, percentiles and a percentile bootstrap.

numpy does the bootstrap's resampling (installed with transformers, a dependency; a pure Python
loop over 2000 resamples of a few thousand answers would take seconds per figure).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Statistic = Callable[[Sequence[float]], float]

# Resampled values held at once: bounds the bootstrap's memory for large answer sets.
_CHUNK_VALUES = 2_000_000


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean (math.fsum: exact for the rates the report shows)."""
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


def median(values: Sequence[float]) -> float:
    """The median (the mean of the two middle values for an even count)."""
    return percentile(values, 50.0)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, q in [0, 100], interpolated linearly between order statistics (as
    numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(float(v) for v in values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bootstrap_ci(
    values: Sequence[float],
    statistic: Statistic = mean,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile bootstrap interval of `statistic` over `values`; the same seed gives the
    same interval. One value, or all equal, gives (v, v)."""
    if not values:
        raise ValueError("bootstrap of no values")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    data = np.asarray(values, dtype=float)
    if np.all(data == data[0]):
        # every resample is the same sample: no sampling error to show
        value = float(statistic(list(data)))
        return (value, value)
    estimates = _resampled(data, statistic, resamples, np.random.default_rng(seed))
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return (float(low), float(high))


def _resampled(
    data: np.ndarray, statistic: Statistic, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """The statistic of each resample; mean and median vectorised, others one call each."""
    size = len(data)
    per_chunk = max(1, _CHUNK_VALUES // size)
    parts = []
    for start in range(0, resamples, per_chunk):
        count = min(per_chunk, resamples - start)
        samples = data[rng.integers(0, size, size=(count, size))]
        if statistic is mean:
            parts.append(samples.mean(axis=1))
        elif statistic is median:
            parts.append(np.median(samples, axis=1))
        else:
            parts.append(np.array([float(statistic(list(row))) for row in samples]))
    return np.concatenate(parts)
