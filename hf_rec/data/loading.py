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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from datasets import DatasetDict

from . import _readers as R
from .download import fetch_builtin_dataset, sha256_file
from .splits import MIN_SEQUENCE_LENGTH, dataset_fingerprint, leave_one_out_splits
from .tokenizer import ItemTokenizer

logger = logging.getLogger("hf_rec.data")

__all__ = ["BUILTIN_DATASETS", "Interactions", "load_sequential_dataset", "process_interactions"]

DATA_FORMAT_VERSION = 1

ML_100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


@dataclass
class Interactions:
    """Raw interactions in file order. ``order`` (timestamp or position) sorts each user's items
    stably; without it, file order is the order. ``timestamps``: int64 unix seconds of each row,
    None when the files have none (an order column is not a time)."""

    user: np.ndarray
    item: np.ndarray
    order: np.ndarray | None = None
    rating: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    texts: dict[str, str] | None = None
    order_kind: str = "file order"
    files: list[Path] = field(default_factory=list)


# ============================================================================ built-in readers
def _missing_files(directory: Path, name: str, needed: list[str | tuple[str, ...]]) -> None:
    missing = []
    for entry in needed:
        alternatives = (entry,) if isinstance(entry, str) else entry
        if not any((directory / f).is_file() for f in alternatives):
            missing.append(" or ".join(alternatives))
    if missing:
        raise ValueError(
            f"{directory}: directory lacks the file(s) dataset {name!r} needs: {', '.join(missing)}"
        )


def _movie_text(title: str, genres: list[str]) -> str:
    genres = [g for g in genres if g]
    return f"{title}. Genres: {', '.join(genres)}" if genres else title


def _read_ml1m(directory: Path, item_text: bool) -> Interactions:
    needed: list[str | tuple[str, ...]] = [("ratings.dat", "ratings_seq.tsv.gz")]
    if item_text:
        needed.append("movies.dat")
    _missing_files(directory, "ml-1m", needed)
    if (directory / "ratings.dat").is_file():
        path = directory / "ratings.dat"
        df = R.read_int_table(path, ["user_id", "movie_id", "rating", "timestamp"], "::", encoding="latin-1")
        inter = Interactions(
            user=df["user_id"].to_numpy(), item=df["movie_id"].to_numpy(), order=df["timestamp"].to_numpy(),
            rating=df["rating"].to_numpy(), timestamps=df["timestamp"].to_numpy(np.int64),
            order_kind="timestamp (stable: ties keep file order)", files=[path],
        )  # fmt: skip
    else:
        path = directory / "ratings_seq.tsv.gz"
        df = R.read_int_table(path, ["user_id", "movie_id", "rating", "seq_pos"], "\t", header=True)
        inter = Interactions(
            user=df["user_id"].to_numpy(), item=df["movie_id"].to_numpy(), order=df["seq_pos"].to_numpy(),
            rating=df["rating"].to_numpy(), order_kind="seq_pos", files=[path],
        )  # fmt: skip
    if item_text:
        movies = directory / "movies.dat"
        texts: dict[str, str] = {}
        text = R._decode(movies, R.read_bytes(movies), "latin-1")
        for lineno, parts in R.iter_fields(movies, text, "::", 3, "MovieID::Title::Genres"):
            if not R._is_int(parts[0]):
                raise ValueError(f"{movies}, line {lineno}: MovieID must be an integer, got {parts[0]!r}")
            texts[str(int(parts[0]))] = _movie_text(parts[1].strip(), parts[2].strip().split("|"))
        if not texts:
            raise R._empty(movies, "movies")
        inter.texts = texts
        inter.files.append(movies)
    return inter


