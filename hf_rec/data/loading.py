"""``load_sequential_dataset``: real datasets (or your own interaction file) -> leave-one-out splits
+ an :class:`~hf_rec.data.ItemTokenizer`.

Pipeline (every step that drops rows logs on ``logging.getLogger("hf_rec.data")`` and is counted
in ``tokenizer.metadata["report"]``):

1. read the raw interactions (with file / line numbers on bad input);
2. order them: users in order of first appearance, each user's interactions by timestamp with a
   stable sort (ties keep file order), or by the dataset's order column / line order;
3. ``min_rating`` (drop rows rated below), k-core (``user_k_core`` / ``item_k_core``, iterated until
   stable), ``max_history`` (keep each user's most recent N);
4. users with fewer than 3 interactions cannot be split: they are excluded (warning + report);
5. item indices 1..n in order of first appearance of the remaining rows; leave-one-out splits.

With ``timestamps=True`` the splits also carry each interaction's unix time (``timestamps``, aligned with
``item_ids``; ``target_timestamp`` in validation / test), for models with a time bias. Data without a real
timestamp for every interaction is refused (a built-in dataset before any file is read): no made-up times.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from datasets import DatasetDict

from . import _readers as R
from .builtin import BUILTIN_DATASETS, Interactions, SideFeatures, _resolve_builtin_dir
from .download import sha256_file
from .splits import MIN_SEQUENCE_LENGTH, dataset_fingerprint, leave_one_out_splits
from .tokenizer import ItemTokenizer, bucket_id, quantile_bucket_edges

logger = logging.getLogger("hf_rec.data")

__all__ = ["BUILTIN_DATASETS", "Interactions", "load_dataset_like", "load_sequential_dataset", "process_interactions"]

DATA_FORMAT_VERSION = 1

# ============================================================================ processing
def _log_drop(report: dict, key: str, rows: int, message: str, *args: Any) -> None:
    report[key] = int(rows)
    if rows:
        logger.info(message, *args)


def process_interactions(
    inter: Interactions,
    *,
    name: str,
    min_rating: float | None = None,
    user_k_core: int | None = None,
    item_k_core: int | None = None,
    max_history: int | None = None,
    return_timestamps: bool = False,
    return_rows: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Order + filter. Returns (user raw ids per kept user, lengths, item codes (0-based, first-seen
    order), item raw ids per code, report); with ``return_timestamps``, also the kept rows'
    ``inter.timestamps`` aligned with the item codes; with ``return_rows``, last, the kept rows' positions in
    ``inter`` (aligned with the item codes: any per-interaction column indexed by them lines up)."""
    n = len(inter.user)
    if len(inter.item) != n:
        raise ValueError("user and item columns differ in length")
    report: dict[str, Any] = {"raw_interactions": int(n), "order": inter.order_kind}
    ucode, uuniq = pd.factorize(inter.user, sort=False)  # first-appearance order
    report["raw_users"] = int(len(uuniq))
    rows = np.arange(n)
    if inter.order is not None:
        perm = np.lexsort((rows, inter.order, ucode))  # stable: ties keep file order
    else:
        perm = np.lexsort((rows, ucode))
    ucode = ucode[perm]
    item = np.asarray(inter.item)[perm]
    icode, iuniq = pd.factorize(item, sort=False)
    report["raw_items"] = int(len(iuniq))
    keep = np.ones(n, dtype=bool)

    if min_rating is not None:
        if inter.rating is None:
            raise ValueError(f"min_rating={min_rating} was given but dataset {name!r} has no ratings")
        low = np.asarray(inter.rating)[perm] < min_rating
        keep &= ~low
        _log_drop(report, "dropped_min_rating", low.sum(), "min_rating=%s dropped %d interactions", min_rating, low.sum())

    if user_k_core or item_k_core:
        uk, ik = int(user_k_core or 0), int(item_k_core or 0)
        before = int(keep.sum())
        users_before = int(len(np.unique(ucode[keep])))
        items_before = int(len(np.unique(icode[keep])))
        iterations = 0
        while True:
            iterations += 1
            cu = np.bincount(ucode[keep], minlength=len(uuniq))
            ci = np.bincount(icode[keep], minlength=len(iuniq))
            new_keep = keep & (cu[ucode] >= uk) & (ci[icode] >= ik)
            if new_keep.sum() == keep.sum():
                break
            keep = new_keep
        dropped = before - int(keep.sum())
        report["k_core_iterations"] = iterations
        report["k_core_dropped_users"] = users_before - int(len(np.unique(ucode[keep])))
        report["k_core_dropped_items"] = items_before - int(len(np.unique(icode[keep])))
        _log_drop(
            report, "dropped_k_core", dropped,
            "k-core (user>=%d, item>=%d) dropped %d interactions in %d iterations", uk, ik, dropped, iterations,
        )  # fmt: skip

    if max_history is not None:
        if int(max_history) < 1:
            raise ValueError(f"max_history must be >= 1, got {max_history}")
        kept_idx = np.flatnonzero(keep)
        ku = ucode[kept_idx]
        # position counted from each user's most recent interaction (0 = most recent)
        counts = np.bincount(ku, minlength=len(uuniq))
        ends = np.cumsum(counts)  # rows are grouped by user in ascending ucode order
        rank_from_end = ends[ku] - 1 - np.arange(len(kept_idx))
        old = kept_idx[rank_from_end >= int(max_history)]
        keep[old] = False
        _log_drop(report, "dropped_max_history", len(old), "max_history=%d dropped %d older interactions", max_history, len(old))

    counts = np.bincount(ucode[keep], minlength=len(uuniq))
    present = counts > 0
    short = present & (counts < MIN_SEQUENCE_LENGTH)
    n_short = int(short.sum())
    report["short_users_excluded"] = n_short
    report["short_user_interactions_dropped"] = int(counts[short].sum())
    if n_short:
        keep &= ~short[ucode]
        logger.warning(
            "%d user(s) with fewer than %d interactions cannot be split leave-one-out and were excluded "
            "(%d interactions dropped)", n_short, MIN_SEQUENCE_LENGTH, report["short_user_interactions_dropped"],
        )  # fmt: skip

    final_u = ucode[keep]
    final_items = item[keep]
    codes, items_uniq = pd.factorize(final_items, sort=False)
    user_order = np.flatnonzero(counts >= MIN_SEQUENCE_LENGTH)
    lengths = counts[user_order]
    user_ids = np.asarray([str(u) for u in uuniq[user_order]], dtype=object)
    item_ids = np.asarray([str(i) for i in items_uniq], dtype=object)
    report["users"] = int(len(user_ids))
    report["items"] = int(len(item_ids))
    report["interactions"] = int(len(final_u))
    report["dropped_interactions_total"] = int(n - len(final_u))
    out = (user_ids, lengths, codes.astype(np.int64), item_ids, report)
    if return_timestamps:
        if inter.timestamps is None:
            raise ValueError(f"dataset {name!r} has no timestamps (return_timestamps needs one for every interaction)")
        out += (np.asarray(inter.timestamps, dtype=np.int64)[perm][keep],)
    if return_rows:
        out += (perm[keep],)
    return out


