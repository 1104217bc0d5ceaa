"""`wsd eval`'s options (wsd_cli.py dispatches here)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from evaluation.prompt_sets import DatasetError, PromptFormat

DEFAULT_URL = "http://127.0.0.1:8000/v1"


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option of `wsd eval`, in groups."""
    prompts = parser.add_argument_group("prompts")
    prompts.add_argument(
        "--prompts", type=Path,
        help="a prompt set file (AlpacaEval JSON, Arena-Hard, MT-Bench, HH-RLHF, TruthfulQA or "
        "plain JSONL); default: the built-in set (24 helpful, harmful and factual prompts)",
    )  # fmt: skip
    prompts.add_argument(
        "--format", choices=[f.value for f in PromptFormat],
        help="the file's format (default: detected from its first record)",
    )  # fmt: skip
    prompts.add_argument("--limit", type=int, help="only the first N prompts")
    targets = parser.add_argument_group(
        "targets", "default: the three ids of the WSD server at --url (wsd, pilot, base)"
    )
    targets.add_argument(
        "--url", default=DEFAULT_URL, help=f"an OpenAI-compatible base URL (default {DEFAULT_URL})"
    )
    targets.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
        help="the environment variable holding the endpoint's API key, if it needs one "
        "(default OPENAI_API_KEY)",
    )  # fmt: skip
    targets.add_argument(
        "--model", action="append", metavar="ID",
        help="a model id to evaluate instead of the server's three (repeatable; the WSD id is "
        "recognised by --wsd-model)",
    )  # fmt: skip
    targets.add_argument("--wsd-model", default="wsd", help="the WSD model id (default wsd)")
    targets.add_argument(
        "--threshold", type=_floats, default=[],
        help="wsd at these thresholds, one target each, e.g. 0.6,0.7,0.8,0.9 "
        "(default: the server's)",
    )  # fmt: skip
    targets.add_argument(
        "--window", type=_ints, default=[], help="wsd at these windows (with each threshold)"
    )
    targets.add_argument(
        "--temperature", type=float, default=0.0, help="default 0: greedy, as the paper"
    )
    targets.add_argument("--max-tokens", type=int, default=256, help="per answer (default 256)")
    targets.add_argument("--seed", type=int, help="sent with every request")
    run = parser.add_argument_group("the run")
    run.add_argument(
        "--out", type=Path,
        help="the run folder: answers, verdicts, report (default: wsd-eval/<prompt set>); "
        "a rerun of the same command there asks only what is missing",
    )  # fmt: skip
    run.add_argument(
        "--concurrency", type=int, default=4, help="requests in flight at once (default 4)"
    )
    run.add_argument(
        "--timeout", type=float, default=600.0, help="seconds per request (default 600)"
    )
    run.add_argument(
        "--retries", type=int, default=5,
        help="tries after a 429, 502, 503 or a broken connection, with backoff (default 5)",
    )  # fmt: skip
    judge = parser.add_argument_group(
        "judge (optional)", "any OpenAI-compatible endpoint; without one, the metrics need none"
    )
    judge.add_argument("--judge-url", help="the judge's base URL, e.g. http://host:8001/v1")
    judge.add_argument("--judge-model", help="the judge's model id")
    judge.add_argument(
        "--judge-api-key-env", default="OPENAI_API_KEY", metavar="VAR",
        help="the environment variable holding the judge's API key (default OPENAI_API_KEY)",
    )  # fmt: skip
    judge.add_argument(
        "--reference", metavar="TARGET",
        help="the target every other is compared with, pairwise (default: the base model alone)",
    )  # fmt: skip
    judge.add_argument(
        "--judge-max-tokens", type=int, default=512, help="per verdict (default 512)"
    )


def run_eval_command(args: argparse.Namespace) -> int:
    """`wsd eval`: 0 when every answer (and verdict) is in, 1 otherwise."""
    from evaluation.pipeline import EvalOptions, run_eval

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request drowns the bars
    if bool(args.judge_url) != bool(args.judge_model):
        print("wsd eval: error: --judge-url and --judge-model go together", file=sys.stderr)
        return 2
    options = EvalOptions(
        prompts_path=args.prompts,
        prompt_format=PromptFormat(args.format) if args.format else None,
        limit=args.limit,
        url=args.url,
        api_key=os.environ.get(args.api_key_env) or None,
        models=args.model or [],
        wsd_model=args.wsd_model,
        thresholds=args.threshold,
        windows=args.window,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
        out=args.out,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        retries=args.retries,
        judge_url=args.judge_url,
        judge_model=args.judge_model,
        judge_api_key=os.environ.get(args.judge_api_key_env) or None,
        reference=args.reference,
        judge_max_tokens=args.judge_max_tokens,
    )
    try:
        return asyncio.run(run_eval(options))
    except DatasetError as exc:
        print(f"wsd eval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wsd eval: interrupted; the answers so far are kept: rerun to finish",
              file=sys.stderr)  # fmt: skip
        return 130


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 0.6,0.8, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers like 4,6, got {text!r}") from None
