"""Does the event loop stay free? /health latency under load and big bad requests, and how
fast a disconnect storm is cleaned up.

    make serve    # in another terminal (or any running server)
    .venv/bin/python -m benchmarks.responsiveness [--url http://127.0.0.1:8000] [--key K]

Three phases, each with a probe that GETs /health every 20 ms on its own connection:
1. 64 concurrent streamed `wsd` requests (64 tokens each);
2. a 5 MB request body (refused with 413) and a body just under the limit whose prompt is far
   beyond the context (refused with 400 after it is tokenized);
3. 20 streamed requests whose clients all disconnect at once: the time until the server's
   in-flight requests and both engines' requests (from /metrics) are back to 0.
Prints one JSON object of figures (milliseconds, medians and p99 over the probes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import time
from typing import Any

import httpx

PROBE_INTERVAL_S = 0.02
MESSAGES = [{"role": "user", "content": "Tell me a story about a lighthouse keeper."}]


class Probe:
    """GET /health every 20 ms until stopped; latencies in ms."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Probe:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as http:
            while True:
                started = time.perf_counter()
                try:
                    response = await http.get("/health")
                    if response.status_code != 200:
                        self.failures += 1
                except httpx.HTTPError:
                    self.failures += 1
                self.latencies.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(PROBE_INTERVAL_S)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else None
        return {
            "probes": len(ordered),
            "health_p50_ms": round(statistics.median(ordered), 1) if ordered else None,
            "health_p99_ms": round(p99, 1) if p99 is not None else None,
            "health_max_ms": round(ordered[-1], 1) if ordered else None,
            "health_failures": self.failures,
        }


async def _stream(http: httpx.AsyncClient, max_tokens: int) -> int:
    body = {"model": "wsd", "messages": MESSAGES, "max_tokens": max_tokens, "stream": True}
    chunks = 0
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            chunks += line.startswith("data:")
    return chunks


async def concurrent_streams(
    url: str, headers: dict[str, str], n: int
) -> tuple[dict[str, Any], Probe]:
    limits = httpx.Limits(max_connections=n + 4)
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=600, limits=limits) as http,
        Probe(url) as probe,
    ):
        started = time.perf_counter()
        results = await asyncio.gather(*(_stream(http, 64) for _ in range(n)))
        wall = time.perf_counter() - started
    return {"streams": n, "wall_s": round(wall, 1), "empty_streams": results.count(0)}, probe


async def big_bodies(url: str, headers: dict[str, str]) -> tuple[dict[str, Any], Probe]:
    statuses = {}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http,
        Probe(url) as probe,
    ):
        await asyncio.sleep(0.5)
        big = {"model": "wsd", "messages": [{"role": "user", "content": "x" * 5_000_000}]}
        statuses["5MB"] = (await http.post("/v1/chat/completions", json=big)).status_code
        words = {"model": "wsd", "messages": [{"role": "user", "content": "word " * 700_000}]}
        response = await http.post("/v1/chat/completions", json=words)
        statuses["3.5MB_prompt"] = response.status_code
        await asyncio.sleep(0.5)
    return {"statuses": statuses}, probe


def _gauge(metrics: str, name: str) -> float:
    total = 0.0
    for match in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", metrics, re.MULTILINE):
        total += float(match.group(1))
    return total


async def disconnect_storm(url: str, headers: dict[str, str], n: int) -> dict[str, Any]:
    clients = [httpx.AsyncClient(base_url=url, headers=headers, timeout=600) for _ in range(n)]
    first_chunks = asyncio.Event()
    seen = 0

    async def open_stream(http: httpx.AsyncClient) -> None:
        nonlocal seen
        body = {"model": "wsd", "messages": MESSAGES, "max_tokens": 512, "stream": True}
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    seen += 1
                    if seen >= n:
                        first_chunks.set()
                    await asyncio.sleep(3600)  # hold the stream until cancelled

    tasks = [asyncio.create_task(open_stream(http)) for http in clients]
    await asyncio.wait_for(first_chunks.wait(), 300)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as observer:
        before = (await observer.get("/metrics")).text
        left = time.perf_counter()
        for task in tasks:
            task.cancel()
        for http in clients:
            await http.aclose()
        server_zero = engines_zero = None
        while time.perf_counter() - left < 30 and (server_zero is None or engines_zero is None):
            metrics = (await observer.get("/metrics")).text
            elapsed = time.perf_counter() - left
            if server_zero is None and _gauge(metrics, "wsd_requests_in_flight") == 0:
                server_zero = elapsed
            if engines_zero is None and _gauge(metrics, "wsd_engine_requests") == 0:
                engines_zero = elapsed
            await asyncio.sleep(0.01)
    return {
        "streams": n,
        "in_flight_before": _gauge(before, "wsd_requests_in_flight"),
        "engine_requests_before": _gauge(before, "wsd_engine_requests"),
        "in_flight_zero_after_s": None if server_zero is None else round(server_zero, 3),
        "engines_idle_after_s": None if engines_zero is None else round(engines_zero, 3),
    }


async def run(url: str, key: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    report: dict[str, Any] = {}
    print("phase 1: 64 concurrent streams", flush=True)
    figures, probe = await concurrent_streams(url, headers, 64)
    report["64_streams"] = {**figures, **probe.summary()}
    print(json.dumps(report["64_streams"]), flush=True)
    print("phase 2: a 5 MB body and a 3.5 MB prompt", flush=True)
    figures, probe = await big_bodies(url, headers)
    report["big_bodies"] = {**figures, **probe.summary()}
    print(json.dumps(report["big_bodies"]), flush=True)
    print("phase 3: 20 clients disconnect at once", flush=True)
    report["disconnect_storm"] = await disconnect_storm(url, headers, 20)
    print(json.dumps(report["disconnect_storm"]), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", help="API key, if the server needs one")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.url, args.key)), indent=1))


if __name__ == "__main__":
    main()
