"""A deployment's configuration: the pipeline (models and method) plus the HTTP server, from
YAML files with environment overrides. The embedded default and the example deployments ship
inside the package (`server/configs`, the repository's `configs/` folder)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import Field

from wsd_engine.config import ConfigError, PipelineConfig, StrictConfig, read_config_file, validated

SHIPPED_CONFIGS = "configs"  # package data of `server`
DEFAULT_CONFIG = "embedded"


class CORSConfig(StrictConfig):
    """Cross-origin requests from browsers (vLLM's flag names); off while no origin is set."""

    allowed_origins: tuple[str, ...] = Field(
        default=(), description="Origins allowed to call the API ('*' for any); none: CORS off."
    )
    allowed_methods: tuple[str, ...] = Field(default=("*",), description="Allowed methods.")
    allowed_headers: tuple[str, ...] = Field(default=("*",), description="Allowed headers.")
    allow_credentials: bool = Field(default=False, description="Allow cookies and auth headers.")


class ServerConfig(StrictConfig):
    """HTTP listener, access and limits."""

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port to listen on.")
    api_keys: tuple[str, ...] = Field(
        default=(),
        description="Keys a client must send as 'Authorization: Bearer <key>' on /v1/*; none: "
        "no authentication. Also --api-key and $WSD_API_KEY (comma-separated).",
    )
    metrics_public: bool = Field(
        default=True, description="Serve /metrics without a key when api_keys are set."
    )
    docs: bool = Field(default=True, description="Serve /docs, /redoc and /openapi.json.")
    playground: bool = Field(
        default=True, description="Serve the playground page at / and /playground."
    )
    max_body_bytes: int = Field(
        default=4 << 20, ge=1024, description="Largest request body; larger ones get 413."
    )
    max_concurrent_requests: int = Field(
        default=64,
        ge=1,
        description="Completion requests running or queued at once; more get 429.",
    )
    request_timeout_s: float | None = Field(
        default=600.0, gt=0, description="A request still running after this is aborted (504)."
    )
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="On SIGTERM, how long in-flight requests may finish."
    )
    exit_on_engine_death: bool = Field(
        default=True,
        description="Exit non-zero when an engine dies, so that a supervisor restarts the server.",
    )
    cors: CORSConfig = Field(default_factory=CORSConfig, description="Browser access.")
    response_store_size: int = Field(
        default=1024,
        ge=0,
        description="Responses API: how many responses this process keeps for "
        "previous_response_id and GET /v1/responses/{id} (0: none; per replica, so several "
        "replicas need sticky routing for previous_response_id).",
    )
    response_store_max_age_s: float = Field(
        default=3600.0, gt=0, description="Responses API: how long a stored response is kept."
    )


class AppConfig(PipelineConfig):
    """Everything one `wsd serve` needs."""

    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP listener.")


def shipped_config(name: str) -> Path:
    """The path of a config that ships with the package, by name (`embedded`,
    `paper-gpu-gemma2`, ...)."""
    folder = resources.files("server") / SHIPPED_CONFIGS
    path = folder / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.is_file())
        raise ConfigError(f"no config named '{name}'; shipped configs: {', '.join(names)}")
    return Path(str(path))


def config_path(given: str | Path | None) -> Path:
    """A config file's path: a file that exists as given, else a shipped config's name (a
    path that names no file is an error); None is the embedded default."""
    if given is None:
        return shipped_config(DEFAULT_CONFIG)
    path = Path(given).expanduser()
    if path.is_file() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    return shipped_config(str(given))


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> AppConfig:
    """Load a YAML config file (a path, or a shipped config's name; default: the embedded
    one), apply `WSD__SECTION__FIELD` environment overrides and validate."""
    resolved = config_path(path)
    return validated(AppConfig, read_config_file(resolved), str(resolved), environ)