def _read_ml100k(directory: Path, item_text: bool) -> Interactions:
    needed: list[str | tuple[str, ...]] = ["u.data"]
    if item_text:
        needed.append("u.item")
    _missing_files(directory, "ml-100k", needed)
    path = directory / "u.data"
    df = R.read_int_table(path, ["user_id", "item_id", "rating", "timestamp"], "\t")
    inter = Interactions(
        user=df["user_id"].to_numpy(), item=df["item_id"].to_numpy(), order=df["timestamp"].to_numpy(),
        rating=df["rating"].to_numpy(), timestamps=df["timestamp"].to_numpy(np.int64),
        order_kind="timestamp (stable: ties keep file order)", files=[path],
    )  # fmt: skip
    if item_text:
        genres = list(ML_100K_GENRES)
        genre_file = directory / "u.genre"
        if genre_file.is_file():
            gtext = R._decode(genre_file, R.read_bytes(genre_file), "latin-1")
            parsed: dict[int, str] = {}
            for lineno, line in enumerate(gtext.splitlines(), start=1):
                if not line.strip():
                    continue
                parts = line.split("|")
                if len(parts) != 2 or not R._is_int(parts[1]):
                    raise ValueError(f"{genre_file}, line {lineno}: expected 'name|index', got {line!r}")
                parsed[int(parts[1])] = parts[0]
            genres = [parsed.get(i, g) for i, g in enumerate(genres)] + [
                parsed[i] for i in sorted(parsed) if i >= len(genres)
            ]
            inter.files.append(genre_file)
        items = directory / "u.item"
        text = R._decode(items, R.read_bytes(items), "latin-1")
        texts: dict[str, str] = {}
        n_fields = 5 + len(genres)
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split("|")
            if len(parts) != n_fields:
                raise ValueError(f"{items}, line {lineno}: expected {n_fields} '|'-separated fields, got {len(parts)}: {line!r}")
            if not R._is_int(parts[0]):
                raise ValueError(f"{items}, line {lineno}: movie id must be an integer, got {parts[0]!r}")
            flags = parts[5:]
            bad = [f for f in flags if f not in ("0", "1")]
            if bad:
                raise ValueError(f"{items}, line {lineno}: genre flags must be 0 or 1, got {bad[0]!r}")
            names = [g for g, f in zip(genres, flags) if f == "1"]
            texts[str(int(parts[0]))] = _movie_text(parts[1].strip(), names)
        if not texts:
            raise R._empty(items, "movies")
        inter.texts = texts
        inter.files.append(items)
    return inter


def _read_index_map(path: Path) -> dict[int, str]:
    df = R.read_bytes(path)
    text = R._decode(path, df, "utf-8")
    out: dict[int, str] = {}
    for lineno, parts in R.iter_fields(path, text, "\t", 2, "TAB-separated: id, index"):
        if not R._is_int(parts[1]):
            raise ValueError(f"{path}, line {lineno}: index must be an integer, got {parts[1]!r}")
        idx = int(parts[1])
        if idx in out:
            raise ValueError(f"{path}, line {lineno}: index {idx} appears twice")
        out[idx] = parts[0]
    if not out:
        raise R._empty(path)
    return out


def _read_scientific(directory: Path, item_text: bool) -> Interactions:
    p = "Scientific"
    needed: list[str | tuple[str, ...]] = [f"{p}.full_seq.txt", f"{p}.item2index", f"{p}.user2index"]
    if item_text:
        needed.append(f"{p}.text")
    _missing_files(directory, "amazon-scientific", needed)
    seq_path = directory / f"{p}.full_seq.txt"
    users, seqs, lines = R.read_sequence_file(seq_path, integer=True)
    item_map = _read_index_map(directory / f"{p}.item2index")
    user_map = _read_index_map(directory / f"{p}.user2index")
    user_out, item_out = [], []
    for u, seq, lineno in zip(users, seqs, lines):
        if u not in user_map:
            raise ValueError(f"{seq_path}, line {lineno}: user index {u} is not in {p}.user2index")
        for i in seq:
            if i not in item_map:
                raise ValueError(f"{seq_path}, line {lineno}: item index {i} is not in {p}.item2index")
        user_out.extend([user_map[u]] * len(seq))
        item_out.extend(item_map[i] for i in seq)
    inter = Interactions(
        user=np.asarray(user_out, dtype=object), item=np.asarray(item_out, dtype=object),
        order_kind="line order", files=[seq_path, directory / f"{p}.item2index", directory / f"{p}.user2index"],
    )  # fmt: skip
    if item_text:
        tpath = directory / f"{p}.text"
        text = R._decode(tpath, R.read_bytes(tpath), "utf-8")
        texts: dict[str, str] = {}
        header_seen = False
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            if not header_seen:
                header_seen = True
                if line.split("\t")[0].startswith("item_id"):
                    continue
            parts = line.split("\t", 1)
            if len(parts) != 2:
                raise ValueError(f"{tpath}, line {lineno}: expected 2 TAB-separated fields (item, text), got {line!r}")
            texts[parts[0]] = parts[1].strip()
        if not texts:
            raise R._empty(tpath, "item texts")
        inter.texts = texts
        inter.files.append(tpath)
    return inter


