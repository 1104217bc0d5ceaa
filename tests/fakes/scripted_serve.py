"""`python -m tests.fakes.scripted_serve --port N`: the server on scripted engines, run as
`wsd serve` runs it (drain on SIGTERM, exit status), for tests of the process's life."""

from __future__ import annotations

import argparse
import logging
import sys

from server import lifecycle
from server.app import create_app
from server.settings import load_config
from tests.server.conftest import new_scripted_engines
from wsd_engine.engines.engine import EngineUnavailable


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--delay", type=float, default=0.001, help="seconds per scripted token")
    parser.add_argument("--base-dies-after-tokens", type=int, help="the base engine dies then")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = load_config("configs/embedded.yaml")
    server = config.server.model_copy(
        update={"port": args.port, "drain_timeout_s": args.drain_timeout}
    )
    config = config.model_copy(update={"server": server})
    engines = new_scripted_engines(config)
    for engine in (engines.pilot, engines.base):
        engine.delay_s = args.delay

    if args.base_dies_after_tokens is not None:

        def die(message: str) -> Exception:
            engines.base.is_dead = True
            return EngineUnavailable(f"{message}: engine died")

        engines.base.fail_after_tokens = args.base_dies_after_tokens
        engines.base.failure = die  # type: ignore[assignment]
    return lifecycle.run(
        config, lambda on_death: create_app(config, engines=engines, on_engine_death=on_death)
    )


if __name__ == "__main__":
    sys.exit(main())
