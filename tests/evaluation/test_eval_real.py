"""`wsd eval` on the real embedded server (the session's engines): a plumbing check of the
whole run with real answers, and the pilot as the judge. SmolLM2-135M is no judge: its
verdicts mean nothing; the test checks that every stage runs and writes what it should."""

from __future__ import annotations

import json

import pytest

from tests.evaluation.test_eval_run import answers, wsd_eval

pytestmark = pytest.mark.slow


def test_a_small_real_run(live_server, ids, tmp_path):
    url = f"{live_server.base_url}/v1"
    out = tmp_path / "run"
    result = wsd_eval("--url", url, "--limit", "3", "--threshold", "0.6,0.9", "--max-tokens",
                      "32", "--concurrency", "2", "--out", str(out), "--judge-url", url,
                      "--judge-model", ids["pilot"], "--judge-max-tokens", "16")  # fmt: skip
    assert "report:" in result.stdout
    kept = answers(out)
    assert len(kept) == 3 * 4 and all(answer["text"] for answer in kept)
    wsd_answers = [answer for answer in kept if answer["model"] == ids["wsd"]]
    assert {answer["wsd"]["threshold"] for answer in wsd_answers} == {0.6, 0.9}
    report = json.loads((out / "report.json").read_text())
    names = [target["name"] for target in report["targets"]]
    assert names == ["wsd@threshold=0.6", "wsd@threshold=0.9", ids["pilot"], ids["base"]]
    for target in report["targets"]:
        assert target["missing"] == 0 and target["metrics"]["cost"]["e2e_p50_s"] > 0
        assert target["judge"] is not None  # asked; the pilot's verdicts may be unparseable
    assert (out / "sweep.png").exists()
