"""Batch builders for training: next-item (causal) labels and cloze masking (BERT4Rec).

Both read rows with an `item_ids` list, keep the most recent items, LEFT-pad (the newest item is always at
position -1, see docs/architecture.md) and return `input_ids`, `attention_mask`, `labels` (-100 = no loss).
Rows that also carry `timestamps` (unix seconds aligned with `item_ids`) add a `timestamps` batch, padded with 0;
rows with `user_features` (one value id per user feature) add `user_features` `[B, n_features]`, rows with
`interaction_features` (per item, one value id per interaction feature) add `interaction_features` `[B, L, n]` aligned
with `input_ids` (0 at padding).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["OBJECTIVES", "SequentialCollator", "left_pad"]

OBJECTIVES = ("causal", "cloze")


def left_pad(sequences: Sequence[Sequence[int]], pad_token_id: int = 0, fill: int | None = None) -> torch.Tensor:
    """Left-pad lists of ints into a `[batch, max_len]` tensor (with `fill` instead of the pad id if given)."""
    value = pad_token_id if fill is None else fill
    length = max((len(s) for s in sequences), default=0)
    out = np.full((len(sequences), length), value, dtype=np.int64)
    for row, seq in enumerate(sequences):
        if len(seq):
            out[row, length - len(seq) :] = seq
    return torch.from_numpy(out)


class SequentialCollator:
    """Training batches for one objective.

    Args:
        objective (`str`): `"causal"` (every position predicts the next item: SASRec, GRU4Rec, NARM) or `"cloze"`
            (random positions replaced by the mask token and predicted: BERT4Rec).
        max_length (`int`): Positions per row; the most recent items are kept.
        pad_token_id (`int`, defaults to 0)
        mask_token_id (`int`, *optional*): Required for `"cloze"`.
        mask_probability (`float`, defaults to 0.2): Cloze masking rate; every row gets at least one mask.
        last_item_mask_probability (`float`, defaults to 0.0): Share of cloze rows that mask only their most recent
            item (the prediction-time task) instead of random items.
        seed (`int`, *optional*): Seeds the cloze masking for reproducible batches. Inside DataLoader worker
            processes each worker splits its own stream (by worker id) off the generator it was copied with:
            otherwise every worker would draw the same masks.

    When the rows carry `timestamps`, the batch has them too, left-padded with 0: `[B, L + 1]` for `"causal"` (the
    times of the whole window: column `j < L` is the time of `input_ids[:, j]`, column `L` that of the last label,
    i.e. of the item the last position predicts), `[B, L]` aligned with `input_ids` for `"cloze"`.
    """

    def __init__(
        self,
        objective: str,
        max_length: int,
        pad_token_id: int = 0,
        mask_token_id: int | None = None,
        mask_probability: float = 0.2,
        last_item_mask_probability: float = 0.0,
        seed: int | None = None,
    ):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if objective == "cloze" and mask_token_id is None:
            raise ValueError("the cloze objective needs mask_token_id (ItemTokenizer.mask_token_id)")
        if not 0.0 < mask_probability <= 1.0:
            raise ValueError(f"mask_probability must be in (0, 1], got {mask_probability!r}")
        if not 0.0 <= last_item_mask_probability <= 1.0:
            raise ValueError(f"last_item_mask_probability must be in [0, 1], got {last_item_mask_probability!r}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length!r}")
        self.objective = objective
        self.max_length = max_length
        self.pad_token_id = pad_token_id
        self.mask_token_id = mask_token_id
        self.mask_probability = mask_probability
        self.last_item_mask_probability = last_item_mask_probability
        self.rng = np.random.default_rng(seed)
        self._worker_id: int | None = None

    def _generator(self) -> np.random.Generator:
        worker = torch.utils.data.get_worker_info()
        if worker is not None and self._worker_id != worker.id:
            # This is the worker's own copy of the collator (made when the epoch's iterator started): split the
            # copied stream by worker id, or every worker would draw the same masks.
            self._worker_id = worker.id
            self.rng = np.random.default_rng([int(self.rng.integers(2**63)), worker.id])
        return self.rng

    @staticmethod
    def min_length(objective: str) -> int:
        """Shortest sequence that yields a training signal (causal needs an input and a next item)."""
        return 2 if objective == "causal" else 1

    def __call__(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        sequences = [np.asarray(row["item_ids"], dtype=np.int64) for row in rows]
        times = None
        if rows and "timestamps" in rows[0]:
            times = [np.asarray(row["timestamps"], dtype=np.int64) for row in rows]
            if any(len(t) != len(s) for t, s in zip(times, sequences)):
                raise ValueError("each row's timestamps must be as long as its item_ids")
        width = self.max_length + 1 if self.objective == "causal" else self.max_length
        if self.objective == "causal":
            windows = [s[-width:] for s in sequences]
            if any(len(w) < 2 for w in windows):
                raise ValueError("causal training rows need at least 2 items; filter shorter rows first")
            input_ids = left_pad([w[:-1] for w in windows], self.pad_token_id)
            labels = left_pad([w[1:] for w in windows], fill=-100)
        else:
            windows = [s[-width:] for s in sequences]
            if any(len(w) < 1 for w in windows):
                raise ValueError("cloze training rows need at least 1 item; filter empty rows first")
            masked, label_rows = [], []
            rng = self._generator()
            mask_last = np.zeros(len(windows), dtype=bool)
            if self.last_item_mask_probability > 0:  # no draw at 0: the random masks stay those of earlier versions
                mask_last = rng.random(len(windows)) < self.last_item_mask_probability
            for window, last_only in zip(windows, mask_last):
                if last_only:
                    mask = np.zeros(len(window), dtype=bool)
                    mask[-1] = True
                else:
                    mask = rng.random(len(window)) < self.mask_probability
                    if not mask.any():
                        mask[rng.integers(len(window))] = True
                masked.append(np.where(mask, self.mask_token_id, window))
                label_rows.append(np.where(mask, window, -100))
            input_ids = left_pad(masked, self.pad_token_id)
            labels = left_pad(label_rows, fill=-100)
        attention_mask = (input_ids != self.pad_token_id).long()  # the mask token is not padding
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if times is not None:
            # The items' window: for causal, the inputs' times and the last label's (what the last position predicts).
            batch["timestamps"] = left_pad([t[-width:] for t in times], fill=0)
        if rows and "user_features" in rows[0]:
            batch["user_features"] = torch.as_tensor(np.asarray([row["user_features"] for row in rows], dtype=np.int64))
        if rows and "interaction_features" in rows[0]:
            batch["interaction_features"] = self._interaction_features(rows, sequences, width, input_ids.shape[1])
        return batch

    def _interaction_features(self, rows, sequences, width: int, length: int) -> torch.Tensor:
        """`[B, L, n]`: each input item's interaction value ids (causal: the window without its last item)."""
        values = [np.asarray(row["interaction_features"], dtype=np.int64).reshape(len(seq), -1)
                  for row, seq in zip(rows, sequences)]  # fmt: skip
        if len({v.shape[1] for v in values}) > 1:
            raise ValueError("each row's interaction_features must hold the same number of features per item")
        out = np.zeros((len(rows), length, values[0].shape[1]), dtype=np.int64)
        for row, v in enumerate(values):
            window = v[-width:][:-1] if self.objective == "causal" else v[-width:]
            out[row, length - len(window) :] = window
        return torch.from_numpy(out)