def _read_beauty(directory: Path, item_text: bool) -> Interactions:
    _missing_files(directory, "amazon-beauty", ["Beauty.txt"])
    path = directory / "Beauty.txt"
    users, seqs, lines = R.read_sequence_file(path, integer=True)
    files = [path]
    asin_path = directory / "user_sequence.txt"
    if asin_path.is_file():
        a_users, a_seqs, a_lines = R.read_sequence_file(asin_path, integer=False)
        if len(a_users) != len(users):
            raise ValueError(f"{asin_path}: has {len(a_users)} sequences but {path} has {len(users)}; they must be line-aligned")
        item_asin: dict[int, str] = {}
        asin_item: dict[str, int] = {}
        for seq, a_seq, lineno in zip(seqs, a_seqs, a_lines):
            if len(seq) != len(a_seq):
                raise ValueError(f"{asin_path}, line {lineno}: {len(a_seq)} items but {path} has {len(seq)} on that line")
            for i, a in zip(seq, a_seq):
                if item_asin.setdefault(i, a) != a or asin_item.setdefault(a, i) != i:
                    raise ValueError(f"{asin_path}, line {lineno}: item {i} / ASIN {a!r} map inconsistently with {path}")
        user_col = np.repeat(np.asarray(a_users, dtype=object), [len(s) for s in seqs])
        item_col = np.asarray([a for s in a_seqs for a in s], dtype=object)
        files.append(asin_path)
    else:
        user_col = np.repeat(np.asarray(users, dtype=np.int64), [len(s) for s in seqs])
        item_col = np.asarray([i for s in seqs for i in s], dtype=np.int64)
    if item_text:
        logger.info("amazon-beauty has no item text; the tokenizer will have none")
    return Interactions(user=user_col, item=item_col, order_kind="line order", files=files)


def _ml1m_missing_timestamps(directory: Path) -> str | None:
    if (directory / "ratings.dat").is_file():
        return None
    return (
        "its timestamps are in ratings.dat, which this folder lacks (ratings_seq.tsv.gz gives the order only; "
        "ratings_users0001-2999.dat.gz has times for users 1-2,999 only)"
    )


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    reader: Callable[[Path, bool], Interactions]
    description: str
    downloadable: bool
    #: why the files in a folder do not give every interaction a timestamp (None: they do); checked before reading
    missing_timestamps: Callable[[Path], str | None] = lambda directory: None


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "ml-1m": BuiltinDataset(
        "ml-1m", _read_ml1m,
        "MovieLens 1M: ratings.dat (UserID::MovieID::Rating::Timestamp) or ratings_seq.tsv.gz (seq_pos order) + movies.dat",
        True, _ml1m_missing_timestamps,
    ),
    "ml-100k": BuiltinDataset("ml-100k", _read_ml100k, "MovieLens 100K: u.data + u.item (+ u.genre)", True),
    "amazon-scientific": BuiltinDataset(
        "amazon-scientific", _read_scientific,
        "Amazon 2018 Industrial & Scientific (UniSRec): Scientific.full_seq.txt, .item2index, .user2index, .text",
        False, lambda directory: "its files give the order of each user's items but no timestamps",
    ),
    "amazon-beauty": BuiltinDataset(
        "amazon-beauty", _read_beauty, "Amazon 2014 Beauty 5-core (S3-Rec Beauty.txt, optional user_sequence.txt for ASINs)",
        False, lambda directory: "its files give the order of each user's items but no timestamps",
    ),
}  # fmt: skip

