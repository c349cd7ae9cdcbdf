"""Leave-one-out splits (docs/architecture.md) built straight from Arrow arrays, and the
content fingerprint of a set of splits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Features, List, Value

__all__ = ["MIN_SEQUENCE_LENGTH", "SPLIT_FEATURES", "dataset_fingerprint", "leave_one_out_splits"]

#: a user needs a training history (>= 1 item), a validation target and a test target
MIN_SEQUENCE_LENGTH = 3

SPLIT_FEATURES = Features({"user_id": Value("string"), "item_ids": List(Value("int64")), "target": Value("int64")})


def _list_array(offsets: np.ndarray, values: np.ndarray) -> pa.ListArray:
    array = pa.ListArray.from_arrays(pa.array(offsets, pa.int64()), pa.array(values, pa.int64()))
    return array.cast(pa.list_(pa.int64()))


def _dataset(
    user_ids: pa.Array,
    offsets: np.ndarray,
    values: np.ndarray,
    targets: np.ndarray,
    times: np.ndarray | None = None,
    target_times: np.ndarray | None = None,
    interaction_features: np.ndarray | None = None,
) -> Dataset:
    columns = {"user_id": user_ids, "item_ids": _list_array(offsets, values), "target": pa.array(targets, pa.int64())}
    if times is not None:  # only then: without timestamps the table is exactly that of earlier versions
        columns["timestamps"] = _list_array(offsets, times)
    if interaction_features is not None:  # per item, one value id per feature
        width = interaction_features.shape[1]
        rows = pa.FixedSizeListArray.from_arrays(pa.array(interaction_features.reshape(-1), pa.int64()), width)
        columns["interaction_features"] = pa.ListArray.from_arrays(pa.array(offsets, pa.int64()), rows).cast(
            pa.list_(pa.list_(pa.int64()))
        )
    if target_times is not None:
        columns["target_timestamp"] = pa.array(target_times, pa.int64())
    return Dataset(pa.table(columns))


def leave_one_out_splits(
    user_ids: Sequence[str],
    lengths: np.ndarray,
    items: np.ndarray,
    timestamps: np.ndarray | None = None,
    interaction_features: np.ndarray | None = None,
) -> DatasetDict:
    """Build ``train`` / ``validation`` / ``test``.

    Args:
        user_ids: one raw user id per user, in output order.
        lengths: the sequence length of each user (every one >= 3).
        items: all item indices, concatenated user by user, each user's items oldest first.
        timestamps (*optional*): the unix time of each of `items` (same layout). Adds a ``timestamps`` column
            aligned with ``item_ids`` to every split and ``target_timestamp`` to validation and test.
        interaction_features (*optional*): `[len(items), n]` value ids of each of `items`' interaction features. Adds
            an ``interaction_features`` column (one list of `n` ids per item of ``item_ids``) to every split (the
            targets' own are not given: a prediction does not know them).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if len(user_ids) != len(lengths):
        raise ValueError(f"{len(user_ids)} user ids but {len(lengths)} lengths")
    if int(lengths.sum()) != len(items):
        raise ValueError(f"lengths sum to {int(lengths.sum())} but there are {len(items)} items")
    if timestamps is not None:
        timestamps = np.asarray(timestamps, dtype=np.int64)
        if len(timestamps) != len(items):
            raise ValueError(f"{len(timestamps)} timestamps but {len(items)} items")
    if interaction_features is not None:
        interaction_features = np.asarray(interaction_features, dtype=np.int64)
        if interaction_features.ndim != 2 or len(interaction_features) != len(items):
            raise ValueError(f"interaction_features must be [{len(items)}, n], got {interaction_features.shape}")
    if len(lengths) and lengths.min() < MIN_SEQUENCE_LENGTH:
        raise ValueError(f"every user needs at least {MIN_SEQUENCE_LENGTH} interactions for leave-one-out")
    ends = np.cumsum(lengths)
    last = ends - 1
    second_last = ends - 2
    users = pa.array([str(u) for u in user_ids], pa.string())

    keep_test = np.ones(len(items), dtype=bool)
    keep_test[last] = False
    keep_train = keep_test.copy()
    keep_train[second_last] = False

    zero = np.zeros(1, dtype=np.int64)
    train_offsets = np.concatenate([zero, np.cumsum(lengths - 2)])
    test_offsets = np.concatenate([zero, np.cumsum(lengths - 1)])
    train_values = items[keep_train]
    test_values = items[keep_test]
    t = timestamps
    train_t, test_t = (None, None) if t is None else (t[keep_train], t[keep_test])
    valid_target_t, test_target_t = (None, None) if t is None else (t[second_last], t[last])
    f = interaction_features
    train_f, test_f = (None, None) if f is None else (f[keep_train], f[keep_test])

    return DatasetDict(
        {
            "train": _dataset(users, train_offsets, train_values, np.full(len(lengths), -1, dtype=np.int64), train_t,
                              interaction_features=train_f),
            "validation": _dataset(users, train_offsets, train_values, items[second_last], train_t, valid_target_t,
                                   interaction_features=train_f),
            "test": _dataset(users, test_offsets, test_values, items[last], test_t, test_target_t,
                             interaction_features=test_f),
        }
    )  # fmt: skip


def _split_table(ds: Dataset) -> pa.Table:
    # respects any indices mapping (select / shuffle / filter) so the hash is of what a user sees
    return ds.with_format("arrow")[:] if len(ds) else ds.data.table.slice(0, 0)


def _hash_column(h: "hashlib._Hash", column: pa.ChunkedArray) -> None:
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    typ = col.type
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
        h.update(b"list")
        h.update(np.asarray(lengths, dtype="<i8").tobytes())
        _hash_column(h, pa.chunked_array([col.flatten()], type=typ.value_type))
    elif pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ):
        h.update(str(typ).encode())
        h.update(np.asarray(col.to_numpy(zero_copy_only=False)).astype("<f8" if pa.types.is_floating(typ) else "<i8").tobytes())
    else:
        for value in col.to_pylist():
            b = json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)


def dataset_fingerprint(splits: Mapping[str, Dataset], options: Mapping[str, Any] | None = None) -> str:
    """sha256 hex digest of the splits' content (split names, columns, values, in order) and the
    options (JSON with sorted keys). Stable across runs and machines."""
    h = hashlib.sha256(b"hf_rec.dataset_fingerprint.v1\0")
    for name in sorted(splits):
        ds = splits[name]
        table = _split_table(ds)
        h.update(f"split:{name}:{table.num_rows}\0".encode())
        for col_name in sorted(table.column_names):
            h.update(f"column:{col_name}\0".encode())
            _hash_column(h, table.column(col_name))
    h.update(b"options\0")
    h.update(json.dumps(dict(options or {}), sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
    return h.hexdigest()
