"""Each engine's share of a WSD request's sampling settings: the draft's (pilot) and the
continuation's (base). The online run and the offline procedure both take them from here.

Settings that shape a distribution go to both engines; the ones naming token ids (the base
model's ids, as `usage` counts) and `min_tokens` (answer tokens, base tokenization) to the
base model only. Each engine gets a seed of its own, derived from the request's.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from wsd_engine.config import Role
from wsd_engine.engines.engine import SamplingSettings
from wsd_engine.request import WSDRequest


def engine_seed(seed: int | None, role: Role) -> int | None:
    """A seed of its own for the engine playing `role`, derived from the request's seed."""
    if seed is None:
        return None
    digest = hashlib.sha256(f"{seed}:{role.value}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def draft_sampling(request: WSDRequest) -> SamplingSettings:
    """The pilot's settings for the draft."""
    sampling = request.sampling
    return replace(
        sampling,
        seed=engine_seed(sampling.seed, Role.PILOT),
        logit_bias=(),
        stop_token_ids=(),
        min_tokens=0,  # a draft that ends sooner is continued by the base model
    )


def continuation_sampling(request: WSDRequest, num_answer_tokens: int) -> SamplingSettings:
    """The base model's settings for the continuation of an answer that already holds
    `num_answer_tokens` tokens (the answer has `min_tokens` before the base may end it)."""
    sampling = request.sampling
    return replace(
        sampling,
        seed=engine_seed(sampling.seed, Role.BASE),
        min_tokens=max(0, sampling.min_tokens - num_answer_tokens),
    )
