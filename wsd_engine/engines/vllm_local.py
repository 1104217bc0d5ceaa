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
from wsd_engine.engines.engine import (
    EngineError,
    EngineRequestInvalid,
    EngineUnavailable,
    GenerationDelta,
    SamplingSettings,
    Scores,
    ScoringSession,
    StructuredOutput,
    TokenLogprob,
)
from wsd_engine.engines.vllm_common import (
    ScoringPass,
    cpu_binding_env,
    engine_settings,
    finish_reason,
    sampling_fields,
    score,
    scoring_params,
    structured_outputs_fields,
    warm_up,
)

logger = logging.getLogger(__name__)

_SPAWN_LOCK = threading.Lock()
# The warm-up's session check: a short text, in chunks, against a pass over the same tokens.
_SESSION_CHECK = "The quick brown fox jumps over the lazy dog near the river bank today."
_SESSION_TOLERANCE = 1e-3  # float32 differences between batch shapes


@contextmanager
def _engine_env(model: ModelConfig) -> Iterator[None]:
    """Environment the engine core process reads when it is spawned (CPU thread binding).

    The variables are process-wide, so engines started from several threads take turns: each
    holds the lock from setting its variables until its engine core process exists, then the
    next one may start while the first is still loading.
    """
    overrides = cpu_binding_env(model)
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
    """vLLM engine arguments for one configured model (vLLM's own stats logger off: with two
    engines in one process it unregisters the other's metrics; we export our own)."""
    settings = engine_settings(model, model_path, on_cpu=_is_cpu_platform())
    return AsyncEngineArgs(**settings.args, disable_log_stats=True)


def _sampling_params(
    sampling: SamplingSettings, max_tokens: int, output_kind: RequestOutputKind
) -> SamplingParams:
    fields = sampling_fields(sampling, max_tokens)
    structured = fields.pop("structured_outputs")
    return SamplingParams(
        n=1,
        **fields,
        structured_outputs=None if structured is None else StructuredOutputsParams(**structured),
        skip_special_tokens=True,
        output_kind=output_kind,
    )


class VLLMEngine:
    """One model in an in-process vLLM AsyncLLM (its engine core runs in a child process)."""

    def __init__(self, llm: AsyncLLM, model: ModelConfig) -> None:
        self._llm = llm
        self._config = model
        self._tokenizer = llm.get_tokenizer()
        self.sessions_work = False  # known after the warm-up

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
        max_tokens: int,
        cache_salt: str | None = None,
    ) -> AsyncIterator[GenerationDelta]:
        """Stream deltas; closing or cancelling the iterator aborts the request."""
        prompt = _tokens_prompt(prompt_token_ids, cache_salt)
        async with _translate_errors(self.model_name):
            params = _sampling_params(sampling, max_tokens, RequestOutputKind.DELTA)
            async for output in self._llm.generate(prompt, params, request_id):
                completion = output.outputs[0]
                finish = finish_reason(completion.finish_reason) if output.finished else None
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
        constraint = StructuredOutputsParams(**(structured_outputs_fields(structured) or {}))
        params = SamplingParams(max_tokens=1, structured_outputs=constraint)
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
        """Log-probabilities of `token_ids` after the prefix, and the greedy next tokens
        (`vllm_common.score`: with prefix caching on, only the uncached tail is computed)."""

        async def run_pass(
            all_ids: list[int], start: int, pass_id: str, read_cache: bool
        ) -> ScoringPass:
            params = SamplingParams(
                **scoring_params(read_cache), output_kind=RequestOutputKind.FINAL_ONLY
            )
            final = None
            async with _translate_errors(self.model_name):
                prompt = _tokens_prompt(all_ids, cache_salt)
                async for output in self._llm.generate(prompt, params, pass_id):
                    final = output
            if final is None or final.prompt_logprobs is None:
                raise EngineError(f"{self.model_name}: scoring returned no prompt logprobs")
            rows = [
                {token: (entry.logprob, int(entry.rank or 1)) for token, entry in row.items()}
                for row in final.prompt_logprobs[start:]
                if row is not None  # only position 0 has none, and it is never scored
            ]
            next_token = final.outputs[0].token_ids[0]
            return ScoringPass(rows, next_token, final.num_cached_tokens or 0)

        return await score(
            run_pass, prefix_token_ids, token_ids, request_id,
            reads_cache=self._config.enable_prefix_caching,
        )  # fmt: skip

    def open_scoring_session(
        self, prompt_token_ids: Sequence[int], request_id: str, *, cache_salt: str | None = None
    ) -> ScoringSession | None:
        """A streaming-input session that reads the prompt now and each draft chunk later
        (None until the warm-up has shown that the session plugin works on this vLLM)."""
        if not self.sessions_work:
            return None
        from wsd_engine.engines.vllm_session import VLLMScoringSession

        return VLLMScoringSession(self, prompt_token_ids, request_id, cache_salt)

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
        """A short generation and a scoring pass (`vllm_common.warm_up`), then a scoring
        session checked against a pass over the same tokens: sessions are used only when the
        plugin is active and exact here."""
        await warm_up(self)
        self.sessions_work = await self._sessions_are_exact()

    async def _sessions_are_exact(self) -> bool:
        from wsd_engine.engines.vllm_session import VLLMScoringSession

        if not self._config.enable_prefix_caching:
            return False  # a session keeps its KV in the cache's blocks
        prompt = list(self._tokenizer.encode(_SESSION_CHECK, add_special_tokens=False))
        prompt = [self._tokenizer.bos_token_id or prompt[0], *prompt]
        head, chunks = prompt[:4], [prompt[4:9], prompt[9:10], prompt[10:]]
        session = VLLMScoringSession(self, head, f"warm-up-session-{self.model_name}", None)
        try:
            await session.start()
            scored = [await session.score(chunk) for chunk in chunks]
        except (EngineError, AssertionError) as exc:
            logger.warning(
                "engine %s: scoring sessions unavailable (%s): is the package's vLLM plugin "
                "(entry point wsd_scoring_sessions) installed and active? Scoring with passes",
                self.model_name, exc,
            )  # fmt: skip
            return False
        finally:
            await session.close()
        reference = await self.score(head, prompt[4:], f"warm-up-session-ref-{self.model_name}")
        logprobs = [value for chunk in scored for value in chunk.logprobs]
        greedy = [token for chunk in scored for token in chunk.greedy_next]
        exact = greedy == reference.greedy_next and all(
            abs(a - b) <= _SESSION_TOLERANCE
            for a, b in zip(logprobs, reference.logprobs, strict=True)
        )
        logger.info(
            "engine %s: scoring sessions %s", self.model_name,
            "on (each chunk costs its new tokens)" if exact else "off: they differ from a pass",
        )  # fmt: skip
        return exact


def _tokens_prompt(token_ids: Sequence[int], cache_salt: str | None) -> TokensPrompt:
    prompt = TokensPrompt(prompt_token_ids=list(token_ids))
    if cache_salt is not None:
        prompt["cache_salt"] = cache_salt
    return prompt


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
