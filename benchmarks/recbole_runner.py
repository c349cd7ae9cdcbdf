"""Times RecBole 1.2.1 training batches; run by `bench_recbole.py` with the RecBole venv's python, not hf_rec's.

    /work/recbole-venv/bin/python benchmarks/recbole_runner.py --model SASRec --data-path DIR --dataset NAME \
        --threads 1 --warmup 3 --batches 20 [--dropout 0.2]

DIR/NAME/NAME.inter is a RecBole atomic file (`user_id:token item_id:token timestamp:float`) written by the bench.
Prints one JSON line prefixed with `RESULT ` on stdout; everything else RecBole logs is noise for the parent.
This file imports nothing from hf_rec (RecBole lives in its own venv: it needs numpy<2 and setuptools<82).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

# RecBole pickles its config into checkpoints; torch >= 2.6 refuses to load them without this (PEERS.md).
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def recbole_config(args) -> dict:
    """The matched settings of ../shared/PEERS.md: d=64, length 200, 2 blocks, 2 heads, inner 256, CE, batch 128."""
    return {
        "data_path": args.data_path,
        "checkpoint_dir": os.path.join(args.data_path, "saved"),
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",  # the position in the user's sequence, not unix time (float32 ties, PEERS.md)
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 200,
        "hidden_size": 64,
        "n_layers": 2,
        "n_heads": 2,
        "inner_size": 256,
        "hidden_dropout_prob": args.dropout,
        "attn_dropout_prob": args.dropout,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "train_batch_size": 128,
        "learning_rate": 0.001,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
        "metrics": ["Hit", "NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",  # the default MRR@10 is not among the metrics and fails
        "device": "cpu",
        "use_gpu": False,
        "seed": 2020,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
    }


def count_targets(model_name: str, interaction) -> int:
    """Loss positions in one batch. SASRec (CE): one next-item target per sample. BERT4Rec: the masked positions
    that enter its loss, `MASK_INDEX > 0` as in `BERT4Rec.calculate_loss` (so a masked first position is masked in
    the input but not counted, as RecBole does not train on it). RecBole's `mask_itemseq` transform draws them per
    batch: ~20% of every sequence or, in `ft_ratio` = 50% of batches, only the last item."""
    if model_name == "BERT4Rec":
        return int((interaction["MASK_INDEX"] > 0).sum())
    return len(interaction)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["SASRec", "BERT4Rec"], required=True)
    parser.add_argument("--data-path", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--dropout", type=float, default=0.2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    start = time.perf_counter()
    config = Config(model=args.model, dataset=args.dataset, config_dict=recbole_config(args))
    # Importing RecBole's sequential models (sine.py) switches anomaly detection on globally: ~4x slower steps.
    torch.autograd.set_detect_anomaly(False)
    torch.set_num_threads(args.threads)  # RecBole's init may reset it
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _valid_data, _test_data = data_preparation(config, dataset)
    prepare_seconds = time.perf_counter() - start
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    torch.autograd.set_detect_anomaly(False)
    torch.set_num_threads(args.threads)

    # The body of RecBole's Trainer._train_epoch (no AMP, one process), one batch at a time so it can be timed.
    # The timer covers fetching the batch too: RecBole builds padded batches and BERT4Rec's masks in Python there.
    model.train()
    times, targets = [], []
    batches = iter(train_data)
    for step in range(args.warmup + args.batches):
        t0 = time.perf_counter()
        interaction = next(batches).to(trainer.device)
        trainer.optimizer.zero_grad()
        loss = model.calculate_loss(interaction)
        loss.backward()
        if trainer.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), **trainer.clip_grad_norm)
        trainer.optimizer.step()
        elapsed = time.perf_counter() - t0
        if step >= args.warmup:
            times.append(elapsed)
            targets.append(count_targets(args.model, interaction))
    seconds_per_batch = sum(times) / len(times)
    result = {
        "framework": "RecBole",
        "recbole_version": __import__("recbole").__version__,
        "torch_version": torch.__version__,
        "model": args.model,
        "threads": torch.get_num_threads(),
        "anomaly_detection": torch.is_anomaly_enabled(),
        "users": int(dataset.user_num - 1),  # RecBole counts its [PAD] user/item
        "items": int(dataset.item_num - 1),
        "train_samples": len(train_data._dataset),
        "batches_per_epoch": len(train_data),
        "warmup_batches": args.warmup,
        "timed_batches": len(times),
        "timed_seconds": sum(times),
        "seconds_per_batch": seconds_per_batch,
        "median_seconds_per_batch": sorted(times)[len(times) // 2],
        "timed_targets": sum(targets),
        "targets_per_second": sum(targets) / sum(times),
        "epoch_seconds_extrapolated": seconds_per_batch * len(train_data),
        "prepare_seconds": prepare_seconds,
        "peak_rss_mib": peak_rss_mib(),
        "last_loss": float(loss.detach()),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
