"""Training on several processes (`accelerate launch`, two CPU processes over gloo) gives what one process gives:
the same learning-rate schedule at the same fraction of training, LoRA text models that train under DDP, exact
resume, and a process that can train more than once. Each launch is a fresh interpreter: accelerate's state is a
per-process singleton and forking a launcher inside this threaded test process can deadlock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.utils import DistributedType

from hf_rec.training import RunConfig, train
from test_llmrec import backbones  # noqa: F401  (tiny random BERT with a pooling layer, Llama, Qwen2)

REPO = Path(__file__).resolve().parents[1]


def tiny_raw(data_dir, **sections) -> dict:
    """A few-second SASRec run on ML-100K: 943 users at batch 60 = 16 batches, 8 per process of two."""
    raw = {
        "model": {"family": "sasrec", "hidden_size": 16, "num_attention_heads": 1, "max_position_embeddings": 20},
        "data": {"name": "ml-100k", "data_dir": str(data_dir)},
        "training": {"num_epochs": 2, "batch_size": 60, "learning_rate": 0.005, "seed": 0, "log_every": 1},
        "evaluation": {"ks": [10], "batch_size": 512},
    }
    for section, values in sections.items():
        raw[section].update(values)
    return raw


def write_config(path: Path, raw: dict) -> Path:
    RunConfig.from_dict(raw).save(path)
    return path


def launch_two_processes(*args, timeout=900, fsdp2=False):
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if fsdp2:  # shard with FSDP2 (see tests/multiprocess_runs.py)
        env["HF_REC_TEST_FSDP2"] = "1"
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--config_file", str(REPO / "configs" / "accelerate" / "cpu-2proc.yaml"),
               str(REPO / "tests" / "multiprocess_runs.py"), *map(str, args)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


def logged(run_dir: Path, tag: str) -> list[float]:
    """The values of a TensorBoard scalar, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return [e.value for e in sorted(events.Scalars(tag), key=lambda e: e.step)]


SCHEDULES = {
    "linear": {"lr_scheduler": "linear", "warmup_steps": 3, "gradient_accumulation_steps": 2},
    "cosine": {"lr_scheduler": "cosine", "warmup_steps": 2, "gradient_accumulation_steps": 2},
}


@pytest.fixture(scope="module")
def two_process_runs(ml100k_dir, tmp_path_factory):
    """One launch of two processes that trains three runs in a row: the two schedules, and the cosine run again
    with a time budget that stops it after epoch 1 (a run interrupted after its first checkpoint)."""
    root = tmp_path_factory.mktemp("ddp")
    configs = {name: write_config(root / f"{name}.yaml", tiny_raw(ml100k_dir, training=values))
               for name, values in SCHEDULES.items()}
    configs["stopped"] = write_config(root / "stopped.yaml", tiny_raw(
        ml100k_dir, training={**SCHEDULES["cosine"], "max_train_minutes": 1e-6}))
    launch_two_processes(*(x for name in ("linear", "cosine", "stopped") for x in (configs[name], root / name)))
    return root, configs


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_lr_schedule_of_two_processes_equals_one_process_at_the_same_fraction(name, two_process_runs, ml100k_dir,
                                                                              tmp_path):
    root, _ = two_process_runs
    train(RunConfig.from_dict(tiny_raw(ml100k_dir, training=SCHEDULES[name])), tmp_path / "one")
    one = logged(tmp_path / "one", "train/lr")  # 16 batches / 2 accumulated = 8 optimiser steps per epoch
    two = logged(root / name, "train/lr")  # 8 batches per process / 2 accumulated = 4 per epoch
    assert len(one) == 16 and len(two) == 8
    # Two processes' step s has seen the examples of one process's step 2s.
    assert two == pytest.approx(one[1::2], rel=1e-6)
    assert two[-1] == pytest.approx(0.0, abs=1e-12)  # both schedules end at 0 at the end of training
    assert max(one) == pytest.approx(0.005, rel=1e-6)  # the peak after warm-up (logged at step 3 or 2)


