"""The stream figures of one answer, from the moments its chunks are sent."""

from __future__ import annotations

import pytest

from wsd_engine.config import Role
from wsd_engine.timeline import PilotProgress, StreamTimeline


def test_switch_latency_is_the_longer_gap_into_the_first_two_base_chunks():
    timeline = StreamTimeline(started=0.0)
    timeline.sent("Once", Role.PILOT, 0.5, pilot_times=(0.1, 0.2))
    timeline.sent(" upon", Role.PILOT, 1.0, pilot_times=(0.4,))
    timeline.sent(" a", Role.BASE, 1.9)  # from the scoring pass, right after the decision
    timeline.sent(" time", Role.BASE, 2.2)
    timeline.sent(",", Role.BASE, 2.4)
    timeline.sent(" there", Role.BASE, 2.5)
    assert timeline.switch_latency_s == pytest.approx(0.9)
    assert timeline.base_pace == pytest.approx([0.2, 0.1])
    assert timeline.max_gap_s == pytest.approx(0.9)
    assert timeline.draft_lag_p50_s == pytest.approx(0.4)  # median of 0.4, 0.3 and 0.6


def test_second_base_gap_counts_when_it_is_the_longer():
    timeline = StreamTimeline(started=0.0)
    timeline.sent("Hi", Role.PILOT, 0.2)
    timeline.sent(" there", Role.BASE, 0.25)
    timeline.sent("!", Role.BASE, 1.0)
    assert timeline.switch_latency_s == pytest.approx(0.75)


def test_empty_pieces_are_not_chunks_and_the_first_chunk_has_no_gap():
    timeline = StreamTimeline(started=0.0)
    timeline.sent("", Role.PILOT, 5.0)
    timeline.sent("Hi", Role.PILOT, 6.0)
    assert timeline.max_gap_s is None and timeline.last_sent == 6.0
    assert timeline.switch_latency_s is None and timeline.draft_lag_p50_s is None


def test_pilot_progress_reports_each_token_once_when_its_text_is_sent():
    progress = PilotProgress()
    progress.add(1, 4, at=0.1)  # "Once"
    progress.add(3, 12, at=0.3)  # " upon a" (two tokens in one delta)
    progress.add(4, 17, at=0.4)  # " time"
    assert progress.newly_sent(10) == (0.1,)  # " upon a" is not complete yet
    assert progress.newly_sent(12) == (0.3, 0.3)
    assert progress.newly_sent(12) == ()
    assert progress.produced_at(5) == 0.3 and progress.produced_at(18) is None
    assert progress.tokens_beyond(12) == 1 and progress.tokens_beyond(99) == 0
