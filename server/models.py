"""The served model ids: the WSD pipeline, the pilot and the base model."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

from server.errors import OpenAIError
from wsd_engine.config import AppConfig, PromptTemplate, Role
from wsd_engine.engines.pair import EnginePair
from wsd_engine.engines.protocol import Engine
from wsd_engine.orchestrator import WSDOrchestrator


@dataclass(frozen=True)
class ServedModel:
    """One model id clients can call."""

    id: str
    role: Role | None  # None: the WSD pipeline
    engine: Engine | None
    template: PromptTemplate
    max_model_len: int

    @property
    def is_wsd(self) -> bool:
        """True for the Weak-to-Strong Decoding pipeline."""
        return self.role is None


class ModelRegistry:
    """Resolves model ids to engines; owns the orchestrator."""

    def __init__(self, config: AppConfig, engines: EnginePair) -> None:
        self.config = config
        self.engines = engines
        self.orchestrator = WSDOrchestrator(
            engines.pilot,
            engines.base,
            pilot_template=config.template_for(Role.PILOT),
            base_template=config.template_for(Role.BASE),
        )
        wsd = ServedModel(
            id=config.wsd.served_model_name,
            role=None,
            engine=None,
            template=config.template_for(Role.BASE),
            max_model_len=min(engines.pilot.max_model_len, engines.base.max_model_len),
        )
        self.models: dict[str, ServedModel] = {wsd.id: wsd}
        for role in (Role.PILOT, Role.BASE):
            engine = engines.by_role(role)
            self.models[engine.model_name] = ServedModel(
                id=engine.model_name,
                role=role,
                engine=engine,
                template=config.template_for(role),
                max_model_len=engine.max_model_len,
            )

    def get(self, model_id: str) -> ServedModel:
        """The served model, or a 404 naming the ids that exist."""
        try:
            return self.models[model_id]
        except KeyError:
            raise OpenAIError(
                f"The model '{model_id}' does not exist. Available models: "
                + ", ".join(self.models),
                HTTPStatus.NOT_FOUND,
                param="model",
                code="model_not_found",
            ) from None

    def get_engine_model(self, model_id: str) -> ServedModel:
        """A single-model id (pilot or base); the WSD id has no raw completions."""
        model = self.get(model_id)
        if model.is_wsd:
            raise OpenAIError(
                f"'{model_id}' serves chat completions only; use /v1/chat/completions, or "
                "call the pilot or base model id on /v1/completions",
                param="model",
                code="model_not_supported",
            )
        return model
