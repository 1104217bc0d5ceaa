"""What a remote engine learns before serving: the tokenizer, and the vLLM server's settings."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

import httpx

from wsd_engine.config import ModelConfig
from wsd_engine.engines.engine import EngineError, EngineUnavailable

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 900.0  # a large model's server may take minutes to load
_POLL_S = 2.0
_PROGRESS_EVERY_S = 15.0
_CACHE_INFO = re.compile(r"^vllm:cache_config_info\{(?P<labels>[^}]*)\}", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')

ScoringEndpoint = Literal["generate", "completions"]


@dataclass(frozen=True)
class ServerFacts:
    """A vLLM server's settings that the orchestrator needs."""

    max_model_len: int
    cache_block_size: int | None  # None: no prefix caching
    scoring_endpoint: ScoringEndpoint


def load_tokenizer(path: Path) -> Any:
    """The model's tokenizer from its files (a directory or a Hugging Face id)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def discover(model: ModelConfig, timeout_s: float = STARTUP_TIMEOUT_S) -> ServerFacts:
    """Wait until the server serves `model.served_model_name`, then read its settings."""
    headers = {"Authorization": f"Bearer {model.api_key}"} if model.api_key else {}
    timeout = httpx.Timeout(model.read_timeout_s, connect=model.connect_timeout_s)
    with httpx.Client(base_url=str(model.url), headers=headers, timeout=timeout) as client:
        served = _wait_for_model(client, model, timeout_s)
        return ServerFacts(
            max_model_len=int(served["max_model_len"]),
            cache_block_size=_cache_block_size(client, model.served_model_name),
            scoring_endpoint=_scoring_endpoint(client, model.served_model_name),
        )


def _wait_for_model(client: httpx.Client, model: ModelConfig, timeout_s: float) -> dict[str, Any]:
    started = time.monotonic()
    reported = started
    while True:
        try:
            response = client.get("/v1/models")
        except httpx.TransportError as exc:
            problem = f"unreachable ({exc or type(exc).__name__})"
        else:
            if response.status_code == HTTPStatus.UNAUTHORIZED:
                raise EngineError(f"{model.served_model_name}: {model.url} refused the API key")
            if response.status_code == HTTPStatus.OK:
                return _served_model(response.json(), model)
            problem = f"/v1/models answered {response.status_code}"
        waited = time.monotonic() - started
        if waited > timeout_s:
            raise EngineUnavailable(
                f"{model.served_model_name}: vLLM server at {model.url} {problem} "
                f"after {waited:.0f} s"
            )
        if time.monotonic() - reported >= _PROGRESS_EVERY_S:
            reported = time.monotonic()
            logger.info(
                "engine %s: waiting for the vLLM server at %s (%s, %.0f s)",
                model.served_model_name, model.url, problem, waited,
            )  # fmt: skip
        time.sleep(_POLL_S)


def _served_model(listing: dict[str, Any], model: ModelConfig) -> dict[str, Any]:
    for entry in listing.get("data", []):
        if entry.get("id") == model.served_model_name:
            return dict(entry)
    served = ", ".join(str(entry.get("id")) for entry in listing.get("data", []))
    raise EngineError(
        f"{model.url} does not serve '{model.served_model_name}' (it serves: {served}); set "
        "served_model_name to the server's --served-model-name"
    )


def _cache_block_size(client: httpx.Client, name: str) -> int | None:
    """From the server's `vllm:cache_config_info` metric; None when prefix caching is off or
    the metric is not there (the checker then scores without relying on the cache)."""
    try:
        response = client.get("/metrics")
    except httpx.TransportError:
        return None
    match = _CACHE_INFO.search(response.text) if response.status_code == HTTPStatus.OK else None
    if match is None:
        logger.warning(
            "engine %s: no vllm:cache_config_info metric; assuming no prefix cache", name
        )
        return None
    labels = dict(_LABEL.findall(match.group("labels")))
    if labels.get("enable_prefix_caching") != "True":
        return None
    return int(labels["block_size"])


def _scoring_endpoint(client: httpx.Client, name: str) -> ScoringEndpoint:
    """`generate` when the token-in/token-out endpoint answers, else `completions`."""
    probe = {
        "token_ids": [0, 1],
        "sampling_params": {"max_tokens": 1, "prompt_logprobs": 1, "detokenize": False},
    }
    try:
        response = client.post("/inference/v1/generate", json=probe)
    except httpx.TransportError:
        response = None
    if response is not None and response.status_code == HTTPStatus.OK:
        return "generate"
    logger.warning(
        "engine %s: the server's /inference/v1/generate is not enabled (start it with "
        "--enable-scale-out); scoring falls back to /v1/completions, which recomputes the "
        "whole prompt on every pass",
        name,
    )
    return "completions"
