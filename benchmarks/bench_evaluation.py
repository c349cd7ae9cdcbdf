"""Evaluation benchmark (not a test).

(a) popularity baseline on ML-1M, full ranking with seen items filtered: time + peak RSS;
(b) random embeddings, 10^6 items x 10^4 users (H=64), through ``rank_targets_by_embeddings``
    with ~100 excluded items per user: time + peak RSS.

Each part runs in its own subprocess so that its peak RSS (``ru_maxrss``) is its own.
Torch is pinned to 2 threads.

    python benchmarks/bench_evaluation.py                # both parts
    python benchmarks/bench_evaluation.py --part b --items 1000000 --users 10000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def part_a(data_dir: str) -> dict:
    import torch

    torch.set_num_threads(2)
    from hf_rec.data import load_sequential_dataset
    from hf_rec.evaluation import Evaluator
    from hf_rec.models.popularity import PopularityRecommender

    t0 = time.perf_counter()
    splits, tok = load_sequential_dataset("ml-1m", data_dir=data_dir)
    t_load = time.perf_counter() - t0
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    model = PopularityRecommender().fit(splits["train"], vocab_size=tok.vocab_size, special_ids=tok.special_ids)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = Evaluator(splits["test"], ks=(10, 20), batch_size=256, show_progress=False).evaluate(model)
    t_eval = time.perf_counter() - t0  # first call: includes one-off imports / warm-up
    t0 = time.perf_counter()
    Evaluator(splits["test"], ks=(10, 20), batch_size=256, show_progress=False).evaluate(model)
    t_eval2 = time.perf_counter() - t0
    val = Evaluator(splits["validation"], ks=(10,), batch_size=256, show_progress=False).evaluate(model)
    return {
        "part": "a",
        "users": metrics["num_users"],
        "vocab_size": tok.vocab_size,
        "load_s": round(t_load, 2),
        "fit_s": round(t_fit, 2),
        "evaluate_first_call_s": round(t_eval, 2),
        "evaluate_s": round(t_eval2, 2),
        "rss_before_eval_mb": round(rss_before, 1),
        "peak_rss_mb": round(_peak_mb(), 1),
        "test": {k: round(v, 5) if isinstance(v, float) else v for k, v in metrics.items()},
        "validation": {k: round(v, 5) if isinstance(v, float) else v for k, v in val.items()},
    }


def part_b(n_items: int, n_users: int, hidden: int, n_excl: int, item_chunk: int, user_chunk: int) -> dict:
    import torch

    torch.set_num_threads(2)
    from hf_rec.evaluation import rank_targets_by_embeddings

    gen = torch.Generator().manual_seed(0)
    item_emb = torch.randn(n_items, hidden, generator=gen)
    user_emb = torch.randn(n_users, hidden, generator=gen)
    targets = torch.randint(1, n_items, (n_users,), generator=gen)
    exclude = torch.randint(1, n_items, (n_users, n_excl), generator=gen)
    inputs_mb = (item_emb.numel() + user_emb.numel()) * 4 / 2**20 + (targets.numel() + exclude.numel()) * 8 / 2**20
    rss_before = _rss_mb()
    peak_before = _peak_mb()
    t0 = time.perf_counter()
    ranks = rank_targets_by_embeddings(
        user_emb, item_emb, targets, exclude=exclude, item_chunk_size=item_chunk, user_chunk_size=user_chunk
    )
    elapsed = time.perf_counter() - t0
    return {
        "part": "b",
        "items": n_items,
        "users": n_users,
        "hidden": hidden,
        "excluded_per_user": n_excl,
        "item_chunk_size": item_chunk,
        "user_chunk_size": user_chunk,
        "seconds": round(elapsed, 2),
        "scores_per_second": f"{n_items * n_users / elapsed:.3g}",
        "inputs_mb": round(inputs_mb, 1),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_before_mb": round(peak_before, 1),
        "peak_rss_mb": round(_peak_mb(), 1),
        "peak_increase_mb": round(_peak_mb() - rss_before, 1),
        "chunk_buffers_mb": round(item_chunk * user_chunk * 5 / 2**20, 1),
        "mean_rank": float(ranks.float().mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=["a", "b", "all"], default="all")
    p.add_argument("--data-dir", default=os.environ.get("HF_REC_SHARED_DATA", str(REPO.parent / "shared" / "data")) + "/ml-1m")
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--excluded", type=int, default=100)
    p.add_argument("--item-chunk", type=int, default=65536)
    p.add_argument("--user-chunk", type=int, default=512)
    args = p.parse_args()
    if args.part == "all":
        for part in ("a", "b"):
            subprocess.run([sys.executable, __file__, "--part", part, *sys.argv[1:]], check=True)
        return
    if args.part == "a":
        out = part_a(args.data_dir)
    else:
        out = part_b(args.items, args.users, args.hidden, args.excluded, args.item_chunk, args.user_chunk)
    out["loadavg_1min_after"] = os.getloadavg()[0]  # > 2 on this 2-core box = shared with other jobs
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
