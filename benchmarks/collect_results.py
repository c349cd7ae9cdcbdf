"""Collect `metrics.json` of finished run folders into one Markdown table (stdout), optionally with a plot of
validation NDCG@10 against training time (quality vs time) for every run.

    python benchmarks/collect_results.py runs/* > benchmarks/results/quality.md
    python benchmarks/collect_results.py runs/a runs/b --plot benchmarks/results/quality-vs-time.png

A run that was interrupted (no metrics.json) is read from its newest checkpoint's trainer_state.json (validation
history, best epoch) and, if present, `test_metrics.json` in its folder, written by
`hf-rec evaluate --model RUN/best_model --data ... --output RUN/test_metrics.json`.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

METRIC = "ndcg@10"


def load_runs(folders: list[str]) -> list[tuple[str, dict]]:
    runs = []
    for folder in map(Path, folders):
        path = folder / "metrics.json"
        if path.is_file():
            m = json.loads(path.read_text())
        elif (m := load_interrupted_run(folder)) is None:
            continue
        m["init_from"] = first_stage_name(folder)
        runs.append((folder.name, m))
    return runs


def first_stage_name(folder: Path) -> str | None:
    """The run folder name a two-stage run started from (`training.init_from`: `runs/X` or `runs/X/best_model`)."""
    import yaml

    config = folder / "training_config.yaml"
    if not config.is_file():
        return None
    init_from = (yaml.safe_load(config.read_text()) or {}).get("training", {}).get("init_from")
    if not init_from:
        return None
    path = Path(init_from)
    return path.parent.name if path.name == "best_model" else path.name


def load_interrupted_run(folder: Path) -> dict | None:
    """The metrics.json fields this script reads, for a run stopped before it finished: history and best epoch from
    the newest complete checkpoint, test metrics from `test_metrics.json` (`hf-rec evaluate --output`) if any."""
    states = sorted(folder.glob("checkpoints/epoch_*/trainer_state.json"))
    config = folder / "best_model" / "config.json"
    if not states or not config.is_file():
        return None
    state = json.loads(states[-1].read_text())
    test_file = folder / "test_metrics.json"
    test = json.loads(test_file.read_text()) if test_file.is_file() else {}
    history = state["history"]
    return {
        "model_family": json.loads(config.read_text())["model_type"],
        "dataset": {"name": test.get("data", "?")},
        "test": test.get("metrics", {}),
        "best_epoch": state["best_epoch"],
        "history": history,
        "training": {
            "train_seconds": sum(h.get("train_seconds", 0.0) for h in history),
            "epochs_run": state["epoch"],
            "device": "interrupted run",
        },
    }


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def table(runs: list[tuple[str, dict]]) -> str:
    lines = [
        "| run | dataset | family | NDCG@10 | HR@10 | best / run epochs | s per epoch | device |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in runs:
        t = m["training"]
        lines.append(
            f"| {name} | {m['dataset']['name']} | {m['model_family']} | {fmt(m['test'].get('ndcg@10'))} | "
            f"{fmt(m['test'].get('hr@10'))} | {m['best_epoch']} / {t['epochs_run']} | "
            f"{t['train_seconds'] / max(t['epochs_run'], 1):.1f} | {t['device']} |"
        )
    lines.append("\nLeave-one-out test split, full-catalogue ranking, seen items filtered, ties without credit.")
    return "\n".join(lines)


def epoch_seconds(history: list[dict], paused_factor: float | None = None) -> tuple[list[float], list[int]]:
    """Each epoch's training seconds, and the epochs counted at the run's median instead because they took more than
    `paused_factor` times it (a process paused with SIGSTOP, or a machine shared with a burst of other jobs)."""
    import statistics

    seconds = [h.get("train_seconds", 0.0) for h in history]
    if not paused_factor or not seconds:
        return seconds, []
    median = statistics.median(seconds)
    replaced = [h["epoch"] for h, s in zip(history, seconds) if s > paused_factor * median]
    return [median if s > paused_factor * median else s for s in seconds], replaced


def time_curves(runs: list[tuple[str, dict]], paused_factor: float | None = None) -> dict[str, tuple[list, list]]:
    """Per run: the minutes of training at each validated epoch and the validation NDCG@10 there. A second stage
    (`training.init_from` one of `runs`) starts where its first stage's training ended."""
    per_epoch = {name: epoch_seconds(m["history"], paused_factor)[0] for name, m in runs}
    curves = {}
    for name, m in runs:
        first_stage = m.get("init_from")
        seconds, xs, ys = sum(per_epoch[first_stage]) if first_stage in per_epoch else 0.0, [], []
        for h, epoch_time in zip(m["history"], per_epoch[name]):
            seconds += epoch_time
            if METRIC in h.get("validation", {}):
                xs.append(seconds / 60)
                ys.append(h["validation"][METRIC])
        curves[name] = (xs, ys)
    return curves


def plot_quality_vs_time(runs: list[tuple[str, dict]], path: str | Path, paused_factor: float | None = None) -> Path:
    """Validation NDCG@10 after each evaluated epoch against training time (`time_curves`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    markers = itertools.cycle("os^Dvx*")
    curves = time_curves(runs, paused_factor)
    for name, m in runs:
        xs, ys = curves[name]
        ax.plot(xs, ys, marker=next(markers), markersize=3, label=f"{name} (test {fmt(m['test'].get(METRIC))})")
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
    parser.add_argument("--paused-factor", type=float, help="in the plot, count an epoch that took more than this many "
                        "times its run's median at the median (a paused process); the epochs are listed")
    args = parser.parse_args()
    runs = load_runs(args.folders)
    print(table(runs))
    if args.plot:
        plot_quality_vs_time(runs, args.plot, args.paused_factor)
        for name, m in runs:
            replaced = epoch_seconds(m["history"], args.paused_factor)[1]
            if replaced:
                print(f"\n{name}: epochs {replaced} took more than {args.paused_factor}x the median epoch; counted at "
                      "the median in the plot")


if __name__ == "__main__":
    main()
