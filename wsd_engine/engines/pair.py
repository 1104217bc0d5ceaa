"""The pilot and base engines of one deployment, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from wsd_engine.config import AppConfig, ModelConfig, Role
from wsd_engine.engines.protocol import Engine

logger = logging.getLogger(__name__)


def start_engine(model: ModelConfig, model_path: Path) -> Engine:
    """Start the engine adapter a model config asks for."""
    from wsd_engine.engines.vllm_local import VLLMEngine

    return VLLMEngine.start(model, model_path)


@dataclass
class EnginePair:
    """Pilot (small, aligned) and base (large, pretrained) engines."""

    pilot: Engine
    base: Engine

    @classmethod
    def start(cls, config: AppConfig, model_paths: dict[str, Path]) -> EnginePair:
        """Start both engines one after the other (each reads its own CPU binding at spawn)."""
        pilot = start_engine(config.pilot, model_paths[config.pilot.served_model_name])
        try:
            base = start_engine(config.base, model_paths[config.base.served_model_name])
        except BaseException:
            pilot.shutdown()
            raise
        return cls(pilot=pilot, base=base)

    async def warm_up(self) -> None:
        """Warm both engines up at once."""
        await asyncio.gather(self.pilot.warm_up(), self.base.warm_up())

    def num_unfinished_requests(self) -> int:
        """Requests either engine is still working on."""
        return self.pilot.num_unfinished_requests() + self.base.num_unfinished_requests()

    def by_role(self, role: Role) -> Engine:
        """The engine that plays a role."""
        return self.pilot if role is Role.PILOT else self.base

    def shutdown(self) -> None:
        """Stop both engines and their child processes."""
        for engine in (self.pilot, self.base):
            try:
                engine.shutdown()
            except Exception:
                logger.exception("shutting down %s failed", engine.model_name)
