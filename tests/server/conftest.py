from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def client(live_server):
    import openai

    return openai.OpenAI(base_url=f"{live_server.base_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="session")
def async_client(live_server):
    import openai

    return openai.AsyncOpenAI(
        base_url=f"{live_server.base_url}/v1", api_key="unused", max_retries=0
    )


@pytest.fixture(scope="session")
def ids(embedded_config):
    return {
        "wsd": embedded_config.wsd.served_model_name,
        "pilot": embedded_config.pilot.served_model_name,
        "base": embedded_config.base.served_model_name,
    }
