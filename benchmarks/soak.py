"""A bounded soak: mixed valid, invalid and disconnecting clients against a running server.

    make serve    # in another terminal
    .venv/bin/python -m benchmarks.soak [--url http://127.0.0.1:8000] [--minutes 10]

Concurrency steps through 16, 32, 64 and 32 clients, one step a minute. Each client loops:
a valid request (chat with any model id, streamed or not, or a text completion), an invalid one
(a bad field, an empty stop string, a seed beyond 64 bits, an unknown model, malformed JSON,
token ids outside the vocabulary, now and then a 5 MB body), or a stream it drops after a
moment. Unexpected: a 5xx, an error line in the stream of a valid request, a valid request
refused with anything but 429, an invalid one accepted, a request that does not end within
`REQUEST_DEADLINE_S`. Every 10 s it samples the server process's resident memory (found by
its listening port). At the end it waits for the server's in-flight gauge to reach 0 and
prints one JSON report; progress lines go out every 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

from benchmarks.prompts import CHAT_PROMPTS

LEVELS = (16, 32, 64, 32)
REQUEST_DEADLINE_S = 300.0
RSS_INTERVAL_S = 10.0


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    unfinished: int = 0

    def bad(self, what: str) -> None:
        self.outcomes["unexpected"] += 1
        if len(self.unexpected) < 20:
            self.unexpected.append(what)


def _messages() -> list[dict[str, str]]:
    _, messages = random.choice(CHAT_PROMPTS)
    return [{"role": m.role.value, "content": m.content} for m in messages]


def _valid(models: dict[str, str]) -> tuple[str, dict[str, Any]]:
    kind = random.random()
    if kind < 0.2:
        model = random.choice([models["pilot"], models["base"]])
        return "/v1/completions", {"model": model, "prompt": "The weather today", "max_tokens": 16}
    model = random.choice([models["wsd"], models["wsd"], models["pilot"], models["base"]])
    body = {"model": model, "messages": _messages(), "max_tokens": random.randint(8, 64)}
    if random.random() < 0.6:
        body["stream"] = True
    if random.random() < 0.3:
        body["temperature"] = random.choice([0.0, 0.7, 1.5])
    return "/v1/chat/completions", body


def _invalid(models: dict[str, str]) -> tuple[str, Any]:
    chat = {"model": models["wsd"], "messages": _messages(), "max_tokens": 8}
    cases: list[tuple[str, Any]] = [
        ("/v1/chat/completions", {**chat, "temperature": 5}),
        ("/v1/chat/completions", {**chat, "stop": [""], "stream": True}),
        ("/v1/chat/completions", {**chat, "seed": 2**70}),
        ("/v1/chat/completions", {**chat, "model": "no-such-model"}),
        ("/v1/chat/completions", {**chat, "messages": []}),
        ("/v1/chat/completions", b'{"model": "wsd", "messages": ['),
        ("/v1/completions", {"model": models["base"], "prompt": [1, 10**9], "stream": True}),
        ("/v1/completions", {"model": models["pilot"], "prompt": "Hi", "logprobs": 20}),
    ]
    if random.random() < 0.05:
        cases = [("/v1/chat/completions", {**chat, "stop": "x" * 5_000_000})]
    return random.choice(cases)


async def _request(http: httpx.AsyncClient, path: str, body: Any) -> tuple[int, str]:
    if isinstance(body, bytes):
        response = await http.post(path, content=body, headers={"content-type": "application/json"})
        return response.status_code, response.text
    if not body.get("stream"):
        response = await http.post(path, json=body)
        return response.status_code, response.text
    async with http.stream("POST", path, json=body) as response:
        text = "".join([line async for line in response.aiter_lines()])
        return response.status_code, text


async def _client(
    index: int, url: str, models: dict[str, str], level: list[int], stop_at: float, tally: Tally
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_DEADLINE_S) as http:
        while time.monotonic() < stop_at:
            if index >= level[0]:
                await asyncio.sleep(1)
                continue
            roll = random.random()
            try:
                if roll < 0.15:
                    path, body = _valid(models)
                    body = {**body, "stream": True, "max_tokens": 128}
                    task = asyncio.create_task(_request(http, path, body))
                    await asyncio.sleep(random.uniform(0.1, 2.0))
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    tally.outcomes["disconnected"] += 1
                elif roll < 0.45:
                    path, body = _invalid(models)
                    status, text = await _request(http, path, body)
                    if 400 <= status < 500:
                        tally.outcomes[f"invalid {status}"] += 1
                    else:
                        tally.bad(f"invalid request answered {status}: {text[:200]}")
                else:
                    path, body = _valid(models)
                    status, text = await _request(http, path, body)
                    if status == 429:
                        tally.outcomes["valid 429"] += 1
                    elif status != 200 or '"error"' in text:
                        tally.bad(f"valid request answered {status}: {text[:200]}")
                    elif body.get("stream") and not text.endswith("[DONE]"):
                        tally.bad(f"a stream ended without [DONE]: {text[-200:]}")
                    else:
                        tally.outcomes["valid 200"] += 1
            except httpx.TimeoutException:
                tally.unfinished += 1
                tally.bad(f"no end within {REQUEST_DEADLINE_S} s")
            except httpx.HTTPError as exc:
                tally.bad(f"transport error: {exc!r}")


def _server_process(port: int) -> psutil.Process:
    for connection in psutil.net_connections(kind="tcp"):
        listening = connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
        if listening and connection.pid is not None:
            return psutil.Process(connection.pid)
    raise SystemExit(f"no process listens on port {port} (run this as the server's user)")


def _in_flight(metrics: str) -> float:
    match = re.search(r"^wsd_requests_in_flight ([0-9.e+-]+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else -1.0


async def soak(url: str, minutes: float) -> dict[str, Any]:
    port = httpx.URL(url).port or 80
    server = _server_process(port)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        listed = (await http.get("/v1/models")).json()["data"]
    ids = [card["id"] for card in listed]
    models = {"wsd": ids[0], "pilot": ids[1], "base": ids[2]}
    tally = Tally()
    started = time.monotonic()
    stop_at = started + minutes * 60
    level = [LEVELS[0]]
    rss: list[tuple[float, float]] = []
    clients = [
        asyncio.create_task(_client(i, url, models, level, stop_at, tally))
        for i in range(max(LEVELS))
    ]
    next_report = started + 30
    while time.monotonic() < stop_at:
        elapsed = time.monotonic() - started
        level[0] = LEVELS[int(elapsed // 60) % len(LEVELS)]
        rss.append((round(elapsed), server.memory_info().rss / 2**20))
        if time.monotonic() >= next_report:
            next_report += 30
            print(
                f"{elapsed:5.0f} s  clients {level[0]:2d}  rss {rss[-1][1]:.0f} MiB  "
                f"{dict(tally.outcomes)}",
                flush=True,
            )
        await asyncio.sleep(RSS_INTERVAL_S)
    await asyncio.gather(*clients)
    drained_after = None
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        ended = time.monotonic()
        while time.monotonic() - ended < 60:
            if _in_flight((await http.get("/metrics")).text) == 0:
                drained_after = round(time.monotonic() - ended, 2)
                break
            await asyncio.sleep(0.1)
    settled = [mib for t, mib in rss if t >= 60] or [mib for _, mib in rss]
    return {
        "minutes": minutes,
        "levels": LEVELS,
        "outcomes": dict(tally.outcomes),
        "unexpected": tally.unexpected,
        "requests_without_an_end": tally.unfinished,
        "in_flight_zero_after_s": drained_after,
        "server_rss_mib": {
            "start": round(rss[0][1]),
            "after_first_minute": round(settled[0]),
            "end": round(rss[-1][1]),
            "max": round(max(mib for _, mib in rss)),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    print(json.dumps(asyncio.run(soak(args.url, args.minutes)), indent=1))


if __name__ == "__main__":
    main()
