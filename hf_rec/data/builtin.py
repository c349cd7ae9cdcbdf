"""The built-in datasets (MovieLens-1M / -100K, Amazon Scientific / Beauty): one reader per dataset from its
files to raw `Interactions`, the registry `BUILTIN_DATASETS`, and where each one's folder is found (a given folder,
$HF_REC_DATA_DIR, or the official download with a checksum). `loading.py` turns interactions into splits."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import _readers as R
from .download import fetch_builtin_dataset

logger = logging.getLogger("hf_rec.data")

__all__ = ["BUILTIN_DATASETS", "BuiltinDataset", "Interactions", "SideFeatures"]

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
    #: per-interaction features: `{name: one raw value per row (None = unknown)}`
    interaction_features: dict[str, np.ndarray] | None = None
    order_kind: str = "file order"
    files: list[Path] = field(default_factory=list)


@dataclass
class SideFeatures:
    """Categorical side information by raw id, feature by feature: `items[name][item id]` is the item's values (a
    film has several genres), `users[name][user id]` the user's value. Ids without an entry have none ("unknown")."""

    items: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)
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
        inter.texts = {movie: _movie_text(title, genres) for movie, (title, genres) in _ml1m_movies(directory).items()}
        inter.files.append(directory / "movies.dat")
    return inter


def _ml1m_movies(directory: Path) -> dict[str, tuple[str, list[str]]]:
    """movies.dat -> {movie id: (title, genres)}."""
    movies = directory / "movies.dat"
    text = R._decode(movies, R.read_bytes(movies), "latin-1")
    out: dict[str, tuple[str, list[str]]] = {}
    for lineno, parts in R.iter_fields(movies, text, "::", 3, "MovieID::Title::Genres"):
        if not R._is_int(parts[0]):
            raise ValueError(f"{movies}, line {lineno}: MovieID must be an integer, got {parts[0]!r}")
        out[str(int(parts[0]))] = (parts[1].strip(), [g for g in parts[2].strip().split("|") if g])
    if not out:
        raise R._empty(movies, "movies")
    return out


def _decade(year: str | None) -> list[str]:
    return [f"{year[:3]}0s"] if year and len(year) == 4 and year.isdigit() else []


def _ml1m_features(directory: Path) -> SideFeatures:
    """Items: genres, release decade (from the title's year); users: gender, age group, occupation (users.dat)."""
    _missing_files(directory, "ml-1m", ["movies.dat", "users.dat"])
    movies = _ml1m_movies(directory)
    side = SideFeatures(files=[directory / "movies.dat", directory / "users.dat"])
    side.items["genre"] = {movie: genres for movie, (_, genres) in movies.items()}
    side.items["decade"] = {movie: _decade(title.rstrip()[-5:-1] if title.rstrip().endswith(")") else None)
                            for movie, (title, _) in movies.items()}  # fmt: skip
    path = directory / "users.dat"
    text = R._decode(path, R.read_bytes(path), "latin-1")
    for name in ("gender", "age", "occupation"):
        side.users[name] = {}
    for lineno, parts in R.iter_fields(path, text, "::", 5, "UserID::Gender::Age::Occupation::Zip-code"):
        if not R._is_int(parts[0]):
            raise ValueError(f"{path}, line {lineno}: UserID must be an integer, got {parts[0]!r}")
        user = str(int(parts[0]))
        for name, value in zip(("gender", "age", "occupation"), parts[1:4]):
            side.users[name][user] = value.strip()
    return side


# ML-1M's age groups (users.dat), used for ML-100K's exact ages too so that the two speak the same language
_AGE_GROUPS = ((18, "1"), (25, "18"), (35, "25"), (45, "35"), (50, "45"), (56, "50"))


def _age_group(age: int) -> str:
    return next((group for bound, group in _AGE_GROUPS if age < bound), "56")


def _ml100k_features(directory: Path) -> SideFeatures:
    """Items: genres, release decade (u.item's release date); users: gender, age group (ML-1M's groups), occupation
    (u.user)."""
    _missing_files(directory, "ml-100k", ["u.item", "u.user"])
    movies = _ml100k_movies(directory)
    side = SideFeatures(files=[f for f in (directory / "u.genre", directory / "u.item", directory / "u.user") if f.is_file()])
    side.items["genre"] = {movie: genres for movie, (_, genres, _) in movies.items()}
    side.items["decade"] = {movie: _decade(date[-4:]) for movie, (_, _, date) in movies.items()}
    path = directory / "u.user"
    text = R._decode(path, R.read_bytes(path), "latin-1")
    for name in ("gender", "age", "occupation"):
        side.users[name] = {}
    for lineno, parts in R.iter_fields(path, text, "|", 5, "user id|age|gender|occupation|zip code"):
        if not R._is_int(parts[0]) or not R._is_int(parts[1]):
            raise ValueError(f"{path}, line {lineno}: user id and age must be integers, got {parts[0]!r}, {parts[1]!r}")
        user = str(int(parts[0]))
        side.users["gender"][user] = parts[2].strip()
        side.users["age"][user] = _age_group(int(parts[1]))
        side.users["occupation"][user] = parts[3].strip()
    return side


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
        inter.texts = {movie: _movie_text(title, genres) for movie, (title, genres, _) in _ml100k_movies(directory).items()}
        inter.files += [f for f in (directory / "u.genre", directory / "u.item") if f.is_file()]
    return inter


