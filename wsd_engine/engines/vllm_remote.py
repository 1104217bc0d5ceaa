"""Remote vLLM engine: a vLLM OpenAI server reached over HTTP (httpx, one pool per engine).

Which endpoint does what (docs/remote.md has the measurements):
- generate: `POST /v1/completions`, streamed, with a token-id prompt, `return_token_ids` and
  logprobs keyed by token id. It reads the prefix cache, and closing the stream aborts the
  request.
- score: `POST /inference/v1/generate` (vLLM's token-in/token-out endpoint, `--enable-scale-out`)
  takes full SamplingParams, so a scoring pass can read the prefix cache
  (`skip_reading_prefix_cache: false`) and skip detokenizing; `/v1/completions` with
  `prompt_logprobs` always recomputes the whole prompt (9 x slower on this CPU for a
  400-token prompt: docs/remote.md). When the endpoint is not enabled, scoring falls back to it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx

from wsd_engine.config import ModelConfig
from wsd_engine.engines.engine import (
    EngineError,
    EngineUnavailable,
    GenerationDelta,
    SamplingSettings,
    Scores,
    StructuredOutput,
)
from wsd_engine.engines.remote_discovery import ServerFacts, discover, load_tokenizer
from wsd_engine.engines.remote_wire import (
    delta_from_chunk,
    http_error,
    reason,
    scoring_pass,
    sse_payloads,
)
from wsd_engine.engines.vllm_common import (
    PassNotSent,
    ScoringPass,
    sampling_fields,
    score,
    scoring_params,
    warm_up,
)

logger = logging.getLogger(__name__)

# A busy server answers /health late (its event loop also encodes the scoring passes'
# responses): only a refused connection, an error status or this long a wait mean it is down.
_HEALTH_TIMEOUT_S = 10.0


class RemoteVLLMEngine:
    """One model served by a vLLM OpenAI server."""

    def __init__(self, model: ModelConfig, tokenizer: Any, facts: ServerFacts) -> None:
        self._config = model
        self._tokenizer = tokenizer
        self._facts = facts
        self._url = str(model.url).rstrip("/")
        headers = {"Authorization": f"Bearer {model.api_key}"} if model.api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self._url,
            headers=headers,
            timeout=httpx.Timeout(
                connect=model.connect_timeout_s,
                read=model.read_timeout_s,
                write=model.read_timeout_s,
                pool=None,
            ),
            # retries of connection attempts only: a request the server got is never resent
            transport=httpx.AsyncHTTPTransport(retries=model.connect_retries),
            # idle connections are dropped well before the server's keep-alive timeout (uvicorn:
            # 5 s), so no request goes out on a connection the server is closing
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=64, keepalive_expiry=2.0
            ),
        )
        self._in_flight = 0
        self.unsent_passes = 0  # cached scoring passes the server computed but failed to send
        self._scoring_endpoint = facts.scoring_endpoint

    @classmethod
    def start(cls, model: ModelConfig, tokenizer_path: Path) -> RemoteVLLMEngine:
        """Load the tokenizer and learn the server's settings (blocking: waits for the server
        to answer, with progress in the log)."""
        logger.info(
            "engine %s: vLLM server at %s, tokenizer from %s",
            model.served_model_name, model.url, tokenizer_path,
        )  # fmt: skip
        tokenizer = load_tokenizer(tokenizer_path)
        facts = discover(model)
        logger.info(
            "engine %s: max_model_len %d, prefix-cache block %s, scoring through %s",
            model.served_model_name, facts.max_model_len, facts.cache_block_size,
            facts.scoring_endpoint,
        )  # fmt: skip
        return cls(model, tokenizer, facts)

    @property
    def model_name(self) -> str:
        """Served model id."""
        return self._config.served_model_name

    @property
    def max_model_len(self) -> int:
        """Context length in tokens, as the server reports it."""
        return self._facts.max_model_len

    @property
    def cache_block_size(self) -> int | None:
        """The server's prefix-cache block size (None when it does not cache prefixes)."""
        return self._facts.cache_block_size

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer, loaded here."""
        return self._tokenizer

    @property
    def recovers(self) -> bool:
        """A server that stops answering may come back: its failures are not fatal."""
        return True

    async def generate(
        self,
        prompt_token_ids: Sequence[int],
        sampling: SamplingSettings,
        request_id: str,
        *,
        max_tokens: int,
        cache_salt: str | None = None,
    ) -> AsyncIterator[GenerationDelta]:
        """Stream deltas; closing the iterator closes the HTTP stream, which makes the server
        abort the request."""
        body = {
            **sampling_fields(sampling, max_tokens),
            "model": self.model_name,
            "prompt": list(prompt_token_ids),
            "stream": True,
            "return_token_ids": True,
            "return_tokens_as_token_ids": True,
            "skip_special_tokens": True,
            "request_id": request_id,
        }
        if cache_salt is not None:
            body["cache_salt"] = cache_salt
        async with self._request("POST", "/v1/completions", body, stream=True) as response:
            async for payload in sse_payloads(response, self.model_name):
                for choice in payload.get("choices", []):
                    delta = delta_from_chunk(choice)
                    yield delta
                    if delta.finish_reason is not None:
                        return

    async def score(
        self,
        prefix_token_ids: Sequence[int],
        token_ids: Sequence[int],
        request_id: str,
        *,
        cache_salt: str | None = None,
    ) -> Scores:
        """Log-probabilities of `token_ids` after the prefix, and the greedy next tokens
        (`vllm_common.score`): through /inference/v1/generate reading the prefix cache, or
        /v1/completions, which always recomputes the whole prompt."""

        async def run_pass(
            all_ids: list[int], start: int, pass_id: str, read_cache: bool
        ) -> ScoringPass:
            if self._scoring_endpoint == "completions":
                return await self._score_completions(all_ids, start, pass_id)
            return await self._score_generate(all_ids, start, pass_id, read_cache, cache_salt)

        reads_cache = (
            self._scoring_endpoint != "completions" and self._facts.cache_block_size is not None
        )
        return await score(
            run_pass, prefix_token_ids, token_ids, request_id, reads_cache=reads_cache
        )

    def open_scoring_session(
        self, prompt_token_ids: Sequence[int], request_id: str, *, cache_salt: str | None = None
    ) -> None:
        """None: a vLLM server has no streaming-input sessions over HTTP (docs/remote.md)."""
        return None

    def check_structured_output(self, structured: StructuredOutput) -> None:
        """The server checks the constraint when the request arrives (a refusal is a 400)."""

    async def check_health(self) -> None:
        """Raise EngineUnavailable when the server does not answer /health with 200."""
        try:
            response = await self._client.get("/health", timeout=_HEALTH_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise EngineUnavailable(
                f"{self.model_name}: vLLM server at {self._url} unreachable ({reason(exc)})"
            ) from exc
        if response.status_code != HTTPStatus.OK:
            raise EngineUnavailable(
                f"{self.model_name}: vLLM server at {self._url} is unhealthy "
                f"(/health answered {response.status_code})"
            )

    def num_unfinished_requests(self) -> int:
        """This engine's requests whose HTTP exchange is still open."""
        return self._in_flight

    async def warm_up(self) -> None:
        """A short generation and a scoring pass (`vllm_common.warm_up`)."""
        await warm_up(self)

    def shutdown(self) -> None:
        """Nothing runs here; the server is someone else's. Connections close with the loop."""
        logger.info("engine %s: leaving the vLLM server at %s", self.model_name, self._url)

    # -- HTTP ----------------------------------------------------------------------------

    @asynccontextmanager
    async def _request(
        self, method: str, path: str, body: dict[str, Any], stream: bool = False
    ) -> AsyncIterator[httpx.Response]:
        """One exchange with the server, errors mapped onto the engine protocol's."""
        self._in_flight += 1
        try:
            response = await self._send(method, path, body, stream)
            try:
                if response.status_code != HTTPStatus.OK:
                    await response.aread()
                    raise http_error(response, self.model_name)
                yield response
            finally:
                await response.aclose()
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise EngineUnavailable(
                f"{self.model_name}: vLLM server at {self._url} unreachable ({reason(exc)})"
            ) from exc
        finally:
            self._in_flight -= 1

    async def _send(
        self, method: str, path: str, body: dict[str, Any], stream: bool
    ) -> httpx.Response:
        """Send once more when the connection broke before any answer came: typically a
        kept-alive connection the server was closing (a request the server did receive was
        aborted when its connection broke)."""
        request = self._client.build_request(method, path, json=body)
        try:
            return await self._client.send(request, stream=stream)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            logger.info("%s %s: connection closed before an answer (%s); again", method, path, exc)
            return await self._client.send(request, stream=stream)

    async def _score_generate(
        self,
        token_ids: list[int],
        start: int,
        request_id: str,
        read_cache: bool,
        cache_salt: str | None,
    ) -> ScoringPass:
        body: dict[str, Any] = {
            "request_id": request_id,
            "token_ids": token_ids,
            "sampling_params": scoring_params(read_cache),
            "stream": False,
        }
        if cache_salt is not None:
            body["cache_salt"] = cache_salt
        try:
            async with self._request("POST", "/inference/v1/generate", body) as response:
                payload: dict[str, Any] = response.json()
        except EngineUnavailable:
            raise
        except EngineError as exc:
            if not read_cache:
                raise
            self.unsent_passes += 1
            raise PassNotSent(str(exc)) from exc
        return scoring_pass(payload, start, payload["choices"][0]["token_ids"][0])

    async def _score_completions(
        self, token_ids: list[int], start: int, request_id: str
    ) -> ScoringPass:
        body = {
            "model": self.model_name,
            "prompt": token_ids,
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": 1,
            "return_token_ids": True,
            "request_id": request_id,
        }
        async with self._request("POST", "/v1/completions", body) as response:
            payload: dict[str, Any] = response.json()
        choice = payload["choices"][0]
        return scoring_pass(choice, start, choice["token_ids"][0])
