"""Evaluator: brute-force equality on a tiny fake model, truncation, train-mode restore, a
2-process accelerate run, and the popularity baseline (also on real ML-1M)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset

from hf_rec.evaluation import Evaluator, ranking_metrics, target_ranks
from hf_rec.models.popularity import PopularityRecommender

VOCAB = 53  # 0 = padding, items 1..51, 52 = mask id


class WindowSumModel(torch.nn.Module):
    """User embedding = sum of the (integer-valued) embeddings of the items in its window."""

    def __init__(self, vocab=VOCAB, hidden=4, max_len=None, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Embedding(vocab, hidden)
        with torch.no_grad():
            self.emb.weight.copy_(torch.randint(-2, 3, (vocab, hidden), generator=gen).float())
        self.config = SimpleNamespace(max_position_embeddings=max_len, mask_token_id=vocab - 1)
        self.seen_shapes = []

    def get_user_embeddings(self, input_ids, attention_mask):
        self.seen_shapes.append(tuple(input_ids.shape))
        assert torch.equal((input_ids != 0).long(), attention_mask)  # left-padded with 0
        return (self.emb(input_ids) * attention_mask.unsqueeze(-1)).sum(1)

    def get_item_embeddings(self):
        return self.emb.weight


def _split(n_users=23, seed=0, vocab=VOCAB):
    gen = torch.Generator().manual_seed(seed)
    rows = {"user_id": [], "item_ids": [], "target": []}
    for u in range(n_users):
        length = int(torch.randint(1, 12, (1,), generator=gen))
        rows["user_id"].append(str(u))
        rows["item_ids"].append(torch.randint(1, vocab - 1, (length,), generator=gen).tolist())
        rows["target"].append(int(torch.randint(1, vocab - 1, (1,), generator=gen)))
    return Dataset.from_dict(rows)


def _brute_force(model, split, ks, window, exclude_seen=True):
    emb = model.emb.weight.detach()
    users = torch.stack([emb[h[-window:] if window else h].sum(0) for h in split["item_ids"]])
    scores = users @ emb.T
    excl = [list(h) for h in split["item_ids"]] if exclude_seen else None
    return ranking_metrics(scores, split["target"], ks=ks, exclude=excl, special_ids=(0, VOCAB - 1))


@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_evaluator_equals_brute_force(window, exclude_seen):
    split = _split()
    model = WindowSumModel(max_len=window)
    got = Evaluator(split, ks=(1, 5, 10), batch_size=4, exclude_seen=exclude_seen, item_chunk_size=7).evaluate(model)
    assert got == pytest.approx(_brute_force(model, split, (1, 5, 10), window, exclude_seen))
    assert got["num_users"] == 23
    if window:
        assert max(s[1] for s in model.seen_shapes) <= window


def test_evaluator_max_length_override_and_training_restored():
    split = _split()
    model = WindowSumModel(max_len=None)
    model.train()
    got = Evaluator(split, ks=(10,), batch_size=5, max_length=2).evaluate(model)
    assert got == pytest.approx(_brute_force(model, split, (10,), 2))
    assert model.training
    model.eval()
    Evaluator(split, ks=(10,)).evaluate(model)
    assert not model.training


def test_evaluator_special_ids_and_bad_targets():
    split = _split()
    model = WindowSumModel()
    model.config.special_ids = [0, 5]  # read before mask_token_id
    bad = split.map(lambda r, i: {"target": 5 if i == 3 else r["target"]}, with_indices=True)
    with pytest.raises(ValueError, match="dataset row 3 is 5"):
        Evaluator(bad, ks=(10,)).evaluate(model)
    train_like = split.map(lambda r: {"target": -1})
    with pytest.raises(ValueError, match="dataset row 0 is -1"):
        Evaluator(train_like).evaluate(WindowSumModel())
    with pytest.raises(ValueError):
        Evaluator(split, protocol="leave-one-out")


def test_evaluator_sampled_protocol():
    split = _split(n_users=30)
    model = WindowSumModel()
    a = Evaluator(split, ks=(10,), protocol="sampled", num_negatives=20, batch_size=4, seed=1).evaluate(model)
    b = Evaluator(split, ks=(10,), protocol="sampled", num_negatives=20, batch_size=7, seed=1).evaluate(model)
    assert a == b  # negatives depend on the user row, not on the batching
    assert "sampled20_ndcg@10" in a and "ndcg@10" not in a
    counts = torch.ones(VOCAB)
    c = Evaluator(
        split, protocol="sampled", num_negatives=20, sampling="popularity", item_counts=counts
    ).evaluate(model)
    assert "sampled20pop_hr@10" in c


# ------------------------------------------------------------------- 2 processes
def _two_process_worker(out_path):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    split = _split(n_users=23)  # 23 users, batch 4, 2 processes: 23 is not a multiple of 8
    model = WindowSumModel(max_len=3)
    metrics = Evaluator(split, ks=(1, 5, 10), batch_size=4, item_chunk_size=16).evaluate(model, accelerator)
    metrics["_num_processes"] = accelerator.num_processes
    metrics["_local_users"] = sum(s[0] for s in model.seen_shapes)  # this process's share (padded)
    if accelerator.is_main_process:
        with open(out_path, "w") as f:
            json.dump(metrics, f)


def test_two_processes_equal_one(tmp_path):
    # A fresh interpreter: accelerate's process state is a singleton, and other tests in this session may already
    # have created a 1-process Accelerator that forked launcher children would inherit.
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "metrics.json"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_evaluator as t; "
        "from accelerate import debug_launcher; "
        "debug_launcher(t._two_process_worker, args=(sys.argv[2],), num_processes=2)"
    )
    done = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads(out.read_text())
    assert two.pop("_num_processes") == 2
    assert two.pop("_local_users") == 12  # 23 users -> 3 batches of 4 per process (last one padded)
    split = _split(n_users=23)
    one = Evaluator(split, ks=(1, 5, 10), batch_size=4).evaluate(WindowSumModel(max_len=3))
    assert two["num_users"] == 23
    assert two == pytest.approx(one)


# ------------------------------------------------------------------- popularity baseline
def test_popularity_tiny(tmp_path):
    train = [[1, 2, 2, 3], [2, 3, 4], [5]]  # counts: 1:1, 2:3, 3:2, 4:1, 5:1
    model = PopularityRecommender().fit(train, vocab_size=7, special_ids=[0, 6])
    assert model.get_item_embeddings().squeeze(1).tolist() == [0, 1, 3, 2, 1, 1, 0]
    assert model.get_user_embeddings(torch.zeros(2, 3, dtype=torch.long), None).tolist() == [[1.0], [1.0]]
    idx, scores = model.recommend([[2], []], k=3)
    assert idx.tolist() == [[3, 1, 4], [2, 3, 1]]  # ties (count 1) by index
    assert scores[1].tolist() == [3.0, 2.0, 1.0]
    split = Dataset.from_dict({"item_ids": [[2, 1], [3]], "target": [3, 4]})
    # user 0: 2 and 1 seen; 3 (count 2) is the top of {3, 4, 5} -> rank 0
    # user 1: 3 seen; 4 (count 1) is below 2 (3) and tied with 1 and 5 -> rank 3
    m = Evaluator(split, ks=(1, 5)).evaluate(model)
    assert m["hr@1"] == 0.5 and m["ndcg@5"] == pytest.approx((1 + 1 / 2.321928094887362) / 2)
    model.save_pretrained(tmp_path)
    loaded = PopularityRecommender.from_pretrained(tmp_path)
    assert torch.equal(loaded.item_counts, model.item_counts)
    assert loaded.config.special_ids == [0, 6]
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pkl"))


def test_popularity_ml1m(ml1m_dir):
    from hf_rec.data import load_sequential_dataset

    splits, tokenizer = load_sequential_dataset("ml-1m", data_dir=ml1m_dir)
    model = PopularityRecommender().fit(splits["train"], vocab_size=tokenizer.vocab_size, special_ids=tokenizer.special_ids)
    metrics = Evaluator(splits["test"], ks=(10,), batch_size=1024, show_progress=False).evaluate(model)
    assert metrics["num_users"] == 6040
    # full ranking, seen items filtered: the numbers the benchmarks and the README report
    assert metrics["ndcg@10"] == pytest.approx(0.0194, abs=5e-5)
    assert metrics["hr@10"] == pytest.approx(0.0394, abs=5e-5)
    # the dense path agrees
    sub = splits["test"].select(range(300))
    scores = model.get_item_embeddings().squeeze(1).expand(300, -1)
    dense = target_ranks(scores, sub["target"], exclude=sub["item_ids"], special_ids=tokenizer.special_ids)
    chunked = Evaluator(sub, ks=(10,), show_progress=False).evaluate(model)
    assert chunked["ndcg@10"] == pytest.approx(ranking_metrics(scores, sub["target"], (10,), sub["item_ids"], tokenizer.special_ids)["ndcg@10"])
    assert dense.numel() == 300
