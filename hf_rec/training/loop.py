"""The one training loop of hf_rec, for every model family, on one CPU, one GPU or many (`accelerate launch`).

Read top to bottom: set up -> data -> model -> optimiser -> (resume) -> epochs (train, validate, checkpoint,
early stop) -> best weights -> test -> write the run folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import time
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


def build_model(run: RunConfig, tokenizer: ItemTokenizer, device: torch.device | None = None):
    """The family's recommendation head, sized to the tokenizer's vocabulary (text families encode their item texts
    on `device`)."""
    config_class, head_class = FAMILIES[run.family]
    kwargs = run.model_kwargs()
    config = config_class(
        vocab_size=tokenizer.vocab_size,
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        **kwargs,
    )
    if hasattr(head_class, "from_item_tokenizer"):  # families that read item texts (llmrec)
        return head_class.from_item_tokenizer(config, tokenizer, device=device)
    return AutoModelForSequentialRecommendation.from_config(config)


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
    rows = rows.with_format(columns=["item_ids"])
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


# What a run writes into its folder (besides the exported modeling files): a fresh run refuses a folder holding
# any of these unless told to overwrite it, and then removes exactly these.
RUN_DIRS = (CHECKPOINTS, BEST_MODEL, "tensorboard", "adapter", "backbone", "backbone_tokenizer")
RUN_FILES = ("config.json", "model.safetensors", "item_tokenizer.json", "training_config.yaml", "metrics.json",
             "training_curves.png", "README.md", "test_metrics.json")


def check_output_dir(output_dir: Path, overwrite: bool) -> None:
    """Refuse to start a fresh run in a folder that holds another run, unless `overwrite`."""
    if overwrite or not output_dir.is_dir():
        return
    markers = [name for name in (CHECKPOINTS, BEST_MODEL, "metrics.json", "model.safetensors", "training_config.yaml")
               if (output_dir / name).exists()]
    if markers:
        raise ValueError(
            f"{output_dir} already holds a run ({', '.join(markers)}): pass --overwrite to replace it, --resume to "
            "continue it, or choose another --output-dir"
        )


def remove_run_files(output_dir: Path) -> None:
    """Remove an earlier run's files (and only those) from `output_dir`, so a fresh run leaves nothing stale."""
    if not output_dir.is_dir():
        return
    # the modeling files save_pretrained exported next to the weights (another family's may differ from this run's)
    modeling_files = {p.name for p in (Path(__file__).resolve().parents[1] / "models").glob("*.py")}
    for name in RUN_DIRS:
        if (output_dir / name).is_dir():
            shutil.rmtree(output_dir / name)
    for path in output_dir.iterdir():
        if path.is_file() and (path.name in RUN_FILES or path.name in modeling_files):
            path.unlink()


def file_digest(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_problem(folder: Path) -> str | None:
    """Why the checkpoint `folder` cannot be resumed from (a missing, truncated or changed file, named), or None.
    Its trainer state lists the sha256 of every file `save_state` wrote (checkpoints written before that list
    existed are trusted as they are)."""
    try:
        state = json.loads((folder / TRAINER_STATE).read_text())
    except (OSError, ValueError) as err:
        return f"{folder / TRAINER_STATE} is missing or unreadable ({err})"
    for name, digest in state.get("files", {}).items():
        if not (folder / name).is_file():
            return f"{folder / name} is missing"
        if file_digest(folder / name) != digest:
            return f"{folder / name} is truncated or changed since it was written"
    return None


def latest_checkpoint(output_dir: Path, report=None) -> Path | None:
    """The newest intact checkpoint. A damaged newer one is skipped, and `report` (e.g. `print`) says which and why;
    when checkpoints exist but none is intact, a ValueError names the problems."""
    folder = output_dir / CHECKPOINTS
    candidates = sorted(folder.glob("epoch_[0-9]*[0-9]"), reverse=True) if folder.is_dir() else []
    problems = []
    for checkpoint in candidates:
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            if problems and report is not None:
                report(f"--resume: skipped damaged checkpoint(s): {'; '.join(problems)}; using {checkpoint.name}")
            return checkpoint
        problems.append(problem)
    if problems:
        raise ValueError(f"--resume: no intact checkpoint in {folder}: {'; '.join(problems)}")
    return None


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
    set_seed(tc.seed)
    if tc.cpu_threads and accelerator.device.type == "cpu":
        torch.set_num_threads(tc.cpu_threads)
    main = accelerator.is_main_process
    if resume and latest_checkpoint(output_dir, report=accelerator.print) is None:
        accelerator.print(f"--resume: no complete checkpoint in {output_dir / CHECKPOINTS}; starting from scratch")
        resume = False
    if not resume:
        check_output_dir(output_dir, overwrite)  # before any work: a folder holding another run is refused

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
    with accelerator.main_process_first():  # text models: the main process writes the text cache, the others read it
        model = build_model(run, tokenizer, accelerator.device)
    if main and not resume:
        remove_run_files(output_dir)  # --overwrite: the old run goes only now that this one has data and a model
    accelerator.wait_for_everyone()
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
    scheduler = make_scheduler(optimizer, tc, len(train_loader), accelerator.num_processes)
    shuffle_generator = train_loader.shuffle_generator
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)

    state = {"epoch": 0, "global_step": 0, "best_metric": -1.0, "best_epoch": None, "bad_epochs": 0, "history": [],
             "wall_seconds": 0.0, "resumed_at_epochs": []}
    if resume:
        checkpoint = latest_checkpoint(output_dir)
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / TRAINER_STATE).read_text())
        state.pop("files", None)
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
        shuffle_for_epoch(shuffle_generator, tc.seed, epoch)
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
            refresh_item_table(accelerator, accelerator.unwrap_model(model))
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
            "mixed_precision": accelerator.mixed_precision,
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
    # Not `end_training()`: it also destroys the process group, and a second run in the same `accelerate launch`
    # process (studies, notebooks) needs it.
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.free_memory()  # forget this run's model, optimiser, loaders and scheduler
    return results


def refresh_item_table(accelerator: Accelerator, model) -> None:
    """Text models trained end to end (LLMRec `lora`) re-encode their catalogue before scoring: each process encodes
    its share and gathers the rest, instead of every process encoding all of it."""
    if hasattr(model, "refresh_item_cache"):
        model.eval()
        model.refresh_item_cache(accelerator.process_index, accelerator.num_processes, accelerator.gather)


def save_checkpoint(accelerator: Accelerator, output_dir: Path, state: dict, keep: int) -> None:
    """`save_state` for this epoch into a temporary folder, the trainer state with every file's sha256 (checked on
    `--resume`), then one rename makes the checkpoint appear complete; older ones beyond `keep` are pruned."""
    final = output_dir / CHECKPOINTS / f"epoch_{state['epoch']:04d}"
    partial = final.with_name(final.name + ".partial")
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)  # left by a process killed while saving
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    if accelerator.is_main_process:
        files = {str(p.relative_to(partial)): file_digest(p) for p in sorted(partial.rglob("*")) if p.is_file()}
        atomic_write_text(partial / TRAINER_STATE, json.dumps({**state, "files": files}, indent=1))
        if final.exists():  # the same epoch saved again (a resume from an earlier checkpoint)
            shutil.rmtree(final)
        os.replace(partial, final)
        complete = sorted(folder for folder in final.parent.glob("epoch_[0-9]*[0-9]"))
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
