"""Catalogue-size sweep: SASRec training-step time with sampled softmax, and full-ranking evaluation time, for
synthetic catalogues of 10^4, 10^5 and 10^6 items, with peak memory. Runs on CPU or one GPU.

    python benchmarks/bench_scale.py                       # CPU, writes benchmarks/results/scale-<device>.md
    python benchmarks/bench_scale.py --device cuda --bf16   # one GPU

Cost should grow linearly with the number of items (the item table, its optimiser state, the chunked ranking)
and memory must stay bounded: no [users, items] score matrix is ever built.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from pathlib import Path

import torch

from hf_rec import SASRecConfig, SASRecForSequentialRecommendation
from hf_rec.evaluation import rank_targets_by_embeddings

REPO = Path(__file__).resolve().parents[1]


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (Linux: KiB)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_training(num_items: int, args, device) -> dict:
    config = SASRecConfig(vocab_size=num_items + 2, hidden_size=64, max_position_embeddings=args.length,
                          loss_type="sampled_softmax", num_negatives=args.negatives)  # fmt: skip
    model = SASRecForSequentialRecommendation(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randint(1, num_items + 1, (args.batch_size, args.length + 1), generator=generator).to(device)
    batch = {"input_ids": inputs[:, :-1], "labels": inputs[:, 1:]}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    times = []
    for step in range(args.warmup + args.steps):
        sync(device)
        start = time.perf_counter()
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    return {"step_seconds": sorted(times)[len(times) // 2], "model": model}


def bench_ranking(model, num_items: int, args, device) -> dict:
    generator = torch.Generator().manual_seed(1)
    histories = torch.randint(1, num_items + 1, (args.users, args.length), generator=generator).to(device)
    targets = torch.randint(1, num_items + 1, (args.users,), generator=generator).to(device)
    model.eval()
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        users = torch.cat([model.get_user_embeddings(histories[i : i + 1024]) for i in range(0, args.users, 1024)])
        ranks = rank_targets_by_embeddings(users, model.get_item_embeddings(), targets, exclude=histories,
                                           special_ids=model.config.special_ids)  # fmt: skip
    sync(device)
    return {"eval_seconds": time.perf_counter() - start, "mean_rank": float(ranks.float().mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--negatives", type=int, default=256)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"
    rows = []
    for num_items in args.items:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        train = bench_training(num_items, args, device)
        ranking = bench_ranking(train.pop("model"), num_items, args, device)
        rows.append({"items": num_items, **train, **ranking, "peak_mib": peak_memory_mib(device)})
        print(rows[-1], flush=True)
    lines = [
        f"# Catalogue-size sweep on {name}",
        "",
        f"Command: `python benchmarks/bench_scale.py --device {args.device}{' --bf16' if args.bf16 else ''}`; "
        f"torch {torch.__version__}; {time.strftime('%Y-%m-%d')}.",
        f"SASRec d=64, 2 blocks, length {args.length}, batch {args.batch_size}, sampled softmax with "
        f"{args.negatives} shared negatives, AdamW (dense item-table update); median of {args.steps} steps after "
        f"{args.warmup} warm-up. Evaluation: {args.users:,} users, full-catalogue ranking of one target each with "
        f"their {args.length} history items excluded (chunked; no users x items matrix).",
        "Peak memory: " + ("`torch.cuda.max_memory_allocated`" if device.type == "cuda" else
                           "process peak RSS (cumulative over the sweep, so it bounds each row from above)"),
        "",
        "| items | train step (s) | full-ranking eval (s) | peak memory (MiB) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['items']:,} | {r['step_seconds']:.3f} | {r['eval_seconds']:.2f} | {r['peak_mib']:.0f} |" for r in rows]
    out = Path(args.out or REPO / "benchmarks" / "results" / f"scale-{device.type}.md")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