def _read_generic(
    path: Path,
    item_text_path: str | os.PathLike | None,
    timestamps: bool = False,
    item_columns: Sequence[str] = (),
    user_columns: Sequence[str] = (),
    numeric: Sequence[str] = (),
    interaction_columns: Sequence[str] = (),
) -> tuple[Interactions, SideFeatures | None]:
    """The interactions of a file, and the side features in its `item_columns` / `user_columns` (None without);
    the `numeric` ones must hold numbers. `interaction_columns` become `inter.interaction_features`."""
    cols = R.read_interaction_table(path, timestamp_seconds=timestamps,
                                    extra_columns=[*item_columns, *user_columns, *interaction_columns])  # fmt: skip
    if timestamps and cols["timestamp"] is None:
        raise ValueError(f"{path}: timestamps=True needs a 'timestamp' column, and the file has none")
    inter = Interactions(
        user=cols["user"], item=cols["item"], order=cols["timestamp"], rating=cols["rating"],
        timestamps=cols.get("timestamp_seconds"),
        order_kind="timestamp (stable: ties keep file order)" if cols["timestamp"] is not None else "file order",
        files=[path],
    )  # fmt: skip
    if item_text_path is not None:
        tpath = Path(item_text_path).expanduser()
        inter.texts = R.read_item_text_table(tpath)
        inter.files.append(tpath)
    if interaction_columns:
        inter.interaction_features = {name: _interaction_values(cols, name, name in numeric) for name in interaction_columns}
    if not (item_columns or user_columns):
        return inter, None
    side = SideFeatures()
    for name in item_columns:
        side.items[name] = _column_values(cols, "item", name, name in numeric)
    for name in user_columns:
        side.users[name] = {user: values[0] for user, values in _column_values(cols, "user", name, name in numeric).items()
                            if values}  # fmt: skip
    return inter, side


