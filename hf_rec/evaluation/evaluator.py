"""`Evaluator`: full-catalogue (or sampled) next-item evaluation of any embedding model.

The model only needs the two embedding methods of the model contract (docs/architecture.md)::

    model.get_user_embeddings(input_ids, attention_mask) -> [batch, hidden]
    model.get_item_embeddings()                          -> [vocab_size, hidden]
    model.config.max_position_embeddings                 (history window; None = no truncation)

and optionally ``model.config.special_ids`` (else ``0`` plus ``model.config.mask_token_id`` when
the config has one). Scores are dot products, ranked chunk by chunk over the catalogue
(:func:`~hf_rec.evaluation.metrics.rank_targets_by_embeddings`), so no ``[users, items]`` matrix is
built. With an ``accelerate.Accelerator`` the dataloader is prepared (each process scores its
share of the users) and the ranks go through ``accelerator.gather_for_metrics``, so every user
counts exactly once.

A split with ``timestamps`` (and ``target_timestamp``) columns also gives the models whose config has
``use_time_bias`` or ``context_features`` a ``timestamps`` argument: ``[batch, L + 1]``, left-padded with 0 like the inputs, the
target's time as the last column. Other models are never passed it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .metrics import (
    _special_tensor,
    check_ks,
    metrics_from_ranks,
    rank_targets_by_embeddings,
    topk_by_embeddings,
)
from .sampled import prefix_metrics, sample_negatives, sampled_target_ranks

__all__ = ["Evaluator", "model_special_ids"]

logger = logging.getLogger("hf_rec.evaluation")

_PROTOCOLS = ("full", "sampled")


def model_special_ids(config: Any) -> list[int]:
    """Special ids of a model config: ``config.special_ids`` when set, else ``0`` plus
    ``config.mask_token_id`` when the config has one (``0`` is always included)."""
    ids = getattr(config, "special_ids", None) if config is not None else None
    out = {0}
    if ids is not None:
        out.update(int(i) for i in ids if i is not None)
    else:
        mask = getattr(config, "mask_token_id", None) if config is not None else None
        if mask is not None:
            out.add(int(mask))
    return sorted(out)


def _has_column(split: Any, name: str) -> bool:
    names = getattr(split, "column_names", None)  # datasets.Dataset; a dict or DataFrame of columns otherwise
    try:
        return name in (names if names is not None else split)
    except TypeError:
        return False


class _Rows(Dataset):
    """Row index -> the index itself; the collator reads the columns (fast, no per-row Arrow reads)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class _Collator:
    """Truncate histories to the last ``max_length`` items, left-pad with 0, and keep the full
    history (padded with -1) for seen-item exclusion. With ``times``, also ``timestamps``: the
    window's times, left-padded with 0, then the target's time (``target_times``) as a last column."""

    def __init__(
        self,
        histories: list[np.ndarray],
        targets: np.ndarray,
        max_length: int | None,
        with_history: bool,
        times: list[np.ndarray] | None = None,
        target_times: np.ndarray | None = None,
        user_features: np.ndarray | None = None,
        interaction_features: list[np.ndarray] | None = None,
    ):
        self.histories = histories
        self.targets = targets
        self.max_length = max_length
        self.with_history = with_history
        self.times = times
        self.target_times = target_times
        self.user_features = user_features
        self.interaction_features = interaction_features

    def _aligned(self, rows: list[np.ndarray], indices: list[int], width: int) -> torch.Tensor:
        """Per-item values of the rows (`[len(history), ...]` each) cut and left-padded with 0 like `input_ids`."""
        out = torch.zeros(len(indices), width, *rows[indices[0]].shape[1:], dtype=torch.long)
        for r, i in enumerate(indices):
            values = rows[i][-self.max_length :] if self.max_length else rows[i]
            if len(values):
                out[r, width - len(values) :] = torch.from_numpy(values)
        return out

    def __call__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        hists = [self.histories[i] for i in indices]
        windows = [h[-self.max_length :] if self.max_length else h for h in hists]
        width = max(1, max(len(w) for w in windows))
        input_ids = torch.zeros(len(indices), width, dtype=torch.long)
        attention_mask = torch.zeros(len(indices), width, dtype=torch.long)
        for r, w in enumerate(windows):
            if len(w):
                input_ids[r, width - len(w) :] = torch.from_numpy(w)
                attention_mask[r, width - len(w) :] = 1
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "targets": torch.from_numpy(self.targets[indices]),
            "index": torch.tensor(indices, dtype=torch.long),
        }
        if self.times is not None:
            timestamps = self._aligned(self.times, indices, width)
            if self.target_times is not None:
                timestamps = torch.cat([timestamps, torch.from_numpy(self.target_times[indices])[:, None]], dim=1)
            batch["timestamps"] = timestamps
        if self.user_features is not None:
            batch["user_features"] = torch.from_numpy(self.user_features[indices])
        if self.interaction_features is not None:  # [B, width, n]
            batch["interaction_features"] = self._aligned(self.interaction_features, indices, width)
        if self.with_history:
            hwidth = max(1, max(len(h) for h in hists))
            history = torch.full((len(indices), hwidth), -1, dtype=torch.long)
            for r, h in enumerate(hists):
                if len(h):
                    history[r, : len(h)] = torch.from_numpy(h)
            batch["history"] = history
        return batch


