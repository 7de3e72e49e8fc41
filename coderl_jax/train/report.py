"""The end-of-run report: a summary table and PNG plots from `<out_dir>/metrics.jsonl`.

`coderl train` prints the table and writes `<out_dir>/plots/{reward,pass_at_1,alignment}.png` when
a run ends; `python -m coderl_jax.train.report OUT_DIR` does the same for any run directory.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from coderl_jax.train.metrics import read_metrics

# (metric, label) rows of the summary table, in order; rows a run never logged are left out
SUMMARY = (
    ("reward/mean", "reward (all rows)"),
    ("reward/pass_rate", "train pass rate"),
    ("reward/align/mean", "alignment reward"),
    ("align/accuracy", "alignment items right"),
    ("align/exact", "alignment answers exact"),
    ("eval/pass@1", "held-out pass@1"),
    ("probe/exact", "probe exact"),
    ("probe/loglik", "probe log-lik"),
    ("harvest/harvested", "harvested / step"),
    ("actor/entropy", "entropy"),
    ("response/length_mean", "response length"),
)
PLOTS = {
    "reward": ("reward", ["reward/mean", "reward/code/mean", "reward/align/mean"]),
    "pass_at_1": ("pass@1", ["reward/pass_rate", "eval/pass@1"]),
    "alignment": ("alignment accuracy", ["align/accuracy", "align/exact", "probe/exact", "probe/accuracy"]),
}


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], float(r[key])) for r in rows if key in r and r[key] is not None and math.isfinite(float(r[key]))]
    return [p[0] for p in pts], [p[1] for p in pts]


def _fmt(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 1000 else f"{x:.0f}"


SMOOTH = 5  # steps in the moving average drawn over long per-step series


def moving_average(values: list[float], window: int) -> list[float]:
    """Means of each run of `window` consecutive values (len(values) - window + 1 of them)."""
    csum = [0.0]
    for v in values:
        csum.append(csum[-1] + v)
    return [(csum[i + window] - csum[i]) / window for i in range(len(values) - window + 1)]


def summary_table(rows: list[dict]) -> str:
    """Markdown: per metric its first and last value (with steps), best and mean of the last quarter."""
    lines = ["| metric | first (step) | last (step) | best | mean, last 25% of points |", "|---|---|---|---|---|"]
    for key, label in SUMMARY:
        steps, values = series(rows, key)
        if not values:
            continue
        tail = values[len(values) - max(1, len(values) // 4):]
        best = min(values) if key in ("actor/entropy",) else max(values)
        lines.append(f"| {label} (`{key}`) | {_fmt(values[0])} ({steps[0]}) | {_fmt(values[-1])} ({steps[-1]}) | "
                     f"{_fmt(best)} | {_fmt(sum(tail) / len(tail))} |")
    return "\n".join(lines)


def save_plots(rows: list[dict], out_dir: str | Path) -> list[Path]:
    """PNG line plots over steps; a plot whose metrics were never logged is not written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir = Path(out_dir) / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (title, keys) in PLOTS.items():
        drawn = [(k, *series(rows, k)) for k in keys]
        drawn = [d for d in drawn if d[1]]
        if not drawn:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
        for key, steps, values in drawn:
            if len(steps) >= 2 * SMOOTH:  # a noisy per-step series: faint raw line + moving average
                line, = ax.plot(steps, values, alpha=0.3, linewidth=1)
                ax.plot(steps[SMOOTH - 1:], moving_average(values, SMOOTH), color=line.get_color(),
                        label=f"{key} ({SMOOTH}-step mean)")
            else:
                ax.plot(steps, values, marker="o", markersize=3, label=key)
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = plot_dir / f"{name}.png"
        tmp = path.with_suffix(".tmp.png")
        fig.savefig(tmp)
        plt.close(fig)
        tmp.replace(path)
        written.append(path)
    return written


def report(out_dir: str | Path) -> tuple[str, list[Path]]:
    rows = read_metrics(out_dir)
    return summary_table(rows), save_plots(rows, out_dir)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m coderl_jax.train.report OUT_DIR", file=sys.stderr)
        sys.exit(2)
    table, paths = report(sys.argv[1])
    print(table)
    print("plots: " + ", ".join(str(p) for p in paths))
