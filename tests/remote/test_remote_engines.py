"""WSD with its pilot and base as real vLLM OpenAI servers reached over HTTP (slow: the two
servers start once per session). Greedy answers equal the in-process ones; replicas are
stateless; a disconnect aborts the work on both servers; an engine outage is a 503 that heals
by itself."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from benchmarks.prompts import CHAT_PROMPTS
from tests.remote.conftest import start_remote_wsd

pytestmark = pytest.mark.slow

PROMPTS = [
    (name, [{"role": m.role.value, "content": m.content} for m in messages])
    for name, messages in CHAT_PROMPTS[:8]
]
MAX_TOKENS = 40


def greedy(server, messages, model="wsd", **extra):
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="none", timeout=300)
    response = client.chat.completions.create(
        model=model, messages=messages, max_tokens=MAX_TOKENS, temperature=0, **extra
    )
    return response.choices[0].message.content, response.model_extra.get("wsd")


def same_switch(one, other):
    """Same draft part, and the same switch when both answers report one (an answer that ends
    inside the draft at max_tokens may end before the window ending there is scored: its
    reason is then null, by the scoring's timing)."""
    if one["prefix_chars"] != other["prefix_chars"]:
        return False
    if one["reason"] is None or other["reason"] is None:
        return True
    return (one["accept_index"], one["reason"]) == (other["accept_index"], other["reason"])


@pytest.mark.parametrize(("name", "messages"), PROMPTS, ids=[name for name, _ in PROMPTS])
def test_remote_answers_equal_in_process_answers(remote_wsd, live_server, name, messages):
    remote_text, remote_info = greedy(remote_wsd, messages)
    local_text, local_info = greedy(live_server, messages)
    assert remote_text == local_text
    assert same_switch(remote_info, local_info)


def test_single_models_answer_through_their_servers(remote_wsd, live_server, ids):
    messages = PROMPTS[0][1]
    for which in ("pilot", "base"):
        client_kwargs = {"logprobs": True, "top_logprobs": 2}
        remote = greedy(remote_wsd, messages, model=ids[which], **client_kwargs)
        local = greedy(live_server, messages, model=ids[which], **client_kwargs)
        assert remote[0] == local[0]


def test_two_replicas_on_the_same_engines_answer_alike(
    remote_wsd, remote_config, model_paths, server_loop
):
    second = start_remote_wsd(remote_config, model_paths, server_loop)
    replica = next(second)
    try:
        for _, messages in PROMPTS[:3]:
            first_text, first_info = greedy(remote_wsd, messages)
            other_text, other_info = greedy(replica, messages)
            assert other_text == first_text
            assert same_switch(other_info, first_info)
    finally:
        next(second, None)  # runs the server's shutdown


# Where the client leaves: while the pilot drafts (threshold 1.0: no switch, a long draft
# scored as it grows) or while the base writes (threshold 0: the switch comes at once).
PHASES = {
    "draft": ("pilot", {"threshold": 1.0, "draft_max_tokens": 400}),
    "continuation": ("base", {"threshold": 0.0, "window": 1}),
}


@pytest.mark.parametrize("phase", PHASES)
def test_a_disconnect_aborts_the_work_on_both_servers(remote_wsd, vllm_servers, phase):
    role, wsd = PHASES[phase]
    busy = getattr(vllm_servers, role)
    body = {
        "model": "wsd", "messages": PROMPTS[3][1], "max_tokens": 400, "stream": True,
        "ignore_eos": True, "wsd": wsd,  # no end of sequence: the work is long
    }  # fmt: skip
    before = busy.tokens_processed()
    url = f"{remote_wsd.base_url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        for line in response.iter_lines():
            chunk = json.loads(line.removeprefix("data: ")) if line.startswith("data: {") else {}
            has_text = any(c["delta"].get("content") for c in chunk.get("choices", []))
            if has_text and busy.tokens_processed() > before + 8 and busy.requests_in_engine():
                break  # the answer streams, and the server of this phase is generating
        else:
            pytest.fail(f"the answer ended before the {role}'s server was seen working")
    servers = (vllm_servers.pilot, vllm_servers.base)
    disconnected = time.monotonic()
    while any(server.requests_in_engine() for server in servers):
        waited = time.monotonic() - disconnected
        assert waited < 2.0, (
            f"requests still in the {role}'s or the other engine after {waited:.1f} s"
        )
        time.sleep(0.1)
    # and the work stays stopped: no token is prefilled or generated afterwards
    settled = [server.tokens_processed() for server in servers]
    time.sleep(1.0)
    assert [server.tokens_processed() for server in servers] == settled


def test_a_stopped_base_server_is_a_503_until_it_is_back(remote_wsd, vllm_servers, ids):
    """Runs last: it restarts the base server (about 90 s)."""
    messages = PROMPTS[0][1]
    expected, _ = greedy(remote_wsd, messages)
    vllm_servers.base.stop()
    health = httpx.get(f"{remote_wsd.base_url}/health", timeout=30)
    assert health.status_code == 503
    assert health.json()["engines"]["base"]["status"] == "unavailable"
    assert health.json()["engines"]["pilot"]["status"] == "ok"
    client = openai.OpenAI(
        base_url=f"{remote_wsd.base_url}/v1", api_key="none", timeout=60, max_retries=0
    )

    def refusal(model):
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model=model, messages=messages, max_tokens=8)
        return refused.value

    deadline = time.monotonic() + 5  # the watcher polls every 0.5 s
    while "base engine is unavailable" not in refusal("wsd").message:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    for model in ("wsd", ids["base"]):
        error = refusal(model)
        assert error.status_code == 503 and error.code == "engine_unavailable"
    assert greedy(remote_wsd, messages, model=ids["pilot"])[0]  # the pilot still answers

    vllm_servers.base.start()
    vllm_servers.base.wait_ready()
    deadline = time.monotonic() + 30
    while httpx.get(f"{remote_wsd.base_url}/health", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "WSD did not notice the base server is back"
        time.sleep(0.5)
    assert greedy(remote_wsd, messages)[0] == expected
