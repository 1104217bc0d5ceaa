"""`wsd eval` end to end over loopback HTTP: a scripted WSD server (tests/server/conftest.py's
scripted engines) and a scripted judge; the command as a user runs it, interrupted, resumed,
retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import serve
from tests.evaluation.judge_server import JUDGE_MODEL, judge_app, scripted_rule
from tests.server.conftest import new_scripted_engines

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def wsd_server(embedded_config, server_loop):
    """A scripted WSD server of its own (fresh engines: the tests count their requests)."""
    from server.app import create_app

    def start(**server):
        settings = embedded_config.server.model_copy(update=server)
        config = embedded_config.model_copy(update={"server": settings})
        engines = new_scripted_engines(config)
        live = serve(create_app(config, engines=engines), server_loop, engines)
        started.append(live)
        return next(live)

    started = []
    yield start
    for live in started:
        for _ in live:
            pass


@pytest.fixture
def judge(server_loop):
    apps = []

    def start(busy_first=0):
        app = judge_app(scripted_rule(prefer="Paris"), busy_first=busy_first)
        live = serve(app, server_loop, None)
        apps.append(live)
        return f"{next(live).base_url}/v1", app

    yield start
    for live in apps:
        for _ in live:
            pass


def wsd_eval(*args, check=True, **kwargs):
    """`wsd eval ...` in a process of its own, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "wsd_cli", "eval", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env,
                            cwd=ROOT, **kwargs)  # fmt: skip
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def answers(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "answers.jsonl").read_text().splitlines()]


def test_a_run_with_a_judge_writes_the_report_and_the_exports(wsd_server, judge, tmp_path):
    server = wsd_server()
    judge_url, judge_app_ = judge()
    out = tmp_path / "run"
    result = wsd_eval("--url", f"{server.base_url}/v1", "--limit", "6", "--threshold", "0.6,0.9",
                      "--max-tokens", "32", "--out", str(out), "--judge-url", judge_url,
                      "--judge-model", JUDGE_MODEL)  # fmt: skip
    targets = ["wsd@threshold=0.6", "wsd@threshold=0.9", "smollm2-135m-instruct", "gemma-3-270m"]
    for name in targets:
        assert name in result.stdout  # the console table
    assert len(answers(out)) == 6 * 4
    report = json.loads((out / "report.json").read_text())
    by_name = {target["name"]: target for target in report["targets"]}
    assert list(by_name) == targets
    assert by_name["wsd@threshold=0.6"]["metrics"]["wsd"]["answers"] == 6
    assert by_name["gemma-3-270m"]["judge"]["reference"] == "gemma-3-270m"
    pairwise = by_name["smollm2-135m-instruct"]["judge"]["pairwise"]
    assert pairwise["n"] == 6  # the scripted answers contain "Paris": the pilot's wins
    assert report["judge_prompts_version"] == "v1"
    assert (out / "sweep.png").stat().st_size > 10_000
    assert "Threshold sweep" in (out / "report.md").read_text()
    alpaca = json.loads((out / "outputs" / "gemma-3-270m" / "alpaca_eval.json").read_text())
    assert len(alpaca) == 6 and set(alpaca[0]) == {"instruction", "output", "generator"}
    arena = (out / "outputs" / "wsd@threshold=0.6" / "arena_hard.jsonl").read_text().splitlines()
    assert len(arena) == 6 and json.loads(arena[0])["model_id"] == "wsd@threshold=0.6"
    asked = len(judge_app_.state.requests)
    wsd_eval("--url", f"{server.base_url}/v1", "--limit", "6", "--threshold", "0.6,0.9",
             "--max-tokens", "32", "--out", str(out), "--judge-url", judge_url,
             "--judge-model", JUDGE_MODEL)  # fmt: skip
    assert len(judge_app_.state.requests) == asked  # verdicts are cached like answers
    assert len(answers(out)) == 6 * 4


def test_an_interrupted_run_resumes_without_asking_again(wsd_server, tmp_path):
    server = wsd_server()
    for engine in (server.engines.pilot, server.engines.base):
        engine.delay_s = 0.02  # a run of some seconds
    out = tmp_path / "run"
    args = ["--url", f"{server.base_url}/v1", "--limit", "8", "--max-tokens", "24",
            "--concurrency", "1", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "wsd_cli", "eval", *args], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (out / "answers.jsonl").exists() and len(answers(out)) >= 5:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # no chance to clean up
    process.wait(timeout=30)
    kept = answers(out)
    assert 5 <= len(kept) < 8 * 3, "killed mid-run"
    asked_before = len(server.engines.base.generate_calls)
    wsd_eval(*args)
    final = answers(out)
    keys = [(a["target"], a["prompt_id"], a["turn"]) for a in final]
    assert len(keys) == len(set(keys)) == 8 * 3  # every answer once
    assert final[: len(kept)] == kept  # nothing kept was asked again or rewritten
    # base requests of the rerun: one per missing base answer and one per missing wsd answer
    # (its continuation), plus at most the one request in flight at the kill
    missing = {(a["target"].split("#")[0], a["prompt_id"]) for a in final} - {
        (a["target"].split("#")[0], a["prompt_id"]) for a in kept
    }
    new_base = len(server.engines.base.generate_calls) - asked_before
    needing_base = sum(1 for name, _ in missing if name in ("wsd", "gemma-3-270m"))
    assert new_base <= needing_base * 2 + 1  # a wsd answer may prefill before it continues
    uninterrupted = tmp_path / "straight"
    wsd_eval(*[arg if arg != str(out) else str(uninterrupted) for arg in args])
    for target in ("wsd", "smollm2-135m-instruct", "gemma-3-270m"):
        resumed = (out / "outputs" / target / "alpaca_eval.json").read_text()
        straight = (uninterrupted / "outputs" / target / "alpaca_eval.json").read_text()
        assert resumed == straight  # the same final files


def test_busy_servers_are_retried(wsd_server, judge, tmp_path):
    server = wsd_server(max_concurrent_requests=1)  # more in flight: 429 with Retry-After
    for engine in (server.engines.pilot, server.engines.base):
        engine.delay_s = 0.01
    judge_url, judge_app_ = judge(busy_first=3)  # 503 three times
    out = tmp_path / "run"
    wsd_eval("--url", f"{server.base_url}/v1", "--limit", "3", "--max-tokens", "16",
             "--concurrency", "3", "--retries", "8", "--out", str(out), "--judge-url",
             judge_url, "--judge-model", JUDGE_MODEL)  # fmt: skip
    assert len(answers(out)) == 3 * 3
    assert judge_app_.state.busy == 0 and judge_app_.state.requests
    report = json.loads((out / "report.json").read_text())
    assert all(target["missing"] == 0 for target in report["targets"])


def test_a_bad_file_is_refused_before_any_request(wsd_server, tmp_path):
    server = wsd_server()
    bad = tmp_path / "questions.jsonl"
    bad.write_text('{"question_id": 1, "turns": ["one", "two"]}\n{"question_id": 2, "turns": 5}\n')
    result = wsd_eval("--url", f"{server.base_url}/v1", "--prompts", str(bad), "--out",
                      str(tmp_path / "run"), check=False)  # fmt: skip
    assert result.returncode == 2
    assert "questions.jsonl:2: turns" in result.stderr
    assert server.engines.pilot.generate_calls == [] and server.engines.base.generate_calls == []
