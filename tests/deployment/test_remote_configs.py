"""The remote WSD configs pair the same models as the local configs they mirror."""

from __future__ import annotations

from server.settings import load_config
from tests.deployment.files import CONFIGS, url_host_port
from wsd_engine.config import Role

# --------------------------------------------------------------------------------------------
# the remote configs


def test_paper_remote_config_is_the_papers_pairing():
    local = load_config(CONFIGS / "paper-gpu-gemma2.yaml", environ={})
    remote = load_config(CONFIGS / "paper-gpu-remote.yaml", environ={})
    assert remote.pilot.is_remote and remote.base.is_remote
    for role in Role:
        here, there = (
            (local.pilot, remote.pilot) if role is Role.PILOT else (local.base, remote.base)
        )
        assert there.served_model_name == here.served_model_name
        assert there.tokenizer == here.path
        assert remote.template_for(role) is local.template_for(role)
    assert remote.wsd == local.wsd
    assert remote.server == local.server


def test_embedded_remote_config_serves_the_embedded_models():
    local = load_config(CONFIGS / "embedded.yaml", environ={})
    remote = load_config(CONFIGS / "embedded-remote.yaml", environ={})
    ports = {Role.PILOT: 8201, Role.BASE: 8202}
    for role in Role:
        here, there = (
            (local.pilot, remote.pilot) if role is Role.PILOT else (local.base, remote.base)
        )
        assert url_host_port(there.url) == ("127.0.0.1", ports[role])
        assert there.served_model_name == here.served_model_name
        assert here.embedded is not None
        assert there.tokenizer == here.embedded.value
        assert remote.template_for(role) is local.template_for(role)
    assert remote.wsd == local.wsd
    assert remote.server == local.server
