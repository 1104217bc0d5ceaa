"""Metrics: right values, a real Prometheus scraping the real server, every dashboard query."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from server.background import free_port, wait_ready
from tests.server.timed_stream import timed_stream

pytestmark = pytest.mark.slow

DOCKER = Path(__file__).resolve().parents[2] / "docker"
Q = [{"role": "user", "content": "Name a fruit."}]
# threshold 0: every window passes, so the answer switches after its first two tokens
SWITCH_AT_ONCE = {"wsd": {"threshold": 0.0, "window": 2}}


def scrape(base_url):
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = sample.value
    return samples


def total(samples, name, **labels):
    return sum(
        value
        for (sample_name, sample_labels), value in samples.items()
        if sample_name == name and all(dict(sample_labels).get(k) == v for k, v in labels.items())
    )


def test_metric_values_follow_requests(live_server, client, ids):
    before = scrape(live_server.base_url)
    switched = 0
    n = 3
    for i in range(n):
        response = client.chat.completions.create(
            model=ids["wsd"],
            messages=Q,
            max_tokens=12 + i,
            temperature=0,
            extra_body=SWITCH_AT_ONCE,
        )
        switched += response.model_extra["wsd"]["switch_latency_s"] is not None
    client.chat.completions.create(model=ids["pilot"], messages=Q, max_tokens=4)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=ids["wsd"], messages=Q, max_tokens=0)
    after = scrape(live_server.base_url)

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("wsd_requests_finished_total", model_name=ids["wsd"]) == n
    assert delta("wsd_requests_finished_total", model_name=ids["pilot"]) == 1
    assert delta("wsd_switch_latency_seconds_count", model_name=ids["wsd"]) == switched > 0
    assert delta("wsd_switch_reason_total", model_name=ids["wsd"], reason="threshold") == n
    assert delta("wsd_time_to_first_token_seconds_count", model_name=ids["wsd"]) == n
    assert delta("wsd_e2e_request_latency_seconds_count", model_name=ids["wsd"]) == n
    assert delta("wsd_accepted_prefix_tokens_count", model_name=ids["wsd"]) == n
    assert delta("wsd_request_errors_total", status="400") == 1
    assert delta("wsd_generation_tokens_total", model_name=ids["wsd"], role="pilot") > 0
    assert total(after, "wsd_requests_running") == 0
    assert total(after, "wsd_requests_waiting") == 0
    info = [k for k in after if k[0] == "wsd_build_info"]
    assert info and dict(info[0][1])["window"] == "6"


def test_stream_metrics_match_the_client_clock(live_server, ids):
    """One streamed WSD answer that switches: each metric's observation is what the client
    measured on its own clock, within 50 ms."""
    body = {
        "model": ids["wsd"],
        "messages": [{"role": "user", "content": "Tell me a short story about a cat."}],
        "max_tokens": 24,
        "temperature": 0,
        "wsd": SWITCH_AT_ONCE["wsd"],
    }
    before = scrape(live_server.base_url)
    timed = timed_stream(live_server.base_url, body)
    after = scrape(live_server.base_url)

    def observed(name):
        labels = {"model_name": ids["wsd"]}
        count = total(after, f"{name}_count", **labels) - total(before, f"{name}_count", **labels)
        assert count == 1, name
        return total(after, f"{name}_sum", **labels) - total(before, f"{name}_sum", **labels)

    wsd = timed.wsd
    assert wsd["reason"] == "threshold" and len(timed.text) > wsd["prefix_chars"]
    client_switch = timed.switch_latency()
    assert observed("wsd_switch_latency_seconds") == pytest.approx(client_switch, abs=0.05)
    assert wsd["switch_latency_s"] == pytest.approx(client_switch, abs=0.05)
    client_max_gap = max(timed.gaps())
    assert observed("wsd_max_stream_gap_seconds") == pytest.approx(client_max_gap, abs=0.05)
    assert observed("wsd_switch_decision_lag_seconds") == pytest.approx(wsd["decision_lag_s"])
    assert observed("wsd_draft_lag_seconds") == pytest.approx(wsd["draft_lag_s"])
    # the draft lag is at least the wait for the first scoring pass, at most the whole draft
    assert 0 < wsd["draft_lag_s"] <= wsd["time_to_switch_s"]
    assert 0 < wsd["decision_lag_s"] <= wsd["time_to_switch_s"]


@pytest.fixture(scope="module")
def prometheus(live_server, tmp_path_factory):
    binary = shutil.which("prometheus")
    assert binary, "the Debian package prometheus is installed by `make test`"
    work = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "wsd",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{live_server.port}"]}],
            }
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/-/ready", process, timeout_s=60, poll_s=0.2)
    yield url
    process.terminate()
    process.wait(timeout=30)


def dashboard_exprs():
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "wsd.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_every_dashboard_query_returns_data(prometheus, client, ids):
    # traffic spread over a few scrapes, so that rates have two samples to work with
    for _ in range(3):
        # a story: the base model writes several chunks after the switch (its pace inside WSD)
        client.chat.completions.create(
            model=ids["wsd"],
            messages=[{"role": "user", "content": "Tell me a short story about a cat."}],
            max_tokens=12,
            temperature=0,
            extra_body=SWITCH_AT_ONCE,
        )
        client.chat.completions.create(model=ids["base"], messages=Q, max_tokens=4)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model=ids["wsd"], messages=Q, max_tokens=-1)
        time.sleep(1.5)
    time.sleep(3)
    empty = []
    for title, expr in dashboard_exprs():
        query = expr.replace("$__rate_interval", "1m").replace("$model_name", ".*")
        response = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=30)
        body = response.json()
        assert body["status"] == "success", (title, query, body)
        if not body["data"]["result"]:
            empty.append((title, query))
    assert not empty, f"panels whose query returned nothing: {empty}"


def test_dashboard_is_valid_for_provisioning():
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "wsd.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert "model_name" in variables
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["type"] == "prometheus", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert "$model_name" in expr, (panel["title"], expr)
            if "rate(" in expr:
                assert "[$__rate_interval]" in expr, (panel["title"], expr)
    top_row = [panel["title"] for panel in dashboard["panels"] if panel["gridPos"]["y"] == 0]
    assert top_row == [
        "Switch latency vs base ITL",
        "Switch latency / base ITL (p50)",
        "Decision lag and draft lag",
        "Max stream gap per answer",
    ]
    exprs = " ".join(expr for _, expr in dashboard_exprs())
    for metric in (
        "wsd_switch_latency_seconds_bucket",
        "wsd_continuation_inter_token_latency_seconds_bucket",
        "wsd_switch_decision_lag_seconds_bucket",
        "wsd_draft_lag_seconds_bucket",
        "wsd_max_stream_gap_seconds_bucket",
        "wsd_switch_handoff_seconds_bucket",
        "wsd_time_to_switch_seconds_bucket",
        "wsd_accepted_prefix_tokens_bucket",
        "wsd_switch_reason_total",
        "wsd_pilot_tokens_wasted_bucket",
        "wsd_time_to_first_token_seconds_bucket",
        "wsd_inter_token_latency_seconds_bucket",
        "wsd_e2e_request_latency_seconds_bucket",
        "wsd_requests_running",
        "wsd_requests_waiting",
        "wsd_generation_tokens_total",
        "wsd_request_errors_total",
    ):
        assert metric in exprs, metric


def test_compose_and_prometheus_config_agree():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"wsd", "prometheus", "grafana"} <= set(services)
    scrape_config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = [
        t
        for job in scrape_config["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    ]
    host, port = targets[0].split(":")
    assert host == "wsd"
    assert any(str(p).split(":")[-1] == port for p in services["wsd"]["ports"])
    assert any("prometheus.yml" in v for v in services["prometheus"]["volumes"])
    datasource = yaml.safe_load(
        (DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"][0]
    assert datasource["url"].startswith("http://prometheus:")
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "wsd.json").read_text())
    assert dashboard["panels"][0]["datasource"]["uid"] == datasource["uid"]
    provider = yaml.safe_load(
        (DOCKER / "grafana" / "provisioning" / "dashboards" / "wsd.yaml").read_text()
    )["providers"][0]
    mounted = [v.split(":")[1] for v in services["grafana"]["volumes"]]
    assert provider["options"]["path"] in mounted
