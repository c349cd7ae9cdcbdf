"""Cold items: how an ID model ranks items it never trained on, with and without item features in its scores.

Each run folder was trained with `data.cold_item_fraction` (those items appear in no training or validation
sequence and are never negatives); here its best model gets `map_untrained_items` (with item features in the
scores: a zero ID vector, so the item is scored from its features) and the test users whose target is cold are
ranked against the whole catalogue (seen items filtered). Besides NDCG@10: HR@100 and the median 0-based rank of
the cold target, which show progress that top-10 metrics cannot.

    python benchmarks/cold_items.py --data-dir ../shared/data/ml-100k --fraction 0.1 \\
        --run ids=runs/sasrec-ml100k-cold-ids --run features=runs/sasrec-ml100k-cold-feat \\
        --output benchmarks/results/cold-items-ml100k.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hf_rec import AutoModelForSequentialRecommendation
from hf_rec.data import ItemTokenizer, load_dataset_like
from hf_rec.evaluation import Evaluator
from hf_rec.evaluation.cold_start import cold_start_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recbole import machine_description  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--run", action="append", required=True, metavar="NAME=RUN_FOLDER")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="data.cold_item_seed of the runs")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    for spec in args.run:
        name, _, folder = spec.partition("=")
        tokenizer = ItemTokenizer.from_pretrained(folder)
        splits = load_dataset_like(tokenizer, tokenizer.metadata["dataset"], args.data_dir)
        _, cold_test, cold = cold_start_split(splits, tokenizer, args.fraction, seed=args.seed)
        model = AutoModelForSequentialRecommendation.from_pretrained(Path(folder) / "best_model").eval()
        model.map_untrained_items(cold)
        metrics, ranks = Evaluator(cold_test, ks=(10, 100), show_progress=False).evaluate(model, return_ranks=True)
        config = model.config
        reads = "item features in scores" if config.item_features_in_scores else "ids only"
        if getattr(config, "item_id_dropout", 0.0):
            reads += f", item_id_dropout {config.item_id_dropout}"
        rows.append((name, reads, len(cold), len(cold_test), metrics["ndcg@10"], metrics["hr@100"],
                     float(np.median(np.asarray(ranks)))))  # fmt: skip
        print(rows[-1], flush=True)

    lines = [
        "# Cold items: targets never trained on, ranked by ID models with and without item features",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_description()}, torch "
        f"{torch.__version__}, one torch thread. Full ranking of the whole catalogue, seen items filtered. Command:",
        "",
        "    python benchmarks/cold_items.py --data-dir " + args.data_dir + f" --fraction {args.fraction} "
        + " ".join(f"--run {r}" for r in args.run) + " --output " + args.output,
        "",
        "| run | model | cold items | users with a cold target | NDCG@10 | HR@100 | median rank of the target |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, reads, items, users, ndcg, hr100, median in rows:
        lines.append(f"| {name} | {reads} | {items} | {users} | {ndcg:.4f} | {hr100:.4f} | {median:.0f} |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
