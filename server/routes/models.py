"""GET /v1/models and GET /v1/models/{id}: the WSD model, the pilot and the base model."""

from __future__ import annotations

from fastapi import APIRouter

from server.deps import RegistryDep
from server.registry import ServedModel
from server.responses import ModelCard, ModelList, now
from server.routes.documented import responses

router = APIRouter()


def _card(model: ServedModel, created: int) -> ModelCard:
    return ModelCard(id=model.id, created=created, root=model.id, max_model_len=model.max_model_len)


@router.get("/v1/models", response_model=ModelList, responses=responses(401, 500))
async def list_models(registry: RegistryDep) -> ModelList:
    """Every model id the server answers."""
    created = now()
    return ModelList(data=[_card(model, created) for model in registry.models.values()])


@router.get(
    "/v1/models/{model_id:path}", response_model=ModelCard, responses=responses(401, 404, 500)
)
async def retrieve_model(model_id: str, registry: RegistryDep) -> ModelCard:
    """One model id (404 `model_not_found` for an id the server does not answer)."""
    return _card(registry.get(model_id), now())
