"""Shared fixtures: the embedded config, prepared model paths, one real engine pair per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wsd_engine.config import AppConfig, load_config
from wsd_engine.models.prepare import prepare_config

REPO_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_CONFIG = REPO_ROOT / "configs" / "embedded.yaml"


@pytest.fixture(scope="session")
def embedded_config() -> AppConfig:
    return load_config(EMBEDDED_CONFIG, environ={})


@pytest.fixture(scope="session")
def model_paths(embedded_config: AppConfig) -> dict[str, Path]:
    """Served id -> prepared directory (prepares on first use, then cached)."""
    return prepare_config(embedded_config)


@pytest.fixture(scope="session")
def pilot_tokenizer(embedded_config: AppConfig, model_paths: dict[str, Path]) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_paths[embedded_config.pilot.served_model_name])


@pytest.fixture(scope="session")
def base_tokenizer(embedded_config: AppConfig, model_paths: dict[str, Path]) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_paths[embedded_config.base.served_model_name])


@pytest.fixture(scope="session")
def engine_pair(embedded_config: AppConfig, model_paths: dict[str, Path]) -> Iterator[Any]:
    """The real pilot and base vLLM engines, started once per test session."""
    from wsd_engine.engines.pair import EnginePair

    pair = EnginePair.start(embedded_config, model_paths)
    yield pair
    pair.shutdown()
