"""`wsd bench --engines remote`: WSD on two vLLM OpenAI servers against WSD on in-process
engines, same machine, same run, same prompts.

The pilot and base of the config are started as vLLM servers on loopback (the command
`wsd_engine.engines.vllm_server` builds); the in-process modes are measured first, while the
servers idle, then the same modes through a WSD server whose engines are the two servers. The
cost of one HTTP hop comes from the switch floor measured on each base engine: a scoring pass
like the one that decides a switch, and one decode step.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
from dataclasses import asdict, replace
from pathlib import Path

from benchmarks.harness import bench_server
from benchmarks.measure import EngineFloor, ModeResult, Settings
from server.background import free_port, wait_ready
from server.settings import load_config
from wsd_engine.config import ModelConfig
from wsd_engine.engines.vllm_server import as_remote, vllm_server_command
from wsd_engine.weights.prepare import prepare_config

logger = logging.getLogger("wsd.bench")


def serve_models(
    models: dict[str, ModelConfig], paths: dict[str, Path], log_dir: Path
) -> tuple[dict[str, ModelConfig], list[subprocess.Popen[bytes]]]:
    """Serve local models as vLLM servers on loopback; returns their remote configs."""
    processes, remote = [], {}
    for role, model in models.items():
        port = free_port()
        command = vllm_server_command(model, paths[model.served_model_name], port=port)
        logger.info("starting the %s's vLLM server: %s", role, command.shell())
        processes.append(command.start(log_dir / f"vllm-{role}.log"))
        remote[role] = as_remote(model, f"http://127.0.0.1:{port}")
    for process, model in zip(processes, remote.values(), strict=True):
        wait_ready(f"{model.url}/health", process)
        logger.info("vLLM server of %s ready at %s", model.served_model_name, model.url)
    return remote, processes


def stop_servers(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def run_remote_bench(settings: Settings) -> Path:
    """Measure in-process, then remote; write `<label>.md` and `.json`."""
    config = load_config(settings.config_path)
    paths = prepare_config(config)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    models = {"pilot": config.pilot, "base": config.base}
    remote_models, processes = serve_models(models, paths, settings.out_dir)
    remote_config = config.model_copy(update=remote_models)
    try:
        local, local_floor = bench_server(config, paths, settings)
        remote, remote_floor = bench_server(remote_config, paths, settings)
    finally:
        stop_servers(processes)
    remote = [replace(result, mode=f"{result.mode} (remote)") for result in remote]
    markdown = report(local, remote, local_floor, remote_floor, settings)
    path = settings.out_dir / f"{settings.label}.md"
    path.write_text(markdown)
    data = {
        "settings": {"concurrencies": settings.concurrencies, "max_tokens": settings.max_tokens},
        "results": [asdict(r) for r in [*local, *remote]],
        "floors": {
            "in_process": asdict(local_floor) if local_floor else None,
            "remote": asdict(remote_floor) if remote_floor else None,
        },
    }
    path.with_suffix(".json").write_text(json.dumps(data, indent=2))
    print(markdown)
    return path


def report(
    local: list[ModeResult],
    remote: list[ModeResult],
    local_floor: EngineFloor | None,
    remote_floor: EngineFloor | None,
    settings: Settings,
) -> str:
    """The comparison table (medians) and the cost of one hop."""
    lines = [
        f"# Remote engines against in-process engines (max_tokens {settings.max_tokens})",
        "",
        "| mode | c | e2e p50 s | TTFT p50 s | switch p50 s | ITL p50 s | tok/s | "
        "tok/s remote / in-process |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(r.mode, r.concurrency): r for r in local}
    for result in [*local, *remote]:
        base_mode = result.mode.removesuffix(" (remote)")
        ratio = ""
        if result.mode.endswith("(remote)") and (base_mode, result.concurrency) in by_key:
            ratio = (
                f"{result.output_tok_s / by_key[base_mode, result.concurrency].output_tok_s:.2f}"
            )
        lines.append(
            f"| {result.mode} | {result.concurrency} | {result.e2e_p50_s:.2f} | "
            f"{_fmt(result.ttft_p50_s)} | {_fmt(result.switch_latency_p50_s)} | "
            f"{_fmt(result.itl_p50_s)} | {result.output_tok_s:.1f} | {ratio} |"
        )
    if local_floor and remote_floor:
        lines += [
            "",
            "One HTTP hop, on the idle base engine (medians of 5):",
            "",
            "| operation | in-process s | remote s | hop s |",
            "|---|---|---|---|",
            _hop(
                "scoring pass (the switch's)",
                local_floor.scoring_pass_s,
                remote_floor.scoring_pass_s,
            ),
            _hop("decode step", local_floor.decode_step_s, remote_floor.decode_step_s),
        ]
    return "\n".join(lines) + "\n"


def _hop(name: str, local: float, remote: float) -> str:
    return f"| {name} | {local:.4f} | {remote:.4f} | {remote - local:+.4f} |"


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
