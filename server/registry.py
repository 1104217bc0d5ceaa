"""The model registry: the model ids the server answers, and what answers each."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

from server.errors import OpenAIError
from server.settings import AppConfig
from wsd_engine.config import PromptTemplate, Role, WSDSettings
from wsd_engine.engines.engine import Engine
from wsd_engine.engines.pair import EnginePair
from wsd_engine.orchestrator import WSDOrchestrator


@dataclass(frozen=True)
class EngineModel:
    """A model id one engine answers alone: the pilot or the base model."""

    id: str
    role: Role
    engine: Engine
    template: PromptTemplate
    default_temperature: float = 1.0  # OpenAI's default

    @property
    def max_model_len(self) -> int:
        """Context length in tokens."""
        return self.engine.max_model_len

    @property
    def roles(self) -> tuple[Role, ...]:
        """The engines its answers need."""
        return (self.role,)


@dataclass(frozen=True)
class WSDModel:
    """The Weak-to-Strong Decoding model id: both engines answer, through the orchestrator."""

    id: str
    orchestrator: WSDOrchestrator
    defaults: WSDSettings  # the method settings a request runs with unless it overrides them
    default_temperature: float = 0.0  # greedy, as in the paper

    @property
    def max_model_len(self) -> int:
        """The context both engines offer."""
        return self.orchestrator.max_model_len

    @property
    def roles(self) -> tuple[Role, ...]:
        """The engines its answers need."""
        return (Role.PILOT, Role.BASE)


ServedModel = EngineModel | WSDModel


class ModelRegistry:
    """Resolves model ids; owns the orchestrator."""

    def __init__(self, config: AppConfig, engines: EnginePair) -> None:
        self.engines = engines
        orchestrator = WSDOrchestrator(
            engines.pilot,
            engines.base,
            pilot_template=config.template_for(Role.PILOT),
            base_template=config.template_for(Role.BASE),
            scoring=config.wsd.scoring,
            pilot_max_lead=config.wsd.pilot_max_lead,
        )
        self.wsd = WSDModel(config.wsd.served_model_name, orchestrator, config.wsd.defaults())
        self.models: dict[str, ServedModel] = {self.wsd.id: self.wsd}
        for role in (Role.PILOT, Role.BASE):
            engine = engines.by_role(role)
            self.models[engine.model_name] = EngineModel(
                engine.model_name, role, engine, config.template_for(role)
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

    def get_engine_model(self, model_id: str) -> EngineModel:
        """A single-model id (pilot or base); the WSD id has no raw completions."""
        model = self.get(model_id)
        if isinstance(model, WSDModel):
            raise OpenAIError(
                f"'{model_id}' serves chat completions only; use /v1/chat/completions, or "
                "call the pilot or base model id on /v1/completions",
                param="model",
                code="model_not_supported",
            )
        return model

    def tokenizing_model(self, model_id: str | None) -> EngineModel:
        """The single model whose tokenizer and prompt template stand for `model_id` (default:
        the WSD id). For the WSD id it is the base model, whose tokens `usage` counts."""
        model = self.get(model_id or self.wsd.id)
        if isinstance(model, WSDModel):
            base = self.models[self.engines.base.model_name]
            assert isinstance(base, EngineModel)
            return base
        return model
