"""The `wsd` command: the config it builds from files and flags, its server settings, and
(slow) serving a model pair from their folders, from another directory, with flags only."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import httpx
import pytest

from server.background import free_port, wait_ready
from server.cli import config_from_args
from server.settings import load_config
from tests.conftest import EMBEDDED_CONFIG
from wsd_cli import _server_overrides, build_parser
from wsd_engine.config import ConfigError, EmbeddedModel


def overrides(argv, monkeypatch, key_env=None):
    if key_env is None:
        monkeypatch.delenv("WSD_API_KEY", raising=False)
    else:
        monkeypatch.setenv("WSD_API_KEY", key_env)
    args = build_parser().parse_args(["serve", *argv])
    return _server_overrides(args, load_config(EMBEDDED_CONFIG))


def config(*argv):
    return config_from_args(build_parser().parse_args(["serve", *argv]))


def test_nothing_given_changes_nothing(monkeypatch):
    assert overrides([], monkeypatch) == {}


def test_keys_come_from_flags_and_the_environment(monkeypatch):
    result = overrides(["--api-key", "a", "--api-key", "b"], monkeypatch, key_env="c, d,")
    assert result["api_keys"] == ("a", "b", "c", "d")


@pytest.mark.parametrize("flag", ["--allowed-origins", "--allowed-methods", "--allowed-headers"])
def test_cors_flags_use_vllms_names(monkeypatch, flag):
    result = overrides([flag, "x", "y", "--allow-credentials"], monkeypatch)
    cors = result["cors"]
    assert getattr(cors, flag[2:].replace("-", "_")) == ("x", "y")
    assert cors.allow_credentials is True


def test_the_embedded_default_ships_in_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository
    default = config()
    assert default == load_config(EMBEDDED_CONFIG)
    assert default.base.embedded is EmbeddedModel.GEMMA3_270M
    assert config("--config", "embedded") == default  # a shipped config by name
    with pytest.raises(ConfigError, match="shipped configs: embedded, embedded-remote"):
        config("--config", "no-such-config")


def test_flags_go_over_the_embedded_default(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    changed = config("--max-model-len", "1024", "--base-dtype", "bfloat16", "--window", "4")
    assert changed.pilot.max_model_len == changed.base.max_model_len == 1024
    assert changed.base.dtype == "bfloat16" and changed.pilot.dtype == "float32"
    assert changed.wsd.window == 4
    assert changed.pilot.cpu_threads_bind == "0"  # the rest of the default stays


def test_a_config_file_wins_over_flags_where_it_sets_a_value(caplog):
    with caplog.at_level(logging.WARNING, logger="wsd"):
        chosen = config("--config", str(EMBEDDED_CONFIG), "--dtype", "bfloat16", "--block-size",
                        "16", "--pilot-max-num-batched-tokens", "256")  # fmt: skip
    assert chosen.pilot.dtype == "float32" and chosen.pilot.block_size == 32  # the file's
    assert chosen.pilot.max_num_batched_tokens == 256  # the file leaves it unset
    assert "pilot.dtype: 'float32', over the flag's 'bfloat16'" in caplog.text


def test_a_pair_from_flags_alone(tmp_path):
    pilot, base = tmp_path / "my-pilot", tmp_path / "my-base"
    pilot.mkdir()
    base.mkdir()
    chosen = config("--pilot", str(pilot), "--base", str(base), "--dtype", "float32",
                    "--pilot-dtype", "bfloat16", "--tensor-parallel-size", "2",
                    "--gpu-memory-utilization", "0.4", "--no-enable-prefix-caching",
                    "--threshold", "0.7", "--pilot-max-lead", "16")  # fmt: skip
    assert (chosen.pilot.path, chosen.base.path) == (str(pilot), str(base))
    assert (chosen.pilot.served_model_name, chosen.base.served_model_name) == (
        "my-pilot", "my-base",
    )  # fmt: skip
    assert (chosen.pilot.dtype, chosen.base.dtype) == ("bfloat16", "float32")
    assert chosen.base.tensor_parallel_size == 2 and chosen.base.gpu_memory_utilization == 0.4
    assert not chosen.pilot.enable_prefix_caching
    assert chosen.wsd.threshold == 0.7 and chosen.base.block_size is None  # vLLM's default
    assert chosen.wsd.pilot_max_lead == 16
    hub = config("--pilot", "HuggingFaceTB/SmolLM2-135M-Instruct", "--base", "gemma3-270m")
    assert hub.pilot.path == hub.pilot.served_model_name == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub.base.embedded is EmbeddedModel.GEMMA3_270M


def test_remote_engines_from_flags():
    chosen = config(
        "--pilot", "smollm2-135m-instruct", "--base-url", "http://127.0.0.1:8202",
        "--base-tokenizer", "gemma3-270m", "--base-served-model-name", "gemma",
    )  # fmt: skip
    assert chosen.base.is_remote and chosen.base.tokenizer == "gemma3-270m"
    assert chosen.base.served_model_name == "gemma" and not chosen.pilot.is_remote


def test_a_missing_model_is_named():
    with pytest.raises(ConfigError, match="--base is missing"):
        config("--pilot", "smollm2-135m-instruct")
    with pytest.raises(ConfigError, match="served model ids must differ"):
        config("--pilot", "gemma3-270m", "--base", "gemma3-270m")


def test_serve_help_groups_the_flags():
    text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    for group in ("both engines (vLLM's flags)", "pilot engine", "base engine",
                  "the HTTP server", "Which value wins"):  # fmt: skip
        assert group in text
    for flag in ("--dtype", "--pilot-max-model-len", "--base-url", "--gpu-memory-utilization",
                 "--tensor-parallel-size"):  # fmt: skip
        assert flag in text


@pytest.mark.slow
def test_serve_a_pair_from_their_folders_from_another_directory(model_paths, ids, tmp_path):
    """`cd elsewhere && wsd prepare && wsd serve --pilot DIR --base DIR` serves the pair."""
    wsd = [sys.executable, "-m", "wsd_cli"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    prepared = subprocess.run([*wsd, "prepare"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
    assert prepared.returncode == 0, prepared.stderr
    pilot, base = model_paths[ids["pilot"]], model_paths[ids["base"]]
    port = free_port()
    serve = [*wsd, "serve", "--pilot", str(pilot), "--base", str(base), "--port", str(port),
             "--dtype", "float32", "--kv-cache-space-gib", "0.5", "--block-size", "32",
             "--pilot-cpu-threads-bind", "0", "--base-cpu-threads-bind", "1",
             "--cpu-reserved-cores", "0",
             # next to the session's engines: small prompt-logprobs buffers (262k-token vocab)
             "--max-num-batched-tokens", "256"]  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(serve, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", process, timeout_s=600)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=30).json()
        served = {card["id"] for card in models["data"]}
        assert served == {"wsd", pilot.name, base.name}
        question = [{"role": "user", "content": "What is the capital of France?"}]
        body = {"model": "wsd", "max_tokens": 24, "messages": question}
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                            timeout=300).json()  # fmt: skip
        assert answer["choices"][0]["message"]["content"].strip()
        assert answer["wsd"]["threshold"] == 0.8
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    assert process.returncode == 0, (tmp_path / "serve.log").read_text()[-3000:]