_DOWNLOAD_REQUIRED = {"ml-100k": ["u.data", "u.item"], "ml-1m": ["ratings.dat", "movies.dat"]}


def _resolve_builtin_dir(name: str, data_dir: str | os.PathLike | None) -> Path:
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        if not d.is_dir():
            raise ValueError(f"{d}: data_dir for dataset {name!r} does not exist or is not a directory")
        return d
    env = os.environ.get("HF_REC_DATA_DIR")
    if env and (Path(env).expanduser() / name).is_dir():
        return Path(env).expanduser() / name
    if not BUILTIN_DATASETS[name].downloadable:
        raise ValueError(
            f"dataset {name!r} has no official single-file download: pass data_dir= (a folder with "
            f"{BUILTIN_DATASETS[name].description}) or set HF_REC_DATA_DIR to a folder holding {name}/"
        )
    return fetch_builtin_dataset(name, _DOWNLOAD_REQUIRED.get(name))


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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Order + filter. Returns (user raw ids per kept user, lengths, item codes (0-based, first-seen
    order), item raw ids per code, report); with ``return_timestamps``, also the kept rows'
    ``inter.timestamps`` aligned with the item codes."""
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
    if return_timestamps:
        if inter.timestamps is None:
            raise ValueError(f"dataset {name!r} has no timestamps (return_timestamps needs one for every interaction)")
        times = np.asarray(inter.timestamps, dtype=np.int64)[perm][keep]
        return user_ids, lengths, codes.astype(np.int64), item_ids, report, times
    return user_ids, lengths, codes.astype(np.int64), item_ids, report


def _read_generic(path: Path, item_text_path: str | os.PathLike | None, timestamps: bool = False) -> Interactions:
    cols = R.read_interaction_table(path, timestamp_seconds=timestamps)
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
    return inter


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
    timestamps: bool = False,
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
    unix seconds. Off, the splits and the fingerprint are those of earlier versions.

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
    if not isinstance(timestamps, bool):
        raise ValueError(f"timestamps must be True or False, got {timestamps!r}")
    key = str(name_or_path)
    if key in BUILTIN_DATASETS:
        if item_text_path is not None:
            raise ValueError("item_text_path is only for interaction files, not built-in datasets")
        directory = _resolve_builtin_dir(key, data_dir)
        missing = BUILTIN_DATASETS[key].missing_timestamps(directory) if timestamps else None
        if missing:  # a time bias fed made-up times would be silently wrong: refuse before reading anything
            raise ValueError(f"dataset {key!r} ({directory}) cannot give timestamps=True: {missing}")
        inter = BUILTIN_DATASETS[key].reader(directory, item_text)
        name, source = key, str(directory)
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
        inter = _read_generic(path, item_text_path if item_text else None, timestamps)
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
    if timestamps:  # only when on: the options (and so the fingerprint) of other loads stay those of earlier versions
        options["timestamps"] = True
    processed = process_interactions(
        inter, name=name, min_rating=min_rating, user_k_core=user_k_core, item_k_core=item_k_core,
        max_history=max_history, return_timestamps=timestamps,
    )  # fmt: skip
    user_ids, lengths, codes, item_ids, report = processed[:5]
    if report["users"] == 0:
        raise ValueError(f"{source}: no user has {MIN_SEQUENCE_LENGTH} or more interactions after filtering; nothing to split")
    splits = leave_one_out_splits(user_ids, lengths, codes + 1, timestamps=processed[5] if timestamps else None)

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
    tokenizer = ItemTokenizer(item_ids, texts, metadata=metadata)
    logger.info(
        "loaded %s: %d users, %d items, %d interactions (read %.2fs, total %.2fs)",
        name, report["users"], report["items"], report["interactions"], t_read - t0, time.perf_counter() - t0,
    )  # fmt: skip
    return splits, tokenizer

