"""An engine that may come back (a remote vLLM server) stops answering: the requests that need
it get 503 at once, /health says which engine, the others keep working, and the server serves
again by itself when the engine answers."""

from __future__ import annotations

import time

import httpx

from tests.server.test_errors import assert_error_shape

Q = [{"role": "user", "content": "Hi"}]


def wait_for(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def chat(server, model, stream=False):
    body = {"model": model, "messages": Q, "max_tokens": 4, "stream": stream}
    return httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=30)


def test_a_recovering_engine_outage_turns_away_only_what_needs_it(own_scripted_server, ids):
    server = own_scripted_server()
    base = server.engines.base
    base.recovers = True
    base.is_dead = True

    def health():
        return httpx.get(f"{server.base_url}/health", timeout=10)

    # the engine's own error at first, then the watcher's at once, before any engine work
    assert wait_for(lambda: "base engine is unavailable" in chat(server, ids["base"]).text)
    for model, stream in ((ids["wsd"], False), (ids["wsd"], True), (ids["base"], True)):
        response = chat(server, model, stream)
        assert response.status_code == 503
        assert_error_shape(response.json(), code="engine_unavailable")
        assert "base engine is unavailable" in response.json()["error"]["message"]
    assert chat(server, ids["pilot"]).status_code == 200
    report = health()
    assert report.status_code == 503
    engines = report.json()["engines"]
    assert engines["pilot"]["status"] == "ok" and engines["base"]["status"] == "unavailable"
    assert "engine died" in engines["base"]["detail"]

    base.is_dead = False  # the server is back: no restart needed
    assert wait_for(lambda: chat(server, ids["wsd"]).status_code == 200)
    assert health().status_code == 200
    assert chat(server, ids["base"], stream=True).status_code == 200
