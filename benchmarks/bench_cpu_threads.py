"""How many torch threads should a CPU training run use? Times SASRec training steps on real ML-100K batches with
1 and 2 intra-op threads, and with 2 threads under OMP_WAIT_POLICY=PASSIVE, each in a fresh process (OpenMP reads
its settings once, at start-up). The 1-minute load average before each measurement is printed with it: on a CPU
that other jobs share, OpenMP threads that busy-wait for a taken core make every small operation slow.

    python benchmarks/bench_cpu_threads.py --data-dir ../shared/data/ml-100k --out benchmarks/results/cpu-threads.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETTINGS = [  # (label, threads, extra environment)
    ("1 thread", 1, {}),
    ("2 threads", 2, {}),
    ("2 threads, OMP_WAIT_POLICY=PASSIVE", 2, {"OMP_WAIT_POLICY": "PASSIVE"}),
]


def measure(data_dir: str, threads: int, steps: int, length: int) -> dict:
    """Median seconds of one training step (forward, backward, AdamW) of SASRec (d=64, 2 blocks, full CE)."""
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(REPO))
    from hf_rec import SASRecConfig, SASRecForSequentialRecommendation
    from hf_rec.data import load_sequential_dataset
    from hf_rec.data.collators import SequentialCollator

    splits, tokenizer = load_sequential_dataset("ml-100k", data_dir)
    config = SASRecConfig(vocab_size=tokenizer.vocab_size, mask_token_id=tokenizer.mask_token_id,
                          max_position_embeddings=length)  # fmt: skip
    model = SASRecForSequentialRecommendation(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    collator = SequentialCollator("causal", max_length=length, pad_token_id=0, mask_token_id=tokenizer.mask_token_id)
    rows = [{"item_ids": items} for items in splits["train"]["item_ids"]]
    times = []
    for step in range(steps + 2):  # two warm-up steps
        batch = collator(rows[(step * 128) % 768 :][:128])
        start = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 2:
            times.append(time.perf_counter() - start)
    return {"step_seconds": sorted(times)[len(times) // 2], "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "ml-100k"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--out", default=None, help="write a Markdown table here")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.data_dir, args.child, args.steps, args.length)))
        return
    rows = []
    for label, threads, extra in SETTINGS:
        load = os.getloadavg()[0]
        env = {**os.environ, **extra}
        env.pop("OMP_NUM_THREADS", None)
        out = subprocess.run([sys.executable, __file__, "--child", str(threads), "--data-dir", args.data_dir,
                              "--steps", str(args.steps), "--length", str(args.length)],
                             env=env, check=True, capture_output=True, text=True).stdout  # fmt: skip
        result = json.loads(out.strip().splitlines()[-1])
        rows.append((label, result["step_seconds"], load))
        print(f"{label}: {result['step_seconds']:.3f} s/step (load average before: {load:.1f})", flush=True)
    lines = [
        "# CPU threads: training-step time on a shared CPU",
        "",
        f"Command: `python benchmarks/bench_cpu_threads.py --steps {args.steps} --length {args.length}`  ",
        f"Machine: {platform.platform()}, {os.cpu_count()} logical CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  ",
        f"Workload: SASRec (d=64, 2 blocks, full CE over 1,682 items), real ML-100K batches of 128 users x {args.length} "
        "positions, forward + backward + AdamW; median of the timed steps, each setting in a fresh process.",
        "",
        "| torch threads | s / step | 1-min load average before |",
        "|---|---|---|",
        *[f"| {label} | {seconds:.3f} | {load:.1f} |" for label, seconds, load in rows],
    ]
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
