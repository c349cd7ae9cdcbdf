"""Per-interaction timestamps (opt-in `timestamps=True` / `data.timestamps: true`): the splits carry u.data's times in
the items' order, data without real times is refused, the option off changes nothing, the collator and the Evaluator
line them up with the items, only time-bias models receive them, and a time-bias HSTU trains end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hf_rec import HSTUConfig, HSTUForSequentialRecommendation, SASRecConfig, SASRecForSequentialRecommendation
from hf_rec.data import dataset_fingerprint, load_sequential_dataset
from hf_rec.data.collators import SequentialCollator
from hf_rec.data.builtin import BUILTIN_DATASETS
from hf_rec.evaluation import Evaluator
from hf_rec.training import load_run_config, train
from hf_rec.training.config import DataArgs, RunConfig
from hf_rec.training.loop import build_model, make_train_loader

REPO = Path(__file__).resolve().parents[1]

# Computed on HEAD d2aa6b0 (before timestamps existed) with the default options: published model cards store these.
ML100K_FINGERPRINT = "53872b9ac5be178c2dfa8fe7957bcae001d507d7fb25c90d12e03899152a4aec"  # tokenizer.metadata
ML100K_RUN_FINGERPRINT = "0beb0b41bdb69d3dade031af695d5eebb29a852eba7ca9e06598ee0772107ad7"  # metrics.json's


@pytest.fixture(scope="module")
def timed(ml100k_dir):
    return load_sequential_dataset("ml-100k", ml100k_dir, timestamps=True)


# ---- data --------------------------------------------------------------------------------------------------------


def test_ml100k_timestamps_are_u_data_times_in_stable_time_order(ml100k_dir, timed):
    # User 166 (20 ratings) rated 313 and 315 in the same second (file lines 52118, 71369), and 258 / 286 / 347 too:
    # a stable sort keeps them in file order.
    rows = [line.split("\t") for line in (ml100k_dir / "u.data").read_text().splitlines()]
    raw = sorted([(r[1], int(r[3])) for r in rows if r[0] == "166"], key=lambda r: r[1])  # sorted() is stable
    assert [item for item, _ in raw[:8]] == ["313", "315", "288", "258", "286", "347", "346", "294"]
    assert raw[0][1] == raw[1][1] == 886397478 and raw[-1] == ("894", 886397905)
    splits, tokenizer = timed
    row = splits["test"]["user_id"].index("166")
    test, valid, train_row = splits["test"][row], splits["validation"][row], splits["train"][row]
    assert tokenizer.decode(test["item_ids"] + [test["target"]]) == [item for item, _ in raw]
    assert test["timestamps"] + [test["target_timestamp"]] == [t for _, t in raw]
    assert valid["timestamps"] == train_row["timestamps"] == [t for _, t in raw[:-2]]
    assert valid["target_timestamp"] == raw[-2][1] == 886397882
    assert "target_timestamp" not in splits["train"].column_names
    for split in splits.values():  # every user, every split: one time per item
        assert split.features["timestamps"].feature.dtype == "int64"
        assert all(len(t) == len(i) for t, i in zip(split["timestamps"], split["item_ids"]))


def test_option_off_leaves_splits_and_fingerprints_as_before(ml100k_dir, timed):
    splits, tokenizer = load_sequential_dataset("ml-100k", ml100k_dir)
    assert tokenizer.metadata["fingerprint"] == ML100K_FINGERPRINT
    assert dataset_fingerprint(splits, DataArgs(name="ml-100k").load_options()) == ML100K_RUN_FINGERPRINT
    assert "timestamps" not in tokenizer.metadata["options"]
    for split in splits.values():
        assert split.column_names == ["user_id", "item_ids", "target"]
    # On, the items are those of the option off (only the columns are added), and the fingerprint says so.
    on, on_tokenizer = timed
    assert on_tokenizer.item_ids == tokenizer.item_ids
    for name in splits:
        assert on[name]["item_ids"] == splits[name]["item_ids"] and on[name]["target"] == splits[name]["target"]
    assert on_tokenizer.metadata["options"]["timestamps"] is True
    assert on_tokenizer.metadata["fingerprint"] != ML100K_FINGERPRINT


def test_ml1m_without_every_users_time_is_refused_before_reading(ml1m_dir, monkeypatch):
    def never(directory, item_text):
        raise AssertionError("the files were read")

    monkeypatch.setitem(BUILTIN_DATASETS, "ml-1m", dataclasses.replace(BUILTIN_DATASETS["ml-1m"], reader=never))
    with pytest.raises(ValueError, match=r"dataset 'ml-1m' .*timestamps=True.*ratings\.dat") as err:
        load_sequential_dataset("ml-1m", ml1m_dir, timestamps=True)
    assert "\n" not in str(err.value) and "users 1-2,999" in str(err.value)


def test_amazon_and_files_without_a_timestamp_column_are_refused(tmp_path):
    # An empty folder: the dataset's own check comes before any file is looked for.
    with pytest.raises(ValueError, match=r"dataset 'amazon-scientific' .*no timestamps"):
        load_sequential_dataset("amazon-scientific", tmp_path, timestamps=True)
    path = tmp_path / "plays.csv"
    path.write_text("user_id,item_id\nu,a\nu,b\nu,c\n")
    with pytest.raises(ValueError, match=r"plays\.csv: timestamps=True needs a 'timestamp' column"):
        load_sequential_dataset(path, timestamps=True)


def test_a_files_timestamp_column_gives_unix_seconds_in_stable_order(tmp_path):
    path = tmp_path / "plays.csv"
    path.write_text("user_id,item_id,timestamp\nu,c,30.9\nu,a,10\nu,b,10\nu,d,40\nv,x,5\nv,y,6\nv,z,7\n")
    splits, tokenizer = load_sequential_dataset(path, timestamps=True)
    test = splits["test"][0]
    assert tokenizer.decode(test["item_ids"] + [test["target"]]) == ["a", "b", "c", "d"]  # a, b tie: file order
    assert test["timestamps"] + [test["target_timestamp"]] == [10, 10, 30, 40]  # floored to seconds


# ---- configuration -----------------------------------------------------------------------------------------------


def test_time_bias_without_timestamps_fails_before_any_work_naming_both_keys():
    raw = {"model": {"family": "hstu", "use_time_bias": True}, "data": {"name": "ml-100k"}}
    with pytest.raises(ValueError, match=r"model\.use_time_bias: true needs data\.timestamps: true") as err:
        RunConfig.from_dict(raw)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="cold_item_fraction cannot be combined with data.timestamps"):
        DataArgs(timestamps=True, cold_item_fraction=0.2)
    with pytest.raises(ValueError, match="data.timestamps must be true or false"):
        DataArgs(timestamps="yes")


def test_shipped_time_config_and_the_records_of_runs_without_it():
    run = load_run_config(REPO / "configs" / "hstu-ml100k-time.yaml")
    assert run.data.timestamps and run.model["use_time_bias"] and run.data.load_options() == {"timestamps": True}
    assert run.model["max_position_embeddings"] == 200 and run.evaluation.ks == [10, 20]
    assert run.to_dict()["data"]["timestamps"] is True
    # Off, the key is left out of the recorded config: study records written before it existed still match.
    off = RunConfig.from_dict({"model": {"family": "sasrec"}, "data": {"name": "ml-100k"}})
    assert "timestamps" not in off.to_dict()["data"] and off.data.load_options() == {}


# ---- collator ----------------------------------------------------------------------------------------------------

ROWS = [{"item_ids": [5, 6, 7, 8, 9], "timestamps": [100, 200, 300, 400, 500]}, {"item_ids": [3, 4], "timestamps": [10, 20]}]


def test_causal_collator_timestamps_by_hand():
    batch = SequentialCollator("causal", max_length=3)(ROWS)
    # Window of 4 = 3 inputs + the last label; the short row is left-padded (items with 0, labels with -100, times 0).
    assert batch["input_ids"].tolist() == [[6, 7, 8], [0, 0, 3]]
    assert batch["labels"].tolist() == [[7, 8, 9], [-100, -100, 4]]
    assert batch["timestamps"].tolist() == [[200, 300, 400, 500], [0, 0, 10, 20]]  # [B, L + 1]
    assert batch["timestamps"].dtype == torch.long


def test_cloze_collator_timestamps_and_rows_without_them():
    batch = SequentialCollator("cloze", max_length=3, mask_token_id=99, seed=0)(ROWS)
    assert batch["timestamps"].tolist() == [[300, 400, 500], [0, 10, 20]]  # aligned with input_ids, [B, L]
    plain = SequentialCollator("causal", max_length=3)([{"item_ids": r["item_ids"]} for r in ROWS])
    assert set(plain) == {"input_ids", "attention_mask", "labels"}
    with pytest.raises(ValueError, match="timestamps must be as long as its item_ids"):
        SequentialCollator("causal", max_length=3)([{"item_ids": [1, 2, 3], "timestamps": [1, 2]}])


def test_training_batches_carry_timestamps_only_for_time_bias_models(ml100k_dir, timed):
    splits, tokenizer = timed
    for family, time_bias in (("hstu", False), ("sasrec", False), ("hstu", True)):
        model = {"family": family, "hidden_size": 16, "max_position_embeddings": 20}
        if family == "hstu":
            model["use_time_bias"] = time_bias
        run = RunConfig.from_dict({"model": model, "data": {"name": "ml-100k", "timestamps": True}})
        loader, _, _ = make_train_loader(run, build_model(run, tokenizer), tokenizer, splits["train"])
        batch = next(iter(loader))
        assert ("timestamps" in batch) == time_bias, (family, time_bias)
        if time_bias:
            assert batch["timestamps"].shape == (batch["input_ids"].shape[0], batch["input_ids"].shape[1] + 1)
    untimed, _ = load_sequential_dataset("ml-100k", ml100k_dir)  # a split without times for a time-bias model
    with pytest.raises(ValueError, match="training split has no timestamps"):
        make_train_loader(run, build_model(run, tokenizer), tokenizer, untimed["train"])


# ---- evaluator ---------------------------------------------------------------------------------------------------


def noisy(model, scale: float = 0.3):
    """Noise on every parameter, so the (near-zero at initialisation) time biases matter."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator))
    return model.eval()