@pytest.mark.slow
def test_two_process_resume_continues_exactly(two_process_runs):
    """Resume the run stopped after epoch 1 (two processes again, with the uninterrupted run's config): the second
    epoch sees the uninterrupted run's shuffle order, masks and dropout, so everything after it is equal."""
    root, configs = two_process_runs
    stopped = json.loads((root / "stopped" / "metrics.json").read_text())
    assert stopped["training"]["epochs_run"] == 1 and stopped["training"]["num_processes"] == 2
    launch_two_processes(configs["cosine"], root / "stopped", "--resume")
    resumed = json.loads((root / "stopped" / "metrics.json").read_text())
    reference = json.loads((root / "cosine" / "metrics.json").read_text())
    assert resumed["training"]["resumed_at_epochs"] == [1]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in reference["history"]]
    assert resumed["test"] == reference["test"]
    assert logged(root / "stopped", "train/lr")[-4:] == logged(root / "cosine", "train/lr")[-4:]


def lora_raw(ml100k_dir, backbone, cheap: bool, item_representation: str = "text", **training) -> dict:
    """LLMRec `lora` on a tiny random backbone: LoRA on every block, or the cheap path (the top block on cached lower
    states, 32 items re-encoded per step)."""
    extra = {"lora_layers": 1, "lora_items_per_step": 32} if cheap else {}
    return tiny_raw(ml100k_dir, training={"batch_size": 128, "log_every": 50, **training}, model={
        "family": "llmrec", "mode": "lora", "backbone_name_or_path": backbone, "lora_r": 2, "max_text_length": 8,
        "item_representation": item_representation, "loss_type": "sampled_softmax", "num_negatives": 16, **extra})


@pytest.mark.slow
def test_lora_trains_on_two_processes(ml100k_dir, backbones, tmp_path):
    """LLMRec `lora` under DDP: a BERT backbone with a pooling layer and a Llama on the cheap path (top block only on
    cached lower states, 32 items re-encoded per step), two epochs each (a parameter without gradient would fail the
    second step); the catalogue re-encoded in shares across the processes equals a one-process re-encoding."""
    from hf_rec import AutoModelForSequentialRecommendation

    args = []
    for kind in ("bert", "llama"):
        raw = lora_raw(ml100k_dir, backbones[kind], cheap=kind == "llama")
        args += [write_config(tmp_path / f"{kind}.yaml", raw), tmp_path / kind]
    launch_two_processes(*args)
    for kind in ("bert", "llama"):
        results = json.loads((tmp_path / kind / "metrics.json").read_text())
        assert results["training"]["num_processes"] == 2 and results["training"]["epochs_run"] == 2
        assert results["test"]["num_users"] == 943  # (the tiny backbones' word lists miss ML-100K's titles: no
        assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in results["history"])  # quality claim here)
        model = AutoModelForSequentialRecommendation.from_pretrained(tmp_path / kind)
        saved = model.model.items.text_embeddings.clone()
        model.eval()
        model.refresh_item_cache()
        torch.testing.assert_close(model.model.items.text_embeddings, saved, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_fsdp2_sharded_lora_trains_like_ddp_saves_gathered_weights_and_resumes(ml100k_dir, backbones, tmp_path):
    """Two CPU processes with FSDP2 (each Llama block its own unit; gloo): LoRA on every block (text + ID items) and on
    the cheap path (text items) train as DDP does (same losses and metrics up to float summation order), the saved folder holds the gathered full
    weights (a one-process reload re-evaluates to the run's test metrics), and a run stopped after epoch 1 resumes
    from its sharded checkpoint to the uninterrupted run's result."""
    from hf_rec import AutoModelForSequentialRecommendation
    from hf_rec.data import load_sequential_dataset
    from hf_rec.evaluation import Evaluator

    llama = backbones["llama"]
    configs = {"all": write_config(tmp_path / "all.yaml", lora_raw(ml100k_dir, llama, False, "text+id")),
               "cheap": write_config(tmp_path / "cheap.yaml", lora_raw(ml100k_dir, llama, True)),
               "stopped": write_config(tmp_path / "stopped.yaml", lora_raw(ml100k_dir, llama, True,
                                                                            max_train_minutes=1e-6))}
    runs = ("all", "cheap")
    launch_two_processes(*(x for name in (*runs, "stopped") for x in (configs[name], tmp_path / "fsdp" / name)),
                         fsdp2=True)
    launch_two_processes(*(x for name in runs for x in (configs[name], tmp_path / "ddp" / name)))
    launch_two_processes(configs["cheap"], tmp_path / "fsdp" / "stopped", "--resume", fsdp2=True)

    def metrics(*parts):
        return json.loads((tmp_path.joinpath(*parts) / "metrics.json").read_text())

    splits, _ = load_sequential_dataset("ml-100k", ml100k_dir)
    for name in runs:
        sharded, ddp = metrics("fsdp", name), metrics("ddp", name)
        assert sharded["training"]["num_processes"] == 2 and sharded["training"]["epochs_run"] == 2
        assert [h["train_loss"] for h in sharded["history"]] == pytest.approx(
            [h["train_loss"] for h in ddp["history"]], rel=1e-5)
        for h_sharded, h_ddp in zip(sharded["history"], ddp["history"]):
            assert h_sharded["validation"]["ndcg@10"] == pytest.approx(h_ddp["validation"]["ndcg@10"], abs=1e-4)
        assert sharded["test"]["ndcg@10"] == pytest.approx(ddp["test"]["ndcg@10"], abs=1e-4)
        # The folder holds full tensors (not one process's shard): reloaded in one process, it is the model tested.
        model = AutoModelForSequentialRecommendation.from_pretrained(tmp_path / "fsdp" / name)
        again = Evaluator(splits["test"], ks=(10,), show_progress=False).evaluate(model)
        assert again["ndcg@10"] == pytest.approx(sharded["test"]["ndcg@10"], abs=1e-6)
    resumed, reference = metrics("fsdp", "stopped"), metrics("fsdp", "cheap")
    assert resumed["training"]["resumed_at_epochs"] == [1]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in reference["history"]]
    assert resumed["test"] == reference["test"]


