"""In-process vLLM engine (AsyncLLM): the adapter the embedded default and GPU setups use."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import psutil
from vllm import SamplingParams, TokensPrompt
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.exceptions import VLLMClientError
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

from wsd_engine.config import ModelConfig
from wsd_engine.engines.protocol import (
    EngineError,
    EngineRequestInvalid,
    EngineUnavailable,
    FinishReason,
    GenerationDelta,
    SamplingSettings,
    Scores,
    StructuredKind,
    StructuredOutput,
    TokenLogprob,
)

logger = logging.getLogger(__name__)

_GIB = 1 << 30
_FINISH_REASONS = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


_SPAWN_LOCK = threading.Lock()


@contextmanager
def _engine_env(model: ModelConfig) -> Iterator[None]:
    """Environment the engine core process reads when it is spawned (CPU thread binding).

    The variables are process-wide, so engines started from several threads take turns: each
    holds the lock from setting its variables until its engine core process exists, then the
    next one may start while the first is still loading.
    """
    overrides: dict[str, str] = {}
    if model.cpu_threads_bind is not None:
        overrides["VLLM_CPU_OMP_THREADS_BIND"] = model.cpu_threads_bind
    if model.cpu_reserved_cores is not None:
        overrides["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(model.cpu_reserved_cores)
    _SPAWN_LOCK.acquire()
    known = {child.pid for child in psutil.Process().children()}
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    done = threading.Event()

    def release_when_spawned() -> None:
        while not done.is_set() and not _spawned_since(known):
            done.wait(0.1)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _SPAWN_LOCK.release()

    watcher = threading.Thread(target=release_when_spawned, name="wsd-spawn-env", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _spawned_since(known: set[int]) -> bool:
    """Whether a multiprocessing child (not the resource tracker) appeared since `known`."""
    for child in psutil.Process().children():
        if child.pid in known:
            continue
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                return True
        except psutil.Error:
            continue
    return False


def _is_cpu_platform() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def engine_args(model: ModelConfig, model_path: Path) -> AsyncEngineArgs:
    """vLLM engine arguments for one configured model."""
    kwargs: dict[str, Any] = {
        "model": str(model_path),
        "served_model_name": [model.served_model_name],
        "dtype": model.dtype,
        "max_model_len": model.max_model_len,
        "enforce_eager": model.enforce_eager,
        "enable_prefix_caching": model.enable_prefix_caching,
        "tensor_parallel_size": model.tensor_parallel_size,
        "disable_log_stats": True,
    }
    if model.block_size is not None:
        kwargs["block_size"] = model.block_size
    if model.max_num_batched_tokens is not None:
        kwargs["max_num_batched_tokens"] = model.max_num_batched_tokens
    if _is_cpu_platform():
        kwargs["kv_cache_memory_bytes"] = int(model.kv_cache_space_gib * _GIB)
    else:
        kwargs["gpu_memory_utilization"] = model.gpu_memory_utilization
    return AsyncEngineArgs(**kwargs)


def _to_sampling_params(
    settings: SamplingSettings, output_kind: RequestOutputKind = RequestOutputKind.DELTA
) -> SamplingParams:
    return SamplingParams(
        n=1,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        seed=settings.seed,
        stop=list(settings.stop) or None,
        logprobs=settings.num_logprobs,
        ignore_eos=settings.ignore_eos,
        presence_penalty=settings.presence_penalty,
        frequency_penalty=settings.frequency_penalty,
        repetition_penalty=settings.repetition_penalty,
        top_k=settings.top_k,
        min_p=settings.min_p,
        logit_bias=dict(settings.logit_bias) or None,
        stop_token_ids=list(settings.stop_token_ids) or None,
        min_tokens=settings.min_tokens,
        structured_outputs=_structured_outputs(settings.structured),
        skip_special_tokens=True,
        output_kind=output_kind,
    )


def _structured_outputs(structured: StructuredOutput | None) -> StructuredOutputsParams | None:
    """vLLM's form of an output constraint (its OpenAI server maps `response_format` the same
    way); vLLM picks the backend that compiles it ("auto": xgrammar, else guidance)."""
    if structured is None:
        return None
    if structured.kind is StructuredKind.JSON_OBJECT:
        return StructuredOutputsParams(json_object=True)
    return StructuredOutputsParams(json=structured.schema)


class VLLMEngine:
    """One model in an in-process vLLM AsyncLLM (its engine core runs in a child process)."""

    def __init__(self, llm: AsyncLLM, model: ModelConfig) -> None:
        self._llm = llm
        self._config = model
        self._tokenizer = llm.get_tokenizer()

    @classmethod
    def start(cls, model: ModelConfig, model_path: Path) -> VLLMEngine:
        """Start the engine (blocking: 25-60 s on CPU for the embedded models)."""
        started = time.monotonic()
        logger.info(
            "starting vLLM engine %s from %s (threads bind %s)",
            model.served_model_name,
            model_path,
            model.cpu_threads_bind or "vLLM default",
        )
        with _engine_env(model):
            llm = AsyncLLM.from_engine_args(engine_args(model, model_path))
        logger.info(
            "engine %s ready in %.1f s", model.served_model_name, time.monotonic() - started
        )
        return cls(llm, model)

    @property
    def model_name(self) -> str:
        """Served model id."""
        return self._config.served_model_name

    @property
    def max_model_len(self) -> int:
        """Context length in tokens."""
        return int(self._llm.model_config.max_model_len)

    @property
    def cache_block_size(self) -> int | None:
        """Tokens per prefix-cache block, or None when prefix caching is off."""
        cache = self._llm.vllm_config.cache_config
        return int(cache.block_size) if cache.enable_prefix_caching else None

    @property
    def recovers(self) -> bool:
        """A dead engine core does not come back."""
        return False

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer."""
        return self._tokenizer

    async def generate(
        self,
        prompt_token_ids: Sequence[int],
        sampling: SamplingSettings,
        request_id: str,
        *,
        cache_salt: str | None = None,
    ) -> AsyncIterator[GenerationDelta]:
        """Stream deltas; closing or cancelling the iterator aborts the request."""
        prompt = _tokens_prompt(prompt_token_ids, cache_salt)
        async with _translate_errors(self.model_name):
            params = _to_sampling_params(sampling)
            async for output in self._llm.generate(prompt, params, request_id):
                completion = output.outputs[0]
                finish = None
                if output.finished:
                    finish = _FINISH_REASONS.get(completion.finish_reason or "", FinishReason.ABORT)
                yield GenerationDelta(
                    token_ids=list(completion.token_ids),
                    text=completion.text,
                    logprobs=_token_logprobs(completion.token_ids, completion.logprobs),
                    finish_reason=finish,
                )

    def check_structured_output(self, structured: StructuredOutput) -> None:
        """Run vLLM's own request check on the constraint alone (it compiles the schema with
        the backend it would use), so that a schema vLLM refuses is refused before a stream
        starts; vLLM checks again when the request arrives."""
        params = SamplingParams(max_tokens=1, structured_outputs=_structured_outputs(structured))
        config = self._llm.vllm_config
        try:
            params.verify(
                self._llm.model_config,
                config.speculative_config,
                config.structured_outputs_config,
                self._tokenizer,
            )
        except (VLLMClientError, ValueError) as exc:
            raise EngineRequestInvalid(f"{self.model_name}: {exc}") from exc

    async def score(
        self,
        prefix_token_ids: Sequence[int],
        token_ids: Sequence[int],
        request_id: str,
        *,
        cache_salt: str | None = None,
    ) -> Scores:
        """Log-probabilities of `token_ids` after the prefix, and the greedy next tokens.

        With prefix caching on, the pass reads the cache and computes only the uncached tail
        (vLLM then returns no logprobs for cached positions, which we do not need); when the
        cache covers a position we need, the pass is redone without reading the cache.
        """
        if not prefix_token_ids:
            raise EngineRequestInvalid("scoring needs a non-empty prefix (e.g. the BOS token)")
        if not token_ids:
            return Scores(logprobs=[], greedy_next=[])
        all_ids = [*prefix_token_ids, *token_ids]
        start = len(prefix_token_ids)
        if self._config.enable_prefix_caching:
            output = await self._prompt_logprobs(
                all_ids, request_id, read_cache=True, cache_salt=cache_salt
            )
            # Token i's logprob comes from position i-1's hidden state: it must be computed.
            cached = output.num_cached_tokens or 0
            if cached < start:
                logger.debug(
                    "%s: scored %d tokens after %d (%d cached)", request_id, len(token_ids),
                    start, cached,
                )  # fmt: skip
                return _scores(output, token_ids, start)
            logger.warning(
                "%s: the prefix cache covered all %d prefix tokens; scoring again without it",
                request_id, start,
            )  # fmt: skip
            request_id = f"{request_id}-uncached"
        output = await self._prompt_logprobs(
            all_ids, request_id, read_cache=False, cache_salt=cache_salt
        )
        return _scores(output, token_ids, start)

    async def _prompt_logprobs(
        self,
        token_ids: list[int],
        request_id: str,
        read_cache: bool,
        cache_salt: str | None = None,
    ) -> Any:
        # skip_reading_prefix_cache only takes effect when given to the constructor: set
        # afterwards, vLLM's own cache-skip flag for prompt logprobs stays off.
        params = SamplingParams(
            max_tokens=1,
            temperature=0.0,
            prompt_logprobs=1,  # the token's own and the top-1
            skip_reading_prefix_cache=not read_cache,
            # Cached positions come back as uninitialised rows; detokenizing their token ids
            # would crash vLLM's output handler (and with it the engine). We decode ourselves.
            detokenize=False,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        final = None
        async with _translate_errors(self.model_name):
            async for output in self._llm.generate(
                _tokens_prompt(token_ids, cache_salt), params, request_id
            ):
                final = output
        if final is None or final.prompt_logprobs is None:
            raise EngineError(f"{self.model_name}: scoring returned no prompt logprobs")
        return final

    async def check_health(self) -> None:
        """Raise EngineUnavailable when the engine core is gone."""
        try:
            await self._llm.check_health()
        except Exception as exc:
            raise EngineUnavailable(f"{self.model_name}: engine is not healthy: {exc}") from exc

    def num_unfinished_requests(self) -> int:
        """Requests the engine is still working on."""
        return int(self._llm.get_num_unfinished_requests())

    def shutdown(self) -> None:
        """Stop the engine core process and the output handler."""
        logger.info("shutting down engine %s", self.model_name)
        self._llm.shutdown()
        # AsyncLLM.__del__ shuts down again; let that happen now, not at interpreter exit
        # when the modules it needs are already gone.
        del self._llm

    async def warm_up(self) -> None:
        """Run a short generation and a scoring pass so the first user request does not pay
        for lazy set-up (the first prompt-logprobs pass costs about 2 s more than later ones).
        """
        settings = SamplingSettings(max_tokens=4, ignore_eos=True)
        prompt = self._tokenizer.encode("Hello, how are you today?", add_special_tokens=False)
        prompt = prompt or [0]
        async for _ in self.generate(prompt, settings, f"warm-up-{self.model_name}"):
            pass
        await self.score(prompt[:1], prompt[1:], f"warm-up-score-{self.model_name}")


def _tokens_prompt(token_ids: Sequence[int], cache_salt: str | None) -> TokensPrompt:
    prompt = TokensPrompt(prompt_token_ids=list(token_ids))
    if cache_salt is not None:
        prompt["cache_salt"] = cache_salt
    return prompt


def _scores(output: Any, token_ids: Sequence[int], start: int) -> Scores:
    """Scores from a prompt-logprobs pass with the top-1 token at every position.

    The greedy token after the last scored token is the pass's one output token (sampled
    at temperature 0); after the others it is the rank-1 entry of the next position.
    """
    rows = output.prompt_logprobs
    logprobs = [rows[start + i][token].logprob for i, token in enumerate(token_ids)]
    greedy_next = [
        min(rows[start + i].items(), key=lambda item: item[1].rank)[0]
        for i in range(1, len(token_ids))
    ]
    greedy_next.append(output.outputs[0].token_ids[0])
    return Scores(logprobs=logprobs, greedy_next=greedy_next)


def _token_logprobs(token_ids: Sequence[int], logprobs: Any) -> list[TokenLogprob] | None:
    if logprobs is None:
        return None
    result = []
    for token_id, entry in zip(token_ids, logprobs, strict=True):
        top = {tid: lp.logprob for tid, lp in entry.items()}
        result.append(TokenLogprob(token_id=token_id, logprob=top[token_id], top=top))
    return result


@asynccontextmanager
async def _translate_errors(model_name: str) -> AsyncIterator[None]:
    """Map vLLM's exceptions onto the engine protocol's."""
    try:
        yield
    except EngineError:
        raise
    except EngineDeadError as exc:
        raise EngineUnavailable(f"{model_name}: engine died") from exc
    except (VLLMClientError, ValueError) as exc:
        param = getattr(exc, "parameter", None)
        raise EngineRequestInvalid(f"{model_name}: {exc}", param=param) from exc
    except EngineGenerateError as exc:
        raise EngineError(f"{model_name}: generation failed: {exc.__cause__}") from exc
