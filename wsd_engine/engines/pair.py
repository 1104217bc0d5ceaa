"""The pilot and base engines of one deployment, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from wsd_engine.config import ModelConfig, PipelineConfig, Role
from wsd_engine.engines.engine import Engine

logger = logging.getLogger(__name__)


def start_engine(model: ModelConfig, model_path: Path) -> Engine:
    """Start the engine adapter a model config asks for: a remote vLLM server (`model_path`
    is then its tokenizer) or an in-process engine."""
    if model.is_remote:
        from wsd_engine.engines.vllm_remote import RemoteVLLMEngine

        return RemoteVLLMEngine.start(model, model_path)
    from wsd_engine.engines.vllm_local import VLLMEngine

    return VLLMEngine.start(model, model_path)


@dataclass
class EnginePair:
    """Pilot (small, aligned) and base (large, pretrained) engines."""

    pilot: Engine
    base: Engine

    @classmethod
    def start(cls, config: PipelineConfig, model_paths: dict[str, Path]) -> EnginePair:
        """Start both engines at once (their model loading overlaps; each has its own cores)."""
        models = (config.pilot, config.base)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="wsd-engine-start") as pool:
            futures = [
                pool.submit(start_engine, model, model_paths[model.served_model_name])
                for model in models
            ]
            wait(futures)
        started = [f.result() for f in futures if f.exception() is None]
        failed = [f.exception() for f in futures if f.exception() is not None]
        if failed:
            for engine in started:
                engine.shutdown()
            raise failed[0]  # type: ignore[misc]
        return cls(pilot=started[0], base=started[1])

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