def _ml100k_movies(directory: Path) -> dict[str, tuple[str, list[str], str]]:
    """u.item (+ u.genre for the genre names) -> {movie id: (title, genres, release date)}."""
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
        genres = [parsed.get(i, g) for i, g in enumerate(genres)] + [parsed[i] for i in sorted(parsed) if i >= len(genres)]
    items = directory / "u.item"
    text = R._decode(items, R.read_bytes(items), "latin-1")
    out: dict[str, tuple[str, list[str], str]] = {}
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
        out[str(int(parts[0]))] = (parts[1].strip(), [g for g, f in zip(genres, flags) if f == "1"], parts[2].strip())
    if not out:
        raise R._empty(items, "movies")
    return out


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


def _scientific_features(directory: Path) -> SideFeatures:
    """Items: category path and brand, the last two sentences of each UniSRec text ("title. categories. brand.")."""
    _missing_files(directory, "amazon-scientific", ["Scientific.text"])
    path = directory / "Scientific.text"
    side = SideFeatures(items={"category": {}, "brand": {}}, files=[path])
    text = R._decode(path, R.read_bytes(path), "utf-8")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or (lineno == 1 and line.startswith("item_id")):
            continue
        item, _, body = line.partition("\t")
        parts = body.strip().rstrip(".").rsplit(". ", 2)
        if len(parts) != 3:
            raise ValueError(f"{path}, line {lineno}: expected 'title. categories. brand.', got {body!r}")
        for name, value in zip(("category", "brand"), parts[1:]):
            side.items[name][item] = [value.strip()] if value.strip() else []
    return side


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


def _ml1m_known_timestamps(directory: Path, inter: Interactions) -> np.ndarray:
    """Each interaction's time where a file has it (ratings_users0001-2999.dat.gz: users 1-2,999, joined on user and
    movie), 0 elsewhere."""
    path = directory / "ratings_users0001-2999.dat.gz"
    if not path.is_file():
        raise ValueError(f"{directory}: has no timestamps at all (neither ratings.dat nor {path.name})")
    df = R.read_int_table(path, ["user_id", "movie_id", "rating", "timestamp"], "::", encoding="latin-1")
    known = pd.Series(df["timestamp"].to_numpy(np.int64), index=pd.MultiIndex.from_arrays([df["user_id"], df["movie_id"]]))
    if not known.index.is_unique:
        raise ValueError(f"{path}: a (user, movie) pair appears twice")
    keys = pd.MultiIndex.from_arrays([np.asarray(inter.user, dtype=np.int64), np.asarray(inter.item, dtype=np.int64)])
    inter.files.append(path)
    return known.reindex(keys).fillna(0).to_numpy(np.int64)


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
    #: reads the dataset's item / user features (None: it has none)
    side_features: Callable[[Path], SideFeatures] | None = None
    #: for `timestamps="partial"` where the files time only some interactions: each one's time, 0 where unknown
    known_timestamps: Callable[[Path, Interactions], np.ndarray] | None = None
    #: every interaction has a rating (the per-interaction feature `rating` of `interaction_features=True`)
    has_ratings: bool = False


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "ml-1m": BuiltinDataset(
        "ml-1m", _read_ml1m,
        "MovieLens 1M: ratings.dat (UserID::MovieID::Rating::Timestamp) or ratings_seq.tsv.gz (seq_pos order) + movies.dat",
        True, _ml1m_missing_timestamps, _ml1m_features, _ml1m_known_timestamps, has_ratings=True,
    ),
    "ml-100k": BuiltinDataset(
        "ml-100k", _read_ml100k, "MovieLens 100K: u.data + u.item (+ u.genre, u.user)", True, side_features=_ml100k_features,
        has_ratings=True,
    ),
    "amazon-scientific": BuiltinDataset(
        "amazon-scientific", _read_scientific,
        "Amazon 2018 Industrial & Scientific (UniSRec): Scientific.full_seq.txt, .item2index, .user2index, .text",
        False, lambda directory: "its files give the order of each user's items but no timestamps", _scientific_features,
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
