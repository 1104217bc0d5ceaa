"""The Kubernetes manifests validate (pinned version) and agree with the WSD config."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import kubernetes_validate
import pytest
import yaml

from server.settings import load_config
from tests.deployment.files import (
    CONFIGS,
    DOCKER,
    KUBERNETES,
    KUBERNETES_VERSION,
    VLLM_IMAGE,
    check_engine_server,
    check_vllm_image,
    configmap_config,
    is_vllm,
    load_compose,
    manifests,
    only_container,
    option,
    pod_spec,
    resources,
    selected_deployment,
    services_where,
    url_host_port,
)
from wsd_engine.config import Role

# --------------------------------------------------------------------------------------------
# Kubernetes: schema


def test_there_are_manifests():
    kinds = Counter(doc["kind"] for _, doc in manifests())
    assert kinds == {
        "PersistentVolumeClaim": 1,
        "Deployment": 3,
        "Service": 3,
        "ConfigMap": 1,
    }


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param(doc, id=f"{file}:{doc['kind']}/{doc['metadata']['name']}")
        for file, doc in manifests()
    ],
)
def test_kubernetes_manifest_validates(resource):
    # raises ValidationError, or SchemaNotFoundError for a kind/apiVersion that version lacks
    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validation_is_strict():
    deployment = json.loads(json.dumps(resources("Deployment")["wsd"]))
    only_container(deployment)["readinesProbe"] = {"httpGet": {"path": "/health", "port": 8000}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk


# --------------------------------------------------------------------------------------------
# Kubernetes: wiring


def test_deployments_select_their_own_pods():
    for name, deployment in resources("Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), name


def test_services_reach_a_named_container_port():
    for name, service in resources("Service").items():
        container = only_container(selected_deployment(service))
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (name, port)


def test_configmap_holds_the_remote_config_and_it_loads(tmp_path):
    config = configmap_config(tmp_path, environ={})
    assert config == load_config(CONFIGS / "paper-gpu-remote.yaml", environ={})
    # the Deployment's environment names fields that exist: the keys land where they should
    keyed = configmap_config(
        tmp_path, {"WSD__PILOT__API_KEY": "k", "WSD__BASE__API_KEY": "k", "WSD_API_KEY": "w"}
    )
    assert keyed.pilot.api_key == keyed.base.api_key == "k"


def test_engine_urls_name_the_vllm_services(tmp_path):
    config = configmap_config(tmp_path, environ={})
    services = resources("Service")
    for role, model in ((Role.PILOT, config.pilot), (Role.BASE, config.base)):
        host, port = url_host_port(model.url)
        assert host in services, f"{model.url}: no Service {host}"
        (service_port,) = services[host]["spec"]["ports"]
        assert service_port["port"] == port
        container = only_container(selected_deployment(services[host]))
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert str(named[service_port["targetPort"]]) == option(container["args"], "--port")
        assert option(container["args"], "--host") == "0.0.0.0"
        check_engine_server(config, role, container["args"])


def test_vllm_deployments_get_a_gpu_and_health_probes():
    services = resources("Service")
    vllm = {
        n: d
        for n, d in resources("Deployment").items()
        if only_container(d)["image"].startswith(VLLM_IMAGE)
    }
    assert set(vllm) == {"vllm-pilot", "vllm-base"} and set(vllm) <= set(services)
    for name, deployment in vllm.items():
        container = only_container(deployment)
        check_vllm_image(container["image"])
        assert container["resources"]["requests"]["nvidia.com/gpu"] >= 1
        assert container["resources"]["limits"]["nvidia.com/gpu"] >= 1
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["path"] == "/health", (name, probe)
            assert container[probe]["httpGet"]["port"] == "http"
        assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_wsd_deployment():
    deployment = resources("Deployment")["wsd"]
    container = only_container(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    # a vLLM server restarting makes /health 503: that must not restart the replicas
    assert "httpGet" not in container["livenessProbe"]
    assert "nvidia.com/gpu" not in str(container.get("resources"))
    env = {e["name"]: e for e in container["env"]}
    assert env["WSD_API_KEY"]["valueFrom"]["secretKeyRef"]["key"]
    assert not env["WSD_API_KEY"]["valueFrom"]["secretKeyRef"].get("optional", False)
    assert option(container["args"], "--host") == "0.0.0.0"
    # drain (30 s) and the preStop pause fit in the grace period
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert (
        grace
        > pause + load_config(CONFIGS / "paper-gpu-remote.yaml", environ={}).server.drain_timeout_s
    )


def test_vllm_key_is_shared_by_servers_and_replicas():
    def key_ref(container: dict[str, Any], name: str) -> tuple[str, str]:
        ref = next(e for e in container["env"] if e["name"] == name)["valueFrom"]["secretKeyRef"]
        return ref["name"], ref["key"]

    deployments = resources("Deployment")
    wsd = only_container(deployments["wsd"])
    refs = {key_ref(wsd, "WSD__PILOT__API_KEY"), key_ref(wsd, "WSD__BASE__API_KEY")}
    for name in ("vllm-pilot", "vllm-base"):
        refs.add(key_ref(only_container(deployments[name]), "VLLM_API_KEY"))
    assert len(refs) == 1


def test_volumes_use_claims_that_are_defined():
    claims = resources("PersistentVolumeClaim")
    for name, deployment in resources("Deployment").items():
        spec = pod_spec(deployment)
        volumes = {v["name"]: v for v in spec["volumes"]}
        for mount in only_container(deployment)["volumeMounts"]:
            volume = volumes[mount["name"]]
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name
                assert mount["readOnly"] is True, name
            if "configMap" in volume:
                assert volume["configMap"]["name"] in resources("ConfigMap"), name


def test_wsd_pods_mount_the_tokenizers(tmp_path):
    config = configmap_config(tmp_path, environ={})
    deployments = resources("Deployment")
    wsd_mounts = {m["mountPath"] for m in only_container(deployments["wsd"])["volumeMounts"]}
    for model in (config.pilot, config.base):
        assert any(model.tokenizer.startswith(path + "/") for path in wsd_mounts), model.tokenizer


def test_compose_and_kubernetes_run_the_same_vllm_release():
    compose = load_compose("compose.distributed.yaml")
    images = {s["image"] for s in services_where(compose, is_vllm).values()}
    images |= {
        only_container(d)["image"]
        for d in resources("Deployment").values()
        if only_container(d)["image"].startswith(VLLM_IMAGE)
    }
    assert len(images) == 1, images


def test_the_documented_secret_has_the_keys_the_pods_read():
    refs = set()
    for deployment in resources("Deployment").values():
        for env in only_container(deployment).get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref["key"]))
    (name,) = {secret for secret, _ in refs}
    for doc in (DOCKER / "README.md", KUBERNETES / "wsd.yaml"):
        text = doc.read_text()
        command = re.search(rf"kubectl create secret generic {name}\b(.*)", text)
        assert command, (doc, name)
        # the command may continue on the next (comment) line
        following = text[command.start() : command.end() + 200]
        assert {key for _, key in refs} == set(re.findall(r"--from-literal=(\w+)=", following))
