"""Collect `metrics.json` of finished run folders into one Markdown table (stdout).

    python benchmarks/collect_results.py runs/* > benchmarks/results/quality.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folders: list[str]) -> None:
    rows = []
    for folder in folders:
        path = Path(folder) / "metrics.json"
        if not path.is_file():
            continue
        m = json.loads(path.read_text())
        t = m["training"]
        rows.append(
            f"| {Path(folder).name} | {m['dataset']['name']} | {m['model_family']} | {m['test']['ndcg@10']:.4f} | "
            f"{m['test']['hr@10']:.4f} | {m['best_epoch']} / {t['epochs_run']} | "
            f"{t['train_seconds'] / max(t['epochs_run'], 1):.1f} | {t['device']} |"
        )
    print("| run | dataset | family | NDCG@10 | HR@10 | best / run epochs | s per epoch | device |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nLeave-one-out test split, full-catalogue ranking, seen items filtered, ties without credit.")


if __name__ == "__main__":
    main(sys.argv[1:])
