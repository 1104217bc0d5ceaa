"""`wsd serve`'s command-line and environment settings for the server."""

from __future__ import annotations

import pytest

from server.config import load_config
from tests.conftest import EMBEDDED_CONFIG
from wsd_cli import _server_overrides, build_parser


def overrides(argv, monkeypatch, key_env=None):
    if key_env is None:
        monkeypatch.delenv("WSD_API_KEY", raising=False)
    else:
        monkeypatch.setenv("WSD_API_KEY", key_env)
    args = build_parser().parse_args(["serve", *argv])
    return _server_overrides(args, load_config(EMBEDDED_CONFIG))


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