def test_shipped_accelerate_configs_parse_with_accelerates_own_loader():
    from accelerate.commands.config.config_args import load_config_from_file

    configs = {p.stem: load_config_from_file(str(p)) for p in (REPO / "configs" / "accelerate").glob("*.yaml")}
    assert configs["fsdp"].distributed_type == DistributedType.FSDP
    assert configs["fsdp"].fsdp_config["fsdp_version"] == 2  # version 1 is refused by train()
    assert configs["deepspeed-zero3"].deepspeed_config["zero_stage"] == 3
    assert configs["deepspeed-zero3"].deepspeed_config["zero3_save_16bit_model"]  # else no weights to save
    assert {c.mixed_precision for name, c in configs.items() if name != "cpu-2proc"} == {"bf16"}


@pytest.mark.parametrize("fsdp_version, family, error", [(1, "llmrec", "fsdp_version: 2"),
                                                         (2, "sasrec", "train sasrec with DDP")])
def test_unsupported_sharding_is_refused_before_any_work(ml100k_dir, tmp_path, fsdp_version, family, error):
    class Launched:  # what train() reads of an accelerator launched with FSDP
        distributed_type = DistributedType.FSDP
        is_fsdp2 = fsdp_version == 2

    raw = tiny_raw(ml100k_dir)
    if family == "llmrec":
        raw["model"] = {"family": "llmrec", "mode": "init", "hidden_size": 16, "max_position_embeddings": 20}
    with pytest.raises(ValueError, match=error):
        train(RunConfig.from_dict(raw), tmp_path / "run", accelerator=Launched())
    assert not (tmp_path / "run").exists()


# ---- one process: the pieces the multi-process path relies on ------------------------------------------------


def test_unsharded_copy_saves_what_the_model_saves_and_allocates_nothing_on_meta(backbones, tmp_path):
    """What a sharded run saves is a copy built on the meta device from the gathered state: its folder must equal
    the model's own, tensor for tensor (LoRA adapter included), and nothing may stay on meta (a Llama's rotary
    frequencies are not in the state dict)."""
    from safetensors.torch import load_file

    from hf_rec.data import ItemTokenizer
    from hf_rec.training.sharding import unsharded_copy
    from test_llmrec import build, item_texts

    texts = item_texts()
    model = build(backbones["llama"], ItemTokenizer([f"i{n}" for n in range(len(texts))], texts), mode="lora",
                  item_representation="text+id")
    rng_before = torch.random.get_rng_state()
    copy = unsharded_copy(model, model.state_dict())
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the copy drew nothing from the dropout RNG
    assert not [n for n, t in [*copy.named_parameters(), *copy.named_buffers()] if t.is_meta]
    model.save_pretrained(tmp_path / "model")
    copy.save_pretrained(tmp_path / "copy")
    for weights in ("model.safetensors", "adapter/adapter_model.safetensors"):
        own, copied = load_file(tmp_path / "model" / weights), load_file(tmp_path / "copy" / weights)
        assert own.keys() == copied.keys() and all(torch.equal(own[k], copied[k]) for k in own)


