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
