"""The small routes: the model list, health, the OpenAPI document, metrics."""

from __future__ import annotations

import httpx


def test_models_lists_wsd_pilot_and_base(scripted_client, ids):
    models = scripted_client.models.list().data
    assert [m.id for m in models] == [ids["wsd"], ids["pilot"], ids["base"]]
    assert all(m.model_extra["max_model_len"] == 2048 for m in models)


def test_health_and_openapi(scripted_server):
    health = httpx.get(f"{scripted_server.base_url}/health", timeout=10).json()
    assert health == {
        "status": "ok",
        "engines": {
            role: {"model": getattr(scripted_server.engines, role).model_name, "status": "ok"}
            for role in ("pilot", "base")
        },
    }
    spec = httpx.get(f"{scripted_server.base_url}/openapi.json", timeout=10).json()
    assert {"/v1/chat/completions", "/v1/completions", "/v1/models"} <= set(spec["paths"])
    wsd = spec["components"]["schemas"]["WSDInfo"]["properties"]
    assert "prefix_chars" in wsd and wsd["accept_index"]["description"]
    for path in ("/v1/chat/completions", "/v1/completions"):
        responses = spec["paths"][path]["post"]["responses"]
        assert "422" not in responses  # validation errors are 400s with an OpenAI error
        assert responses["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
        assert {"401", "404", "413", "429", "503", "504"} <= set(responses)
        assert "text/event-stream" in responses["200"]["content"]


def test_metrics_are_prometheus_text(scripted_server):
    response = httpx.get(f"{scripted_server.base_url}/metrics", timeout=10)
    assert response.headers["content-type"].startswith("text/plain")
    assert "wsd_build_info{" in response.text


def test_the_document_lists_every_status_a_route_answers(scripted_server, ids):
    """Each status the server answers on a documented route is in the document: e.g. the 404
    of an unknown model id on GET /v1/models/{model_id}."""
    base = scripted_server.base_url
    spec = httpx.get(f"{base}/openapi.json", timeout=10).json()
    answered = [
        ("/v1/models/{model_id}", "get", httpx.get(f"{base}/v1/models/no-such", timeout=10)),
        ("/v1/models/{model_id}", "get", httpx.get(f"{base}/v1/models/{ids['wsd']}", timeout=10)),
        ("/tokenize", "post", httpx.post(f"{base}/tokenize", json={"prompt": 5}, timeout=10)),
        ("/health", "get", httpx.get(f"{base}/health", timeout=10)),
    ]
    assert [response.status_code for *_, response in answered] == [404, 200, 400, 200]
    for path, method, response in answered:
        assert str(response.status_code) in spec["paths"][path][method]["responses"], path
    assert "503" in spec["paths"]["/health"]["get"]["responses"]


def test_an_unknown_path_or_method_is_named(scripted_server):
    base = scripted_server.base_url
    missing = httpx.post(f"{base}/v1/nowhere", json={}, timeout=10)
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["message"].startswith("no route for POST /v1/nowhere")
    assert error["code"] == "not_found" and error["type"] == "not_found_error"
    wrong = httpx.get(f"{base}/v1/chat/completions", timeout=10)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["message"] == (
        "method GET is not allowed on /v1/chat/completions (it takes POST)"
    )
