"""Segment-level and beyond-accuracy evaluation: who does a model serve well, and what does it recommend?

Everything here is a function of the per-user target ranks and top-K lists that the
:class:`~hf_rec.evaluation.Evaluator` computes (``Evaluator.ranks``), plus item counts from the
training split. No scoring code is repeated.

Segments (each user lands in exactly one segment of each grouping; empty segments are left out):

* ``history_length``: quartiles of the user's history length in the evaluated split (the whole
  ``item_ids`` list, before truncation to the model's window). Boundaries ``b1 <= b2 <= b3`` are
  the 25/50/75% quantiles (``numpy.quantile(..., method="lower")``, so they are real lengths);
  ``q1 (n<=b1)``, ``q2 (b1<n<=b2)``, ``q3 (b2<n<=b3)``, ``q4 (n>b3)``. With many equal lengths a
  quartile can be empty (and is then left out).
* ``target_popularity``: the popularity group of the user's target item. Items (every non-special
  index of the item table) are sorted by training count, most popular first (ties: lower index
  first). With the default ``popularity_cuts=(0.2,)`` (the LLM-ESR split) the first 20% of items
  (``ceil(0.2 * n_items)``) are ``head`` and the rest ``tail``. ``popularity_cuts=(0.2, 0.5)``
  adds a ``torso`` (items from 20% to 50%) and ``tail`` is the last 50%.
* ``cold_vs_warm``: ``cold`` when the target has zero training interactions, else ``warm``.

Training counts are the occurrences of each item in the ``train`` split's ``item_ids`` (what the
model was trained on: every item but each user's last two).

Beyond-accuracy metrics, for each cut-off K, from the top-K lists (padding ``-1`` ignored):

* ``coverage@K``: distinct recommended items / number of non-special items in the item table.
* ``avg_popularity@K``: mean training count of the recommended items (over every list slot).
* ``avg_popularity_norm@K``: the same divided by the largest training count (in ``[0, 1]``).
* ``novelty@K``: mean of ``-log2 p(i)`` over the recommended items, with Laplace-smoothed
  ``p(i) = (count(i) + 1) / (total count + n_items)`` (so cold items have a finite novelty).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from .evaluator import Evaluator, model_special_ids
from .metrics import check_ks, metrics_from_ranks

__all__ = [
    "beyond_accuracy_metrics",
    "evaluate_segments",
    "history_length_groups",
    "popularity_groups",
    "segment_metrics",
    "training_item_counts",
]


def training_item_counts(train_split: Any, vocab_size: int) -> np.ndarray:
    """Occurrences of each item index in ``train_split["item_ids"]`` (or a list of index lists): ``int64[vocab_size]``."""
    sequences = train_split["item_ids"] if not isinstance(train_split, (list, tuple)) else train_split
    flat = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sequences]
    flat = np.concatenate(flat) if flat else np.empty(0, dtype=np.int64)
    flat = flat[flat >= 0]
    if flat.size and flat.max() >= vocab_size:
        raise ValueError(f"training item {int(flat.max())} is outside the item table of size {vocab_size}")
    return np.bincount(flat, minlength=vocab_size).astype(np.int64)


def _rankable_items(vocab_size: int, special_ids: Iterable[int]) -> np.ndarray:
    specials = {0, *(int(s) for s in special_ids)}
    return np.array([i for i in range(vocab_size) if i not in specials], dtype=np.int64)


def history_length_groups(lengths: Sequence[int]) -> tuple[list[str], np.ndarray, list[int]]:
    """Quartile group of each user's history length.

    Returns:
        ``(labels, group, boundaries)``: the 4 labels, ``int64[n_users]`` group index per user
        (0..3) and the boundaries ``[b1, b2, b3]`` (see the module docstring).
    """
    n = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if n.size == 0:
        return [], np.empty(0, dtype=np.int64), []
    b = [int(x) for x in np.quantile(n, [0.25, 0.5, 0.75], method="lower")]
    labels = [f"q1 (n<={b[0]})", f"q2 ({b[0]}<n<={b[1]})", f"q3 ({b[1]}<n<={b[2]})", f"q4 (n>{b[2]})"]
    group = np.searchsorted(np.asarray(b), n, side="left")  # n <= b1 -> 0, b1 < n <= b2 -> 1, ...
    return labels, group.astype(np.int64), b


def popularity_groups(
    item_counts: np.ndarray, special_ids: Iterable[int] = (0,), cuts: Sequence[float] = (0.2,)
) -> tuple[list[str], np.ndarray, list[int]]:
    """Popularity group of every item index.

    Args:
        item_counts: ``[vocab_size]`` training counts.
        special_ids: never grouped (group ``-1``); ``0`` is always special.
        cuts: increasing cumulative item fractions in ``(0, 1)``: one cut gives head/tail, two cuts
            head/torso/tail.

    Returns:
        ``(labels, group, sizes)``: labels, ``int64[vocab_size]`` group per item (``-1`` for
        specials) and the number of items per group.
    """
    cuts = [float(c) for c in cuts]
    if len(cuts) not in (1, 2) or any(not 0.0 < c < 1.0 for c in cuts) or cuts != sorted(set(cuts)):
        raise ValueError(f"popularity cuts must be one or two increasing fractions in (0, 1), got {cuts!r}")
    labels = ["head", "tail"] if len(cuts) == 1 else ["head", "torso", "tail"]
    counts = np.asarray(item_counts, dtype=np.int64).reshape(-1)
    items = _rankable_items(counts.size, special_ids)
    order = items[np.lexsort((items, -counts[items]))]  # most popular first, ties by index
    bounds = [math.ceil(c * len(order)) for c in cuts] + [len(order)]
    group = np.full(counts.size, -1, dtype=np.int64)
    start = 0
    for g, end in enumerate(bounds):
        group[order[start:end]] = g
        start = end
    sizes = [int((group == g).sum()) for g in range(len(labels))]
    return labels, group, sizes


def _grouped(ranks: torch.Tensor, group: np.ndarray, labels: list[str], ks) -> dict[str, dict]:
    out = {}
    for g, label in enumerate(labels):
        members = np.flatnonzero(group == g)
        if members.size == 0:
            continue
        out[label] = metrics_from_ranks(ranks[torch.from_numpy(members)], ks)
    return out


def segment_metrics(
    ranks: Any,
    histories: Sequence[Sequence[int]],
    targets: Sequence[int],
    item_counts: np.ndarray,
    ks: int | Iterable[int] = (10,),
    special_ids: Iterable[int] = (0,),
    popularity_cuts: Sequence[float] = (0.2,),
) -> tuple[dict[str, dict], dict[str, Any]]:
    """Metrics per segment from per-user ranks (dataset row order).

    Returns:
        ``(segments, definitions)``: ``segments[grouping][label]`` is a metric dict (with
        ``num_users``); ``definitions`` records boundaries and group sizes.
    """
    ks = check_ks(ks)
    ranks = torch.as_tensor(ranks).reshape(-1).long().cpu()
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if len(ranks) != len(targets) or len(histories) != len(targets):
        raise ValueError(f"got {len(ranks)} ranks, {len(histories)} histories and {len(targets)} targets")
    counts = np.asarray(item_counts, dtype=np.int64).reshape(-1)

    len_labels, len_group, bounds = history_length_groups([len(h) for h in histories])
    pop_labels, item_group, sizes = popularity_groups(counts, special_ids, popularity_cuts)
    cold = (counts[targets] == 0).astype(np.int64)  # 1 = cold
    segments = {
        "history_length": _grouped(ranks, len_group, len_labels, ks),
        "target_popularity": _grouped(ranks, item_group[targets], pop_labels, ks),
        "cold_vs_warm": _grouped(ranks, 1 - cold, ["cold", "warm"], ks),
    }
    definitions = {
        "history_length": {"quartile_boundaries": bounds, "length": "whole history of the evaluated split"},
        "target_popularity": {
            "cuts": list(popularity_cuts),
            "items_per_group": dict(zip(pop_labels, sizes)),
            "order": "items sorted by training count, most popular first (ties: lower index first)",
        },
        "cold_vs_warm": {"cold": "target has zero training interactions",
                         "cold_items": int(((counts == 0) & (item_group >= 0)).sum())},  # fmt: skip
    }
    return segments, definitions


def beyond_accuracy_metrics(
    topk: Any, item_counts: np.ndarray, ks: int | Iterable[int] = (10,), special_ids: Iterable[int] = (0,)
) -> dict[str, float]:
    """Coverage, average popularity and novelty of top-K lists (see the module docstring).

    Args:
        topk: ``[n_users, k_max]`` item indices, best first, ``-1`` padding; the first K columns are
            the top-K list for each K in ``ks`` (K larger than ``k_max`` uses every column).
        item_counts: ``[vocab_size]`` training counts.
    """
    ks = check_ks(ks)
    lists = torch.as_tensor(topk).long().cpu().numpy()
    if lists.ndim != 2:
        raise ValueError(f"topk must be 2-D [n_users, k], got shape {lists.shape}")
    counts = np.asarray(item_counts, dtype=np.float64).reshape(-1)
    items = _rankable_items(counts.size, special_ids)
    n_items = len(items)
    total = counts[items].sum()
    max_count = counts[items].max() if n_items else 0.0
    out: dict[str, float] = {}
    for k in ks:
        rec = lists[:, :k].reshape(-1)
        rec = rec[rec >= 0]
        if rec.size == 0:
            for name in ("coverage", "avg_popularity", "avg_popularity_norm", "novelty"):
                out[f"{name}@{k}"] = float("nan")
            continue
        c = counts[rec]
        out[f"coverage@{k}"] = len(np.unique(rec)) / n_items
        out[f"avg_popularity@{k}"] = float(c.mean())
        out[f"avg_popularity_norm@{k}"] = float(c.mean() / max_count) if max_count > 0 else 0.0
        out[f"novelty@{k}"] = float(np.mean(-np.log2((c + 1.0) / (total + n_items))))
    return out


def evaluate_segments(
    model: Any,
    split: Any,
    train_split: Any,
    ks: int | Iterable[int] = (10,),
    evaluator: Evaluator | None = None,
    accelerator: Any = None,
    popularity_cuts: Sequence[float] = (0.2,),
    **evaluator_kwargs: Any,
) -> dict[str, Any]:
    """Segment metrics and beyond-accuracy metrics of ``model`` on ``split``, in one evaluation pass.

    Args:
        model: a model with the embedding contract (docs/architecture.md).
        split: the evaluated split (``item_ids`` histories and ``target``), e.g. ``splits["test"]``.
        train_split: the training split (``item_ids``): item popularity and cold items come from it.
        ks (`int` or list of `int`, defaults to `(10,)`): cut-offs of the metrics and top-K lists.
        evaluator (`Evaluator`, *optional*): the evaluator to reuse (its ``ks``, protocol and
            seen-item filtering); by default ``Evaluator(split, ks, show_progress=False, **evaluator_kwargs)``.
        accelerator (*optional*): as in ``Evaluator.evaluate``; every process gets the result.
        popularity_cuts (defaults to `(0.2,)`): see :func:`popularity_groups`.

    Returns:
        ``{"overall": metrics (as ``Evaluator.evaluate``), "segments": {grouping: {label: metrics}},
        "segment_definitions": {...},
        "beyond_accuracy": {"coverage@K": ..., ...}}``, JSON-ready. Under the sampled protocol the
        segment metric keys carry the same ``sampled{N}_`` prefix as ``Evaluator.evaluate``.
    """
    if evaluator is None:
        evaluator_kwargs.setdefault("show_progress", False)
        evaluator = Evaluator(split, ks=ks, **evaluator_kwargs)
    ks = evaluator.ks
    ranks, topk = evaluator.ranks(model, accelerator, top_k=max(ks))
    unwrapped = accelerator.unwrap_model(model) if accelerator is not None else model
    config = getattr(unwrapped, "config", None)
    specials = model_special_ids(config)
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size is None:
        vocab_size = unwrapped.get_item_embeddings().shape[0]
    counts = training_item_counts(train_split, int(vocab_size))
    segments, definitions = segment_metrics(
        ranks, evaluator.histories, evaluator.targets, counts, ks, specials, popularity_cuts
    )
    overall = metrics_from_ranks(ranks, ks)
    if evaluator.protocol == "sampled":
        from .sampled import prefix_metrics

        overall = prefix_metrics(overall, evaluator.num_negatives, evaluator.sampling)
        segments = {
            grouping: {label: prefix_metrics(m, evaluator.num_negatives, evaluator.sampling) for label, m in groups.items()}
            for grouping, groups in segments.items()
        }
    return {
        "overall": overall,
        "segments": segments,
        "segment_definitions": definitions,
        "beyond_accuracy": beyond_accuracy_metrics(topk, counts, ks, specials),
    }
