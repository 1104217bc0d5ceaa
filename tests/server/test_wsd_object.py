"""The `wsd` object has one writer: the run's report and the stream's timings as sent are put
together once, when the choice ends; the metrics read that object, so they say the same."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

Q = [{"role": "user", "content": "Tell me about Paris."}]


def observed(base_url, model):
    """Each `wsd_*_seconds` histogram's sum for `model`."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    sums = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_seconds_sum") and sample.labels.get("model_name") == model:
                sums[sample.name.removesuffix("_sum")] = sample.value
    return sums


@pytest.mark.parametrize("stream", [False, True])
def test_the_metrics_read_the_response_wsd_object(own_scripted_server, ids, stream):
    server = own_scripted_server()
    server.engines.base.probability = lambda i: 0.99  # a window passes: the base writes
    body = {"model": ids["wsd"], "messages": Q, "max_tokens": 30, "stream": stream,
            "wsd": {"window": 2}}  # fmt: skip
    url = f"{server.base_url}/v1/chat/completions"
    if stream:
        with httpx.stream("POST", url, json=body, timeout=30) as response:
            lines = [line for line in response.iter_lines() if '"wsd"' in line]
        wsd = json.loads(lines[-1].removeprefix("data: "))["choices"][0]["wsd"]
    else:
        wsd = httpx.post(url, json=body, timeout=30).json()["wsd"]
    assert wsd["reason"] == "threshold"
    for field in ("time_to_first_token_s", "switch_latency_s", "draft_lag_s", "max_stream_gap_s"):
        assert wsd[field] is not None and wsd[field] >= 0, field
    sums = observed(server.base_url, ids["wsd"])
    assert sums["wsd_switch_latency_seconds"] == pytest.approx(wsd["switch_latency_s"])
    assert sums["wsd_draft_lag_seconds"] == pytest.approx(wsd["draft_lag_s"])
    assert sums["wsd_max_stream_gap_seconds"] == pytest.approx(wsd["max_stream_gap_s"])
    assert sums["wsd_time_to_first_token_seconds"] == pytest.approx(wsd["time_to_first_token_s"])
    assert sums["wsd_time_to_switch_seconds"] == pytest.approx(wsd["time_to_switch_s"])
