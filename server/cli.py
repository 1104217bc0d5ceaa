"""The config a `wsd` command runs with, from a YAML file, from `vllm serve`-style flags, or
both. The flags are generated from the config models (one source of truth: their names,
types and descriptions), so every model setting has a flag for both engines (`--dtype`) and
one per engine (`--pilot-dtype`, `--base-dtype`).

Which value wins:
- `--config FILE` given: the file wins where it sets a value; flags fill what it leaves unset
  (a flag the file overrides is named in a warning);
- `--pilot` and `--base` given (no file): the flags, over the config models' defaults;
- neither: the embedded default config, with the flags over it.
A per-engine flag wins over the same flag for both engines.
"""

from __future__ import annotations

import argparse
import logging
import types
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from server.settings import AppConfig, config_path
from wsd_engine.config import (
    ConfigError,
    EmbeddedModel,
    ModelConfig,
    Role,
    WSDConfig,
    read_config_file,
    validated,
)

logger = logging.getLogger("wsd")

# ModelConfig fields that are engine settings: a flag for both engines and one per engine.
ENGINE_FIELDS = (
    "dtype", "max_model_len", "tensor_parallel_size", "gpu_memory_utilization",
    "kv_cache_space_gib", "enforce_eager", "enable_prefix_caching", "block_size",
    "max_num_batched_tokens", "cpu_threads_bind", "cpu_reserved_cores",
)  # fmt: skip
# ModelConfig fields that belong to one model: a flag per engine only.
MODEL_FIELDS = (
    "served_model_name", "prompt_template", "url", "tokenizer", "api_key",
    "connect_timeout_s", "connect_retries", "read_timeout_s",
)  # fmt: skip
METHOD_FIELDS = (
    "threshold", "window", "draft_max_tokens", "continue_after_draft_end", "scoring",
    "pilot_max_lead",
)  # fmt: skip
_BOTH = "both"
_SEP = "__"  # argparse destinations: <section>__<field>


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """The config file and every model and method flag, in groups `--help` shows."""
    source = parser.add_argument_group(
        "configuration", "a YAML file, or the two models (see `Which value wins` below)"
    )
    source.add_argument(
        "--config",
        help="YAML config file, or the name of a shipped one (embedded, embedded-remote, "
        "paper-gpu-gemma2, paper-gpu-llama3, paper-gpu-remote); default: embedded",
    )
    for role in Role:
        source.add_argument(
            f"--{role.value}",
            metavar="MODEL",
            help=f"the {role.value} model: a Hugging Face model directory, a hub id, or an "
            f"embedded model ({', '.join(m.value for m in EmbeddedModel)})",
        )
    both = parser.add_argument_group("both engines (vLLM's flags)")
    for name in ENGINE_FIELDS:
        _add_field_flag(both, f"--{_flag(name)}", _BOTH, name, ModelConfig.model_fields[name])
    for role in Role:
        group = parser.add_argument_group(f"{role.value} engine (over the flags for both)")
        for name in (*ENGINE_FIELDS, *MODEL_FIELDS):
            flag = f"--{role.value}-{_flag(name)}"
            _add_field_flag(group, flag, role.value, name, ModelConfig.model_fields[name])
    method = parser.add_argument_group("the method's defaults (a request's `wsd` overrides)")
    for name in METHOD_FIELDS:
        _add_field_flag(method, f"--{_flag(name)}", "wsd", name, WSDConfig.model_fields[name])
    _add_field_flag(
        method, "--wsd-served-model-name", "wsd", "served_model_name",
        WSDConfig.model_fields["served_model_name"],
    )  # fmt: skip


def config_from_args(args: argparse.Namespace) -> AppConfig:
    """The config the command runs with (module docstring: which value wins)."""
    flags = _flag_values(args)
    models = {role: getattr(args, role.value) for role in Role}
    if args.config is not None:
        path = config_path(args.config)
        data = read_config_file(path)
        for role, model in models.items():
            if model is not None:
                logger.warning("--%s %s is ignored: %s names the models", role.value, model, path)
        _warn_overridden(flags, data, str(path))
        return validated(AppConfig, _merged(flags, data), str(path))
    if any(models.values()) or any(flags.get(role.value, {}).get("url") for role in Role):
        return validated(AppConfig, _merged(_models_from_flags(models, flags), {}), "flags")
    path = config_path(None)
    return validated(AppConfig, _merged(read_config_file(path), flags), str(path))


def _models_from_flags(models: dict[Role, str | None], flags: dict[str, Any]) -> dict[str, Any]:
    """Flag values with each role's model source filled in from `--pilot` / `--base`."""
    data = {section: dict(values) for section, values in flags.items()}
    for role, model in models.items():
        section = data.setdefault(role.value, {})
        remote = section.get("url") is not None
        if model is None and not remote:
            raise ConfigError(
                f"--{role.value} is missing: give --pilot and --base (a model directory, a hub "
                "id or an embedded model name), or --config"
            )
        if remote:
            section.setdefault("tokenizer", model)
        elif model in {name.value for name in EmbeddedModel}:
            section["embedded"] = model
        else:
            section["path"] = model
        named_by = model or section.get("tokenizer") or section["url"]
        section.setdefault("served_model_name", _served_name(named_by))
    return data


def _served_name(model: str) -> str:
    """vLLM's default served name is the model argument; a directory goes by its name."""
    path = Path(model).expanduser()
    return path.name if path.is_dir() else model


def _flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, as config sections: the flags for both engines under each role,
    each engine's own over them."""
    given: dict[str, dict[str, Any]] = {}
    for dest, value in vars(args).items():
        if _SEP not in dest or value is None:
            continue
        section, name = dest.split(_SEP, 1)
        given.setdefault(section, {})[name] = value
    both = given.pop(_BOTH, {})
    for role in Role:
        own = given.get(role.value, {})
        if both or own:
            given[role.value] = {**both, **own}
    return given


def _merged(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over`'s values on top of `under`'s, section by section."""
    result = dict(under)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = {**result[key], **value}
        else:
            result[key] = value
    return result


def _warn_overridden(flags: dict[str, Any], data: dict[str, Any], source: str) -> None:
    for section, values in flags.items():
        file_section = data.get(section)
        if not isinstance(file_section, dict):
            continue
        for name in values:
            if name in file_section and file_section[name] != values[name]:
                logger.warning(
                    "%s sets %s.%s: %r, over the flag's %r", source, section, name,
                    file_section[name], values[name],
                )  # fmt: skip


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _add_field_flag(group: Any, flag: str, section: str, name: str, info: FieldInfo) -> None:
    """One flag for one config field: its type, choices and help come from the field."""
    dest = f"{section}{_SEP}{name}"
    kind = _value_type(info.annotation)
    help_text = (info.description or "").replace("%", "%%")
    if kind is bool:
        group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, help=help_text)
    elif isinstance(kind, type) and issubclass(kind, Enum):
        choices = [member.value for member in kind]
        group.add_argument(flag, dest=dest, choices=choices, help=help_text)
    else:
        group.add_argument(flag, dest=dest, type=kind, metavar=name.upper(), help=help_text)


def _value_type(annotation: Any) -> Any:
    """The type a flag's value parses as: an optional field's inner type."""
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        annotation = inner[0]
    if get_origin(annotation) is not None:  # Annotated and the like
        annotation = get_args(annotation)[0]
    return annotation if annotation in (str, int, float, bool) or _is_enum(annotation) else str


def _is_enum(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Enum)
