"""Summary statistics of leave-one-out splits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

__all__ = ["dataset_statistics"]


def _table(ds: Dataset) -> pa.Table:
    return ds.with_format("arrow")[:] if len(ds) else ds.data.table.slice(0, 0)


def dataset_statistics(splits: Mapping[str, Dataset]) -> dict[str, Any]:
    """Users, distinct items, interactions, sequence-length percentiles and density.

    A user's full sequence is the ``test`` history plus its target (= train history + 2), so
    ``interactions`` = sum of train lengths + 2 per user. Works from ``test`` when present,
    otherwise from ``train`` (+2) plus the validation / test targets that exist.
    """
    if "test" in splits:
        t = _table(splits["test"])
        hist = pc.list_flatten(t.column("item_ids")).to_numpy()
        targets = t.column("target").to_numpy()
        lengths = pc.list_value_length(t.column("item_ids")).to_numpy().astype(np.int64) + 1
        items = np.concatenate([hist, targets[targets >= 0]])
    elif "train" in splits:
        t = _table(splits["train"])
        lengths = pc.list_value_length(t.column("item_ids")).to_numpy().astype(np.int64) + 2
        parts = [pc.list_flatten(t.column("item_ids")).to_numpy()]
        if "validation" in splits:
            v = _table(splits["validation"]).column("target").to_numpy()
            parts.append(v[v >= 0])
        items = np.concatenate(parts)
    else:
        raise ValueError(f"dataset_statistics needs a 'test' or 'train' split, got {sorted(splits)}")
    users = int(len(lengths))
    n_items = int(len(np.unique(items)))
    interactions = int(lengths.sum())
    if users:
        p = np.percentile(lengths, [25, 50, 75, 90])
        length_stats = {
            "min": int(lengths.min()),
            "p25": float(p[0]),
            "median": float(p[1]),
            "p75": float(p[2]),
            "p90": float(p[3]),
            "max": int(lengths.max()),
            "mean": float(lengths.mean()),
        }
    else:
        length_stats = {k: 0 for k in ("min", "p25", "median", "p75", "p90", "max", "mean")}
    return {
        "users": users,
        "items": n_items,
        "interactions": interactions,
        "sequence_length": length_stats,
        "density": interactions / (users * n_items) if users and n_items else 0.0,
    }
