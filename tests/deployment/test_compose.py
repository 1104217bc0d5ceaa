"""The compose stacks follow the Compose Specification and agree with the WSD configs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.deployment.files import (
    COMPOSE_FILES,
    DOCKER,
    ROOT,
    bind_mounts,
    check_engine_server,
    check_vllm_image,
    compose_environment,
    compose_schema,
    dockerfile_targets,
    healthcheck_url,
    interpolate,
    is_vllm,
    is_wsd,
    load_compose,
    option,
    services_where,
    url_host_port,
    wsd_config,
)
from wsd_engine.config import Role

# --------------------------------------------------------------------------------------------
# compose: schema


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_follows_the_compose_spec(name):
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(load_compose(name))
    ]
    assert not errors, errors


def test_compose_schema_rejects_a_misspelt_key():
    compose = load_compose("compose.distributed.yaml")
    compose["services"]["lb"]["healtcheck"] = compose["services"]["wsd-1"]["healthcheck"]
    assert not jsonschema.Draft202012Validator(compose_schema()).is_valid(compose)


def test_interpolation_follows_compose_rules():
    node = ["${A:-x}", "${A-x}", "${B:-y}", "${B-y}", "${C}", "$${A}"]
    assert interpolate(node, {"A": ""}) == ["x", "", "y", "y", "", "${A}"]
    assert interpolate(node, {"A": "a", "C": "c"}) == ["a", "a", "y", "y", "c", "${A}"]


# --------------------------------------------------------------------------------------------
# compose: wiring


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_wsd_services_run_a_shipped_config(name):
    assert re.search(r"^COPY configs /app/configs$", (ROOT / "Dockerfile").read_text(), re.M)
    wsd = services_where(load_compose(name), is_wsd)
    assert wsd
    for service in wsd.values():
        config = wsd_config(service)
        assert option(service["command"], "--port") == str(config.server.port)
        assert option(service["command"], "--host") == "0.0.0.0"
        # the server's key comes from the caller's environment, as in compose.yaml
        assert (service.get("environment") or {}).get("WSD_API_KEY") is not None
    raw = yaml.safe_load((DOCKER / name).read_text())
    for service_name in wsd:
        assert raw["services"][service_name]["environment"]["WSD_API_KEY"] == "${WSD_API_KEY:-}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_wsd_images_are_built_from_our_dockerfile(name):
    targets = dockerfile_targets()
    for service in services_where(load_compose(name), is_wsd).values():
        build = service["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"
        assert build["target"] in targets
        config = wsd_config(service)
        if config.pilot.is_remote and config.base.is_remote:
            # no engine in the process: the image without CUDA, and no GPU reserved
            assert build["target"] == "cpu"
            assert not targets["cpu"].startswith("nvidia/")
            assert "deploy" not in service


def test_distributed_compose_engine_urls_name_its_vllm_servers():
    compose = load_compose("compose.distributed.yaml")
    vllm = services_where(compose, is_vllm)
    wsd = services_where(compose, is_wsd)
    assert len(vllm) == 2 and len(wsd) == 2
    for service in wsd.values():
        config = wsd_config(service)
        used = set()
        for role, model in ((Role.PILOT, config.pilot), (Role.BASE, config.base)):
            host, port = url_host_port(model.url)
            assert host in vllm, f"{model.url}: no vLLM service {host}"
            server = vllm[host]
            assert option(server["command"], "--port") == str(port)
            assert option(server["command"], "--host") == "0.0.0.0"
            check_engine_server(config, role, server["command"])
            # the WSD replica reads the tokenizer from the same models folder the server loads
            mount = next(t for t in bind_mounts(service) if model.tokenizer.startswith(t + "/"))
            assert bind_mounts(server)[mount] == bind_mounts(service)[mount]
            assert bind_mounts(service)[mount] == "./models"  # WSD_MODELS_DIR's default
            assert any(v.endswith(":ro") for v in service["volumes"])
            used.add(host)
        assert used == set(vllm)
        # a replica starts once both servers are healthy
        assert service["depends_on"] == {h: {"condition": "service_healthy"} for h in vllm}


def test_distributed_compose_vllm_servers():
    compose = load_compose("compose.distributed.yaml")
    for name, server in services_where(compose, is_vllm).items():
        check_vllm_image(server["image"])
        devices = server["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"], name
        assert server["ipc"] == "host"
        port = option(server["command"], "--port")
        assert healthcheck_url(server["healthcheck"]["test"]) == f"{port}/health"
        assert all(v.endswith(":ro") for v in server["volumes"]), name
    # the image can be swapped, and the pinned one is the default
    raw = yaml.safe_load((DOCKER / "compose.distributed.yaml").read_text())
    other = load_compose("compose.distributed.yaml", {"VLLM_IMAGE": "my/vllm:dev"})
    for name in services_where(compose, is_vllm):
        assert raw["services"][name]["image"].startswith("${VLLM_IMAGE:-")
        assert other["services"][name]["image"] == "my/vllm:dev"


def test_distributed_compose_passes_the_vllm_key_to_both_sides():
    for env, expected in (({}, None), ({"VLLM_API_KEY": "k1"}, "k1")):
        compose = load_compose("compose.distributed.yaml", env)
        for server in services_where(compose, is_vllm).values():
            assert (compose_environment(server)["VLLM_API_KEY"] or None) == expected
        for service in services_where(compose, is_wsd).values():
            config = wsd_config(service)
            assert config.pilot.api_key == expected
            assert config.base.api_key == expected


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_wsd_healthchecks_ask_health(name):
    for service in services_where(load_compose(name), is_wsd).values():
        port = option(service["command"], "--port")
        assert healthcheck_url(service["healthcheck"]["test"]) == f"{port}/health"


def _nginx_upstreams(text: str) -> dict[str, list[str]]:
    text = re.sub(r"#.*", "", text)
    blocks = re.findall(r"upstream\s+(\S+)\s*\{(.*?)\}", text, re.S)
    return {name: re.findall(r"^\s*server\s+(\S+)", body, re.M) for name, body in blocks}


def _nginx_seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[unit]


def test_load_balancer_spreads_over_both_wsd_replicas():
    compose = load_compose("compose.distributed.yaml")
    wsd = services_where(compose, is_wsd)
    lb = compose["services"]["lb"]
    assert lb["image"].startswith("nginx:")
    conf_host = next(s for t, s in bind_mounts(lb).items() if t.startswith("/etc/nginx/"))
    text = (DOCKER / conf_host).read_text()
    upstreams = _nginx_upstreams(text)
    assert len(upstreams) == 1
    ((upstream, servers),) = upstreams.items()
    expected = {f"{name}:{wsd_config(s).server.port}" for name, s in wsd.items()}
    assert set(servers) == expected
    assert len(servers) == 2
    # round robin: nginx's default, as long as no other balancing method is set
    assert not re.search(r"^\s*(least_conn|ip_hash|hash|random)\b", text, re.M)
    assert re.search(rf"proxy_pass\s+http://{upstream};", text)
    assert re.search(r"proxy_buffering\s+off;", text)
    # it must outlast the longest request a replica allows
    read_timeout = _nginx_seconds(re.search(r"proxy_read_timeout\s+(\S+);", text)[1])  # type: ignore[index]
    for service in wsd.values():
        assert read_timeout > (wsd_config(service).server.request_timeout_s or 0)
    (listen,) = re.findall(r"^\s*listen\s+(\d+);", text, re.M)
    assert any(p.endswith(f":{listen}") for p in lb["ports"])
    assert set(lb["depends_on"]) == set(wsd)


def _scrape_targets(config_path: Path) -> set[str]:
    prometheus = yaml.safe_load(config_path.read_text())
    targets = set()
    for job in prometheus["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for static in job["static_configs"]:
            targets |= set(static["targets"])
    return targets


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_prometheus_scrapes_every_wsd_and_vllm_service(name):
    compose = load_compose(name)
    prometheus = compose["services"]["prometheus"]
    config = DOCKER / bind_mounts(prometheus)["/etc/prometheus/prometheus.yml"]
    expected = {
        f"{n}:{wsd_config(s).server.port}" for n, s in services_where(compose, is_wsd).items()
    }
    expected |= {
        f"{n}:{option(s['command'], '--port')}" for n, s in services_where(compose, is_vllm).items()
    }
    assert _scrape_targets(config) == expected


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_grafana_reads_this_stacks_prometheus(name):
    compose = load_compose(name)
    grafana = compose["services"]["grafana"]
    for target, source in bind_mounts(grafana).items():
        assert (DOCKER / source).is_dir(), (target, source)
    datasources = DOCKER / bind_mounts(grafana)["/etc/grafana/provisioning"] / "datasources"
    (datasource,) = yaml.safe_load((datasources / "prometheus.yaml").read_text())["datasources"]
    host, port = url_host_port(datasource["url"])
    assert host in compose["services"]
    assert port == 9090
    assert any(p.endswith(":9090") for p in compose["services"][host]["ports"])


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_mounts_files_that_exist(name):
    for service_name, service in load_compose(name)["services"].items():
        for target, source in bind_mounts(service).items():
            if target == "/models":  # the user's weights ($WSD_MODELS_DIR)
                continue
            assert (DOCKER / source).exists(), (service_name, source)


@pytest.mark.slow  # promtool comes with Prometheus, which `make test` installs
@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus.distributed.yml"])
def test_promtool_accepts_the_scrape_configs(name):
    result = subprocess.run(
        ["promtool", "check", "config", str(DOCKER / name)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
