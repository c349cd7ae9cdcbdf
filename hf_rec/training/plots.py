"""Training curves as a PNG: loss and the validation metric per epoch."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_training_curves(history: list[dict], path: str | Path, metric: str = "ndcg@10") -> Path:
    """Left: mean training loss per epoch. Right: validation `metric` per evaluated epoch (best marked)."""
    path = Path(path)
    epochs = [h["epoch"] for h in history]
    losses = [h["train_loss"] for h in history]
    evaluated = [(h["epoch"], h["validation"][metric]) for h in history if metric in h.get("validation", {})]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, losses, marker="o", markersize=3)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("Training loss")
    ax_loss.grid(alpha=0.3)
    if evaluated:
        xs, ys = zip(*evaluated)
        ax_metric.plot(xs, ys, marker="o", markersize=3, color="tab:green")
        best = max(range(len(ys)), key=ys.__getitem__)
        ax_metric.scatter([xs[best]], [ys[best]], color="tab:red", zorder=3, label=f"best {ys[best]:.4f} (epoch {xs[best]})")
        ax_metric.legend(loc="lower right")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel(f"validation {metric}")
    ax_metric.set_title(f"Validation {metric} (full ranking)")
    ax_metric.grid(alpha=0.3)
    for ax in (ax_loss, ax_metric):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
