"""Segment and beyond-accuracy metrics: brute force on small random examples, hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hf_rec.evaluation import (
    Evaluator,
    beyond_accuracy_metrics,
    evaluate_segments,
    metrics_from_ranks,
    popularity_groups,
    target_ranks,
    topk_by_embeddings,
    training_item_counts,
)


class DotModel(torch.nn.Module):
    """Integer embeddings (exact scores): user embedding = sum of the history's item embeddings."""

    def __init__(self, vocab_size: int, hidden: int = 4, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.items = torch.nn.Parameter(torch.randint(-3, 4, (vocab_size, hidden), generator=g).double())
        self.config = type("C", (), {"vocab_size": vocab_size, "special_ids": [0, vocab_size - 1],
                                     "max_position_embeddings": None})()  # fmt: skip

    def get_item_embeddings(self):
        return self.items

    def get_user_embeddings(self, input_ids, attention_mask):
        return (self.items[input_ids] * attention_mask.unsqueeze(-1)).sum(1)


def random_example(seed=0, n_users=40, vocab=23):
    rng = np.random.default_rng(seed)
    mask = vocab - 1
    items = np.arange(1, mask)
    train = [rng.choice(items[: len(items) - 4], size=rng.integers(1, 8)).tolist() for _ in range(n_users)]
    hist = [rng.choice(items, size=rng.integers(1, 30)).tolist() for _ in range(n_users)]
    targets = [int(rng.choice(items)) for _ in range(n_users)]
    split = {"item_ids": hist, "target": targets}
    return DotModel(vocab, seed=seed), split, {"item_ids": train}, vocab


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segments_equal_brute_force(seed):
    model, split, train, vocab = random_example(seed)
    ks = (5, 10)
    out = evaluate_segments(model, split, train, ks=ks)

    # dense brute force: ranks from the full score matrix, groups by hand
    hist = split["item_ids"]
    user = torch.stack([model.items[torch.tensor(h)].sum(0) for h in hist])
    scores = user @ model.items.T
    ranks = target_ranks(scores, split["target"], exclude=hist, special_ids=[0, vocab - 1])
    counts = np.zeros(vocab, dtype=np.int64)
    for seq in train["item_ids"]:
        for i in seq:
            counts[i] += 1

    lengths = np.array([len(h) for h in hist])
    b1, b2, b3 = np.sort(lengths)[[int(np.floor(q * (len(lengths) - 1))) for q in (0.25, 0.5, 0.75)]]
    quart = {f"q1 (n<={b1})": lengths <= b1, f"q2 ({b1}<n<={b2})": (lengths > b1) & (lengths <= b2),
             f"q3 ({b2}<n<={b3})": (lengths > b2) & (lengths <= b3), f"q4 (n>{b3})": lengths > b3}  # fmt: skip
    items = [i for i in range(1, vocab - 1)]
    by_pop = sorted(items, key=lambda i: (-counts[i], i))
    head = set(by_pop[: math.ceil(0.2 * len(items))])
    t = np.array(split["target"])
    pop = {"head": np.array([x in head for x in t]), "tail": np.array([x not in head for x in t])}
    cold = {"cold": counts[t] == 0, "warm": counts[t] > 0}

    for grouping, groups in (("history_length", quart), ("target_popularity", pop), ("cold_vs_warm", cold)):
        got = out["segments"][grouping]
        expected = {label: metrics_from_ranks(ranks[torch.from_numpy(m)], ks) for label, m in groups.items() if m.any()}
        assert got.keys() == expected.keys()
        for label in expected:
            assert got[label] == pytest.approx(expected[label])
        # every user lands in exactly one segment
        assert sum(m["num_users"] for m in got.values()) == len(t)
        membership = np.stack(list(groups.values())).sum(0)
        assert (membership == 1).all()

    assert out["segment_definitions"]["history_length"]["quartile_boundaries"] == [b1, b2, b3]


def test_ranks_in_dataset_order_and_topk_match_recommend():
    model, split, _, vocab = random_example(3, n_users=37)
    ev = Evaluator(split, ks=(10,), batch_size=8, show_progress=False)  # several batches
    metrics, ranks = ev.evaluate(model, return_ranks=True)
    user = torch.stack([model.items[torch.tensor(h)].sum(0) for h in split["item_ids"]])
    dense = target_ranks(user @ model.items.T, split["target"], exclude=split["item_ids"], special_ids=[0, vocab - 1])
    assert torch.equal(ranks, dense)
    assert metrics == metrics_from_ranks(dense, (10,))
    _, topk = ev.ranks(model, top_k=5)
    expected, _ = topk_by_embeddings(user, model.items, 5, exclude=split["item_ids"], special_ids=[0, vocab - 1])
    assert torch.equal(topk, expected)


def test_beyond_accuracy_hand_computed():
    # vocab 7: 0 pad, items 1..5, 6 mask. counts: 1:4, 2:2, 3:1, 4:1, 5:0 (total 8, 5 items)
    counts = np.array([0, 4, 2, 1, 1, 0, 0])
    topk = torch.tensor([[1, 2, 5], [1, 3, -1]])
    out = beyond_accuracy_metrics(topk, counts, ks=(2, 3), special_ids=[0, 6])
    # K=2: slots 1,2,1,3 -> distinct {1,2,3}
    assert out["coverage@2"] == pytest.approx(3 / 5)
    assert out["avg_popularity@2"] == pytest.approx((4 + 2 + 4 + 1) / 4)
    assert out["avg_popularity_norm@2"] == pytest.approx((4 + 2 + 4 + 1) / 4 / 4)
    p = lambda c: (c + 1) / (8 + 5)  # noqa: E731
    assert out["novelty@2"] == pytest.approx(np.mean([-math.log2(p(c)) for c in (4, 2, 4, 1)]))
    # K=3: the -1 pad is ignored -> slots 1,2,5,1,3
    assert out["coverage@3"] == pytest.approx(4 / 5)
    assert out["avg_popularity@3"] == pytest.approx((4 + 2 + 0 + 4 + 1) / 5)
    assert out["novelty@3"] == pytest.approx(np.mean([-math.log2(p(c)) for c in (4, 2, 0, 4, 1)]))


def test_popularity_groups_head_torso_tail():
    counts = np.array([0, 5, 9, 1, 5, 0, 3, 2, 7, 4, 0, 0])  # items 1..10, 11 special
    labels, group, sizes = popularity_groups(counts, special_ids=[0, 11], cuts=(0.2,))
    assert labels == ["head", "tail"] and sizes == [2, 8]
    assert set(np.flatnonzero(group == 0)) == {2, 8}  # counts 9 and 7
    labels, group, sizes = popularity_groups(counts, special_ids=[0, 11], cuts=(0.2, 0.5))
    assert labels == ["head", "torso", "tail"] and sizes == [2, 3, 5]
    assert set(np.flatnonzero(group == 1)) == {1, 4, 9}  # 5, 5, 4 (ties by index)
    assert group[0] == -1 and group[11] == -1
    with pytest.raises(ValueError, match="popularity cuts"):
        popularity_groups(counts, cuts=(0.5, 0.2))


def test_training_item_counts():
    assert training_item_counts({"item_ids": [[1, 2, 2], [3]]}, 5).tolist() == [0, 1, 2, 1, 0]
    with pytest.raises(ValueError, match="outside the item table"):
        training_item_counts([[7]], 5)
