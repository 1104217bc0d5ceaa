"""GET /v1/models: the WSD model, the pilot and the base model."""

from __future__ import annotations

from fastapi import APIRouter

from server.deps import RegistryDep
from server.protocol import ModelCard, ModelList, now

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def list_models(registry: RegistryDep) -> ModelList:
    """Every model id the server answers."""
    created = now()
    return ModelList(
        data=[
            ModelCard(id=m.id, created=created, root=m.id, max_model_len=m.max_model_len)
            for m in registry.models.values()
        ]
    )
