"""Shared loaders, helpers and constants for the deployment-file tests."""

# Checkers: the Compose Specification's JSON schema as check-jsonschema vendors it (with its
# license, check_jsonschema/builtin_schemas/vendor/licenses/LICENSE.compose-spec), applied with
# jsonschema; kubernetes-validate's strict schemas. Both are in the `test` extra; no network.

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from server.settings import AppConfig, load_config
from wsd_engine.config import Role

ROOT = Path(__file__).resolve().parent.parent.parent
DOCKER = ROOT / "docker"
KUBERNETES = DOCKER / "kubernetes"
CONFIGS = ROOT / "configs"
COMPOSE_FILES = ["compose.yaml", "compose.distributed.yaml"]
# The Kubernetes version the manifests are checked against (kubernetes-validate ships its
# schemas; strict: unknown fields are errors).
KUBERNETES_VERSION = "1.33.0"
VLLM_IMAGE = "vllm/vllm-openai"
# What the base model's vLLM server needs (wsd_engine/engines/vllm_remote.py).
BASE_SERVER_FLAGS = ["--enable-scale-out", "--enable-prompt-tokens-details"]
# Inside the images, the repository's configs/ is /app/configs (Dockerfile: COPY configs).
IMAGE_CONFIGS = "/app/configs/"


@cache
def compose_schema() -> dict[str, Any]:
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())  # type: ignore[no-any-return]


_VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\})"
)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation: `${NAME}`, `${NAME:-default}` (default when unset or
    empty), `${NAME-default}` (when unset), `$$` for a dollar sign."""

    def substitute(match: re.Match[str]) -> str:
        if match["name"] is None:
            return "$"
        value = env.get(match["name"])
        if match["op"] == ":-" and not value:
            return match["default"]
        if match["op"] == "-" and value is None:
            return match["default"]
        return value or ""

    if isinstance(node, str):
        return _VARIABLE.sub(substitute, node)
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    return node


def load_compose(name: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A compose file as `docker compose` sees it: YAML anchors merged, variables interpolated
    from `env` (default: an empty environment)."""
    raw = yaml.safe_load((DOCKER / name).read_text())
    return interpolate(raw, env or {})  # type: ignore[no-any-return]


def option(args: list[str], flag: str) -> str:
    """The value after `flag` in an argument list (exactly once)."""
    assert args.count(flag) == 1, (flag, args)
    return args[args.index(flag) + 1]


def is_vllm(service: dict[str, Any]) -> bool:
    return str(service.get("image", "")).startswith(VLLM_IMAGE + ":")


def is_wsd(service: dict[str, Any]) -> bool:
    command = service.get("command") or []
    return bool(command) and command[0] == "serve"


def services_where(compose: dict[str, Any], kind: Any) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if kind(s)}


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def wsd_config(service: dict[str, Any]) -> AppConfig:
    """The config a WSD service runs, with its environment's overrides applied."""
    path = option(service["command"], "--config")
    assert path.startswith(IMAGE_CONFIGS), path
    return load_config(CONFIGS / path.removeprefix(IMAGE_CONFIGS), compose_environment(service))


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's short-syntax volumes."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = source
    return mounts


def healthcheck_url(test: list[str]) -> str:
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/\S*?)['\"]", " ".join(test))
    assert match, test
    return f"{match[1]}{match[2]}"


def models_of(model_args: list[str]) -> tuple[str, str]:
    return option(model_args, "--served-model-name"), option(model_args, "--model")


def check_engine_server(config: AppConfig, role: Role, server_args: list[str]) -> None:
    """A vLLM server's arguments serve the model a WSD config expects from it."""
    model = config.pilot if role is Role.PILOT else config.base
    served, weights = models_of(server_args)
    assert served == model.served_model_name
    # the tokenizer WSD loads is the one of the weights the server loads
    assert weights == model.tokenizer
    assert "--enable-prefix-caching" in server_args
    if role is Role.BASE:
        assert set(BASE_SERVER_FLAGS) <= set(server_args)


def gpu_extra_vllm() -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    gpu = [Requirement(r) for r in project["optional-dependencies"]["gpu"]]
    (vllm,) = [r for r in gpu if r.name == "vllm"]
    return vllm


def check_vllm_image(image: str) -> None:
    """An official vLLM image pinned to a release the project's `gpu` extra accepts."""
    name, _, tag = image.partition(":")
    assert name == VLLM_IMAGE
    match = re.fullmatch(r"v(\d+\.\d+\.\d+)", tag)
    assert match, f"{image}: pin a release tag (vX.Y.Z)"
    assert gpu_extra_vllm().specifier.contains(Version(match[1])), image


def dockerfile_targets() -> dict[str, str]:
    """Target name -> its FROM image."""
    text = (ROOT / "Dockerfile").read_text()
    return {m[2]: m[1] for m in re.finditer(r"^FROM (\S+) AS (\w+)$", text, re.MULTILINE)}


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file name, resource) of every Kubernetes manifest (not the kustomization)."""
    found = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == kind}


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def only_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(deployment)["containers"]
    return container  # type: ignore[no-any-return]


def selected_deployment(service: dict[str, Any]) -> dict[str, Any]:
    """The one Deployment whose pods a Service selects."""
    selector = service["spec"]["selector"].items()
    chosen = [
        d
        for d in resources("Deployment").values()
        if selector <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert len(chosen) == 1, (service["metadata"]["name"], [d["metadata"]["name"] for d in chosen])
    return chosen[0]


def configmap_config(tmp_path: Path, environ: dict[str, str]) -> AppConfig:
    """The WSD config the WSD Deployment reads from its ConfigMap."""
    container = only_container(resources("Deployment")["wsd"])
    path = option(container["args"], "--config")
    mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    volume = next(
        v for v in pod_spec(resources("Deployment")["wsd"])["volumes"] if v["name"] == mount["name"]
    )
    data = resources("ConfigMap")[volume["configMap"]["name"]]["data"]
    key = path.removeprefix(mount["mountPath"] + "/")
    written = tmp_path / key
    written.write_text(data[key])
    return load_config(written, environ)


def url_host_port(url: str | None) -> tuple[str, int]:
    parts = urlsplit(str(url))
    assert parts.hostname and parts.port, url
    return parts.hostname, parts.port
