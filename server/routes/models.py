"""GET /v1/models and GET /health."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from server.deps import RegistryDep
from server.protocol import ModelCard, ModelList, now

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def list_models(registry: RegistryDep) -> ModelList:
    """The WSD model, the pilot and the base model."""
    created = now()
    return ModelList(
        data=[
            ModelCard(id=m.id, created=created, root=m.id, max_model_len=m.max_model_len)
            for m in registry.models.values()
        ]
    )


@router.get("/health")
async def health(registry: RegistryDep) -> JSONResponse:
    """200 when both engines answer, 503 otherwise."""
    engines = registry.engines
    try:
        await asyncio.wait_for(
            asyncio.gather(engines.pilot.check_health(), engines.base.check_health()), timeout=5
        )
    except Exception as exc:
        return JSONResponse({"status": "unhealthy", "detail": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})
