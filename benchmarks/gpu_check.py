"""Python steps of benchmarks/gpu_check.sh (the one-call GPU check, issue #7). Each subcommand writes one small JSON
file into `<runs>/results/`; `summary` turns them into `$OUT/gpu-results.md` + `$OUT/gpu-results.json`.

    python benchmarks/gpu_check.py env      --runs RUNS
    python benchmarks/gpu_check.py train    --runs RUNS --name NAME -- TRAIN.PY ARGUMENTS...
    python benchmarks/gpu_check.py evaltime --runs RUNS --data-dir .gpu_data/ml-1m [--model RUN_FOLDER]
    python benchmarks/gpu_check.py tiny-backbone --source .gpu_data/all-MiniLM-L6-v2 --dest FOLDER   (smoke test only)
    python benchmarks/gpu_check.py summary  --runs RUNS --out OUT [--smoke] [--families]

`train` runs exactly what `python train.py ARGUMENTS...` runs (`hf_rec.training.main`), in this process, so that it
can also report peak GPU memory and trainable parameters. A time budget is the run's own
`training.max_train_minutes` (the loop stops after the epoch that passes it, then tests the best weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str))
    print(f"wrote {path}", flush=True)


def cuda_peak_mib() -> float | None:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return None


# ---- env ----------------------------------------------------------------------------------------------------------
def cmd_env(args) -> None:
    import importlib.metadata as md

    import torch

    info = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cpu_count": os.cpu_count(),
    }
    for name in ("transformers", "accelerate", "huggingface_hub", "datasets", "evaluate", "peft", "numpy", "pyarrow",
                 "fsspec", "dill", "multiprocess"):
        try:
            info[name] = md.version(name)
        except md.PackageNotFoundError:
            info[name] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["device"] = torch.cuda.get_device_name(0)
        info["capability"] = f"{props.major}.{props.minor}"
        info["device_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    else:
        info["device"] = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True,
                                        text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        info["commit"] += " (+ uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):  # the device machine's copy of the tree may have no .git
        stamp = REPO / ".gpu_data" / "COMMIT"
        info["commit"] = (stamp.read_text().strip() + " (at gpu_prepare.sh time)") if stamp.is_file() else "unknown"
    import hf_rec  # noqa: F401  (fails here, early and clearly, if the carried wheels do not import)
    import datasets  # noqa: F401
    import evaluate  # noqa: F401

    info["imports"] = "hf_rec, datasets, evaluate: ok"
    print(json.dumps(info, indent=1), flush=True)
    write_json(Path(args.runs) / "results" / "env.json", info)


# ---- train -----------------------------------------------------------------------------------------------------
def cmd_train(args, train_argv: list[str]) -> None:
    import torch

    from hf_rec.training import loop, main as train_main

    result: dict = {"name": args.name, "command": "python train.py " + " ".join(train_argv)}
    out_json = Path(args.runs) / "results" / f"{args.name}.json"
    start = time.perf_counter()
    captured: dict = {}

    original_build = loop.build_model

    def build_model(run, tokenizer, *args, **kwargs):  # keep the trained model to count its trainable parameters
        model = original_build(run, tokenizer, *args, **kwargs)
        captured["model"] = model
        captured["run"] = run
        return model

    loop.build_model = build_model
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        metrics = train_main(train_argv)
        result["status"] = "ok"
    except BaseException as err:  # record the failure, then let the shell see it
        result.update(status=f"failed: {type(err).__name__}: {err}"[:500], wall_seconds=time.perf_counter() - start,
                      peak_gpu_mib=cuda_peak_mib())
        write_json(out_json, result)
        raise
    wall = time.perf_counter() - start
    history = metrics["history"]
    epoch_times = [h["train_seconds"] for h in history]
    steady = epoch_times[1:] or epoch_times  # the first epoch carries warm-up (CUDA context, kernels, caches)
    stats = metrics["dataset"]["statistics"]
    run = captured["run"]
    model = captured.get("model")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) if model is not None else None
    val_key = run.evaluation.metric_for_best_model
    reached = None
    cumulative = 0.0
    for h in history:
        cumulative += h["train_seconds"]
        if reached is None and h.get("validation", {}).get("ndcg@10", -1) >= args.target_ndcg:
            reached = {"epoch": h["epoch"], "train_seconds": round(cumulative, 1)}
    users = stats.get("users") or stats.get("num_users")
    budget = run.training.max_train_minutes
    if budget and metrics["training"]["train_seconds"] >= 60 * budget:
        stopped_by = f"time budget (training.max_train_minutes={budget})"
    elif metrics["training"]["epochs_run"] < run.training.num_epochs:
        stopped_by = "early stopping"
    else:
        stopped_by = "epoch limit"
    result.update(
        stopped_by=stopped_by,
        family=metrics["model_family"],
        dataset=metrics["dataset"]["name"],
        device=metrics["training"]["device"],
        mixed_precision=metrics["training"]["mixed_precision"],
        batch_size=run.training.batch_size,
        epochs_run=metrics["training"]["epochs_run"],
        best_epoch=metrics["best_epoch"],
        best_validation={val_key: metrics["best_validation"][val_key]},
        first_epoch_seconds=epoch_times[0] if epoch_times else None,
        median_epoch_seconds=statistics.median(steady) if steady else None,
        train_seconds=metrics["training"]["train_seconds"],
        run_wall_seconds=metrics["training"]["wall_seconds"],
        wall_seconds=wall,
        sequences_per_epoch=users,
        sequences_per_second=(users / statistics.median(steady)) if users and steady else None,
        validation_target=args.target_ndcg,
        validation_target_reached=reached,
        test={k: v for k, v in metrics["test"].items() if "@" in k or k == "num_users"},
        num_parameters=metrics["num_parameters"],
        trainable_parameters=trainable,
        peak_gpu_mib=cuda_peak_mib(),
        validation_curve=[round(h.get("validation", {}).get("ndcg@10", float("nan")), 4) for h in history],
    )
    write_json(out_json, result)


# ---- evaltime ------------------------------------------------------------------------------------------------
def cmd_evaltime(args) -> None:
    import torch

    from hf_rec import AutoModelForSequentialRecommendation, SASRecConfig, SASRecForSequentialRecommendation
    from hf_rec.data import load_sequential_dataset
    from hf_rec.evaluation import Evaluator

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t0 = time.perf_counter()
    splits, tokenizer = load_sequential_dataset(args.dataset, data_dir=args.data_dir, **({"max_history": args.max_history}
                                                                                    if args.max_history else {}))
    load_seconds = time.perf_counter() - t0
    model_dir = Path(args.model) if args.model else None
    if model_dir is not None and (model_dir / "config.json").is_file():
        model = AutoModelForSequentialRecommendation.from_pretrained(model_dir)
        source = f"trained model {model_dir}"
    else:
        torch.manual_seed(0)
        model = SASRecForSequentialRecommendation(SASRecConfig(
            vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, mask_token_id=tokenizer.mask_token_id,
            hidden_size=64, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=200))
        source = "randomly initialised SASRec (d=64, 2 blocks, length 200): no trained model found"
    model = model.to(device).eval()
    rows = []
    for batch_size in args.batch_sizes:
        evaluator = Evaluator(splits["test"], ks=(10, 20), batch_size=batch_size, show_progress=False)
        evaluator.evaluate(model)  # warm-up: kernels, allocator
        times = []
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            metrics = evaluator.evaluate(model)  # returns CPU numbers: synchronised
            times.append(time.perf_counter() - t)
        rows.append({"batch_size": batch_size, "median_seconds": statistics.median(times), "min_seconds": min(times),
                     "repeats": args.repeats, "users": metrics["num_users"], "ndcg@10": metrics["ndcg@10"]})
        print(rows[-1], flush=True)
    result = {"dataset": args.dataset, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "model": source,
              "dataset_load_seconds": load_seconds, "vocab_size": tokenizer.vocab_size, "rows": rows,
              "command": "python benchmarks/gpu_check.py evaltime " + " ".join(sys.argv[2:]),
              "peak_gpu_mib": cuda_peak_mib()}
    write_json(Path(args.runs) / "results" / "evaltime.json", result)


# ---- tiny backbone (smoke test only) ---------------------------------------------------------------------------
def cmd_tiny_backbone(args) -> None:
    """A randomly initialised 1-layer, 32-wide BERT with MiniLM's tokenizer: LLMRec plumbing on a CPU in seconds."""
    import shutil

    from transformers import BertConfig, BertModel

    src, dst = Path(args.source), Path(args.dest)
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(dst)
    print(f"tiny backbone in {dst}", flush=True)


