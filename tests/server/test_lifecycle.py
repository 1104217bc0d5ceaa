"""The server process's life, as `wsd serve` runs it (on scripted engines, in a subprocess):
SIGTERM drains (503 for new requests and /health, in-flight streams finish or are aborted at
the deadline, exit 0); an engine that dies makes it exit non-zero."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.background import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]


class Process:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.scripted_serve", "--port", str(self.port), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_ready(f"{self.url}/health", self.popen, timeout_s=60, poll_s=0.1)

    def stream(self, model: str, max_tokens: int) -> tuple[threading.Thread, list[str]]:
        """A streamed chat request in a thread; its non-empty lines are collected."""
        lines: list[str] = []
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": max_tokens,
            "stream": True,
        }

        def run() -> None:
            with httpx.stream(
                "POST", f"{self.url}/v1/chat/completions", json=body, timeout=60
            ) as r:
                lines.extend(line for line in r.iter_lines() if line)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 10
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lines, "the stream did not start"
        return thread, lines


@pytest.fixture
def process() -> Iterator[type[Process]]:
    started: list[Process] = []

    def start(*args: str) -> Process:
        started.append(Process(*args))
        return started[-1]

    yield start  # type: ignore[misc]
    for p in started:
        if p.popen.poll() is None:
            p.popen.kill()
            p.popen.wait()


def test_sigterm_drains_then_exits_0(process, ids):
    server = process("--delay", "0.05", "--drain-timeout", "20")
    thread, lines = server.stream(ids["pilot"], max_tokens=40)  # about 2 s of tokens
    server.popen.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    health = httpx.get(f"{server.url}/health", timeout=5)
    assert health.status_code == 503 and "shutting down" in health.json()["detail"]
    refused = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": ids["pilot"], "messages": [{"role": "user", "content": "Hi"}]},
        timeout=5,
    )
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
    thread.join(30)
    assert lines[-1] == "data: [DONE]"
    assert not any('"error"' in line for line in lines)
    assert '"finish_reason": "stop"' in lines[-2]  # the scripted answer ran to its end
    assert server.popen.wait(30) == 0


def test_the_drain_deadline_aborts_what_is_left(process, ids):
    server = process("--delay", "0.05", "--drain-timeout", "0.5")
    thread, lines = server.stream(ids["wsd"], max_tokens=400)  # about 20 s of tokens
    started = time.monotonic()
    server.popen.send_signal(signal.SIGTERM)
    thread.join(30)
    assert time.monotonic() - started < 5
    assert '"code": "shutting_down"' in lines[-2] and lines[-1] == "data: [DONE]"
    assert server.popen.wait(30) == 0


def test_an_engine_death_exits_non_zero(process, ids):
    server = process("--delay", "0.05", "--base-dies-after-tokens", "3")
    thread, lines = server.stream(ids["base"], max_tokens=400)
    thread.join(30)
    assert "engine died" in lines[-2] and '"error"' in lines[-2]
    assert lines[-1] == "data: [DONE]"
    assert server.popen.wait(30) == 1


@pytest.mark.slow
def test_a_killed_engine_worker_ends_streams_and_the_server_exits_1(model_paths):
    """`wsd serve` on the real engines; one engine's worker process is killed by PID."""
    import psutil

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "wsd_cli", "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/health", server, timeout_s=300)
        lines: list[tuple[float, str]] = []
        body = {
            "model": "wsd",
            "messages": [{"role": "user", "content": "Tell me a long story about a dragon."}],
            "max_tokens": 300,
            "stream": True,
        }

        def run() -> None:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
                lines.extend((time.monotonic(), line) for line in r.iter_lines() if line)

        thread = threading.Thread(target=run)
        thread.start()
        while len(lines) < 3 and thread.is_alive():
            time.sleep(0.05)
        workers = [
            child
            for child in psutil.Process(server.pid).children(recursive=True)
            if child.name() == "VLLM::Worker"
        ]
        assert len(workers) == 2  # one per engine
        killed_at = time.monotonic()
        workers[-1].kill()
        thread.join(30)
        ended_at, last = lines[-2]
        assert ended_at - killed_at < 5
        assert '"error"' in last and "engine" in last
        assert lines[-1][1] == "data: [DONE]"
        assert server.wait(60) == 1
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