class Evaluator:
    """Next-item evaluation of a split with one held-out ``target`` per user.

    Args:
        dataset_split: a ``datasets.Dataset`` (or anything indexable by column name) with
            ``item_ids`` (history, list of item indices) and ``target`` (item index) columns;
            optionally ``timestamps`` (aligned with ``item_ids``) and ``target_timestamp``.
        ks: metric cut-offs.
        batch_size: users per batch (per process).
        exclude_seen: remove the user's history items (the whole history, also beyond the model's
            window) from the ranking; the target itself is always ranked.
        max_length: history window; ``None`` = ``model.config.max_position_embeddings``
            (``None`` there too = the whole history).
        protocol: ``"full"`` (plain keys, ``ndcg@10``) or ``"sampled"`` (``sampled100_ndcg@10``).
        num_negatives, sampling, seed, item_counts: sampled protocol only (see
            :mod:`hf_rec.evaluation.sampled`); ``item_counts`` is needed for ``"popularity"``.
        item_chunk_size, user_chunk_size: chunking of the full ranking (``user_chunk_size``
            defaults to ``batch_size``).
        show_progress: tqdm bar (on the main process only).
    """

    def __init__(
        self,
        dataset_split: Any,
        ks: int | Iterable[int] = (10,),
        batch_size: int = 256,
        exclude_seen: bool = True,
        max_length: int | None = None,
        protocol: str = "full",
        num_negatives: int = 100,
        sampling: str = "uniform",
        seed: int = 0,
        item_chunk_size: int = 65536,
        item_counts: Any = None,
        user_chunk_size: int | None = None,
        show_progress: bool = True,
        num_workers: int = 0,
    ):
        if protocol not in _PROTOCOLS:
            raise ValueError(f"protocol must be one of {_PROTOCOLS}, got {protocol!r}")
        if sampling not in ("uniform", "popularity"):
            raise ValueError(f"sampling must be 'uniform' or 'popularity', got {sampling!r}")
        if protocol == "sampled" and sampling == "popularity" and item_counts is None:
            raise ValueError('protocol="sampled" with sampling="popularity" needs item_counts')
        if int(batch_size) <= 0:
            raise ValueError("batch_size must be positive")
        if max_length is not None and int(max_length) <= 0:
            raise ValueError("max_length must be positive or None")
        self.ks = check_ks(ks)
        self.batch_size = int(batch_size)
        self.exclude_seen = bool(exclude_seen)
        self.max_length = None if max_length is None else int(max_length)
        self.protocol = protocol
        self.num_negatives = int(num_negatives)
        self.sampling = sampling
        self.seed = int(seed)
        self.item_chunk_size = int(item_chunk_size)
        self.user_chunk_size = int(user_chunk_size) if user_chunk_size else self.batch_size
        self.item_counts = item_counts
        self.show_progress = show_progress
        self.num_workers = int(num_workers)
        try:
            histories = dataset_split["item_ids"]
            targets = dataset_split["target"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError("dataset_split needs 'item_ids' and 'target' columns") from e
        self.histories = [np.asarray(h, dtype=np.int64).reshape(-1) for h in histories]
        self.targets = np.asarray(list(targets), dtype=np.int64).reshape(-1)
        if len(self.histories) != len(self.targets):
            raise ValueError("item_ids and target columns have different lengths")
        # Optional per-item times (only models with a time bias read them).
        self.timestamps = self.target_timestamps = None
        if _has_column(dataset_split, "timestamps"):
            self.timestamps = [np.asarray(t, dtype=np.int64).reshape(-1) for t in dataset_split["timestamps"]]
            if len(self.timestamps) != len(self.histories):
                raise ValueError("item_ids and timestamps columns have different lengths")
            bad = next((r for r, (t, h) in enumerate(zip(self.timestamps, self.histories)) if len(t) != len(h)), None)
            if bad is not None:
                raise ValueError(f"dataset row {bad}: its timestamps and item_ids differ in length")
            if _has_column(dataset_split, "target_timestamp"):
                self.target_timestamps = np.asarray(list(dataset_split["target_timestamp"]), dtype=np.int64).reshape(-1)
        self.user_features = None  # one row of value ids per user (models with user features read them)
        if _has_column(dataset_split, "user_features"):
            self.user_features = np.asarray(list(dataset_split["user_features"]), dtype=np.int64)
            if self.user_features.ndim != 2 or len(self.user_features) != len(self.histories):
                raise ValueError("the user_features column must hold one equally long list of value ids per row")
        self.interaction_features = None  # per history item, one value id per interaction feature
        if _has_column(dataset_split, "interaction_features"):
            rows = list(dataset_split["interaction_features"])
            width = next((len(f[0]) for f in rows if len(f)), 0)
            try:
                self.interaction_features = [np.asarray(f, dtype=np.int64).reshape(len(h), width)
                                             for f, h in zip(rows, self.histories, strict=True)]  # fmt: skip
            except ValueError as err:
                raise ValueError("the interaction_features column must hold, per row, one equally long list of value "
                                 "ids per item of item_ids") from err  # fmt: skip

    def __len__(self) -> int:
        return len(self.targets)

    def _check_targets(self, vocab_size: int, specials: list[int]) -> None:
        t = self.targets
        bad = (t < 0) | (t >= vocab_size) | np.isin(t, specials)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"target of dataset row {row} is {int(t[row])}: not a rankable item (vocab_size={vocab_size}, "
                f"special ids {specials}); splits without a held-out item (train, target=-1) cannot be evaluated"
            )

    def _dataloader(self, max_length: int | None) -> DataLoader:
        collate = _Collator(self.histories, self.targets, max_length, with_history=self.exclude_seen,
                            times=self.timestamps, target_times=self.target_timestamps,
                            user_features=self.user_features, interaction_features=self.interaction_features)  # fmt: skip
        return DataLoader(
            _Rows(len(self.targets)),
            batch_size=self.batch_size,
            shuffle=False,
            collate_fn=collate,
            num_workers=self.num_workers,
        )

    def evaluate(self, model: Any, accelerator: Any = None, return_ranks: bool = False):
        """Metric dict (``hr@K``, ``recall@K``, ``precision@K``, ``f1@K``, ``ndcg@K``, ``mrr@K`` per K,
        prefixed ``sampled{N}[pop]_`` for the sampled protocol) plus ``num_users``.

        With ``return_ranks=True`` returns ``(metrics, ranks)``: ``ranks`` is a ``LongTensor[n_users]``
        (CPU) of 0-based target ranks in dataset row order, gathered across processes (see :meth:`ranks`).
        """
        ranks, _ = self.ranks(model, accelerator)
        metrics = metrics_from_ranks(ranks, self.ks)
        if self.protocol == "sampled":
            metrics = prefix_metrics(metrics, self.num_negatives, self.sampling)
        return (metrics, ranks) if return_ranks else metrics

    def ranks(self, model: Any, accelerator: Any = None, top_k: int | None = None):
        """Per-user target ranks (and optionally each user's top-``top_k`` list) in dataset row order.

        Args:
            model: any model with the embedding contract (see the module docstring).
            accelerator: optional ``accelerate.Accelerator``; every process gets the full result.
            top_k (`int`, *optional*): also return the ``top_k`` best items per user from the full
                catalogue (specials never; the user's history never when ``exclude_seen``), the same
                lists ``recommend`` would give. The sampled protocol only changes the ranks.

        Returns:
            ``(ranks, topk)``: ``LongTensor[n_users]`` and ``LongTensor[n_users, top_k]`` (``-1`` pads
            users with fewer rankable items) or ``None`` without ``top_k``; both on CPU.
        """
        unwrapped = accelerator.unwrap_model(model) if accelerator is not None else model
        config = getattr(unwrapped, "config", None)
        specials = model_special_ids(config)
        max_length = self.max_length
        if max_length is None and config is not None:
            max_length = getattr(config, "max_position_embeddings", None)
        is_module = isinstance(unwrapped, torch.nn.Module)
        was_training = unwrapped.training if is_module else False
        if is_module:
            unwrapped.eval()
        try:
            with torch.inference_mode():
                return self._run(unwrapped, accelerator, specials, max_length, top_k)
        finally:
            if is_module and was_training:
                unwrapped.train()

    def _run(self, model: Any, accelerator: Any, specials: list[int], max_length: int | None, top_k: int | None):
        from tqdm import tqdm

        item_emb = model.get_item_embeddings()
        if item_emb.dtype in (torch.float16, torch.bfloat16):
            item_emb = item_emb.float()
        vocab_size = item_emb.shape[0]
        specials = _special_tensor(specials, vocab_size, "cpu").tolist()
        self._check_targets(vocab_size, specials)

        # Only models that read times (a time bias, context features) or user features get them. A folder exported
        # before features existed has no `reads_timestamps`: its time bias is the config's `use_time_bias`.
        config = getattr(model, "config", None)
        use_time = bool(getattr(model, "reads_timestamps", getattr(config, "use_time_bias", False)))
        use_users = bool(getattr(model, "reads_user_features", False))
        use_interactions = bool(getattr(model, "reads_interaction_features", False))
        if use_time and self.timestamps is None:
            logger.warning("the model reads timestamps but the split has none: it scores from the order only")
        if use_users and self.user_features is None:
            logger.warning("the model reads user features but the split has none: every user counts as unknown")
        if use_interactions and self.interaction_features is None:
            logger.warning("the model reads interaction features but the split has none: every one counts as unknown")
        dataloader = self._dataloader(max_length)
        if accelerator is not None:
            from accelerate.data_loader import prepare_data_loader

            # accelerate's module function, not `accelerator.prepare`: that would register a new loader at every
            # evaluation (accelerate's list grows every epoch and `save_state` walks all of them).
            dataloader = prepare_data_loader(
                dataloader, accelerator.device, num_processes=accelerator.num_processes,
                process_index=accelerator.process_index, put_on_device=False,
            )  # fmt: skip
            device = accelerator.device
            is_main = accelerator.is_main_process
        else:
            device = item_emb.device
            is_main = True
        item_emb = item_emb.to(device)
        item_counts = None
        if self.protocol == "sampled" and self.sampling == "popularity":
            item_counts = torch.as_tensor(np.asarray(self.item_counts), dtype=torch.float64)

        all_ranks, all_rows, all_topk = [], [], []
        bar = tqdm(dataloader, desc="Evaluating", disable=not (self.show_progress and is_main))
        for batch in bar:
            batch = {k: v.to(device) for k, v in batch.items()}
            inputs = {key: batch[key] for key, wanted in (("timestamps", use_time), ("user_features", use_users),
                                                          ("interaction_features", use_interactions))
                      if wanted and key in batch}  # fmt: skip
            user_emb = model.get_user_embeddings(batch["input_ids"], batch["attention_mask"], **inputs)
            if user_emb.dtype in (torch.float16, torch.bfloat16):
                user_emb = user_emb.float()
            user_emb = user_emb.to(device)
            history = batch.get("history")
            if self.protocol == "full":
                ranks = rank_targets_by_embeddings(
                    user_emb,
                    item_emb,
                    batch["targets"],
                    exclude=history,
                    special_ids=specials,
                    item_chunk_size=self.item_chunk_size,
                    user_chunk_size=self.user_chunk_size,
                )
            else:
                negatives = sample_negatives(
                    batch["targets"].cpu(),
                    self.num_negatives,
                    vocab_size,
                    sampling=self.sampling,
                    item_counts=item_counts,
                    exclude=None if history is None else history.cpu(),
                    special_ids=specials,
                    seed=self.seed,
                    user_indices=batch["index"].cpu(),
                )
                ranks = sampled_target_ranks(user_emb, batch["targets"], negatives.to(device), item_emb=item_emb)
            rows = batch["index"]
            topk = None
            if top_k is not None:
                topk, _ = topk_by_embeddings(
                    user_emb, item_emb, top_k, exclude=history, special_ids=specials,
                    item_chunk_size=self.item_chunk_size, user_chunk_size=self.user_chunk_size,
                )  # fmt: skip
            if accelerator is not None:
                ranks, rows = accelerator.gather_for_metrics((ranks, rows))
                if topk is not None:
                    topk = accelerator.gather_for_metrics(topk)
            all_ranks.append(ranks.cpu())
            all_rows.append(rows.cpu())
            if topk is not None:
                all_topk.append(topk.cpu())
        ranks = torch.cat(all_ranks) if all_ranks else torch.empty(0, dtype=torch.long)
        rows = torch.cat(all_rows) if all_rows else torch.empty(0, dtype=torch.long)
        order = torch.argsort(rows)  # dataset row order, whatever the sharding across processes
        ranks = ranks[order]
        if top_k is None:
            return ranks, None
        topk = torch.cat(all_topk) if all_topk else torch.full((0, top_k), -1, dtype=torch.long)
        return ranks, topk[order]
