"""Ranking metrics: hand-computed values, tie/exclusion/special rules, chunked == dense, top-k,
the sampled protocol and the `evaluate` module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hf_rec.evaluation import (
    load_metric,
    metrics_from_ranks,
    rank_targets_by_embeddings,
    ranking_metrics,
    sampled_ranking_metrics,
    target_ranks,
    topk_by_embeddings,
)
from hf_rec.evaluation.sampled import sample_negatives

# vocab 6: column 0 = padding, items 1..5
SCORES = torch.tensor(
    [
        [100.0, 0.9, 0.1, 0.2, 0.3, 0.4],  # user 0, target 1 (0.9): nothing else >= 0.9 -> rank 0
        [0.0, 0.5, 0.4, 0.3, 0.2, 0.1],  # user 1, target 4 (0.2): items 1, 2, 3 are >= 0.2 -> rank 3
    ]
)
TARGETS = torch.tensor([1, 4])


def test_hand_computed_two_users():
    assert target_ranks(SCORES, TARGETS).tolist() == [0, 3]
    m = ranking_metrics(SCORES, TARGETS, ks=(1, 3, 5))
    assert m["num_users"] == 2
    # K=1: user 0 hits (rank 0 < 1), user 1 misses (rank 3) -> hr = (1 + 0) / 2
    assert m["hr@1"] == pytest.approx(0.5)
    assert m["recall@1"] == pytest.approx(0.5)
    assert m["precision@1"] == pytest.approx(0.5)  # (1/1 + 0) / 2
    assert m["f1@1"] == pytest.approx(0.5)  # per user 2*P*R/(P+R) = 2*1*1/2 = 1 and 0 -> 0.5
    assert m["ndcg@1"] == pytest.approx(0.5)  # (1/log2(0+2) + 0) / 2
    assert m["mrr@1"] == pytest.approx(0.5)  # (1/1 + 0) / 2
    # K=3: rank 3 is still a miss (3 < 3 is false)
    assert m["hr@3"] == pytest.approx(0.5)
    assert m["precision@3"] == pytest.approx(0.5 / 3)  # (1/3 + 0) / 2
    assert m["f1@3"] == pytest.approx(0.25)  # hit: 2*(1/3)*1/(1/3+1) = 0.5; (0.5 + 0) / 2
    # K=5: both hit
    assert m["hr@5"] == pytest.approx(1.0)
    assert m["recall@5"] == pytest.approx(1.0)
    assert m["precision@5"] == pytest.approx(0.2)  # 1/5 for each user
    assert m["f1@5"] == pytest.approx(1 / 3)  # 2*(1/5)*1/(1/5+1) = 2/6
    assert m["ndcg@5"] == pytest.approx((1.0 + 1.0 / math.log2(5)) / 2)  # rank 3 -> 1/log2(3+2)
    assert m["mrr@5"] == pytest.approx((1.0 + 1.0 / 4) / 2)  # rank 3 -> 1/(3+1)
    assert list(m) == [f"{n}@{k}" for k in (1, 3, 5) for n in ("hr", "recall", "precision", "f1", "ndcg", "mrr")] + [
        "num_users"
    ]


def test_numpy_input_and_single_int_k():
    m = ranking_metrics(SCORES.numpy(), TARGETS.numpy(), ks=5)
    assert m["hr@5"] == 1.0


def test_all_equal_scores_give_zero():
    scores = torch.ones(3, 6)
    # every other rankable item (5 items minus the target = 4) ties the target -> rank 4
    assert target_ranks(scores, [1, 3, 5]).tolist() == [4, 4, 4]
    m = ranking_metrics(scores, [1, 3, 5], ks=(1, 3))
    assert all(v == 0.0 for k, v in m.items() if k != "num_users")


def test_target_tied_with_one_item():
    scores = torch.tensor([[0.0, 0.5, 0.9, 0.5, 0.1, 0.2]])
    # target 1 (0.5): item 2 (0.9) is above, item 3 (0.5) ties -> rank 2; item 3 as target likewise
    assert target_ranks(scores, [1]).tolist() == [2]
    scores = torch.tensor([[0.0, 0.5, 0.1, 0.5, 0.1, 0.2]])
    # only item 3 ties -> rank 1 (no credit for the tie)
    assert target_ranks(scores, [1]).tolist() == [1]
    assert ranking_metrics(scores, [1], ks=1)["hr@1"] == 0.0


def test_exclusion():
    # user 1 (target 4, rank 3 above): exclude items 1 and 2 (both above the target) and 5 (below)
    assert target_ranks(SCORES, TARGETS, exclude=[[], [1, 2, 5]]).tolist() == [0, 1]
    # duplicates count once, and the target in exclude is still ranked
    assert target_ranks(SCORES, TARGETS, exclude=[[1, 1], [1, 1, 4, 2, 2]]).tolist() == [0, 1]
    # padded 2-D tensor form (-1 = padding), and sets
    assert target_ranks(SCORES, TARGETS, exclude=torch.tensor([[-1, -1], [1, 2]])).tolist() == [0, 1]
    assert target_ranks(SCORES, TARGETS, exclude=[set(), {1, 2}]).tolist() == [0, 1]


def test_padding_and_special_columns_never_count():
    scores = torch.tensor([[1e9, 0.1, 0.3, 0.2, 1e9]])
    # column 0 (padding) and 4 (special, e.g. the mask id) score above the target 3 (0.2):
    # only item 2 counts -> rank 1
    assert target_ranks(scores, [3], special_ids=(0, 4)).tolist() == [1]
    # padding is special even when special_ids does not list it
    assert target_ranks(scores, [3], special_ids=(4,)).tolist() == [1]
    assert target_ranks(scores, [3], special_ids=None).tolist() == [2]  # item 4 is then rankable


def test_k_larger_than_catalogue():
    m = ranking_metrics(SCORES, TARGETS, ks=(100,))
    # both ranks (0, 3) < 100: every user hits, precision still divides by K
    assert m["hr@100"] == 1.0
    assert m["precision@100"] == pytest.approx(0.01)
    assert m["f1@100"] == pytest.approx(2 / 101)


@pytest.mark.parametrize("ks", [0, -1, (10, 0), 2.5, "10", (True,), ()])
def test_bad_k(ks):
    with pytest.raises(ValueError):
        ranking_metrics(SCORES, TARGETS, ks=ks)


def test_bad_targets_and_nan():
    with pytest.raises(ValueError, match="user row 1 is 6"):
        target_ranks(SCORES, [1, 6])
    with pytest.raises(ValueError, match="user row 0 is -1"):
        target_ranks(SCORES, [-1, 2])
    with pytest.raises(ValueError, match="user row 1 is 0"):
        target_ranks(SCORES, [1, 0])
    with pytest.raises(ValueError, match="user row 0 is 5"):
        target_ranks(SCORES, [5, 1], special_ids=(0, 5))
    with pytest.raises(ValueError, match="targets"):
        target_ranks(SCORES, [1])
    bad = SCORES.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(bad, TARGETS)
    with pytest.raises(ValueError, match="outside"):
        target_ranks(SCORES, TARGETS, exclude=[[7], []])


def test_metrics_from_ranks_matches():
    ranks = torch.tensor([0, 3, 50])
    m = metrics_from_ranks(ranks, ks=(10,))
    assert m["hr@10"] == pytest.approx(2 / 3)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(5)) / 3)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 4) / 3)


# ------------------------------------------------------------------- chunked == dense
def _random_case(gen, n_users, vocab, hidden=4, n_excl=8):
    u = torch.randint(-2, 3, (n_users, hidden), generator=gen).float()  # integer values: exact ties
    v = torch.randint(-2, 3, (vocab, hidden), generator=gen).float()
    specials = (0, vocab - 1)
    targets = torch.randint(1, vocab - 1, (n_users,), generator=gen)
    best = (u @ v.T)[:, 1 : vocab - 1].argmax(1) + 1
    targets[::4] = best[::4]  # some targets at (or tied for) the top
    exclude = []
    for i in range(n_users):
        ex = torch.randint(-1, vocab, (int(torch.randint(0, n_excl, (1,), generator=gen)),), generator=gen).tolist()
        if i % 3 == 0:
            ex.append(int(targets[i]))  # the target in its own exclusion list
        exclude.append(ex)
    return u, v, targets, exclude, specials


@pytest.mark.parametrize("seed", range(4))
def test_chunked_equals_dense(seed):
    gen = torch.Generator().manual_seed(seed)
    n_users, vocab = 37, 203
    u, v, targets, exclude, specials = _random_case(gen, n_users, vocab)
    dense = target_ranks(u @ v.T, targets, exclude=exclude, special_ids=specials)
    assert (dense > 20).any() and (dense < 10).any()
    for item_chunk, user_chunk in [(1, 1), (7, 5), (64, 37), (203, 100), (1000, 3), (16, 16)]:
        chunked = rank_targets_by_embeddings(
            u, v, targets, exclude=exclude, special_ids=specials, item_chunk_size=item_chunk, user_chunk_size=user_chunk
        )
        assert torch.equal(chunked, dense), (item_chunk, user_chunk)
    # no exclusion, default chunks
    assert torch.equal(
        rank_targets_by_embeddings(u, v, targets, special_ids=specials),
        target_ranks(u @ v.T, targets, special_ids=specials),
    )


def test_chunked_random_floats_match_dense():
    gen = torch.Generator().manual_seed(0)
    u, v = torch.randn(50, 16, generator=gen), torch.randn(1000, 16, generator=gen)
    targets = torch.randint(1, 1000, (50,), generator=gen)
    chunked = rank_targets_by_embeddings(u, v, targets, item_chunk_size=96, user_chunk_size=8)
    assert torch.equal(chunked, target_ranks(u @ v.T, targets))


def test_chunked_validation():
    u, v = torch.ones(2, 3), torch.ones(5, 3)
    with pytest.raises(ValueError, match="user row 1 is 5"):
        rank_targets_by_embeddings(u, v, [1, 5])
    with pytest.raises(ValueError, match="user row 0 is 0"):
        rank_targets_by_embeddings(u, v, [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        rank_targets_by_embeddings(u, v * float("nan"), [1, 2])
    with pytest.raises(ValueError, match="hidden"):
        rank_targets_by_embeddings(u, torch.ones(5, 4), [1, 2])


# ------------------------------------------------------------------- top-k
def test_topk_matches_dense_and_skips_specials_and_excluded():
    gen = torch.Generator().manual_seed(1)
    u, v = torch.randn(20, 8, generator=gen), torch.randn(300, 8, generator=gen)
    v[0] = 100 * u.mean(0)  # padding would win every top-k if it were rankable
    specials = (0, 299)
    v[299] = 100 * u.mean(0)
    exclude = [torch.randint(0, 300, (30,), generator=gen).tolist() for _ in range(20)]
    dense = u @ v.T
    dense[:, list(specials)] = float("-inf")
    for r, ex in enumerate(exclude):
        dense[r, ex] = float("-inf")
    ref_val, ref_idx = dense.topk(10, dim=1)
    for chunk in (1, 7, 64, 1000):
        idx, val = topk_by_embeddings(u, v, 10, exclude=exclude, special_ids=specials, item_chunk_size=chunk)
        assert idx.shape == (20, 10)
        torch.testing.assert_close(val, ref_val)
        assert torch.equal(idx, ref_idx)  # random floats: no ties
        for r, ex in enumerate(exclude):
            assert not set(idx[r].tolist()) & (set(ex) | set(specials))


def test_topk_ties_and_short_catalogue():
    u = torch.ones(2, 1)
    v = torch.tensor([[9.0], [1.0], [1.0], [2.0], [1.0]])  # item 0 = padding
    idx, val = topk_by_embeddings(u, v, 10, exclude=[[], [3, 1, 2]])
    # k' = min(10, 4 rankable items) = 4
    assert idx.shape == (2, 4)
    assert idx[0, 0] == 3 and set(idx[0, 1:].tolist()) == {1, 2, 4}
    assert val[0].tolist() == [2.0, 1.0, 1.0, 1.0]
    # user 1 has only item 4 left: padded with -1 / -inf
    assert idx[1].tolist() == [4, -1, -1, -1]
    assert val[1, 0] == 1.0 and torch.isneginf(val[1, 1:]).all()
    with pytest.raises(ValueError):
        topk_by_embeddings(u, v, 0)


# ------------------------------------------------------------------- sampled protocol
def test_sampled_seeded_and_never_samples_target_special_or_excluded():
    gen = torch.Generator().manual_seed(0)
    vocab, n_users = 200, 30
    targets = torch.randint(1, vocab - 1, (n_users,), generator=gen)
    exclude = [torch.randint(1, vocab, (40,), generator=gen).tolist() for _ in range(n_users)]
    counts = torch.rand(vocab, generator=gen) * 10
    for sampling in ("uniform", "popularity"):
        a = sample_negatives(targets, 50, vocab, sampling, counts, exclude, (0, vocab - 1), seed=3)
        b = sample_negatives(targets, 50, vocab, sampling, counts, exclude, (0, vocab - 1), seed=3)
        c = sample_negatives(targets, 50, vocab, sampling, counts, exclude, (0, vocab - 1), seed=4)
        assert torch.equal(a, b) and not torch.equal(a, c)
        for r in range(n_users):
            row = a[r].tolist()
            assert len(set(row)) == 50  # without replacement
            assert not set(row) & (set(exclude[r]) | {int(targets[r]), 0, vocab - 1})
        # a user's negatives depend on its index, not its position in the batch
        sub = sample_negatives(
            targets[5:9], 50, vocab, sampling, counts, exclude[5:9], (0, vocab - 1), seed=3, user_indices=range(5, 9)
        )
        assert torch.equal(sub, a[5:9])
    # dense regime (fewer candidates than twice N) and too few candidates
    small = sample_negatives([1, 2], 3, 6, exclude=[[2], [1]], seed=0)
    assert all(set(small[r].tolist()) <= ({1, 2, 3, 4, 5} - {r + 1, 2 - r}) for r in range(2))
    with pytest.raises(ValueError, match="user row 0"):
        sample_negatives([1], 5, 6, exclude=[[2]])
    with pytest.raises(ValueError, match="item_counts"):
        sample_negatives([1], 2, 6, sampling="popularity")


def test_sampled_metrics_names_and_values():
    # dense scores: item i has score i, so the target 1 is below every negative, 50 is above all
    scores = torch.arange(101.0).repeat(2, 1)
    m = sampled_ranking_metrics(scores, [1, 100], num_negatives=20, ks=(10,), seed=0)
    assert set(m) == {f"sampled20_{n}@10" for n in ("hr", "recall", "precision", "f1", "ndcg", "mrr")} | {"num_users"}
    # user 0 (target 1, lowest non-pad score): 20 negatives above -> miss; user 1 (100): rank 0
    assert m["sampled20_hr@10"] == 0.5 and m["sampled20_ndcg@10"] == 0.5
    m = sampled_ranking_metrics(scores, [1, 100], num_negatives=20, sampling="popularity", item_counts=torch.ones(101))
    assert "sampled20pop_ndcg@10" in m and "ndcg@10" not in m
    # ties give no credit here too
    m = sampled_ranking_metrics(torch.ones(2, 101), [1, 100], num_negatives=5, ks=(5,))
    assert m["sampled5_hr@5"] == 0.0
    # embeddings == dense scores of their product
    gen = torch.Generator().manual_seed(0)
    u, v = torch.randint(-2, 3, (10, 4), generator=gen).float(), torch.randint(-2, 3, (300, 4), generator=gen).float()
    t = torch.randint(1, 300, (10,), generator=gen)
    assert sampled_ranking_metrics(u, t, num_negatives=30, item_emb=v) == sampled_ranking_metrics(
        u @ v.T, t, num_negatives=30
    )


# ------------------------------------------------------------------- evaluate module
def test_evaluate_module_matches(tmp_path):
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 20, (40, 50), generator=gen).float()
    targets = torch.randint(1, 50, (40,), generator=gen)
    ranks = target_ranks(scores, targets)
    metric = load_metric(keep_in_memory=True)
    got = metric.compute(predictions=ranks.tolist(), references=targets.tolist(), ks=[1, 5, 10])
    expected = ranking_metrics(scores, targets, ks=(1, 5, 10))
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k] == pytest.approx(expected[k])
    # incremental add_batch works as well
    metric = load_metric(keep_in_memory=True)
    metric.add_batch(predictions=ranks[:20].tolist(), references=targets[:20].tolist())
    metric.add_batch(predictions=ranks[20:].tolist(), references=targets[20:].tolist())
    assert metric.compute(ks=(10,))["ndcg@10"] == pytest.approx(expected["ndcg@10"])
    # nothing cached outside HF_HOME (conftest points it at a temporary folder)
    import evaluate.config

    import os

    assert str(evaluate.config.HF_MODULES_CACHE).startswith(os.environ["HF_HOME"])
    assert str(evaluate.config.HF_METRICS_CACHE).startswith(os.environ["HF_HOME"])


def test_numpy_ranks():
    m = metrics_from_ranks(np.array([0, 1]), ks=(1,))
    assert m["hr@1"] == 0.5


def test_load_metric_leaves_the_offline_setting_alone(monkeypatch):
    """A library call must not switch the whole process to offline mode (issue 19, point 8)."""
    import os

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    metric = load_metric(keep_in_memory=True)
    assert "HF_HUB_OFFLINE" not in os.environ
    assert metric.compute(predictions=[0, 2], references=[1, 1], ks=[1])["hr@1"] == pytest.approx(0.5)


def test_evaluation_and_recommend_share_one_exclusion_and_topk_implementation():
    from hf_rec.evaluation import metrics
    from hf_rec.models import retrieval

    assert metrics.exclusion_pairs is retrieval.exclusion_pairs and metrics.topk_items is retrieval.topk_items
    rows, cols = retrieval.exclusion_pairs([[3, 1, 3, -1], {2}, None], 3, 5, targets=torch.tensor([1, 4, 4]),
                                           specials=torch.tensor([0, 4]))  # fmt: skip
    # user 0: 3 once (duplicate), 1 is its target, -1 padding; user 1: 2; user 2: nothing
    assert rows.tolist() == [0, 1] and cols.tolist() == [3, 2]
    with pytest.raises(ValueError, match="integer item indices"):
        retrieval.exclusion_pairs([[1.5]], 1, 5)
    with pytest.raises(ValueError, match="user row 0 holds item 7"):
        retrieval.exclusion_pairs(torch.tensor([[7]]), 1, 5)
