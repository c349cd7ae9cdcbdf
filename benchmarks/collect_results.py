"""Collect `metrics.json` of finished run folders into one Markdown table (stdout), optionally with a plot of
validation NDCG@10 against training time (quality vs time) for every run.

    python benchmarks/collect_results.py runs/* > benchmarks/results/quality.md
    python benchmarks/collect_results.py runs/a runs/b --plot benchmarks/results/quality-vs-time.png
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

METRIC = "ndcg@10"


def load_runs(folders: list[str]) -> list[tuple[str, dict]]:
    runs = []
    for folder in folders:
        path = Path(folder) / "metrics.json"
        if path.is_file():
            runs.append((Path(folder).name, json.loads(path.read_text())))
    return runs


def table(runs: list[tuple[str, dict]]) -> str:
    lines = [
        "| run | dataset | family | NDCG@10 | HR@10 | best / run epochs | s per epoch | device |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in runs:
        t = m["training"]
        lines.append(
            f"| {name} | {m['dataset']['name']} | {m['model_family']} | {m['test']['ndcg@10']:.4f} | "
            f"{m['test']['hr@10']:.4f} | {m['best_epoch']} / {t['epochs_run']} | "
            f"{t['train_seconds'] / max(t['epochs_run'], 1):.1f} | {t['device']} |"
        )
    lines.append("\nLeave-one-out test split, full-catalogue ranking, seen items filtered, ties without credit.")
    return "\n".join(lines)


def plot_quality_vs_time(runs: list[tuple[str, dict]], path: str | Path) -> Path:
    """Validation NDCG@10 after each evaluated epoch against the cumulative training seconds of its run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    markers = itertools.cycle("os^Dvx*")
    for name, m in runs:
        seconds, xs, ys = 0.0, [], []
        for h in m["history"]:
            seconds += h.get("train_seconds", 0.0)
            if METRIC in h.get("validation", {}):
                xs.append(seconds / 60)
                ys.append(h["validation"][METRIC])
        ax.plot(xs, ys, marker=next(markers), markersize=3, label=f"{name} (test {m['test'][METRIC]:.4f})")
    ax.set_xlabel("training time (minutes, evaluation excluded)")
    ax.set_ylabel(f"validation {METRIC} (full ranking)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="run folders (those without metrics.json are skipped)")
    parser.add_argument("--plot", help="also write validation NDCG@10 vs training time to this PNG")
    args = parser.parse_args()
    runs = load_runs(args.folders)
    print(table(runs))
    if args.plot:
        plot_quality_vs_time(runs, args.plot)


if __name__ == "__main__":
    main()
