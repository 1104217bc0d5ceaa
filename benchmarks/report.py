"""`wsd bench`'s report: the target ratios, a markdown table, JSON and a plot."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import psutil

from benchmarks.measure import EngineFloor, ModeResult, Settings, engine_floor_s


def ratios(results: list[ModeResult], floor: EngineFloor | None = None) -> dict[str, float | None]:
    """The targets of the benchmark issue, as ratios of medians from this run."""
    by = {(r.mode, r.concurrency): r for r in results}

    def get(mode: str, c: int, attr: str) -> float | None:
        result = by.get((mode, c))
        return None if result is None else getattr(result, attr)

    def div(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else round(a / b, 3)

    levels = sorted({r.concurrency for r in results})
    c1 = min(r.concurrency for r in results)
    cmax = max(r.concurrency for r in results)
    wsd = by.get(("wsd", c1))
    overhead = None
    if wsd and wsd.main_process_cpu_s is not None:
        overhead = round(wsd.main_process_cpu_s / wsd.wall_s, 3)
    e2e_floor = None
    pilot_ttft, pilot_itl = get("pilot", c1, "ttft_p50_s"), get("pilot", c1, "itl_p50_s")
    base_itl = get("base", c1, "itl_p50_s")
    if wsd and wsd.switches and pilot_ttft and pilot_itl and base_itl:
        e2e_floor = statistics.median(
            engine_floor_s(a, n, pilot_ttft, pilot_itl, base_itl) for a, n in wsd.switches
        )
    return {
        "wsd_e2e_over_offline_e2e": div(
            get("wsd", c1, "e2e_p50_s"), get("offline", c1, "e2e_p50_s")
        ),
        "engine_floor_e2e_over_offline_e2e": div(e2e_floor, get("offline", c1, "e2e_p50_s")),
        "wsd_e2e_over_engine_floor_e2e": div(get("wsd", c1, "e2e_p50_s"), e2e_floor),
        "wsd_ttft_over_pilot_ttft": div(
            get("wsd", c1, "ttft_p50_s"), get("pilot", c1, "ttft_p50_s")
        ),
        "wsd_ttft_over_base_ttft": div(get("wsd", c1, "ttft_p50_s"), get("base", c1, "ttft_p50_s")),
        **{
            f"switch_latency_over_base_itl_c{c}": div(
                get("wsd", c, "switch_latency_p50_s"), get("base", c, "itl_p50_s")
            )
            for c in levels
        },
        **{
            f"max_stream_gap_over_base_c{c}": div(
                get("wsd", c, "max_stream_gap_p50_s"), get("base", c, "max_stream_gap_p50_s")
            )
            for c in levels
        },
        "switch_floor_over_base_itl_c1": div(
            floor.switch_latency_s if floor else None, get("base", c1, "itl_p50_s")
        ),
        "switch_latency_over_floor_c1": div(
            get("wsd", c1, "switch_latency_p50_s"), floor.switch_latency_s if floor else None
        ),
        "handoff_over_base_itl": div(get("wsd", c1, "handoff_p50_s"), get("base", c1, "itl_p50_s")),
        f"wsd_tok_s_over_peer_tok_s_at_c{cmax}": div(
            get("wsd", cmax, "output_tok_s"), get("peer", cmax, "output_tok_s")
        ),
        "orchestration_cpu_share_c1": overhead,
    }


def write_report(
    results: list[ModeResult], settings: Settings, floor: EngineFloor | None = None
) -> Path:
    """Markdown table, JSON and a PNG plot in the settings' out_dir; returns the markdown."""
    out_dir = settings.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d")
    machine = f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    summary = ratios(results, floor)
    payload = {"date": stamp, "machine": machine, "settings": asdict(settings),
               "results": [asdict(r) for r in results],
               "engine_floor": asdict(floor) if floor else None, "ratios": summary}  # fmt: skip
    (out_dir / f"{settings.label}.json").write_text(json.dumps(payload, indent=2, default=str))
    draft = settings.draft_max_tokens or "config default"
    lines = [
        f"Date {stamp}; machine: {machine}; max_tokens {settings.max_tokens}; greedy; "
        f"draft_max_tokens {draft}. Times in seconds.",
        "",
        *_switch_table(results),
        "",
        *_floor_lines(floor),
        "| mode | conc | requests | ttft p50 | ttft p90 | itl p50 | e2e p50 | e2e p90 "
        "| out tok/s | req/s | accept | wasted | handoff p50 | switch latency p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.mode} | {r.concurrency} | {r.requests} | {r.ttft_p50_s} | {r.ttft_p90_s} | "
            f"{r.itl_p50_s} | {r.e2e_p50_s} | {r.e2e_p90_s} | {r.output_tok_s} | {r.req_s} | "
            f"{_blank(r.mean_accept_index)} | {_blank(r.mean_pilot_wasted)} | "
            f"{_blank(r.handoff_p50_s)} | {_blank(r.switch_latency_p50_s)} |"
        )
    lines += ["", "| ratio | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary.items()]
    markdown = out_dir / f"{settings.label}.md"
    markdown.write_text("\n".join(lines) + "\n")
    _plot(results, out_dir / f"{settings.label}.png")
    return markdown


def _switch_table(results: list[ModeResult]) -> list[str]:
    """What a reader of a `wsd` stream sees at the switch, per concurrency, against the base
    model alone in the same run."""
    by = {(r.mode, r.concurrency): r for r in results}
    lines = [
        "| c | switch latency p50 | p90 | base ITL p50 | switch / base ITL | decision lag p50 "
        "| draft lag p50 | max stream gap p50: wsd | base | wsd / base | wsd base ITL after "
        "the switch p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted({r.concurrency for r in results if r.mode == "wsd"}):
        wsd, base = by[("wsd", c)], by.get(("base", c))
        base_itl = base.itl_p50_s if base else None
        base_gap = base.max_stream_gap_p50_s if base else None
        lines.append(
            f"| {c} | {_blank(wsd.switch_latency_p50_s)} | {_blank(wsd.switch_latency_p90_s)} "
            f"| {_blank(base_itl)} | {_blank(_ratio(wsd.switch_latency_p50_s, base_itl))} "
            f"| {_blank(wsd.decision_lag_p50_s)} | {_blank(wsd.draft_lag_p50_s)} "
            f"| {_blank(wsd.max_stream_gap_p50_s)} | {_blank(base_gap)} "
            f"| {_blank(_ratio(wsd.max_stream_gap_p50_s, base_gap))} "
            f"| {_blank(wsd.continuation_itl_p50_s)} |"
        )
    return lines


def _floor_lines(floor: EngineFloor | None) -> list[str]:
    if floor is None:
        return []
    return [
        f"Engine floor of the switch latency (idle base engine): a scoring pass over the last "
        f"block {floor.scoring_pass_s} s, a decode step {floor.decode_step_s} s; the floor is "
        f"the longer, {floor.switch_latency_s} s.",
        "",
    ]


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def _blank(value: float | None) -> str:
    return "" if value is None else str(value)


def _plot(results: list[ModeResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for mode in sorted({r.mode for r in results}):
        rows = sorted((r for r in results if r.mode == mode), key=lambda r: r.concurrency)
        xs = [r.concurrency for r in rows]
        left.plot(xs, [r.e2e_p50_s for r in rows], marker="o", label=mode)
        right.plot(xs, [r.output_tok_s for r in rows], marker="o", label=mode)
    left.set(xlabel="concurrency", ylabel="end-to-end p50 (s)", title="Latency")
    right.set(xlabel="concurrency", ylabel="output tokens/s", title="Throughput")
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