def test_mixed_precision_comes_from_the_launcher_unless_the_run_config_sets_it(ml100k_dir, tmp_path, monkeypatch):
    """`accelerate launch` passes its config file's mixed precision as ACCELERATE_MIXED_PRECISION."""
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    launcher = RunConfig.from_dict(tiny_raw(ml100k_dir, training={"num_epochs": 1}))
    assert launcher.training.mixed_precision is None
    assert train(launcher, tmp_path / "launcher")["training"]["mixed_precision"] == "bf16"
    explicit = RunConfig.from_dict(tiny_raw(ml100k_dir, training={"num_epochs": 1, "mixed_precision": "no"}))
    assert train(explicit, tmp_path / "explicit")["training"]["mixed_precision"] == "no"


def test_a_fresh_run_never_takes_over_another_runs_folder(ml100k_dir, tmp_path, monkeypatch):
    from hf_rec.evaluation import Evaluator

    out = tmp_path / "run"
    train(RunConfig.from_dict(tiny_raw(ml100k_dir, training={"num_epochs": 1})), out)
    (out / "notes.txt").write_text("the user's own file")
    weights = (out / "model.safetensors").read_bytes()
    gru = tiny_raw(ml100k_dir, training={"num_epochs": 1}, model={"family": "gru4rec", "hidden_size": 16})
    gru["model"].pop("num_attention_heads")
    # Refused without --overwrite, and a run that fails on its data deletes nothing even with it.
    with pytest.raises(ValueError, match="already holds a run.*--overwrite"):
        train(RunConfig.from_dict(gru), out)
    broken = {**gru, "data": {"name": "ml-100k", "data_dir": str(tmp_path / "no-such-folder")}}
    with pytest.raises((ValueError, FileNotFoundError)):
        train(RunConfig.from_dict(broken), out, overwrite=True)
    assert (out / "model.safetensors").read_bytes() == weights and (out / "best_model").is_dir()
    # --overwrite with a run whose validation never improves (NaN): the old best_model/ must not become its result.
    monkeypatch.setattr(Evaluator, "evaluate", lambda self, *a, **k: {"ndcg@10": float("nan"), "num_users": 943})
    results = train(RunConfig.from_dict(gru), out, overwrite=True)
    assert results["model_family"] == "gru4rec" and results["best_epoch"] is None
    assert json.loads((out / "config.json").read_text())["model_type"] == "gru4rec"
    assert not (out / "best_model").exists() and not list(out.glob("*sasrec*.py"))
    assert [e["epoch"] for e in json.loads((out / "metrics.json").read_text())["history"]] == [1]
    assert (out / "notes.txt").read_text() == "the user's own file"  # not a run file: kept


def test_evaluation_does_not_register_a_loader_with_the_accelerator_each_time(ml100k_dir):
    from accelerate import Accelerator

    from hf_rec import AutoModelForSequentialRecommendation
    from hf_rec.data import load_sequential_dataset
    from hf_rec.evaluation import Evaluator
    from hf_rec.models import SASRecConfig

    accelerator = Accelerator(cpu=True)
    splits, tokenizer = load_sequential_dataset("ml-100k", ml100k_dir)
    model = AutoModelForSequentialRecommendation.from_config(SASRecConfig(
        vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, mask_token_id=tokenizer.mask_token_id,
        hidden_size=16, num_attention_heads=1, max_position_embeddings=20))
    evaluator = Evaluator(splits["validation"], ks=(10,), show_progress=False)
    first = evaluator.evaluate(model, accelerator)
    for _ in range(2):
        assert evaluator.evaluate(model, accelerator) == first
    assert accelerator._dataloaders == []  # what save_state walks
