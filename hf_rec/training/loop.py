"""The one training loop of hf_rec, for every model family, on one CPU, one GPU or many (`accelerate launch`).

`train` reads top to bottom: set up -> data and model -> optimiser, schedule, (resumed) state -> epochs (train one
epoch, validate and keep the best, checkpoint, early stop) -> best weights -> test -> write the run folder. Its steps
follow it in the same order; the helpers they use (accelerator, schedule, loader, run-folder and checkpoint
handling) come before it. (About 520 lines: everything the loop does on one process or many stays in this one file,
so that it reads in one sitting; what a run writes and reads back is in run_folder.py, how a sharded model (FSDP2,
ZeRO-3) is evaluated and saved in sharding.py.)
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from torch.utils.data import DataLoader, RandomSampler
from tqdm.auto import tqdm
from transformers import get_scheduler
from transformers.trainer_pt_utils import LengthGroupedSampler

from ..data import ItemTokenizer, dataset_fingerprint, dataset_statistics, load_sequential_dataset
from ..data.collators import SequentialCollator
from ..evaluation import Evaluator, evaluate_segments
from ..evaluation.cold_start import cold_start_split
from ..models import FAMILIES, AutoModelForSequentialRecommendation
from .config import RunConfig
from .run_folder import (
    BEST_MODEL,
    CHECKPOINTS,
    TRAINER_STATE,
    check_output_dir,
    latest_checkpoint,
    remove_run_files,
    save_checkpoint,
    write_run_folder,
)
from .sharding import check_sharding, gathered_parameters, is_sharded, save_model

logger = logging.getLogger("hf_rec.training")

def build_model(run: RunConfig, tokenizer: ItemTokenizer, device: torch.device | None = None):
    """The family's recommendation head, sized to the tokenizer's vocabulary (text families encode their item texts
    on `device`)."""
    config_class, head_class = FAMILIES[run.family]
    kwargs = run.model_kwargs()
    features = {k: v for k, v in tokenizer.feature_config().items() if v and run.data.load_options().get(k)}
    config = config_class(
        vocab_size=tokenizer.vocab_size,
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        **features,
        **kwargs,
    )
    if hasattr(head_class, "from_item_tokenizer"):  # families that read item texts (llmrec)
        model = head_class.from_item_tokenizer(config, tokenizer, device=device)
    else:
        model = AutoModelForSequentialRecommendation.from_config(config)
    for name in config.item_features or {}:  # each item's feature values: a buffer, saved with the weights
        model.features.set_item_feature_ids(name, torch.from_numpy(tokenizer.item_feature_ids(name)))
    if run.training.init_from:
        initialise_from(model, run.training.init_from)
    return model


def saved_weights(folder: str | Path) -> Path:
    """`folder`'s model.safetensors (`training.init_from`), or a ValueError naming the folder."""
    weights = Path(folder).expanduser() / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"training.init_from: {folder} holds no model.safetensors (expected a saved model folder)")
    return weights


def initialise_from(model, folder: str | Path) -> None:
    """Copy every tensor of the saved model in `folder` whose name and shape match one of `model`'s (parameters and
    buffers); a folder that shares none is refused."""
    from safetensors.torch import load_file

    weights = saved_weights(folder)
    own = model.state_dict()
    matching = {k: v for k, v in load_file(str(weights)).items() if k in own and own[k].shape == v.shape}
    if not matching:
        raise ValueError(f"training.init_from: no tensor of {weights} matches this model (names and shapes differ)")
    with torch.no_grad():
        for name, value in matching.items():
            own[name].copy_(value)
    logger.info("initialised %d of %d tensors from %s", len(matching), len(own), folder)


def item_counts(sequences, vocab_size: int) -> torch.Tensor:
    """Occurrences of each item index in the training sequences."""
    flat = torch.tensor([i for seq in sequences for i in seq], dtype=torch.long)
    return torch.bincount(flat, minlength=vocab_size).float()


