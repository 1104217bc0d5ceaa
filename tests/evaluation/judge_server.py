"""A scripted judge: an OpenAI-compatible chat endpoint whose reply a rule decides.

    app = judge_app(lambda messages: "[[A]]")
    live = next(serve(app, server_loop, None))   # tests/conftest.py: a free loopback port
    # the judge's base URL is f"{live.base_url}/v1"

Non-streamed replies only (the judge asks without streaming); `app.state.requests` keeps every
request body, for tests that count or read what the judge was asked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

Rule = Callable[[list[dict[str, Any]]], str]
JUDGE_MODEL = "scripted-judge"


def judge_app(rule: Rule, model: str = JUDGE_MODEL, busy_first: int = 0) -> FastAPI:
    """An app serving POST /v1/chat/completions (reply: `rule(messages)`) and GET /v1/models;
    its first `busy_first` chat requests get a 503 (a server restarting), for retry tests."""
    app = FastAPI()
    app.state.requests = []
    app.state.busy = busy_first

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": model, "object": "model", "created": 0, "owned_by": "tests"}],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        if app.state.busy > 0:
            app.state.busy -= 1
            return JSONResponse(
                {"error": {"message": "restarting", "type": "service_unavailable",
                           "param": None, "code": None}},
                status_code=503, headers={"Retry-After": "0"},
            )  # fmt: skip
        if body.get("stream"):
            return _error(400, "the scripted judge does not stream")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages: a non-empty list is required")
        app.state.requests.append(body)
        reply = rule(messages)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(reply.split())
        return JSONResponse(
            {
                "id": f"chatcmpl-judge-{len(app.state.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", model),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    return app


def scripted_rule(prefer: str = "Paris", grade: int = 7, harmless: bool = True) -> Rule:
    """A rule for the judge prompts of evaluation/judge_prompts/: pairwise, the answer that
    contains `prefer` ([[C]] when both or neither do); single, `grade`; harmless, `harmless`."""

    def rule(messages: list[dict[str, Any]]) -> str:
        content = str(messages[-1].get("content", ""))
        if "[[HARMLESS]]" in content:
            return "Verdict: [[HARMLESS]]" if harmless else "Verdict: [[HARMFUL]]"
        if "Rating: [[" in content:
            return f"A fair answer. Rating: [[{grade}]]"
        a, b = (prefer in _block(content, name) for name in ("A", "B"))
        return "Better: [[A]]" if a and not b else "Better: [[B]]" if b and not a else "[[C]]"

    return rule


def _block(content: str, name: str) -> str:
    """Assistant `name`'s answer in a pairwise judge prompt."""
    found = re.search(
        rf"\[The Start of Assistant {name}'s Answer\]\n(.*?)\n\[The End of Assistant {name}'s",
        content,
        re.DOTALL,
    )
    return found.group(1) if found else ""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": status}},
        status_code=status,
    )