# ---- summary ------------------------------------------------------------------------------------------------------
def fmt(value, digits=1, suffix="") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    return str(value)


def cmd_summary(args) -> None:
    runs, out = Path(args.runs), Path(args.out)
    results = {p.stem: json.loads(p.read_text()) for p in sorted((runs / "results").glob("*.json"))}
    steps = {}
    status_file = runs / "results" / "steps.tsv"
    if status_file.is_file():
        for line in status_file.read_text().splitlines():
            name, rc, seconds, cap = line.split("\t")
            steps[name] = {"rc": int(rc), "seconds": float(seconds), "cap": int(cap)}
    env = results.get("env", {})
    card = env.get("device", "unknown device")
    lines = [
        f"# GPU check on {card}" + (" (SMOKE TEST on CPU: plumbing only, numbers mean nothing)" if args.smoke else ""),
        "",
        f"Date: {env.get('date_utc', 'n/a')}. Commit: `{env.get('commit', 'n/a')}`. Command: "
        f"`bash benchmarks/gpu_check.sh{' --families' if args.families else ''}{' --smoke' if args.smoke else ''}` "
        "(device call with carry "
        "`[\".whl\", \".gpu_data\"]`).",
        f"Software: python {env.get('python')}, torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), transformers "
        f"{env.get('transformers')}, accelerate {env.get('accelerate')}, huggingface_hub {env.get('huggingface_hub')}, "
        f"datasets {env.get('datasets')}, evaluate {env.get('evaluate')}, peft {env.get('peft')}.",
        f"Card: {card}" + (f", compute capability {env['capability']}, {env['device_memory_gib']} GiB" if "capability"
                           in env else "") + ".",
        "Protocol: leave-one-out, test split, full-catalogue ranking, seen items filtered, ties without credit.",
        "",
        "## Steps",
        "",
        "| step | exit code | seconds | cap (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {s['rc']}{' (timed out)' if s['rc'] in (124, 137) else ''} | {s['seconds']:.0f} | "
              f"{s['cap']} |" for name, s in steps.items()]
    lines += ["", "## Training runs", "",
              "| run | epochs (best / run) | stopped by | s / epoch (median; first) | sequences / s | time to val "
              "NDCG@10 target | test NDCG@10 | test HR@10 | peak GPU MiB | trainable / all params | command |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    names = ("sasrec-ml1m", "bert4rec-ml1m", "gru4rec-ml1m", "narm-ml1m", "llmrec-init", "llmrec-lora",
             "llmrec-lora-fsdp")
    expected = names[1:4] if args.families else names[:2] + names[4:]  # what this mode of gpu_check.sh runs
    for name in [n for n in names if n in expected or n in results]:
        r = results.get(name)
        if r is None:
            lines.append(f"| {name} | not run or no result | | | | | | | | | |")
            continue
        if r.get("status") != "ok":
            lines.append(f"| {name} | {r.get('status')} | | | | | | | {fmt(r.get('peak_gpu_mib'), 0)} | | "
                         f"`{r['command']}` |")
            continue
        reached = r.get("validation_target_reached")
        reached_text = (f"{reached['train_seconds']} s (epoch {reached['epoch']})" if reached
                        else f"not reached (>= {r['validation_target']})") if r.get("validation_target", 0) > 0 else "-"
        test = r["test"]
        lines.append(
            f"| {name} | {r['best_epoch']} / {r['epochs_run']} | {r['stopped_by']} | "
            f"{fmt(r['median_epoch_seconds'], 2)}; {fmt(r['first_epoch_seconds'], 2)} | "
            f"{fmt(r['sequences_per_second'], 0)} | {reached_text} | {test.get('ndcg@10', float('nan')):.4f} | "
            f"{test.get('hr@10', float('nan')):.4f} | {fmt(r['peak_gpu_mib'], 0)} | "
            f"{fmt(r['trainable_parameters'])} / {fmt(r['num_parameters'])} | `{r['command']}` |"
        )
    sas = results.get("sasrec-ml1m")
    if sas and sas.get("status") == "ok":
        lines += ["", f"SASRec ML-1M: {sas['mixed_precision']} mixed precision, batch {sas['batch_size']}, "
                  f"{fmt(sas['train_seconds'], 1)} s of training ({fmt(sas['wall_seconds'], 1)} s wall with data "
                  f"loading, validation, checkpoints and test); validation NDCG@10 per epoch: "
                  f"{sas['validation_curve']}. Targets (issue #7): test NDCG@10 >= 0.18 within 2 minutes of training."]
    if args.families:
        lines += ["", "Targets (issue #4, test NDCG@10 on ML-1M): BERT4Rec >= 0.155, GRU4Rec >= 0.15, NARM reported. "
                  "The 'time to val NDCG@10 target' column uses each run's own target (`--target-ndcg`)."]
        finish_summary(out, lines, steps, results)
        return
    ev = results.get("evaltime")
    lines += ["", f"## Full-ranking evaluation, all {ev.get('dataset', 'ML-1M') if ev else 'ML-1M'} test users", ""]
    if ev:
        lines += [f"Model: {ev['model']}; {ev['rows'][0]['users'] if ev['rows'] else '?'} users x "
                  f"{ev['vocab_size']:,} items, ks 10 and 20, seen items filtered; `Evaluator.evaluate` end to end "
                  f"(batching, user encoder, chunked ranking, metrics), median after one warm-up. Target: < 0.5 s.",
                  "", "| users per batch | median s | min s | repeats | NDCG@10 |", "|---|---|---|---|---|"]
        lines += [f"| {r['batch_size']} | {r['median_seconds']:.3f} | {r['min_seconds']:.3f} | {r['repeats']} | "
                  f"{r['ndcg@10']:.4f} |" for r in ev["rows"]]
    else:
        lines.append("no result")
    lines += ["", "## Catalogue-size sweep (`benchmarks/bench_scale.py`)", ""]
    scale = out / "scale.md"
    if scale.is_file():
        body = scale.read_text().splitlines()
        lines += body[2:] if len(body) > 2 else ["(empty)"]  # without its "# ..." title and the blank line after it
    else:
        lines.append("no result")
    finish_summary(out, lines, steps, results)