def make_train_loader(run: RunConfig, model, tokenizer: ItemTokenizer, train_split, process_index: int = 0):
    """The training DataLoader of `run` for `model`: the family's collator (causal next-item labels or cloze masks),
    optionally length-grouped batches. Users too short to give a training signal are left out (they are still
    evaluated). The shuffle draws from `loader.shuffle_generator`, which `shuffle_for_epoch` re-seeds from
    (seed, epoch) before each epoch, so the order of epoch e is the same on every process and after `--resume`.
    Returns `(loader, collator, number of users left out)`."""
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
    generator = torch.Generator()
    # Only models that read times (a time bias, context), user or interaction features get them in their batches.
    columns = ["item_ids"]
    for column, wanted in (("timestamps", model.reads_timestamps), ("user_features", model.reads_user_features),
                           ("interaction_features", model.reads_interaction_features)):  # fmt: skip
        if wanted:
            if column not in train_split.column_names:
                raise ValueError(f"the model reads {column} but the training split has no {column} (data.{column})")
            columns.append(column)
    rows = rows.with_format(columns=columns)
    if tc.group_by_length:  # similar lengths per batch -> little padding; still shuffled within mega-batches
        window = model.config.max_position_embeddings + 1
        lengths = [min(len(s), window) for s in rows["item_ids"]]
        sampler = LengthGroupedSampler(tc.batch_size, lengths=lengths, generator=generator)
    else:
        sampler = RandomSampler(rows, generator=generator)
    loader = DataLoader(
        rows,
        batch_size=tc.batch_size,
        sampler=sampler,
        collate_fn=collator,
        num_workers=tc.num_workers,
        pin_memory=torch.cuda.is_available(),
    )
    loader.shuffle_generator = generator
    return loader, collator, len(train_split) - len(rows)


def shuffle_for_epoch(generator: torch.Generator, seed: int, epoch: int) -> None:
    """Seed the training shuffle of `epoch` from (seed, epoch) alone: the same order on every process, and the same
    order for a resumed run as for an uninterrupted one (the generator's state is not part of a checkpoint)."""
    generator.manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))


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


def make_accelerator(run: RunConfig, output_dir: Path) -> Accelerator:
    """The run's `Accelerator`. Mixed precision follows one rule: `training.mixed_precision` where the run config sets
    it, else the launcher's (`accelerate launch` config file, `--mixed_precision`, `ACCELERATE_MIXED_PRECISION`)."""
    tc = run.training
    # accelerate keeps one AcceleratorState per process and refuses a second Accelerator with another mixed precision
    # (and ignores another dynamo backend). A run that asks for different ones (a study's acceleration grid, a
    # notebook) starts from a clean AcceleratorState; the process group (PartialState) stays. accelerate has no
    # public reset, hence the private call, made only when the settings differ.
    precision = tc.mixed_precision or os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    dynamo = "inductor" if tc.torch_compile else "no"
    current = AcceleratorState._shared_state
    if current and (
        current.get("_mixed_precision") != precision
        or str(getattr(current.get("dynamo_plugin"), "backend", "no")).lower() != dynamo
    ):
        AcceleratorState._reset_state()
    return Accelerator(
        gradient_accumulation_steps=tc.gradient_accumulation_steps,
        mixed_precision=tc.mixed_precision,
        dynamo_backend=dynamo,
        log_with="tensorboard",
        project_dir=str(output_dir),
        # Buffers (text tables, item popularity) are constant or per-process memory banks: broadcasting them from
        # rank 0 at every forward is wasted bandwidth.
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
    )


def make_scheduler(optimizer, tc, num_batches: int, num_processes: int):
    """The learning-rate schedule over the whole run. accelerate steps a prepared scheduler `num_processes` times per
    optimiser step (each step of N processes consumes N batches), so its length is counted the same way: every
    process count reaches the end of the schedule at the end of training, and `warmup_steps` (optimiser steps of
    a one-process run) are the same share of training whatever the number of processes."""
    per_process = math.ceil(num_batches / num_processes)  # accelerate shards batches this way (even_batches)
    steps_per_epoch = math.ceil(per_process / tc.gradient_accumulation_steps)
    return get_scheduler(
        tc.lr_scheduler,
        optimizer,
        num_warmup_steps=tc.warmup_steps,
        num_training_steps=max(steps_per_epoch * num_processes * tc.num_epochs, 1),
    )


