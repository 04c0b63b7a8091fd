"""compare.png: per-seed results as paired dots joined by a line per seed, and each pair's mean
difference with its confidence interval (the picture of `trainlab compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_compare(report: dict[str, Any], path: Path) -> Path:
    """Left: each config's value per seed (one line per seed across the configs, so a pairing
    shows as parallel lines); right: b - a per pair with its interval, 0 marked."""
    # matplotlib loads only when a plot is drawn, not with every `import trainlab`
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    configs, pairs = report["configs"], report["pairs"]
    scale = 100.0 if configs[0]["metric"].endswith("_accuracy") else 1.0
    unit = " (points)" if scale == 100.0 else ""
    fig = Figure(figsize=(6 + 1.2 * len(configs), 4.5))
    FigureCanvasAgg(fig)
    ax_runs, ax_diff = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    xs = range(len(configs))
    for k, seed in enumerate(report["seeds"]):
        ys = [scale * c["values"][k] for c in configs]
        ax_runs.plot(xs, ys, "-o", color="tab:gray", alpha=0.45, markersize=4, linewidth=0.8)
        ax_runs.annotate(
            str(seed),
            (len(configs) - 1, ys[-1]),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=6,
            color="tab:gray",
            va="center",
        )
    means = [scale * c["mean"] for c in configs]
    ax_runs.plot(xs, means, "D", color="tab:red", markersize=8, label="mean", zorder=3)
    ax_runs.set_xticks(list(xs), [c["name"] for c in configs], rotation=20, ha="right")
    ax_runs.set_ylabel(f"{configs[0]['metric']}{unit}")
    ax_runs.set_title(f"per seed ({len(report['seeds'])} paired seeds)")
    ax_runs.legend(loc="best", fontsize=8)
    ax_runs.grid(alpha=0.3)

    level = f"{100 * report['confidence']:g}%"
    for i, p in enumerate(pairs):
        color = {"b": "tab:green", "a": "tab:red", None: "tab:gray"}[p["better"]]
        d = scale * p["diff"]
        if p["ci_low"] is not None:
            lo, hi = scale * p["ci_low"], scale * p["ci_high"]
            ax_diff.errorbar(d, i, xerr=[[d - lo], [hi - d]], fmt="o", color=color, capsize=4)
        else:
            ax_diff.plot(d, i, "o", color=color)
    ax_diff.axvline(0.0, color="black", linewidth=0.8)
    ax_diff.set_yticks(range(len(pairs)), [f"{p['b']} - {p['a']}" for p in pairs], fontsize=8)
    ax_diff.invert_yaxis()
    ax_diff.set_xlabel(f"mean difference{unit}, {level} CI")
    title = "b - a (green: b better, red: a better"
    title += ", Holm)" if report.get("correction") == "holm" else ")"
    ax_diff.set_title(title)
    ax_diff.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
