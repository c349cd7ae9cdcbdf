"""Gather a study's run folders into one table (CSV + Markdown) and plots.

Per (point, seed), from ``<output>/<point>/seed<k>/metrics.json``:

* ``test/<metric>``: every test metric (``ndcg@10``, ``hr@10``, ...);
* ``test/coverage@K``, ``test/novelty@K``, ...: beyond-accuracy metrics (``test_segments``), when present;
* ``train_seconds``, ``best_epoch``, ``epochs_run``, ``final_train_loss``;
* ``best_validation/<m>`` and ``gap_val_test/<m>`` = best validation value - test value (how optimistic
  model selection on validation was); ``gap_train_val/<m>`` = train - best validation when the
  results hold train-split metrics (``results["train"]``; the training loop does not compute them
  today, so the column appears only then).

Per point: mean and sample standard deviation (``ddof=1``; 0 with one seed) over the complete seeds.
Segment metrics go to a long table ``segments.csv`` (point, grouping, segment, metric, mean, std).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..training.config import atomic_write_text
from .runner import Study, is_complete, run_folder

__all__ = ["aggregate", "collect_runs", "run_row", "write_report"]


def run_row(results: dict[str, Any]) -> dict[str, float]:
    """Flat numeric columns of one run's ``metrics.json`` (see the module docstring)."""
    row: dict[str, float] = {}
    for k, v in results.get("test", {}).items():
        if "@" in k:
            row[f"test/{k}"] = float(v)
    for k, v in (results.get("test_segments") or {}).get("beyond_accuracy", {}).items():
        row[f"test/{k}"] = float(v)
    training = results.get("training", {})
    if "train_seconds" in training:
        row["train_seconds"] = float(training["train_seconds"])
    if results.get("best_epoch") is not None:
        row["best_epoch"] = float(results["best_epoch"])
    if "epochs_run" in training:
        row["epochs_run"] = float(training["epochs_run"])
    history = results.get("history") or []
    if history and "train_loss" in history[-1]:
        row["final_train_loss"] = float(history[-1]["train_loss"])
    test = results.get("test", {})
    for m, v in (results.get("best_validation") or {}).items():
        row[f"best_validation/{m}"] = float(v)
        if m in test:
            row[f"gap_val_test/{m}"] = float(v) - float(test[m])
        train_metrics = results.get("train") or {}
        if m in train_metrics:
            row[f"gap_train_val/{m}"] = float(train_metrics[m]) - float(v)
    return row