def train(
    run: RunConfig,
    output_dir: str | Path,
    resume: bool = False,
    accelerator: Accelerator | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train `run` and write the run folder. Returns the metrics written to `metrics.json`.

    A folder that already holds a run is refused unless `resume` (continue it) or `overwrite` (replace it: its run
    files are removed once the data and the model have been built, so a failing run deletes nothing)."""
    output_dir = Path(output_dir)
    tc, ev = run.training, run.evaluation
    if accelerator is None:
        accelerator = make_accelerator(run, output_dir)
    check_sharding(run, accelerator)
    set_seed(tc.seed)
    if tc.cpu_threads and accelerator.device.type == "cpu":
        torch.set_num_threads(tc.cpu_threads)
    checkpoint = latest_checkpoint(output_dir, report=accelerator.print) if resume else None  # checksums read once
    if resume and checkpoint is None:
        accelerator.print(f"--resume: no complete checkpoint in {output_dir / CHECKPOINTS}; starting from scratch")
        resume = False
    if not resume:
        check_output_dir(output_dir, overwrite)  # before any work: a folder holding another run is refused
        if tc.init_from:
            saved_weights(tc.init_from)

    # ---- data and model ----------------------------------------------------------------------------------------
    data = load_run_data(run, accelerator)
    with accelerator.main_process_first():  # text models: the main process writes the text cache, the others read it
        model = build_model(run, data.tokenizer, accelerator.device)
    if accelerator.is_main_process and not resume:
        remove_run_files(output_dir)  # --overwrite: the old run goes only now that this one has data and a model
    accelerator.wait_for_everyone()
    train_loader, collator = prepare_training_inputs(run, model, data, accelerator)
    validator = make_evaluator(run, data.splits["validation"])

    # ---- optimiser, schedule, (resumed) state ------------------------------------------------------------------
    optimizer = make_optimizer(model, tc)
    scheduler = make_scheduler(optimizer, tc, len(train_loader), accelerator.num_processes)
    shuffle_generator = train_loader.shuffle_generator
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    state = resumed_state(accelerator, checkpoint) if resume else new_state()
    accelerator.init_trackers("tensorboard", config=tracker_config(run))  # -> <output_dir>/tensorboard
    run_start = time.perf_counter()
    wall_before = state["wall_seconds"]  # wall clock of the processes before a resume (None: unknown)
    train_seconds = sum(h.get("train_seconds", 0.0) for h in state["history"])

    # ---- epochs ------------------------------------------------------------------------------------------------
    for epoch in range(state["epoch"] + 1, tc.num_epochs + 1):
        collator.rng = np.random.default_rng([tc.seed, epoch, accelerator.process_index])  # resumable masking
        shuffle_for_epoch(shuffle_generator, tc.seed, epoch)
        mean_loss, epoch_seconds = train_one_epoch(accelerator, model, train_loader, optimizer, scheduler, tc, state,
                                                   epoch)  # fmt: skip
        train_seconds += epoch_seconds
        record = {"epoch": epoch, "train_loss": mean_loss, "train_seconds": epoch_seconds}
        # Every process must take the same decision, so the slowest process's clock decides.
        out_of_time = bool(tc.max_train_minutes) and (
            accelerator.gather(torch.tensor([train_seconds], device=accelerator.device)).max().item()
            >= 60 * tc.max_train_minutes
        )
        summary = f"epoch {epoch}: loss {mean_loss:.4f}, {epoch_seconds:.1f}s"
        if epoch % ev.eval_every == 0 or epoch == tc.num_epochs or out_of_time:
            record["validation"] = validate_and_keep_best(accelerator, model, validator, data.tokenizer, output_dir,
                                                          ev, state, epoch)  # fmt: skip
            summary += ", validation " + ", ".join(f"{k} {v:.4f}" for k, v in record["validation"].items() if "@" in k)
        accelerator.print(summary)
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

    # ---- best weights, test, run folder ------------------------------------------------------------------------
    accelerator.wait_for_everyone()
    best = best_model(accelerator, model, output_dir, data)
    results = evaluate_on_test(run, accelerator, best, data, state)
    results["training"].update(
        train_seconds=train_seconds,
        wall_seconds=None if wall_before is None else wall_before + time.perf_counter() - run_start,
    )
    if accelerator.is_main_process:
        write_run_folder(output_dir, best, data.tokenizer, run, results)
    accelerator.wait_for_everyone()
    # Not `end_training()`: it also destroys the process group, and a second run in the same `accelerate launch`
    # process (studies, notebooks) needs it.
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.free_memory()  # forget this run's model, optimiser, loaders and scheduler
    return results


# ---- the steps of `train`, in the order it takes them ---------------------------------------------------------


@dataclass
class RunData:
    """The splits a run trains, validates and tests on. With `data.cold_item_fraction`, `splits` has the held-out
    items removed from training and validation, `cold_test` holds the test users whose target is one of them."""

    splits: Any
    tokenizer: ItemTokenizer
    test_split: Any
    fingerprint: str
    statistics: dict
    cold_test: Any = None
    cold_items: list[int] | None = None


def load_run_data(run: RunConfig, accelerator: Accelerator) -> RunData:
    with accelerator.main_process_first():  # the main process builds datasets' Arrow cache, the others read it
        splits, tokenizer = load_sequential_dataset(run.data.name, run.data.data_dir, **run.data.load_options())
    data = RunData(splits, tokenizer, splits["test"], dataset_fingerprint(splits, run.data.load_options()),
                   dataset_statistics(splits))  # fmt: skip
    if run.data.cold_item_fraction:  # cold start: some items appear in no training or validation sequence
        data.splits, data.cold_test, data.cold_items = cold_start_split(
            splits, tokenizer, run.data.cold_item_fraction, seed=run.data.cold_item_seed
        )
        accelerator.print(f"cold start: {len(data.cold_items)} items held out of training; {len(data.cold_test)} test "
                          "users have a cold target")  # fmt: skip
    return data


def prepare_training_inputs(run: RunConfig, model, data: RunData, accelerator: Accelerator):
    """The training loader and its collator; the model learns which items may be negatives (not the held-out cold
    items) and, for popularity sampling, how popular each item is."""
    train_loader, collator, skipped = make_train_loader(run, model, data.tokenizer, data.splits["train"],
                                                        accelerator.process_index)  # fmt: skip
    if skipped:
        accelerator.print(
            f"{skipped} users have fewer than {collator.min_length(collator.objective)} training items and give no "
            f"{collator.objective} training signal (they are still evaluated)"
        )
    if data.cold_test is not None:  # held-out items are not even negatives while training
        model.set_training_items(sorted(set(data.tokenizer.item_indices) - set(data.cold_items)))
    if model.config.negative_sampling == "popularity":
        model.set_item_popularity(item_counts(data.splits["train"]["item_ids"], data.tokenizer.vocab_size))
    return train_loader, collator


def make_optimizer(model, tc) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and embeddings only (not on biases and LayerNorm weights)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tc.learning_rate,
        betas=(0.9, tc.adam_beta2),
    )


def new_state() -> dict[str, Any]:
    """The trainer state a checkpoint stores next to `save_state`'s files."""
    return {"epoch": 0, "global_step": 0, "best_metric": -1.0, "best_epoch": None, "bad_epochs": 0, "history": [],
            "wall_seconds": 0.0, "resumed_at_epochs": []}  # fmt: skip


def resumed_state(accelerator: Accelerator, checkpoint: Path) -> dict[str, Any]:
    """Load `checkpoint` (the newest intact one) into the prepared objects and return its trainer state."""
    accelerator.load_state(str(checkpoint))
    state = json.loads((checkpoint / TRAINER_STATE).read_text())
    state.pop("files", None)
    accelerator.print(f"resumed from {checkpoint} (epoch {state['epoch']} done)")
    # The card must say a run was resumed: the configuration given now may differ from the earlier epochs'.
    state["resumed_at_epochs"] = state.get("resumed_at_epochs", []) + [state["epoch"]]
    state.setdefault("wall_seconds", None)  # a checkpoint from before this field: earlier wall clock unknown
    return state


def tracker_config(run: RunConfig) -> dict[str, Any]:
    """The run config flattened for TensorBoard's hparams (`section.key` -> scalar or string)."""
    return {f"{section}.{k}": (v if isinstance(v, (int, float, str, bool)) else str(v))
            for section, values in run.to_dict().items() for k, v in values.items()}  # fmt: skip


def train_one_epoch(accelerator, model, loader, optimizer, scheduler, tc, state, epoch) -> tuple[float, float]:
    """One pass over the training loader; returns (mean loss over the processes, seconds)."""
    model.train()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=accelerator.device)
    batches = 0
    progress = tqdm(loader, desc=f"epoch {epoch}", disable=not accelerator.is_main_process, leave=False)
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
                                step=state["global_step"])  # fmt: skip
                progress.set_postfix(loss=f"{loss.item():.4f}")
    seconds = time.perf_counter() - start
    return accelerator.reduce(loss_sum / max(batches, 1), reduction="mean").item(), seconds