def _column_values(cols: dict, kind: str, name: str, numeric: bool = False) -> dict[str, list[str]]:
    """Feature column `name` of an interaction table, per item / user id: its values (an item may have several,
    "a|b"; an empty cell has none; a numeric feature has one number). An id whose lines disagree, or a numeric cell
    that is not a number, is an error naming the line."""
    values: dict[str, list[str]] = {}
    for row, (owner, cell) in enumerate(zip(cols[kind], cols["columns"][name])):
        single = kind == "user" or numeric
        parsed = [] if cell is None else [cell] if single else [v.strip() for v in cell.split("|") if v.strip()]
        if numeric and parsed:
            _check_number(cols, row, name, cell)
        if values.setdefault(owner, parsed) != parsed:
            raise ValueError(
                f"{cols['where'](row)}: {kind} {owner!r} has {name}={cell!r}, but {'|'.join(values[owner])!r} on an "
                f"earlier line; a {kind} feature must be the same on every line of that {kind}"
            )
    return values


def _check_number(cols: dict, row: int, name: str, cell: str) -> None:
    if not bucket_id([], cell):  # 0: not a finite number
        raise ValueError(f"{cols['where'](row)}: {name}={cell!r} is not a number (numeric_feature_buckets names {name!r})")


def _interaction_values(cols: dict, name: str, numeric: bool) -> np.ndarray:
    """Per-interaction feature column `name`: one raw value per line (None where empty); numbers where `numeric`."""
    values = cols["columns"][name]
    if numeric:
        for row, cell in enumerate(values):
            if cell is not None:
                _check_number(cols, row, name, cell)
    return np.asarray(values, dtype=object)


def _feature_columns(path: Path, numeric, **kinds) -> list[list[str]]:
    """The feature columns asked of an interaction file (`kinds`: `item=(switch, columns)`, `user=...`,
    `interaction=...`), checked: a switch needs its columns and columns their switch; `numeric` ({column: number of
    buckets}) names some of them."""
    if numeric is not None and not (isinstance(numeric, Mapping) and all(
        isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b >= 2 for b in numeric.values()
    )):  # fmt: skip
        raise ValueError(f"numeric_feature_buckets must map feature columns to a number of buckets >= 2, got {numeric!r}")
    stray = sorted(set(numeric or {}) - {c for _, given in kinds.values() for c in (given or [])})
    if stray:
        raise ValueError(f"numeric_feature_buckets names {stray}, which are not item_feature_columns / "
                         "user_feature_columns / interaction_feature_columns")  # fmt: skip
    out = []
    for kind, (switch, given) in kinds.items():
        if isinstance(given, str) or not all(isinstance(c, str) for c in (given or [])):
            raise ValueError(f"{kind}_feature_columns must be a list of column names, got {given!r}")
        columns = list(given or [])
        if switch and not columns:
            raise ValueError(f"{path}: {kind}_features=True needs {kind}_feature_columns (the file's {kind} feature columns)")
        if columns and not switch:
            raise ValueError(f"{kind}_feature_columns={columns} is given but {kind}_features is not True")
        reserved = {"user_id", "item_id", "timestamp", *(() if kind == "interaction" else ("rating",))} & set(columns)
        if reserved:
            raise ValueError(f"{kind}_feature_columns names {sorted(reserved)}, which are not {kind} features")
        out.append(columns)
    return out


