"""Most-popular baseline: every user gets the same scores, the training-set item counts.

``PopularityRecommender`` follows the embedding contract of docs/architecture.md, so the
``Evaluator`` and ``recommend`` treat it like any other model: ``get_user_embeddings`` returns
ones ``[batch, 1]`` and ``get_item_embeddings`` returns the counts ``[vocab_size, 1]`` (score =
count). It is a plain ``torch.nn.Module`` (not a ``PreTrainedModel``); it imports only torch and
the standard library, and saves to JSON (no pickle).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

__all__ = ["PopularityRecommender"]

CONFIG_NAME = "config.json"
COUNTS_NAME = "item_counts.json"


class PopularityRecommender(nn.Module):
    """Scores every item by how often it occurs in the training sequences.

    Args:
        vocab_size: size of the item table (``1 + num_items + 1 + num_added``); may be left out
            and given to :meth:`fit` instead.
        special_ids: never counted, never recommended (``0`` is always added).

    ``config`` is a ``SimpleNamespace`` with ``model_type="popularity"``, ``vocab_size``,
    ``special_ids`` and ``max_position_embeddings=None`` (the scores ignore the history, so no
    truncation is needed).
    """

    def __init__(self, vocab_size: int | None = None, special_ids: Iterable[int] = (0,)):
        super().__init__()
        specials = sorted({0, *(int(s) for s in special_ids)})
        self.config = SimpleNamespace(
            model_type="popularity",
            vocab_size=None if vocab_size is None else int(vocab_size),
            special_ids=specials,
            max_position_embeddings=None,
        )
        self.register_buffer("item_counts", torch.zeros(int(vocab_size or 0), dtype=torch.float32))

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        train: Any,
        vocab_size: int | None = None,
        special_ids: Iterable[int] | None = None,
    ) -> "PopularityRecommender":
        """Count item occurrences in ``train``: a split with an ``item_ids`` column (e.g. the
        ``train`` split of ``load_sequential_dataset``) or a list of index sequences. Only the
        sequences are counted, not any ``target`` column. Special ids get count 0."""
        if vocab_size is not None:
            self.config.vocab_size = int(vocab_size)
        if special_ids is not None:
            self.config.special_ids = sorted({0, *(int(s) for s in special_ids)})
        sequences = train["item_ids"] if _has_column(train, "item_ids") else train
        flat = [int(i) for seq in sequences for i in seq]
        items = torch.tensor(flat, dtype=torch.long)
        if self.config.vocab_size is None:
            self.config.vocab_size = int(items.max()) + 1 if items.numel() else 1
        vocab = self.config.vocab_size
        if items.numel() and (int(items.min()) < 0 or int(items.max()) >= vocab):
            raise ValueError(f"training items must lie in [0, {vocab}), got [{int(items.min())}, {int(items.max())}]")
        counts = torch.bincount(items, minlength=vocab).to(torch.float32)
        specials = [s for s in self.config.special_ids if s < vocab]
        counts[specials] = 0.0
        self.item_counts = counts.to(self.item_counts.device)
        return self

    # ------------------------------------------------------------------ embedding contract
    def get_user_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.ones(input_ids.shape[0], 1, dtype=self.item_counts.dtype, device=self.item_counts.device)

    def get_item_embeddings(self) -> torch.Tensor:
        counts = self.item_counts.clone()
        specials = [s for s in self.config.special_ids if s < counts.numel()]
        counts[specials] = 0.0
        return counts.unsqueeze(1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """Scores ``[batch, vocab_size]`` (the counts), special ids at ``-inf``."""
        scores = self.get_item_embeddings().squeeze(1).unsqueeze(0).expand(input_ids.shape[0], -1).clone()
        specials = [s for s in self.config.special_ids if s < scores.shape[1]]
        scores[:, specials] = float("-inf")
        return scores

    @torch.no_grad()
    def recommend(
        self, histories: Sequence[Sequence[int]], k: int = 10, exclude_seen: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` most popular items per history, ``(indices [B, k'], scores [B, k'])`` with
        ``k' = min(k, number of non-special items)``; seen items are skipped when ``exclude_seen``
        (rows that run out of items are padded with index -1 and score -inf). Ties: lower index first."""
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive int, got {k!r}")
        counts = self.get_item_embeddings().squeeze(1).to(torch.float64)
        vocab = counts.numel()
        specials = set(s for s in self.config.special_ids if s < vocab)
        # a stable order: by count descending, then index ascending
        order = sorted((i for i in range(vocab) if i not in specials), key=lambda i: (-float(counts[i]), i))
        kk = min(k, len(order))
        indices = torch.full((len(histories), kk), -1, dtype=torch.long)
        scores = torch.full((len(histories), kk), float("-inf"), dtype=torch.float32)
        for r, hist in enumerate(histories):
            seen = set(int(i) for i in hist) if exclude_seen else set()
            picked = []
            for i in order:
                if i not in seen:
                    picked.append(i)
                    if len(picked) == kk:
                        break
            if picked:
                indices[r, : len(picked)] = torch.tensor(picked)
                scores[r, : len(picked)] = counts[picked].float()
        return indices, scores

    # ------------------------------------------------------------------ persistence (JSON)
    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        os.makedirs(save_directory, exist_ok=True)
        with open(os.path.join(save_directory, CONFIG_NAME), "w", encoding="utf-8") as f:
            json.dump(vars(self.config), f, indent=2)
        with open(os.path.join(save_directory, COUNTS_NAME), "w", encoding="utf-8") as f:
            json.dump([int(c) for c in self.item_counts.tolist()], f)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "PopularityRecommender":
        with open(os.path.join(directory, CONFIG_NAME), encoding="utf-8") as f:
            cfg = json.load(f)
        if cfg.get("model_type") != "popularity":
            raise ValueError(f"{directory} does not hold a popularity model (model_type={cfg.get('model_type')!r})")
        with open(os.path.join(directory, COUNTS_NAME), encoding="utf-8") as f:
            counts = json.load(f)
        model = cls(vocab_size=cfg["vocab_size"], special_ids=cfg.get("special_ids", [0]))
        model.config.max_position_embeddings = cfg.get("max_position_embeddings")
        if len(counts) != model.config.vocab_size:
            raise ValueError(f"{COUNTS_NAME} has {len(counts)} counts for vocab_size {model.config.vocab_size}")
        model.item_counts = torch.tensor(counts, dtype=torch.float32)
        return model


def _has_column(obj: Any, name: str) -> bool:
    names = getattr(obj, "column_names", None)
    if names is not None:
        return name in names
    return isinstance(obj, dict) and name in obj
