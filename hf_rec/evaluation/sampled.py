"""Sampled ("paper-compat") ranking protocol: the target ranked among N sampled negatives.

Many papers (SASRec, BERT4Rec, ...) rank the held-out item against 100 negatives instead of the
whole catalogue. Those numbers are not comparable with full ranking and are much higher, so their
keys always carry the protocol in the name: ``sampled{N}_ndcg@10`` (uniform negatives) or
``sampled{N}pop_ndcg@10`` (popularity-proportional negatives). The plain names (``ndcg@10``) are
reserved for full-catalogue ranking (:mod:`hf_rec.evaluation.metrics`).

Negatives for a user are drawn **without replacement** from the items that are not the target,
not special (``0`` always) and not in the user's ``exclude`` list. They are drawn with a
``torch.Generator`` seeded from ``(seed, user index)``, so a user's negatives do not depend on the
batch size, the batch order or the number of processes. ``user_indices`` gives that index (the row
of the user in the split); it defaults to ``0..U-1``.

The rank uses the same tie rule as full ranking: the number of negatives scored ``>=`` the target.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from .metrics import (
    _as_float_scores,
    _as_tensor,
    _check_embeddings,
    _check_targets,
    _special_tensor,
    check_ks,
    exclusion_pairs,
    metrics_from_ranks,
)

__all__ = ["metric_prefix", "sample_negatives", "sampled_ranking_metrics", "sampled_target_ranks"]

_SAMPLINGS = ("uniform", "popularity")


def metric_prefix(num_negatives: int, sampling: str = "uniform") -> str:
    """``sampled{N}_`` for uniform negatives, ``sampled{N}pop_`` for popularity negatives."""
    _check_sampling(sampling)
    return f"sampled{int(num_negatives)}{'pop' if sampling == 'popularity' else ''}_"


def _check_sampling(sampling: str) -> None:
    if sampling not in _SAMPLINGS:
        raise ValueError(f"sampling must be one of {_SAMPLINGS}, got {sampling!r}")


def _user_seed(seed: int, index: int) -> int:
    # splitmix-style mix of (seed, user index) into a 63-bit seed
    x = (int(seed) * 0x9E3779B97F4A7C15 + int(index) * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) % (1 << 64)
    x ^= x >> 31
    x = (x * 0xD6E8FEEB86659FD9) % (1 << 64)
    x ^= x >> 29
    return x % (1 << 63)


@torch.no_grad()
def sample_negatives(
    targets: Any,
    num_negatives: int,
    vocab_size: int,
    sampling: str = "uniform",
    item_counts: Any = None,
    exclude: Any = None,
    special_ids: Iterable[int] | None = (0,),
    seed: int = 0,
    user_indices: Any = None,
) -> torch.Tensor:
    """``LongTensor[U, num_negatives]`` (CPU) of negatives per user; see the module docstring.

    ``sampling="popularity"`` needs ``item_counts`` (``[vocab_size]``, e.g. training-set item
    frequencies); an item is drawn with probability proportional to its count, so items with count
    0 are never drawn. Raises ValueError when a user has fewer than ``num_negatives`` candidates.
    """
    _check_sampling(sampling)
    if isinstance(num_negatives, bool) or not isinstance(num_negatives, (int, np.integer)) or num_negatives <= 0:
        raise ValueError(f"num_negatives must be a positive int, got {num_negatives!r}")
    n_neg = int(num_negatives)
    vocab_size = int(vocab_size)
    specials = _special_tensor(special_ids, vocab_size, "cpu")
    t = _check_targets(targets, len(_as_tensor(targets, "targets").reshape(-1)), vocab_size, specials, "cpu")
    n_users = t.numel()
    if user_indices is None:
        idx = list(range(n_users))
    else:
        idx = _as_tensor(user_indices, "user_indices").reshape(-1).tolist()
        if len(idx) != n_users:
            raise ValueError(f"got {len(idx)} user_indices for {n_users} users")
    rows, cols = exclusion_pairs(exclude, n_users, vocab_size, t, specials, "cpu")
    bounds = torch.searchsorted(rows, torch.arange(n_users + 1)).tolist()
    weights = None
    if sampling == "popularity":
        if item_counts is None:
            raise ValueError('sampling="popularity" needs item_counts (one count per item index)')
        weights = _as_tensor(item_counts, "item_counts").reshape(-1).to(torch.float64).clone()
        if weights.numel() != vocab_size:
            raise ValueError(f"item_counts has {weights.numel()} entries for a vocabulary of {vocab_size}")
        if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
            raise ValueError("item_counts must be finite and >= 0")
        weights[specials] = 0.0
    out = torch.empty(n_users, n_neg, dtype=torch.long)
    for i in range(n_users):
        g = torch.Generator().manual_seed(_user_seed(seed, idx[i]))
        forbidden = torch.cat([cols[bounds[i] : bounds[i + 1]], t[i : i + 1], specials])  # unique
        if weights is None:
            out[i] = _uniform(g, vocab_size, forbidden, n_neg, i)
        else:
            saved = weights[forbidden].clone()
            weights[forbidden] = 0.0
            try:
                available = int((weights > 0).sum())
                if available < n_neg:
                    raise ValueError(
                        f"user row {i} has only {available} items with a positive count to sample "
                        f"{n_neg} popularity negatives from"
                    )
                out[i] = torch.multinomial(weights, n_neg, replacement=False, generator=g)
            finally:
                weights[forbidden] = saved
    return out


def _uniform(g: torch.Generator, vocab_size: int, forbidden: torch.Tensor, n_neg: int, row: int) -> torch.Tensor:
    available = vocab_size - forbidden.numel()
    if available < n_neg:
        raise ValueError(f"user row {row} has only {available} candidate items to sample {n_neg} negatives from")
    if available >= 2 * n_neg and available * 2 >= vocab_size:
        # rejection sampling: O(n_neg) per user, whatever the catalogue size
        picked: dict[int, None] = {}
        forbidden_set = set(forbidden.tolist())
        while len(picked) < n_neg:
            for c in torch.randint(0, vocab_size, (2 * n_neg + 16,), generator=g).tolist():
                if c not in forbidden_set and c not in picked:
                    picked[c] = None
                    if len(picked) == n_neg:
                        break
        return torch.tensor(list(picked), dtype=torch.long)
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    allowed[forbidden] = False
    candidates = allowed.nonzero().squeeze(1)
    return candidates[torch.randperm(candidates.numel(), generator=g)[:n_neg]]


@torch.no_grad()
def sampled_target_ranks(
    scores_or_user_emb: Any,
    targets: Any,
    negatives: torch.Tensor,
    item_emb: Any = None,
) -> torch.Tensor:
    """Number of each user's negatives scored ``>=`` its target (0-based rank among target + N).

    With ``item_emb`` the first argument is ``user_emb [U, H]`` (score = dot product, computed for
    the target and its negatives in one batched product); otherwise it is dense ``scores [U, V]``.
    """
    if item_emb is None:
        s = _as_float_scores(scores_or_user_emb, "scores")
        if s.ndim != 2:
            raise ValueError(f"scores must be 2-D [n_users, vocab], got shape {tuple(s.shape)}")
        t = _as_tensor(targets, "targets").reshape(-1, 1).to(device=s.device, dtype=torch.long)
        cand = torch.cat([t, negatives.to(s.device)], dim=1)
        cs = s.gather(1, cand)
    else:
        u, v, _ = _check_embeddings(scores_or_user_emb, item_emb)
        t = _as_tensor(targets, "targets").reshape(-1, 1).to(device=u.device, dtype=torch.long)
        cand = torch.cat([t, negatives.to(u.device)], dim=1)
        cs = torch.bmm(v[cand], u.unsqueeze(2)).squeeze(2)  # [U, 1 + N]
    if bool(torch.isnan(cs).any()):
        row = int(torch.isnan(cs).any(1).nonzero()[0, 0])
        raise ValueError(f"NaN score for user row {row}")
    return (cs[:, 1:] >= cs[:, :1]).sum(1)


def sampled_ranking_metrics(
    scores_or_user_emb: Any,
    targets: Any,
    num_negatives: int = 100,
    sampling: str = "uniform",
    item_counts: Any = None,
    exclude: Any = None,
    seed: int = 0,
    ks: int | Iterable[int] = (10,),
    item_emb: Any = None,
    special_ids: Iterable[int] | None = (0,),
    user_indices: Any = None,
) -> dict[str, float]:
    """Sampled-protocol metrics; every metric key is prefixed (``sampled100_ndcg@10``,
    ``sampled100pop_hr@10``), ``num_users`` is not.

    ``scores_or_user_emb`` is dense ``scores [U, V]``, or ``user_emb [U, H]`` when ``item_emb
    [V, H]`` is given.
    """
    ks = check_ks(ks)
    if item_emb is None:
        vocab = _as_tensor(scores_or_user_emb, "scores").shape[-1]
    else:
        vocab = _as_tensor(item_emb, "item_emb").shape[0]
    negatives = sample_negatives(
        targets,
        num_negatives,
        vocab,
        sampling=sampling,
        item_counts=item_counts,
        exclude=exclude,
        special_ids=special_ids,
        seed=seed,
        user_indices=user_indices,
    )
    ranks = sampled_target_ranks(scores_or_user_emb, targets, negatives, item_emb=item_emb)
    return prefix_metrics(metrics_from_ranks(ranks, ks), num_negatives, sampling)


def prefix_metrics(metrics: dict[str, float], num_negatives: int, sampling: str = "uniform") -> dict[str, float]:
    """Prefix every metric key except ``num_users`` with :func:`metric_prefix`."""
    p = metric_prefix(num_negatives, sampling)
    return {(k if k == "num_users" else p + k): v for k, v in metrics.items()}
