"""The run folder: what `train` writes (model, card, metrics, `best_model/`, verified checkpoints) and reads back
on `--resume`, and the rule that a fresh run never takes over a folder holding another run."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from accelerate import Accelerator

from ..atomic import atomic_write_text
from ..data import ItemTokenizer
from ..data.download import sha256_file
from .config import RunConfig

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
BEST_MODEL = "best_model"


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
        if sha256_file(folder / name) != digest:
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


class _TiedWeightsNote(logging.Filter):
    """accelerate's `save_state` drops tensors that share storage before writing safetensors and warns at every
    epoch. hf_rec's only shared tensors are tied output heads (`item_head.weight` is the item embedding), which
    loading ties again, so the note is dropped (the exact resume tests would catch a weight that did not load)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in record.getMessage()


logging.getLogger("accelerate.utils.other").addFilter(_TiedWeightsNote())


def save_checkpoint(accelerator: Accelerator, output_dir: Path, state: dict, keep: int) -> None:
    """`save_state` for this epoch into a temporary folder, the trainer state with every file's sha256 (checked on
    `--resume`), then one rename makes the checkpoint appear complete; older ones beyond `keep` are pruned.
    (accelerate's `ProjectConfiguration(automatic_checkpoint_naming=True, total_limit=...)` names and prunes too, but
    writes into the final folder, so a run killed while saving would leave a checkpoint that looks complete.)"""
    final = output_dir / CHECKPOINTS / f"epoch_{state['epoch']:04d}"
    partial = final.with_name(final.name + ".partial")
    if accelerator.is_main_process:
        if partial.exists():
            shutil.rmtree(partial)  # left by a process killed while saving
        partial.mkdir(parents=True)
    # Every process writes into the folder (its RNG states; with FSDP2 its shard of the weights and optimiser), so
    # it exists before any of them writes, and every file is there before it is hashed and renamed.
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        files = {str(p.relative_to(partial)): sha256_file(p) for p in sorted(partial.rglob("*")) if p.is_file()}
        atomic_write_text(partial / TRAINER_STATE, json.dumps({**state, "files": files}, indent=1))
        if final.exists():  # the same epoch saved again (a resume from an earlier checkpoint)
            shutil.rmtree(final)
        os.replace(partial, final)
        complete = sorted(folder for folder in final.parent.glob("epoch_[0-9]*[0-9]"))
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


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
    card = render_model_card(results, run.to_dict(), model_config=model.config.to_dict())
    atomic_write_text(output_dir / "README.md", card)
