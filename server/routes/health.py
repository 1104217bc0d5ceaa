"""GET /health: 200 when both engines answer, 503 otherwise, with each engine's state."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.deps import RegistryDep

router = APIRouter()

HEALTH_TIMEOUT_S = 5.0


HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": 'both engines answer: `{"status": "ok", "engines": {...}}`'},
    503: {
        "description": "an engine does not answer, or the server is draining: "
        '`{"status", "detail", "engines"?}`'
    },
}


@router.get("/health", responses=HEALTH_RESPONSES)
async def health(registry: RegistryDep, request: Request) -> JSONResponse:
    """503 while the server drains or after an engine died; else both engines' health
    checks, within a few seconds: `{"status", "engines": {role: {"model", "status",
    "detail"?}}}`."""
    unavailable = request.app.state.server.unavailable
    if unavailable is not None:
        return JSONResponse({"status": "unavailable", "detail": unavailable.message}, 503)
    engines = {"pilot": registry.engines.pilot, "base": registry.engines.base}
    results = await asyncio.gather(
        *(asyncio.wait_for(engine.check_health(), HEALTH_TIMEOUT_S) for engine in engines.values()),
        return_exceptions=True,
    )
    report = {}
    for (role, engine), result in zip(engines.items(), results, strict=True):
        entry = {"model": engine.model_name, "status": "ok"}
        if isinstance(result, BaseException):
            entry.update(status="unavailable", detail=str(result) or type(result).__name__)
        report[role] = entry
    healthy = all(entry["status"] == "ok" for entry in report.values())
    body = {"status": "ok" if healthy else "unhealthy", "engines": report}
    if not healthy:
        body["detail"] = "; ".join(e["detail"] for e in report.values() if "detail" in e)
    return JSONResponse(body, status_code=200 if healthy else 503)
