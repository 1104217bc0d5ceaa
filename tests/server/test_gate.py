"""The gate in front of the routes: API keys, the body limit, admission (429), the request
timeout, request ids and unexpected errors, CORS. Each test runs a scripted server of its own
with the settings it needs."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

from tests.server.test_errors import assert_error_shape

Q = [{"role": "user", "content": "Hi"}]


def chat(model, **extra):
    return {"model": model, "messages": Q, "max_tokens": 4, **extra}


# -- API keys -----------------------------------------------------------------------------


def test_keys_are_required_on_v1_only(own_scripted_server, ids):
    server = own_scripted_server(api_keys=("key-one", "key-two"))
    url = server.base_url
    missing = httpx.post(f"{url}/v1/chat/completions", json=chat(ids["pilot"]))
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert_error_shape(missing.json(), code="invalid_api_key")
    assert "missing" in missing.json()["error"]["message"]
    wrong = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer key-three"})
    assert wrong.status_code == 401 and "incorrect" in wrong.json()["error"]["message"]
    for key in ("key-one", "key-two"):
        ok = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    assert httpx.post(f"{url}/tokenize", json={"prompt": "a"}).status_code == 401
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.get(f"{url}/metrics").status_code == 200


def test_the_sdk_sends_the_key(own_scripted_server, ids):
    server = own_scripted_server(api_keys=("sk-test",))
    good = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-test", max_retries=0)
    answer = good.chat.completions.create(model=ids["wsd"], messages=Q, max_tokens=4)
    assert answer.choices[0].message.content
    bad = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-other", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=ids["wsd"], messages=Q, max_tokens=4)


def test_metrics_can_be_closed(own_scripted_server):
    server = own_scripted_server(api_keys=("k",), metrics_public=False)
    assert httpx.get(f"{server.base_url}/metrics").status_code == 401
    authorised = httpx.get(f"{server.base_url}/metrics", headers={"Authorization": "Bearer k"})
    assert authorised.status_code == 200 and "wsd_max_concurrent_requests" in authorised.text


def test_docs_can_be_turned_off(own_scripted_server):
    server = own_scripted_server(docs=False)
    for path in ("/docs", "/openapi.json"):
        assert httpx.get(f"{server.base_url}{path}").status_code == 404


# -- body limit ---------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413(own_scripted_server, ids):
    server = own_scripted_server(max_body_bytes=4096)
    big = chat(ids["pilot"], stop="x" * 8000)
    declared = httpx.post(f"{server.base_url}/v1/chat/completions", json=big)
    assert declared.status_code == 413
    assert_error_shape(declared.json(), code="request_too_large")

    def chunked():  # no Content-Length: the limit applies to the bytes as they come
        yield b'{"model": "' + ids["pilot"].encode() + b'", "stop": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'", "messages": []}'

    streamed = httpx.post(f"{server.base_url}/v1/chat/completions", content=chunked())
    assert streamed.status_code == 413
    assert httpx.post(f"{server.base_url}/v1/chat/completions", json=chat(ids["pilot"])).is_success


# -- admission and timeout ----------------------------------------------------------------


def _stream_in_background(url, body):
    """Start a streamed request in a thread; returns (thread, its lines, first line seen)."""
    lines: list[str] = []
    first = threading.Event()

    def run():
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if line:
                    lines.append(line)
                    first.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, lines, first


def test_requests_past_the_bound_get_429(own_scripted_server, ids):
    server = own_scripted_server(max_concurrent_requests=1)
    server.engines.pilot.delay_s = 0.05
    thread, lines, first = _stream_in_background(
        server.base_url, chat(ids["pilot"], max_tokens=40, stream=True)
    )
    assert first.wait(10)
    refused = httpx.post(f"{server.base_url}/v1/chat/completions", json=chat(ids["pilot"]))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert_error_shape(refused.json(), code="server_overloaded")
    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert "wsd_max_concurrent_requests 1.0" in metrics
    assert "wsd_requests_in_flight 1.0" in metrics
    assert 'wsd_requests_rejected_total{reason="overloaded"} 1.0' in metrics
    thread.join(30)
    assert lines[-1] == "data: [DONE]"
    again = httpx.post(f"{server.base_url}/v1/chat/completions", json=chat(ids["pilot"]))
    assert again.status_code == 200


@pytest.mark.parametrize("which", ["wsd", "pilot"])
def test_a_request_past_the_timeout_is_ended_and_its_work_cancelled(
    own_scripted_server, ids, which
):
    server = own_scripted_server(request_timeout_s=0.5)
    server.engines.pilot.delay_s = 0.05
    body = chat(ids[which], max_tokens=200)
    started = time.monotonic()
    plain = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=30)
    assert plain.status_code == 504 and time.monotonic() - started < 5
    assert plain.json()["error"]["code"] == "request_timeout"
    with httpx.stream(
        "POST", f"{server.base_url}/v1/chat/completions", json={**body, "stream": True}
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert '"code": "request_timeout"' in lines[-2] and lines[-1] == "data: [DONE]"
    deadline = time.monotonic() + 2
    while (server.engines.pilot.running or server.engines.base.running) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.02)
    assert not server.engines.pilot.running and not server.engines.base.running


# -- unexpected errors --------------------------------------------------------------------


def test_an_unexpected_error_is_a_500_with_the_request_id_and_the_connection_lives(
    own_scripted_server, ids, caplog
):
    server = own_scripted_server()
    server.engines.pilot.failure = RuntimeError
    server.engines.pilot.fail_after_tokens = 0
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for _ in range(3):
            failed = http.post(
                "/v1/chat/completions",
                json=chat(ids["pilot"]),
                headers={"X-Request-Id": "req-123"},
            )
            assert failed.status_code == 500
            assert failed.headers["x-request-id"] == "req-123"
            assert "req-123" in failed.json()["error"]["message"]
            assert failed.json()["error"]["type"] == "server_error"
        server.engines.pilot.fail_after_tokens = None
        good = http.post("/v1/chat/completions", json=chat(ids["pilot"]))
        assert good.status_code == 200 and len(good.headers["x-request-id"]) == 32
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 3
    assert all(r.request_id == " [req-123]" for r in failures)  # the log format's field


# -- CORS ---------------------------------------------------------------------------------


def test_cors_is_off_by_default_and_configurable(own_scripted_server):
    preflight = {
        "Origin": "http://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    closed = own_scripted_server()
    response = httpx.options(f"{closed.base_url}/v1/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    opened = own_scripted_server(cors={"allowed_origins": ("http://app.example",)}, api_keys=("k",))
    response = httpx.options(f"{opened.base_url}/v1/chat/completions", headers=preflight)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://app.example"
    other = httpx.options(
        f"{opened.base_url}/v1/chat/completions",
        headers={**preflight, "Origin": "http://evil.example"},
    )
    assert "access-control-allow-origin" not in other.headers


def test_the_request_id_is_the_one_the_engines_see(scripted_server, scripted_engines, ids):
    """One grep follows a request from our log into vLLM's: every engine request of it is
    named after its X-Request-Id (the client's, or ours)."""
    pilot, base = scripted_engines.pilot, scripted_engines.base
    base.probability = lambda i: 0.99  # a window passes: the base scores and continues
    known = set(pilot.cache_salts) | set(base.cache_salts)
    body = {"model": ids["wsd"], "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 24, "wsd": {"window": 2}}  # fmt: skip
    url = f"{scripted_server.base_url}/v1/chat/completions"
    answer = httpx.post(url, json=body, headers={"X-Request-Id": "trace-42"}, timeout=30)
    assert answer.headers["x-request-id"] == "trace-42"
    assert answer.json()["wsd"]["reason"] == "threshold"
    engine_ids = (set(pilot.cache_salts) | set(base.cache_salts)) - known
    assert {"trace-42-pilot", "trace-42-session", "trace-42-base"} <= engine_ids
    assert all(rid.startswith("trace-42-") for rid in engine_ids)
    ours = httpx.post(url, json={**body, "model": ids["base"], "n": 2}, timeout=30)
    rid = ours.headers["x-request-id"]
    assert {f"{rid}-0", f"{rid}-1"} <= set(base.cache_salts)  # one per choice