def finish_summary(out: Path, lines: list[str], steps: dict, results: dict) -> None:
    lines += ["", "Full per-step output: `gpu-check.log`; all numbers: `gpu-results.json`.", ""]
    text = "\n".join(lines)
    (out / "gpu-results.md").write_text(text)
    (out / "gpu-results.json").write_text(json.dumps({"steps": steps, **results}, indent=1, default=str))
    print(text, flush=True)


def main() -> None:
    argv = sys.argv[1:]
    train_argv: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, train_argv = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("env")
    p.add_argument("--runs", required=True)
    p = sub.add_parser("train")
    p.add_argument("--runs", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--target-ndcg", type=float, default=0.18, help="validation NDCG@10 whose first epoch is reported")
    p = sub.add_parser("evaltime")
    p.add_argument("--runs", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--dataset", default="ml-1m")
    p.add_argument("--model", default=None, help="run folder of a trained model (default: random SASRec)")
    p.add_argument("--device", default=None)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 2048, 8192])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max-history", type=int, default=None, help=argparse.SUPPRESS)
    p = sub.add_parser("tiny-backbone")
    p.add_argument("--source", required=True)
    p.add_argument("--dest", required=True)
    p = sub.add_parser("summary")
    p.add_argument("--runs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--families", action="store_true", help="the --families mode: BERT4Rec, GRU4Rec, NARM runs only")
    args = parser.parse_args(argv)
    if args.cmd == "train":
        cmd_train(args, train_argv)
    else:
        {"env": cmd_env, "evaltime": cmd_evaltime, "tiny-backbone": cmd_tiny_backbone, "summary": cmd_summary}[
            args.cmd](args)


if __name__ == "__main__":
    main()