def collect_runs(study: Study, output_dir: str | Path, seeds: list[int] | None = None) -> list[dict[str, Any]]:
    """One entry per complete (point, seed): ``{"point", "seed", "row", "results"}``, in study order."""
    runs = []
    for point in study.points:
        for seed in seeds or study.seeds:
            folder = run_folder(output_dir, point.name, seed)
            if is_complete(folder):
                results = json.loads((folder / "metrics.json").read_text())
                runs.append({"point": point.name, "seed": seed, "row": run_row(results), "results": results})
    return runs


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per point (first-seen order): ``{"point", "n_seeds", "mean": {col: v}, "std": {col: v}}``.
    A column missing from some seeds is averaged over the seeds that have it."""
    by_point: dict[str, list[dict[str, float]]] = {}
    for r in runs:
        by_point.setdefault(r["point"], []).append(r["row"])
    out = []
    for point, rows in by_point.items():
        columns = list(dict.fromkeys(c for row in rows for c in row))
        stats = {c: _mean_std([row[c] for row in rows if c in row]) for c in columns}
        out.append({"point": point, "n_seeds": len(rows),
                    "mean": {c: s[0] for c, s in stats.items()}, "std": {c: s[1] for c, s in stats.items()}})  # fmt: skip
    return out


def _columns(table: list[dict[str, Any]]) -> list[str]:
    cols = list(dict.fromkeys(c for entry in table for c in entry["mean"]))
    first = [c for c in cols if c.startswith("test/")]
    return first + [c for c in cols if c not in first]


def _csv(table, factors: dict[str, dict[str, Any]], factor_names: list[str]) -> str:
    cols = _columns(table)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["point", *factor_names, "n_seeds", *(f"{c}_{s}" for c in cols for s in ("mean", "std"))])
    for e in table:
        writer.writerow([e["point"], *(factors.get(e["point"], {}).get(f, "") for f in factor_names), e["n_seeds"],
                         *(e[s].get(c, "") for c in cols for s in ("mean", "std"))])  # fmt: skip
    return buf.getvalue()


def _fmt(mean: float, std: float, col: str) -> str:
    if col in ("best_epoch", "epochs_run"):
        return f"{mean:.1f} ± {std:.1f}"
    if col == "train_seconds":
        return f"{mean:.0f} ± {std:.0f}"
    if col.startswith("test/avg_popularity@"):
        return f"{mean:.1f} ± {std:.1f}"
    return f"{mean:.4f} ± {std:.4f}"


def _markdown(study: Study, table) -> str:
    cols = _columns(table)
    lines = [f"# Study `{study.name}`", "", f"Study file: `{study.path}`. Mean ± sample std over seeds.", ""]
    lines.append("| point | seeds | " + " | ".join(c.removeprefix("test/") for c in cols) + " |")
    lines.append("|---|---:|" + "---:|" * len(cols))
    for e in table:
        cells = [_fmt(e["mean"][c], e["std"][c], c) if c in e["mean"] else "" for c in cols]
        lines.append(f"| {e['point']} | {e['n_seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _segments_csv(runs: list[dict[str, Any]]) -> str:
    values: dict[tuple[str, str, str, str], list[float]] = {}
    for r in runs:
        segments = (r["results"].get("test_segments") or {}).get("segments", {})
        for grouping, groups in segments.items():
            for label, metrics in groups.items():
                for m, v in metrics.items():
                    values.setdefault((r["point"], grouping, label, m), []).append(float(v))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["point", "grouping", "segment", "metric", "mean", "std", "n_seeds"])
    for (point, grouping, label, m), vs in values.items():
        writer.writerow([point, grouping, label, m, *_mean_std(vs), len(vs)])
    return buf.getvalue()


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def plot_metric_vs_factor(study: Study, table, path: Path, metric: str) -> Path | None:
    """Bar chart with error bars for named points; lines with error bars over the first grid factor
    when its values are numbers (one line per value of the other factors)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    col = f"test/{metric}"
    entries = [e for e in table if col in e["mean"]]
    if not entries:
        return None
    factors = {p.name: p.factors for p in study.points}
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(entries) + 2), 3.8))
    first = study.factors[0] if study.factors else None
    if study.kind == "grid" and all(_is_number(factors[e["point"]][first]) for e in entries):
        lines: dict[str, list] = {}
        for e in entries:
            rest = ",".join(f"{k.split('.', 1)[1]}={v}" for k, v in factors[e["point"]].items() if k != first)
            lines.setdefault(rest, []).append((factors[e["point"]][first], e["mean"][col], e["std"][col]))
        for label, pts in lines.items():
            pts.sort()
            xs, ys, es = zip(*pts)
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label or None)
        ax.set_xlabel(first)
        xs_all = [factors[e["point"]][first] for e in entries]
        if min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 8:  # e.g. 25..200: doublings read better on log2
            ax.set_xscale("log", base=2)
        if any(lines):
            ax.legend(fontsize=8)
    else:
        names = [e["point"] for e in entries]
        ax.bar(range(len(entries)), [e["mean"][col] for e in entries], yerr=[e["std"][col] for e in entries],
               capsize=4, color="tab:blue", alpha=0.8)  # fmt: skip
        ax.set_xticks(range(len(entries)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"{study.name}: test {metric} (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_curves(study: Study, runs: list[dict[str, Any]], path: Path, metric: str) -> Path | None:
    """Training loss (left) and validation ``metric`` (right) per epoch, one line per point (mean over seeds):
    a falling loss with a flat or falling validation curve shows overfitting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not runs:
        return None
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    for point in dict.fromkeys(r["point"] for r in runs):
        loss: dict[int, list[float]] = {}
        val: dict[int, list[float]] = {}
        for r in runs:
            if r["point"] != point:
                continue
            for h in r["results"].get("history", []):
                if "train_loss" in h:
                    loss.setdefault(h["epoch"], []).append(h["train_loss"])
                if metric in (h.get("validation") or {}):
                    val.setdefault(h["epoch"], []).append(h["validation"][metric])
        if loss:
            xs = sorted(loss)
            ax_loss.plot(xs, [np.mean(loss[x]) for x in xs], marker=".", label=point)
        if val:
            xs = sorted(val)
            ax_val.plot(xs, [np.mean(val[x]) for x in xs], marker=".", label=point)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Training loss (mean over seeds)")
    ax_val.set(xlabel="epoch", ylabel=f"validation {metric}", title=f"Validation {metric} (mean over seeds)")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
    ax_val.legend(fontsize=7)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(study: Study, output_dir: str | Path, seeds: list[int] | None = None) -> dict[str, str]:
    """Write ``results.csv``, ``results.md``, ``segments.csv``, ``<metric>_vs_factor.png`` and ``curves.png``
    into ``output_dir`` from the complete runs. Returns the written paths by kind."""
    output_dir = Path(output_dir)
    runs = collect_runs(study, output_dir, seeds)
    table = aggregate(runs)
    factors = {p.name: p.factors for p in study.points}
    paths = {}
    atomic_write_text(output_dir / "results.csv", _csv(table, factors, study.factors))
    atomic_write_text(output_dir / "results.md", _markdown(study, table))
    atomic_write_text(output_dir / "segments.csv", _segments_csv(runs))
    paths.update(csv=str(output_dir / "results.csv"), markdown=str(output_dir / "results.md"),
                 segments=str(output_dir / "segments.csv"))  # fmt: skip
    safe = study.metric.replace("@", "_at_")
    plot = plot_metric_vs_factor(study, table, output_dir / f"{safe}_vs_factor.png", study.metric)
    if plot:
        paths["factor_plot"] = str(plot)
    curves = plot_curves(study, runs, output_dir / "curves.png", study.metric)
    if curves:
        paths["curves_plot"] = str(curves)
    return paths

