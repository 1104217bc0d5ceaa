"""What the project knows about vLLM, in one place, for both engine adapters (in-process in
`vllm_local.py`, a vLLM server over HTTP in `vllm_remote.py`) and for the command that serves
a model config as such a server (`vllm_server.py`). It does not import vLLM: the remote adapter
runs without it.

- engine settings: one translation of a model's config into vLLM's engine arguments, rendered
  as `AsyncEngineArgs` keywords or as a server's command-line flags;
- sampling: the engine protocol's settings as `SamplingParams` fields (the OpenAI server's
  requests take the same names), structured outputs, finish reasons;
- the scoring pass: its parameters, guards, the cached-prefix check and the retries;
- the warm-up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsd_engine.config import ModelConfig
from wsd_engine.engines.engine import (
    Engine,
    EngineError,
    EngineRequestInvalid,
    FinishReason,
    SamplingSettings,
    Scores,
    StructuredKind,
    StructuredOutput,
)

logger = logging.getLogger(__name__)

_GIB = 1 << 30
_FINISH_REASONS = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}
# Cached scoring passes tried before one without the cache (see `PassNotSent`).
CACHED_PASS_ATTEMPTS = 3
_WARM_UP_PROMPT = "Hello, how are you today?"


# -- engine settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class EngineSettings:
    """A model's vLLM engine arguments (EngineArgs field names) and the environment its engine
    core process reads when it is spawned (CPU thread binding)."""

    args: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    def server_flags(self) -> list[str]:
        """The arguments as vLLM's command-line flags (its parser derives them from the
        EngineArgs fields: `--field-name VALUE`, `--flag` / `--no-flag` for booleans)."""
        flags: list[str] = []
        for name, value in self.args.items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                flags.append(flag if value else f"--no-{flag[2:]}")
            elif isinstance(value, list | tuple):
                flags += [flag, *(str(item) for item in value)]
            else:
                flags += [flag, str(value)]
        return flags


def engine_settings(model: ModelConfig, model_path: Path | str, *, on_cpu: bool) -> EngineSettings:
    """The vLLM engine settings of one local model config."""
    args: dict[str, Any] = {
        "model": str(model_path),
        "served_model_name": [model.served_model_name],
        "dtype": model.dtype,
        "max_model_len": model.max_model_len,
        "enforce_eager": model.enforce_eager,
        "enable_prefix_caching": model.enable_prefix_caching,
        "tensor_parallel_size": model.tensor_parallel_size,
    }
    if model.block_size is not None:
        args["block_size"] = model.block_size
    if model.max_num_batched_tokens is not None:
        args["max_num_batched_tokens"] = model.max_num_batched_tokens
    if not on_cpu:
        args["gpu_memory_utilization"] = model.gpu_memory_utilization
        return EngineSettings(args)
    args["kv_cache_memory_bytes"] = int(model.kv_cache_space_gib * _GIB)
    return EngineSettings(args, cpu_binding_env(model))


def cpu_binding_env(model: ModelConfig) -> dict[str, str]:
    """The variables that bind a CPU engine's compute threads (read by its engine core
    process when it is spawned)."""
    env: dict[str, str] = {}
    if model.cpu_threads_bind is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = model.cpu_threads_bind
    if model.cpu_reserved_cores is not None:
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(model.cpu_reserved_cores)
    return env


# -- sampling ----------------------------------------------------------------------------


def sampling_fields(sampling: SamplingSettings, max_tokens: int) -> dict[str, Any]:
    """`SamplingParams` fields for one generation (every one given: a server's defaults, e.g.
    from the model's generation config, must not apply). Structured outputs come as a plain
    mapping (`StructuredOutputsParams`' fields)."""
    return {
        "max_tokens": max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "min_p": sampling.min_p,
        "presence_penalty": sampling.presence_penalty,
        "frequency_penalty": sampling.frequency_penalty,
        "repetition_penalty": sampling.repetition_penalty,
        "ignore_eos": sampling.ignore_eos,
        "min_tokens": sampling.min_tokens,
        "stop_token_ids": list(sampling.stop_token_ids),
        "seed": sampling.seed,
        "logprobs": sampling.num_logprobs,
        "logit_bias": dict(sampling.logit_bias) or None,
        "structured_outputs": structured_outputs_fields(sampling.structured),
    }


def structured_outputs_fields(structured: StructuredOutput | None) -> dict[str, Any] | None:
    """vLLM's form of an output constraint (its OpenAI server maps `response_format` the same
    way); vLLM picks the backend that compiles it ("auto": xgrammar, else guidance)."""
    if structured is None:
        return None
    if structured.kind is StructuredKind.JSON_OBJECT:
        return {"json_object": True}
    return {"json": json.loads(structured.schema or "{}")}


def finish_reason(name: str | None) -> FinishReason:
    """Our finish reason for vLLM's (an abort, or anything unknown, is ABORT)."""
    return _FINISH_REASONS.get(name or "", FinishReason.ABORT)


# -- scoring passes ----------------------------------------------------------------------


def scoring_params(read_cache: bool) -> dict[str, Any]:
    """`SamplingParams` fields of a scoring pass: the prompt's log-probabilities with the
    top-1 at each position, and one greedy token (the one after the last scored token)."""
    return {
        "max_tokens": 1,
        "temperature": 0.0,
        "prompt_logprobs": 1,
        # vLLM sets it itself for prompt logprobs; given here, the pass may read the cache
        "skip_reading_prefix_cache": not read_cache,
        # Cached positions come back as uninitialised rows; detokenizing their token ids
        # would crash vLLM's output handler (and with it the engine). We decode ourselves.
        "detokenize": False,
    }


@dataclass(frozen=True)
class ScoringPass:
    """What one scoring pass returned, as plain data."""

    rows: Sequence[Mapping[int, tuple[float, int]]]  # per scored position: id -> (logprob, rank)
    next_token: int  # the pass's one greedy output token
    num_cached_tokens: int | None  # positions read from the prefix cache; None: not reported


class PassNotSent(EngineError):
    """A cached pass the engine computed but could not send: a vLLM server's JSON encoder
    fails on a NaN in the uninitialised rows of cached positions. The rows differ from pass to
    pass, so another try usually succeeds."""


# One scoring pass: (all token ids, first scored position, request id, read the cache?).
RunPass = Callable[[list[int], int, str, bool], Awaitable[ScoringPass]]


async def score(
    run_pass: RunPass,
    prefix_token_ids: Sequence[int],
    token_ids: Sequence[int],
    request_id: str,
    *,
    reads_cache: bool,
) -> Scores:
    """The scoring recipe both adapters follow: read the prefix cache and compute only the
    uncached tail; since token i's log-probability comes from position i - 1, a pass whose
    cache covered the whole prefix is redone without reading the cache."""
    if not prefix_token_ids:
        raise EngineRequestInvalid("scoring needs a non-empty prefix (e.g. the BOS token)")
    if not token_ids:
        return Scores(logprobs=[], greedy_next=[])
    all_ids = [*prefix_token_ids, *token_ids]
    start = len(prefix_token_ids)
    if reads_cache:
        for attempt in range(CACHED_PASS_ATTEMPTS):
            pass_id = request_id if attempt == 0 else f"{request_id}-retry-{attempt}"
            try:
                result = await run_pass(all_ids, start, pass_id, True)
            except PassNotSent as exc:
                logger.info("%s: cached scoring pass not sent (%s); again", pass_id, exc)
                continue
            cached = result.num_cached_tokens
            if cached is not None and cached < start:
                return _scores(result, token_ids)
            if cached is None:
                logger.warning(
                    "%s: the engine does not report cached tokens; scoring without the cache "
                    "(a vLLM server needs --enable-prompt-tokens-details)", request_id,
                )  # fmt: skip
            else:
                logger.warning(
                    "%s: the prefix cache covered all %d prefix tokens; scoring again "
                    "without it", request_id, start,
                )  # fmt: skip
            break
    result = await run_pass(all_ids, start, f"{request_id}-uncached", False)
    return _scores(result, token_ids)


def _scores(result: ScoringPass, token_ids: Sequence[int]) -> Scores:
    """Row i holds token i's log-probability and the rank-1 token at its position; the greedy
    token after the last one is the pass's output."""
    rows = result.rows
    logprobs = [rows[i][token][0] for i, token in enumerate(token_ids)]
    greedy_next = [
        min(rows[i].items(), key=lambda item: item[1][1])[0] for i in range(1, len(token_ids))
    ]
    greedy_next.append(result.next_token)
    return Scores(logprobs=logprobs, greedy_next=greedy_next)


# -- warm-up -----------------------------------------------------------------------------


async def warm_up(engine: Engine) -> None:
    """A short generation and a scoring pass, so the first user request does not pay for
    vLLM's lazy set-up (the first prompt-logprobs pass costs about 2 s more than later ones)."""
    prompt = list(engine.tokenizer.encode(_WARM_UP_PROMPT, add_special_tokens=False)) or [0]
    settings = SamplingSettings(ignore_eos=True)
    async for _ in engine.generate(prompt, settings, f"warm-up-{engine.model_name}", max_tokens=4):
        pass
    await engine.score(prompt[:1], prompt[1:], f"warm-up-score-{engine.model_name}")