def shuffled_within_users(split, seed: int = 0):
    """The same split with each user's times (history and target) permuted among that user's items."""
    rng = np.random.default_rng(seed)
    times, targets = [], []
    for t, target in zip(split["timestamps"], split["target_timestamp"]):
        permuted = rng.permutation(t + [target]).tolist()
        times.append(permuted[:-1])
        targets.append(permuted[-1])
    split = split.remove_columns(["timestamps", "target_timestamp"])
    return split.add_column("timestamps", times).add_column("target_timestamp", targets)


def recording(model):
    calls = []
    real = model.get_user_embeddings

    def spy(input_ids, attention_mask=None, **kwargs):
        calls.append({"input_ids": input_ids.clone(), **{k: v.clone() for k, v in kwargs.items()}})
        return real(input_ids, attention_mask, **kwargs)

    model.get_user_embeddings = spy
    return calls


def test_evaluator_passes_timestamps_only_to_time_bias_models(timed):
    splits, tokenizer = timed
    split = splits["validation"]
    shuffled = shuffled_within_users(split)
    evaluator = dict(ks=(10, 20), batch_size=1024, show_progress=False)
    common = dict(vocab_size=tokenizer.vocab_size, hidden_size=16, max_position_embeddings=20)

    torch.manual_seed(0)
    timed_model = noisy(HSTUForSequentialRecommendation(HSTUConfig(**common, use_time_bias=True)))
    calls = recording(timed_model)
    real = Evaluator(split, **evaluator).evaluate(timed_model)
    (call,) = calls  # one batch of 943 users
    assert call["timestamps"].shape == (943, call["input_ids"].shape[1] + 1)
    assert call["timestamps"][:, -1].tolist() == split["target_timestamp"]  # the target's time, last column
    assert call["timestamps"][0, -2] == split["timestamps"][0][-1]  # the newest input's time before it
    assert Evaluator(shuffled, **evaluator).evaluate(timed_model) != real  # the times reach the model

    torch.manual_seed(0)
    plain_model = noisy(HSTUForSequentialRecommendation(HSTUConfig(**common)))
    calls = recording(plain_model)
    plain = Evaluator(split, **evaluator).evaluate(plain_model)
    assert Evaluator(shuffled, **evaluator).evaluate(plain_model) == plain
    assert all(set(c) == {"input_ids"} for c in calls)  # never passed `timestamps`
    sasrec = noisy(SASRecForSequentialRecommendation(SASRecConfig(**common, num_attention_heads=1)))
    assert Evaluator(split, **evaluator).evaluate(sasrec) == Evaluator(shuffled, **evaluator).evaluate(sasrec)


