from pathlib import Path

import pytest

from server.settings import load_config
from wsd_engine.config import ConfigError, PromptTemplate, Role

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize(
    "name", ["embedded.yaml", "paper-gpu-gemma2.yaml", "paper-gpu-llama3.yaml"]
)
def test_shipped_configs_validate(name):
    config = load_config(CONFIGS / name, environ={})
    assert config.wsd.window == 6
    assert config.template_for(Role.BASE) is PromptTemplate.PLAIN
    assert config.template_for(Role.PILOT) is PromptTemplate.CHAT


def test_embedded_config_binds_each_engine_to_its_own_core():
    config = load_config(CONFIGS / "embedded.yaml", environ={})
    assert {config.pilot.cpu_threads_bind, config.base.cpu_threads_bind} == {"0", "1"}


def test_environment_overrides_nested_fields():
    config = load_config(
        CONFIGS / "embedded.yaml",
        environ={"WSD__SERVER__PORT": "9001", "WSD__WSD__THRESHOLD": "0.5", "HOME": "/x"},
    )
    assert config.server.port == 9001
    assert config.wsd.threshold == 0.5


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_error_names_the_parameter(tmp_path):
    path = _write(
        tmp_path,
        "pilot: {served_model_name: a, embedded: gemma3-270m}\n"
        "base: {served_model_name: b, path: /x}\nwsd: {threshold: 1.5}\n",
    )
    with pytest.raises(ConfigError, match=r"wsd\.threshold"):
        load_config(path, environ={})


def test_model_needs_exactly_one_source(tmp_path):
    path = _write(
        tmp_path, "pilot: {served_model_name: a}\nbase: {served_model_name: b, path: /x}\n"
    )
    with pytest.raises(ConfigError, match="exactly one of 'path', 'embedded' and 'url'"):
        load_config(path, environ={})


def test_unknown_fields_are_rejected(tmp_path):
    path = _write(
        tmp_path,
        "pilot: {served_model_name: a, path: /p, colour: red}\n"
        "base: {served_model_name: b, path: /x}\n",
    )
    with pytest.raises(ConfigError, match=r"pilot\.colour"):
        load_config(path, environ={})


def test_served_ids_must_differ(tmp_path):
    path = _write(
        tmp_path,
        "pilot: {served_model_name: a, path: /p}\nbase: {served_model_name: a, path: /x}\n",
    )
    with pytest.raises(ConfigError, match="must differ"):
        load_config(path, environ={})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "pilot: [unclosed"), environ={})
