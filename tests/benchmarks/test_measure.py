"""The benchmark's arithmetic: percentiles, the switch stall, the target ratios."""

from __future__ import annotations

import json

import pytest

from benchmarks.measure import (
    EngineFloor,
    ModeResult,
    Sample,
    Settings,
    aggregate,
    continuation_gaps,
    engine_floor_s,
    switch_latency,
)
from benchmarks.prompts import BENCH_PROMPTS
from benchmarks.report import ratios, write_report


def test_shipped_prompt_set_is_large_and_varied():
    assert len(BENCH_PROMPTS) >= 40
    firsts = {messages[-1].content for messages in BENCH_PROMPTS}
    assert len(firsts) == len(BENCH_PROMPTS)


def test_requests_per_level_default_and_override():
    settings = Settings([1, 16], None, 128, ["wsd"], "c.yaml", peer=False)
    assert len(settings.prompts(1)) == 8 and len(settings.prompts(16)) == 32
    assert settings.prompts(1) == settings.prompts(16)[:8]
    assert len(Settings([1], 4, 32, ["wsd"], "c.yaml", peer=False).prompts(16)) == 4


def test_switch_latency_is_the_longer_gap_into_the_first_two_base_chunks():
    # chunks at t=0,1,2 hold 10 pilot chars; base text starts at t=2.5, then t=4.0
    arrivals = [(0.0, 4), (1.0, 8), (2.0, 10), (2.5, 14), (4.0, 20), (4.1, 25)]
    assert switch_latency(arrivals, prefix_chars=10) == 1.5
    assert switch_latency(arrivals, prefix_chars=14) == 1.5  # first base chunk at t=4.0
    assert switch_latency(arrivals, prefix_chars=25) is None  # the answer never switched
    assert switch_latency(arrivals, prefix_chars=None) is None
    assert switch_latency(arrivals, prefix_chars=0) is None  # all base: no switch to see


def test_aggregate_medians_and_rates():
    samples = [
        Sample(ttft_s=0.1 * i, e2e_s=float(i), output_tokens=10, gaps_s=[0.2, 0.4])
        for i in range(1, 6)
    ]
    result = aggregate("base", 4, samples, wall_s=10.0)
    assert result.ttft_p50_s == 0.3 and result.e2e_p50_s == 3.0
    assert result.itl_p50_s == 0.3
    assert result.output_tok_s == 5.0 and result.req_s == 0.5


def _result(mode, c, **values):
    base = dict(
        requests=4, wall_s=10.0, ttft_p50_s=None, ttft_p90_s=None, itl_p50_s=None,
        e2e_p50_s=1.0, e2e_p90_s=1.0, output_tok_s=1.0, req_s=1.0,
    )  # fmt: skip
    base.update(values)
    return ModeResult(mode=mode, concurrency=c, **base)


def test_ratios_compare_modes_of_the_same_run():
    results = [
        _result("wsd", 1, e2e_p50_s=3.0, ttft_p50_s=0.3, handoff_p50_s=0.1,
                switch_latency_p50_s=0.3, max_stream_gap_p50_s=0.9, main_process_cpu_s=0.5,
                switches=[(9, 20), (None, 5), (4, 30)]),
        _result("offline", 1, e2e_p50_s=12.0),
        _result("pilot", 1, ttft_p50_s=0.25, itl_p50_s=0.05),
        _result("base", 1, ttft_p50_s=1.0, itl_p50_s=0.2, max_stream_gap_p50_s=0.3),
        _result("wsd", 16, output_tok_s=40.0),
        _result("peer", 16, output_tok_s=50.0),
    ]  # fmt: skip
    got = ratios(results)
    assert got["wsd_e2e_over_offline_e2e"] == 0.25
    assert got["wsd_ttft_over_pilot_ttft"] == 1.2
    assert got["wsd_ttft_over_base_ttft"] == 0.3
    assert got["handoff_over_base_itl"] == 0.5
    assert got["switch_latency_over_base_itl_c1"] == 1.5
    assert got["max_stream_gap_over_base_c1"] == 3.0
    assert got["switch_latency_over_base_itl_c16"] is None  # no base mode at c=16
    assert got["switch_floor_over_base_itl_c1"] is None  # no floor measured
    assert got["wsd_tok_s_over_peer_tok_s_at_c16"] == 0.8
    assert got["orchestration_cpu_share_c1"] == 0.05
    # floors: 0.25 + 9 * 0.05 + 10 * 0.2 = 2.7; 0.25 + 4 * 0.05 = 0.45; 0.25 + 0.2 + 25 * 0.2
    assert got["engine_floor_e2e_over_offline_e2e"] == round(2.7 / 12.0, 3)
    assert got["wsd_e2e_over_engine_floor_e2e"] == round(3.0 / 2.7, 3)


def test_the_engine_floor_is_the_longer_of_pass_and_step():
    floor = EngineFloor(scoring_pass_s=0.3, decode_step_s=0.1)
    assert floor.switch_latency_s == 0.3
    results = [_result("wsd", 1, switch_latency_p50_s=0.45), _result("base", 1, itl_p50_s=0.1)]
    got = ratios(results, floor)
    assert got["switch_floor_over_base_itl_c1"] == 3.0
    assert got["switch_latency_over_floor_c1"] == 1.5


def test_continuation_gaps_follow_the_first_two_base_chunks():
    arrivals = [(0.0, 4), (1.0, 10), (1.1, 14), (1.5, 20), (1.7, 25), (2.0, 30)]
    assert continuation_gaps(arrivals, prefix_chars=10) == pytest.approx([0.2, 0.3])
    assert continuation_gaps(arrivals, prefix_chars=30) == []


def test_engine_floor_drafts_through_the_accept_index_then_decodes():
    assert engine_floor_s(9, 20, 0.5, 0.1, 0.2) == 0.5 + 9 * 0.1 + 10 * 0.2
    # the answer ended inside the draft: all pilot
    assert engine_floor_s(None, 5, 0.5, 0.1, 0.2) == 0.5 + 4 * 0.1
    # switch after max_tokens: all draft
    assert engine_floor_s(30, 8, 0.5, 0.1, 0.2) == 0.5 + 7 * 0.1


def test_report_is_written_with_every_figure(tmp_path):
    results = [
        _result("wsd", 1, switch_latency_p50_s=0.45, max_stream_gap_p50_s=0.6,
                continuation_itl_p50_s=0.1, switches=[(9, 20)]),
        _result("base", 1, itl_p50_s=0.1, max_stream_gap_p50_s=0.2),
    ]  # fmt: skip
    settings = Settings([1], None, 32, ["wsd", "base"], "c.yaml", peer=False, out_dir=tmp_path)
    markdown = write_report(results, settings, EngineFloor(0.3, 0.1))
    text = markdown.read_text()
    assert "| 1 | 0.45 |" in text and "the floor is the longer, 0.3 s" in text
    payload = json.loads((tmp_path / "bench.json").read_text())
    assert payload["settings"]["out_dir"] == str(tmp_path)
    assert payload["ratios"]["switch_latency_over_floor_c1"] == 1.5
    assert (tmp_path / "bench.png").stat().st_size > 0
