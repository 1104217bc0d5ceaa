"""Two servers: a scripted one (fast: tiny tokenizers, scripted engines, real HTTP on loopback)
and the real one (slow: the embedded models on real vLLM engines)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.conftest import LiveServer, serve
from tests.fakes.engines import ScriptedEngine
from tests.fakes.tiny_tokenizers import tiny_base_tokenizer, tiny_pilot_tokenizer
from wsd_engine.engines.pair import EnginePair

PILOT_TEXT = "Paris is the capital of France. It is known for the Eiffel Tower and fine food."
BASE_TEXT = " The city has about two million people and many museums."


def wait_idle(engines, timeout_s=2.0):
    """Wait until no engine request is left (an abort takes a moment); returns how many are."""
    deadline = time.monotonic() + timeout_s
    while engines.num_unfinished_requests() and time.monotonic() < deadline:
        time.sleep(0.01)
    return engines.num_unfinished_requests()


# -- the scripted server (fast) --------------------------------------------------------------


def new_scripted_engines(config) -> EnginePair:
    """A fresh pair of scripted engines for `config`'s models."""
    pilot = ScriptedEngine(
        config.pilot.served_model_name, tiny_pilot_tokenizer(), PILOT_TEXT, delay_s=0.001
    )
    base = ScriptedEngine(
        config.base.served_model_name, tiny_base_tokenizer(), BASE_TEXT, delay_s=0.001
    )
    base.sessions = True  # as the in-process engine: one scoring session per answer
    return EnginePair(pilot=pilot, base=base)


@pytest.fixture(scope="session")
def scripted_engines(embedded_config) -> EnginePair:
    return new_scripted_engines(embedded_config)


@pytest.fixture
def own_scripted_server(embedded_config, server_loop) -> Iterator[Callable[..., LiveServer]]:
    """Starts scripted servers of their own, for tests that change server settings or leave
    the server unusable: `own_scripted_server(api_keys=["k"], ...)` (ServerConfig fields),
    with fresh scripted engines. All are stopped after the test."""
    from server.app import create_app

    running: list[Iterator[LiveServer]] = []

    def start(on_engine_death: Callable[[], None] | None = None, **server: Any) -> LiveServer:
        settings = type(embedded_config.server).model_validate(
            {**embedded_config.server.model_dump(), **server}
        )
        config = embedded_config.model_copy(update={"server": settings})
        engines = new_scripted_engines(config)
        app = create_app(config, engines=engines, on_engine_death=on_engine_death)
        live = serve(app, server_loop, engines)
        running.append(live)
        return next(live)

    yield start
    for live in running:
        for _ in live:
            pass


@pytest.fixture(scope="session")
def _scripted_server(embedded_config, scripted_engines, server_loop) -> Iterator[LiveServer]:
    from server.app import create_app

    app = create_app(embedded_config, engines=scripted_engines)
    yield from serve(app, server_loop, scripted_engines)


@pytest.fixture
def scripted_server(_scripted_server, scripted_engines) -> Iterator[LiveServer]:
    """The scripted server; a test's changes to the scripted engines are undone after it."""
    yield _scripted_server
    for engine in (scripted_engines.pilot, scripted_engines.base):
        engine.delay_s = 0.001
        engine.fail_after_tokens = None
        engine.is_dead = False
        engine.probability = lambda i: 0.5


@pytest.fixture
def scripted_client(scripted_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{scripted_server.base_url}/v1", api_key="unused", max_retries=0)


# -- the real server (slow) ------------------------------------------------------------------


@pytest.fixture(params=["scripted", pytest.param("real", marks=pytest.mark.slow)])
def any_server(request) -> LiveServer:
    """Each server in turn, for tests whose assertions hold on scripted and real engines."""
    name = "scripted_server" if request.param == "scripted" else "live_server"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def any_client(any_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{any_server.base_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="session")
def client(live_server):
    return openai.OpenAI(base_url=f"{live_server.base_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="session")
def async_client(live_server):
    return openai.AsyncOpenAI(
        base_url=f"{live_server.base_url}/v1", api_key="unused", max_retries=0
    )
