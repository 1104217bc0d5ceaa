"""The threshold sweep: one row per wsd setting, with the pilot alone and the base alone beside
them, as a table's rows and as sweep.png (matplotlib, when installed: the `bench` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def dig(data: Any, *path: str) -> Any:
    """data[path[0]][path[1]]...; None where a step is missing or None."""
    for step in path:
        if not isinstance(data, dict):
            return None
        data = data.get(step)
    return data


def sweep_rows(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The wsd targets by window then threshold (the server's default first), then the pilot
    alone and the base alone; each row holds the figures the sweep table and plot show."""
    rows = [_row(target) for target in targets if target.get("role") in ("wsd", "pilot", "base")]
    wsd = [row for row in rows if row["role"] == "wsd"]
    wsd.sort(key=lambda r: (_order(r["window"]), _order(r["threshold"]), r["name"]))
    singles = [row for row in rows if row["role"] != "wsd"]
    singles.sort(key=lambda r: r["role"] != "pilot")
    return wsd + singles


def _row(target: dict[str, Any]) -> dict[str, Any]:
    metrics = target.get("metrics") or {}
    threshold = target.get("threshold")
    window = target.get("window")
    if threshold is None:
        threshold = dig(metrics, "wsd", "threshold")
    if window is None:
        window = dig(metrics, "wsd", "window")
    return {
        "name": target["name"],
        "role": target.get("role"),
        "threshold": threshold,
        "window": window,
        "reference": dig(target, "judge", "reference"),
        "win_rate": dig(target, "judge", "pairwise", "win_rate"),
        "win_ci": dig(target, "judge", "pairwise", "ci"),
        "distinct_3": dig(metrics, "degeneration", "distinct_3", "mean"),
        "reference_contains": dig(metrics, "reference_match", "contains", "mean"),
        "pilot_share": dig(metrics, "wsd", "pilot_share", "mean"),
        "accept_index_median": dig(metrics, "wsd", "accept_index", "median"),
        "no_switch_share": dig(metrics, "wsd", "accept_index", "no_switch_share"),
        "e2e_p50_s": dig(metrics, "cost", "e2e_p50_s"),
        "base_tokens": dig(metrics, "cost", "base_tokens", "mean"),
    }


def _order(value: float | None) -> tuple[int, float]:
    return (0, 0.0) if value is None else (1, float(value))


def plot_sweep(rows: list[dict[str, Any]], path: Path) -> str | None:
    """Write sweep.png; returns why not instead when there is nothing to plot."""
    wsd = [row for row in rows if row["role"] == "wsd" and row["e2e_p50_s"] is not None]
    if not wsd:
        return "no wsd target with answers in this run"
    wsd = [row for row in wsd if row["threshold"] is not None]
    if not wsd:
        return "no wsd target with a known threshold in this run"
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed (pip install 'wsd-server[bench]')"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    singles = [row for row in rows if row["role"] in ("pilot", "base")]
    by_window = {}
    for window in sorted({row["window"] for row in wsd}, key=_order):
        series = sorted((r for r in wsd if r["window"] == window), key=lambda r: r["threshold"])
        by_window[f"window {window}" if window is not None else "default window"] = series
    fig, (quality, cost) = plt.subplots(1, 2, figsize=(11, 4.2))
    _draw_quality(quality, by_window, singles)
    _draw_cost(cost, by_window, singles)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# how the single models' reference lines are drawn
_STYLES = {"pilot": "--", "base": ":"}
# the figures of the quality panel without a judge, and their colours
_UNJUDGED = (("distinct_3", "distinct-3", "C0"), ("reference_contains", "reference match", "C1"))
_MARKERS = ("o", "s", "^", "D", "v")


def _draw_quality(
    axis: Any, by_window: dict[str, list[dict[str, Any]]], singles: list[dict[str, Any]]
) -> None:
    """The judge's win rate (with its interval) against the threshold, else distinct-3 and the
    reference match; the single models as horizontal lines."""
    rows = [row for series in by_window.values() for row in series]
    judged = any(row["win_rate"] is not None for row in rows)
    for index, (label, series) in enumerate(by_window.items()):
        xs, marker = [row["threshold"] for row in series], _MARKERS[index % len(_MARKERS)]
        if judged:
            wins = [_nan(row["win_rate"]) for row in series]
            axis.errorbar(xs, wins, yerr=_errors(series), marker=marker, capsize=3, label=label)
            continue
        for key, name, color in _UNJUDGED:
            values = [_nan(row[key]) for row in series]
            axis.plot(xs, values, marker=marker, color=color, label=f"{name}, {label}")
    for row in singles:
        for value, name, color in _reference_lines(row, judged):
            axis.axhline(value, linestyle=_STYLES[row["role"]], color=color, alpha=0.6,
                         label=f"{row['role']} alone{name}")  # fmt: skip
    reference = next((row["reference"] for row in rows if row["reference"]), "the reference")
    ylabel = f"win rate vs {reference}" if judged else "distinct-3, reference match"
    axis.set(xlabel="threshold", ylabel=ylabel, title="Quality")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)


def _reference_lines(row: dict[str, Any], judged: bool) -> list[tuple[float, str, str]]:
    """A single model's horizontal lines in the quality panel: value, label, colour."""
    if not judged:
        return [(row[key], f", {name}", color) for key, name, color in _UNJUDGED
                if row[key] is not None]  # fmt: skip
    if row["win_rate"] is not None:
        return [(row["win_rate"], "", "black")]
    # the reference is not judged against itself: an even match by definition
    return [(0.5, " (the reference)", "black")] if row["name"] == row["reference"] else []


def _draw_cost(
    axis: Any, by_window: dict[str, list[dict[str, Any]]], singles: list[dict[str, Any]]
) -> None:
    """End-to-end p50 (left axis) and the pilot share (right axis) against the threshold."""
    share = axis.twinx()  # pilot share (0..1) beside the latency in seconds
    for index, (label, series) in enumerate(by_window.items()):
        xs, marker = [row["threshold"] for row in series], _MARKERS[index % len(_MARKERS)]
        e2e = [_nan(row["e2e_p50_s"]) for row in series]
        axis.plot(xs, e2e, marker=marker, color="C0", label=f"e2e p50, {label}")
        shares = [_nan(row["pilot_share"]) for row in series]
        share.plot(xs, shares, marker=marker, color="C2", linestyle="-.",
                   label=f"pilot share, {label}")  # fmt: skip
    for row in singles:
        if row["e2e_p50_s"] is not None:
            axis.axhline(row["e2e_p50_s"], linestyle=_STYLES[row["role"]], color="C0", alpha=0.6,
                         label=f"{row['role']} alone, e2e p50")  # fmt: skip
    axis.set(xlabel="threshold", ylabel="end-to-end p50 (s)", title="Cost")
    share.set(ylabel="pilot share of the answer", ylim=(0, 1.05))
    axis.grid(alpha=0.3)
    lines, labels = axis.get_legend_handles_labels()
    more, more_labels = share.get_legend_handles_labels()
    axis.legend(lines + more, labels + more_labels, fontsize=7)


def _errors(series: list[dict[str, Any]]) -> list[list[float]]:
    low, high = [], []
    for row in series:
        ci, rate = row["win_ci"], row["win_rate"]
        low.append(rate - ci[0] if ci and rate is not None else 0.0)
        high.append(ci[1] - rate if ci and rate is not None else 0.0)
    return [low, high]


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)