def _side_features(name: str, directory: Path, item_features: bool, user_features: bool):
    """The dataset's side features when asked for (checked before any interaction is read)."""
    if not (item_features or user_features):
        return None
    reader = BUILTIN_DATASETS[name].side_features
    if reader is None:
        raise ValueError(f"dataset {name!r} has no item or user features (item_features / user_features must be false)")
    side = reader(directory)
    for kind, wanted, found in (("item", item_features, side.items), ("user", user_features, side.users)):
        if wanted and not found:
            raise ValueError(f"dataset {name!r} has no {kind} features ({kind}_features must be false)")
    return side


def load_sequential_dataset(
    name_or_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    *,
    min_rating: float | None = None,
    user_k_core: int | None = None,
    item_k_core: int | None = None,
    max_history: int | None = None,
    item_text: bool = True,
    item_text_path: str | os.PathLike | None = None,
    timestamps: bool | str = False,
    item_features: bool = False,
    user_features: bool = False,
    item_feature_columns: Sequence[str] | None = None,
    user_feature_columns: Sequence[str] | None = None,
    numeric_feature_buckets: Mapping[str, int] | None = None,
    interaction_features: bool = False,
    interaction_feature_columns: Sequence[str] | None = None,
) -> tuple[DatasetDict, ItemTokenizer]:
    """Load a built-in dataset (``BUILTIN_DATASETS``) or an interaction file and return
    leave-one-out splits (``train`` / ``validation`` / ``test``) and the item tokenizer.

    Built-in names: ``ml-1m``, ``ml-100k``, ``amazon-scientific``, ``amazon-beauty``. Without
    ``data_dir``, ``$HF_REC_DATA_DIR/<name>`` is used if it exists, else the MovieLens sets are
    downloaded (sha256-verified) into ``$HF_HOME/hf_rec/datasets/``.
    Any other ``name_or_path`` is a CSV / TSV / JSONL / Parquet file with ``user_id``, ``item_id``
    and optional ``timestamp`` / ``rating`` columns; ``item_text_path`` optionally points to a
    CSV / TSV / JSONL file with ``item_id`` and ``text``.

    ``timestamps=True`` adds ``timestamps`` (int64 unix seconds, aligned with ``item_ids``) to every
    split and ``target_timestamp`` to validation / test; the items are ordered as without it. Data
    without a timestamp for every interaction (ML-1M's ``ratings_seq.tsv.gz``, the Amazon sets, a
    file without a ``timestamp`` column) raises ValueError. A file's numeric timestamps are taken as
    unix seconds. Off, the splits and the fingerprint are those of earlier versions. ``timestamps="partial"`` gives
    the times the files have and 0 ("unknown") for the others: ML-1M's ``ratings_seq.tsv.gz`` joined with
    ``ratings_users0001-2999.dat.gz`` times users 1-2,999 only (``report["interactions_without_timestamp"]``
    counts the rest). Context features read 0 as unknown; a time bias refuses such data (no made-up times).

    ``item_features=True`` puts the dataset's categorical item features into the tokenizer (ML-1M / ML-100K:
    ``genre``, ``decade``; Amazon Scientific: ``category``, ``brand``); ``user_features=True`` adds a
    ``user_features`` column to every split (one value id per feature, ``tokenizer.user_feature_names`` order, 0 =
    unknown; ML-1M / ML-100K: ``age``, ``gender``, ``occupation``) and their vocabularies to the tokenizer. For an
    interaction file, name its feature columns: ``item_feature_columns`` (categorical; several values as ``a|b``)
    and ``user_feature_columns`` (one categorical value per user), each the same on every line of its item / user.
    ``numeric_feature_buckets`` (``{column: B}``) makes some of them numeric: numbers, split into ``B`` quantile
    buckets over the items / users (the edges are saved with the tokenizer, which buckets new users' numbers too).
    ``interaction_features=True`` adds an ``interaction_features`` column (per item of ``item_ids``, one value id per
    feature, ``tokenizer.interaction_feature_names`` order): the rating given (ML-1M / ML-100K: ``rating``), or a
    file's ``interaction_feature_columns`` (a value per line; numeric ones bucketed as above).

    Bad input raises ValueError naming the file, the 1-based line and the bad value.
    """
    t0 = time.perf_counter()
    for opt, value in (("user_k_core", user_k_core), ("item_k_core", item_k_core)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
            raise ValueError(f"{opt} must be a non-negative integer, got {value!r}")
    if max_history is not None and (isinstance(max_history, bool) or not isinstance(max_history, (int, np.integer))):
        raise ValueError(f"max_history must be a positive integer, got {max_history!r}")
    if min_rating is not None and (
        isinstance(min_rating, bool) or not isinstance(min_rating, (int, float, np.number)) or not np.isfinite(min_rating)
    ):  # nan would silently drop nothing
        raise ValueError(f"min_rating must be a finite number, got {min_rating!r}")
    for opt, value in (("item_features", item_features), ("user_features", user_features),
                       ("interaction_features", interaction_features)):
        if not isinstance(value, bool):
            raise ValueError(f"{opt} must be True or False, got {value!r}")
    if not isinstance(timestamps, bool) and timestamps != "partial":
        raise ValueError(f"timestamps must be True, False or 'partial', got {timestamps!r}")
    key = str(name_or_path)
    if key in BUILTIN_DATASETS:
        if item_text_path is not None:
            raise ValueError("item_text_path is only for interaction files, not built-in datasets")
        if item_feature_columns or user_feature_columns or interaction_feature_columns or numeric_feature_buckets:
            raise ValueError("item_feature_columns / user_feature_columns / interaction_feature_columns / "
                             "numeric_feature_buckets are for interaction files; built-in datasets know their features "
                             "(item_features / user_features / interaction_features: true)")  # fmt: skip
        if interaction_features and not BUILTIN_DATASETS[key].has_ratings:
            raise ValueError(f"dataset {key!r} has no per-interaction features (interaction_features must be false)")
        directory = _resolve_builtin_dir(key, data_dir)
        missing = BUILTIN_DATASETS[key].missing_timestamps(directory) if timestamps is True else None
        if missing:  # a time bias fed made-up times would be silently wrong: refuse before reading anything
            raise ValueError(f"dataset {key!r} ({directory}) cannot give timestamps=True: {missing}")
        side = _side_features(key, directory, item_features, user_features)
        inter = BUILTIN_DATASETS[key].reader(directory, item_text)
        if interaction_features:  # the rating given, as a category
            inter.interaction_features = {"rating": np.asarray([format(r, "g") for r in inter.rating], dtype=object)}
        name, source = key, str(directory)
        if timestamps == "partial" and inter.timestamps is None:
            if BUILTIN_DATASETS[key].known_timestamps is None:
                raise ValueError(f"dataset {key!r} ({directory}) has no timestamps at all (timestamps must be false)")
            inter.timestamps = BUILTIN_DATASETS[key].known_timestamps(directory, inter)
    else:
        path = Path(name_or_path).expanduser()
        if data_dir is not None and not path.is_absolute():
            path = Path(data_dir).expanduser() / path
        if not path.is_file():
            if path.is_dir():
                what = f"{path}: is a directory, not a file"
            elif path.suffix or "/" in key or "\\" in key:
                what = f"{path}: file not found, and {key!r} is not a built-in dataset name"
            else:
                what = f"{key!r} is neither a built-in dataset nor an existing file"
            raise ValueError(
                f"{what}; built-in datasets: {', '.join(BUILTIN_DATASETS)} "
                "(or pass a CSV / TSV / JSONL / Parquet file with user_id, item_id[, timestamp, rating])"
            )
        item_columns, user_columns, interaction_columns = _feature_columns(
            path, numeric_feature_buckets, item=(item_features, item_feature_columns),
            user=(user_features, user_feature_columns), interaction=(interaction_features, interaction_feature_columns),
        )  # fmt: skip
        inter, side = _read_generic(path, item_text_path if item_text else None, bool(timestamps), item_columns,
                                    user_columns, list(numeric_feature_buckets or {}), interaction_columns)  # fmt: skip
        name, source = path.stem.split(".")[0], str(path)
    t_read = time.perf_counter()

    options = {
        "min_rating": min_rating,
        "user_k_core": user_k_core,
        "item_k_core": item_k_core,
        "max_history": max_history,
        "item_text": bool(item_text),
    }
    if item_text_path is not None:
        options["item_text_path"] = str(item_text_path)
    # only when on: the options (and so the fingerprint) of other loads stay those of earlier versions
    for opt, value in (("timestamps", timestamps), ("item_features", item_features), ("user_features", user_features),
                       ("item_feature_columns", item_feature_columns), ("user_feature_columns", user_feature_columns),
                       ("numeric_feature_buckets", numeric_feature_buckets),
                       ("interaction_features", interaction_features),
                       ("interaction_feature_columns", interaction_feature_columns)):
        if value:
            options[opt] = list(value) if isinstance(value, (list, tuple)) else value
    processed = process_interactions(
        inter, name=name, min_rating=min_rating, user_k_core=user_k_core, item_k_core=item_k_core,
        max_history=max_history, return_timestamps=bool(timestamps), return_rows=interaction_features,
    )  # fmt: skip
    user_ids, lengths, codes, item_ids, report = processed[:5]
    if timestamps == "partial":
        report["interactions_without_timestamp"] = int((processed[5] <= 0).sum())
    if report["users"] == 0:
        raise ValueError(f"{source}: no user has {MIN_SEQUENCE_LENGTH} or more interactions after filtering; nothing to split")
    edges = _bucket_edges(side, inter.interaction_features, numeric_feature_buckets)
    interaction_vocab = interaction_ids = None
    if interaction_features:
        interaction_vocab, interaction_ids = _interaction_value_ids(inter.interaction_features, edges["interaction"])
        interaction_ids = interaction_ids[processed[-1]]  # the kept interactions, in the order of the item codes
        report["interactions_without_features"] = int((interaction_ids == 0).all(axis=1).sum())
    splits = leave_one_out_splits(user_ids, lengths, codes + 1, timestamps=processed[5] if timestamps else None,
                                  interaction_features=interaction_ids)  # fmt: skip

    user_vocab = None
    if user_features:
        user_vocab = {name: sorted(set(values.values())) for name, values in side.users.items() if name not in edges["user"]}
        ids = {name: {v: i + 1 for i, v in enumerate(vocab)} for name, vocab in user_vocab.items()}

        def value_id(name: str, value: str | None) -> int:
            if value is None:
                return 0
            return bucket_id(edges["user"][name], value) if name in edges["user"] else ids[name][value]

        rows = [[value_id(name, side.users[name].get(u)) for name in sorted(side.users)] for u in user_ids]
        report["users_without_features"] = int(sum(not any(r) for r in rows))
        splits = DatasetDict({k: split.add_column("user_features", rows) for k, split in splits.items()})

    texts = None
    if item_text and inter.texts is not None:
        texts = [inter.texts.get(i) for i in item_ids]
        report["items_without_text"] = int(sum(t is None for t in texts))
        if report["items_without_text"]:
            logger.warning("%d of %d items have no text", report["items_without_text"], len(item_ids))
    fingerprint = dataset_fingerprint(splits, {"dataset": name, **options})
    metadata = {
        "dataset": name,
        "source": source,
        "data_format_version": DATA_FORMAT_VERSION,
        "files": {p.name: sha256_file(p) for p in inter.files},
        "options": options,
        "report": report,
        "fingerprint": fingerprint,
    }
    if side is not None:
        metadata["files"].update({p.name: sha256_file(p) for p in side.files})
    tokenizer = ItemTokenizer(item_ids, texts, metadata=metadata, item_features=side.items if item_features else None,
                              user_feature_vocabularies=user_vocab, item_bucket_edges=edges["item"],
                              user_bucket_edges=edges["user"], interaction_feature_vocabularies=interaction_vocab,
                              interaction_bucket_edges=edges["interaction"])  # fmt: skip
    logger.info(
        "loaded %s: %d users, %d items, %d interactions (read %.2fs, total %.2fs)",
        name, report["users"], report["items"], report["interactions"], t_read - t0, time.perf_counter() - t0,
    )  # fmt: skip
    return splits, tokenizer


def _bucket_edges(side: SideFeatures | None, interactions: dict | None, buckets: Mapping[str, int] | None) -> dict:
    """`{"item" | "user" | "interaction": {name: edges}}`: quantile bucket edges of the numeric features over their
    items / users / interactions."""
    edges = {"item": {}, "user": {}, "interaction": {}}
    for name, count in (buckets or {}).items():
        if name in (interactions or {}):
            kind, numbers = "interaction", [float(v) for v in interactions[name] if v is not None]
        elif name in side.items:
            kind, numbers = "item", [float(v[0]) for v in side.items[name].values() if v]
        else:
            kind, numbers = "user", [float(v) for v in side.users[name].values() if v]
        edges[kind][name] = quantile_bucket_edges(numbers, count) if numbers else []
    return edges


def _interaction_value_ids(values: dict[str, np.ndarray], edges: dict[str, list[float]]):
    """Per-interaction raw values (None = unknown) -> (`{name: vocabulary}` of the categorical ones, `[n, k]` value
    ids, columns in sorted name order; numeric ones by their bucket)."""
    vocab, columns = {}, []
    for name in sorted(values):
        if name in edges:
            columns.append([0 if v is None else bucket_id(edges[name], v) for v in values[name]])
            continue
        vocab[name] = sorted({v for v in values[name] if v is not None})
        lookup = {v: i + 1 for i, v in enumerate(vocab[name])}
        columns.append([0 if v is None else lookup[v] for v in values[name]])
    return vocab, np.asarray(columns, dtype=np.int64).T.reshape(-1, len(values))


def load_dataset_like(tokenizer: ItemTokenizer, name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None):
    """The splits of `name_or_path` loaded with the options a model's tokenizer was built with (filters, timestamps,
    features; its `metadata["options"]`), checked to hold the model's items in the model's order (items added later
    may follow). Evaluating a saved model on its data starts here."""
    options = {k: v for k, v in tokenizer.metadata.get("options", {}).items() if k != "item_text"}
    splits, data_tokenizer = load_sequential_dataset(name_or_path, data_dir, **options)
    if data_tokenizer.item_ids != tokenizer.item_ids[: data_tokenizer.num_items]:
        raise ValueError(
            f"the items of {str(name_or_path)!r} (options {options}) do not match the model's item_tokenizer.json "
            f"({data_tokenizer.num_items} vs {tokenizer.num_items} items): use the dataset and options the model was "
            "trained with"
        )
    return splits
