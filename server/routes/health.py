"""GET /health: 200 when both engines answer, 503 otherwise."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.deps import RegistryDep

router = APIRouter()

HEALTH_TIMEOUT_S = 5.0


@router.get("/health")
async def health(registry: RegistryDep, request: Request) -> JSONResponse:
    """503 while the server drains or after an engine died; else both engines' health
    checks, within a few seconds."""
    unavailable = request.app.state.server.unavailable
    if unavailable is not None:
        return JSONResponse({"status": "unavailable", "detail": unavailable.message}, 503)
    engines = registry.engines
    try:
        await asyncio.wait_for(
            asyncio.gather(engines.pilot.check_health(), engines.base.check_health()),
            timeout=HEALTH_TIMEOUT_S,
        )
    except Exception as exc:
        return JSONResponse({"status": "unhealthy", "detail": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})