# ---- end to end --------------------------------------------------------------------------------------------------


def test_tiny_time_bias_hstu_trains_on_ml100k(ml100k_dir, tmp_path, monkeypatch):
    import hf_rec.data.collators as collators

    shapes = []
    real_call = collators.SequentialCollator.__call__

    def recording_call(self, rows):
        batch = real_call(self, rows)
        shapes.append((tuple(batch["input_ids"].shape), tuple(batch["timestamps"].shape)))
        return batch

    monkeypatch.setattr(collators.SequentialCollator, "__call__", recording_call)
    raw = {
        "model": {"family": "hstu", "hidden_size": 16, "max_position_embeddings": 20, "use_time_bias": True},
        "data": {"name": "ml-100k", "data_dir": str(ml100k_dir), "timestamps": True},
        "training": {"num_epochs": 2, "batch_size": 256, "learning_rate": 0.005, "seed": 0, "cpu_threads": 1},
        "evaluation": {"ks": [10], "batch_size": 512},
    }
    threads = torch.get_num_threads()
    try:
        results = train(RunConfig.from_dict(raw), tmp_path / "run")
    finally:
        torch.set_num_threads(threads)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["num_users"] == 943 and np.isfinite(metrics["test"]["ndcg@10"])
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["dataset"]["options"] == {"timestamps": True} == results["dataset"]["options"]
    assert yaml.safe_load((tmp_path / "run" / "training_config.yaml").read_text())["data"]["timestamps"] is True
    assert shapes and all(times == (ids[0], ids[1] + 1) for ids, times in shapes)