def validate_and_keep_best(accelerator, model, validator, tokenizer, output_dir, ev, state, epoch) -> dict:
    """Validation metrics of this epoch; a new best is written to `best_model/` (atomically, with the tokenizer, so
    an interrupted run's best model can still be evaluated and used)."""
    unwrapped = accelerator.unwrap_model(model)
    with gathered_parameters(accelerator, model):
        refresh_item_table(accelerator, unwrapped)
        metrics = validator.evaluate(unwrapped, accelerator)
    accelerator.log({f"validation/{k}": v for k, v in metrics.items()}, step=state["global_step"])
    score = metrics[ev.metric_for_best_model]
    if score > state["best_metric"]:  # (NaN never is: a run whose metric is NaN keeps no best model)
        state.update(best_metric=score, best_epoch=epoch, bad_epochs=0)
        save_model(accelerator, model, output_dir / BEST_MODEL, tokenizer)
    else:
        state["bad_epochs"] += 1
    return metrics


def best_model(accelerator: Accelerator, model, output_dir: Path, data: RunData):
    """The best validation epoch's weights (the last weights when no epoch was validated better); held-out cold
    items get the vector a new item would get (text models)."""
    best = accelerator.unwrap_model(model)
    if is_sharded(accelerator) and not (output_dir / BEST_MODEL).is_dir():
        # No epoch was better (NaN metric, no validation): the last weights, gathered into a plain model where the
        # best would be, so that every process tests the same unsharded model.
        save_model(accelerator, model, output_dir / BEST_MODEL, data.tokenizer)
    if (output_dir / BEST_MODEL).is_dir():
        best = AutoModelForSequentialRecommendation.from_pretrained(output_dir / BEST_MODEL).to(accelerator.device)
    if data.cold_items is not None:
        best.map_untrained_items(data.cold_items)
    return best


