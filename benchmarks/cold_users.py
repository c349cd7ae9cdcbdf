"""Cold users: how well do trained models recommend to users who have only 1, 2 or 3 interactions (and, for models
with user features, their attributes)? Every test user's history is cut to its most recent `keep` items
(`hf_rec.evaluation.cold_start.truncate_histories`), the target unchanged, and each model is scored with full
ranking (seen items filtered) against popularity.

    python benchmarks/cold_users.py --data-dir ../shared/data/ml-100k \\
        --model ids-only=studies/features/ids-only/seed0 --model user-features=studies/features/user-features/seed0 \\
        --keep 1 2 3 --output benchmarks/results/cold-users-ml100k.md

Each model folder is evaluated on the data its own tokenizer was built from (dataset and load options are read from
its `item_tokenizer.json`), so a model with user features gets the split's `user_features` column.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from hf_rec import AutoModelForSequentialRecommendation
from hf_rec.data import ItemTokenizer, load_dataset_like
from hf_rec.evaluation import Evaluator
from hf_rec.evaluation.cold_start import truncate_histories
from hf_rec.models.popularity import PopularityRecommender

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recbole import machine_description  # noqa: E402



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=FOLDER")
    parser.add_argument("--keep", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows, dataset = [], None
    for spec in args.model:
        name, _, folder = spec.partition("=")
        folder = Path(folder)
        tokenizer = ItemTokenizer.from_pretrained(folder)
        dataset = tokenizer.metadata["dataset"]
        splits = load_dataset_like(tokenizer, dataset, args.data_dir)
        model = AutoModelForSequentialRecommendation.from_pretrained(folder).eval()
        if not rows:  # popularity from the same training data, once
            popularity = PopularityRecommender().fit(splits["train"], vocab_size=model.config.vocab_size,
                                                     special_ids=model.config.special_ids)  # fmt: skip
            for keep in args.keep:
                test = truncate_histories(splits["test"], keep)
                m = Evaluator(test, ks=(10,), show_progress=False).evaluate(popularity)
                rows.append(("popularity", keep, m["ndcg@10"], m["hr@10"], m["num_users"]))
        for keep in [*args.keep, None]:
            test = splits["test"] if keep is None else truncate_histories(splits["test"], keep)
            m = Evaluator(test, ks=(10,), show_progress=False).evaluate(model)
            rows.append((name, keep, m["ndcg@10"], m["hr@10"], m["num_users"]))
        print(name, "done", flush=True)

    lines = [
        f"# Cold users on {dataset}: test histories cut to their most recent items",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_description()}, torch "
        f"{torch.__version__}, one torch thread. Full ranking, seen items (the kept ones) filtered, the test target "
        "unchanged; `all` is the full history. Command:",
        "",
        "    python benchmarks/cold_users.py --data-dir " + args.data_dir + " "
        + " ".join(f"--model {m}" for m in args.model) + " --keep " + " ".join(map(str, args.keep))
        + " --output " + args.output,
        "",
        "| model | items kept | NDCG@10 | HR@10 | users |",
        "|---|---|---|---|---|",
    ]
    for name, keep, ndcg, hr, users in rows:
        lines.append(f"| {name} | {'all' if keep is None else keep} | {ndcg:.4f} | {hr:.4f} | {users} |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