def evaluate_on_test(run: RunConfig, accelerator: Accelerator, best, data: RunData, state: dict) -> dict[str, Any]:
    """Test metrics (one pass gives the overall, per-segment and beyond-accuracy metrics), cold-target metrics, and
    everything `metrics.json` and the model card say about the run (the caller adds the time spent)."""
    ev = run.evaluation
    test_segments = evaluate_segments(
        best, data.test_split, data.splits["train"], evaluator=make_evaluator(run, data.test_split, seed_offset=1),
        accelerator=accelerator,
    )
    test_metrics = test_segments.pop("overall")
    cold_metrics = None
    if data.cold_test is not None and len(data.cold_test):
        cold_metrics = make_evaluator(run, data.cold_test, seed_offset=2).evaluate(best, accelerator)
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
            "fingerprint": data.fingerprint,
            "statistics": data.statistics,
        },
        "training": {
            "train_seconds": None,
            "wall_seconds": None,
            "epochs_run": state["epoch"],
            "resumed_at_epochs": state["resumed_at_epochs"],
            "num_processes": accelerator.num_processes,
            "device": describe_device(accelerator),
            "mixed_precision": accelerator.mixed_precision,
        },
        "num_parameters": sum(p.numel() for p in best.parameters()),
        "test_segments": test_segments,
    }
    if data.cold_test is not None:
        results["test_cold"] = cold_metrics
        results["dataset"]["cold_items"] = {"fraction": run.data.cold_item_fraction, "seed": run.data.cold_item_seed}
    return results


def refresh_item_table(accelerator: Accelerator, model) -> None:
    """Text models trained end to end (LLMRec `lora`) re-encode their catalogue before scoring: each process encodes
    its share and gathers the rest, instead of every process encoding all of it."""
    if hasattr(model, "refresh_item_cache"):
        model.eval()
        model.refresh_item_cache(accelerator.process_index, accelerator.num_processes, accelerator.gather)


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
