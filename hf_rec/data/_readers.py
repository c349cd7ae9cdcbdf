"""File readers that report bad input as ``ValueError("<file>, line <n>: <problem>: <value>")``.

Each reader has a fast path (pandas' C parser) and, when the fast path fails or its result looks
wrong, a line-by-line re-scan that finds the first bad line (and, if the re-scan finds nothing
wrong, parses the file itself, so the result is always correct).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "read_int_table",
    "read_sequence_file",
    "read_interaction_table",
    "read_item_text_table",
    "read_bytes",
    "require_file",
]


def require_file(path: Path) -> Path:
    if not path.exists():
        raise ValueError(f"{path}: file not found")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a file")
    return path


def read_bytes(path: Path) -> bytes:
    require_file(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: not a valid gzip file ({err})") from None
    return data


def _decode(path: Path, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: not valid {encoding} text ({err.reason})") from None


def _empty(path: Path, what: str = "data rows") -> ValueError:
    return ValueError(f"{path}, line 1: file is empty (no {what})")


def iter_fields(path: Path, text: str, sep: str, num_fields: int, layout: str):
    """Yield `(line number, fields)` for the non-blank lines of `text`; a line with another field count raises a
    ValueError naming the file, the line and the expected layout."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(sep)
        if len(parts) != num_fields:
            raise ValueError(f"{path}, line {lineno}: expected {num_fields} fields ({layout}), got {len(parts)}: {line!r}")
        yield lineno, parts


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------- fixed-format tables
def read_int_table(
    path: Path,
    names: Sequence[str],
    sep: str,
    *,
    header: bool = False,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """A table of integer columns (``u.data``, ``ratings.dat``, ``ratings_seq.tsv.gz``).

    With ``header=True`` the first line must hold exactly ``names``. Blank lines are skipped;
    reported line numbers are those of the file (1-based)."""
    data = read_bytes(path)
    if not data.strip():
        raise _empty(path)
    fast_sep = sep
    buf = data
    if len(sep) > 1:  # pandas' C parser needs a one-character separator
        buf = data.replace(sep.encode(encoding), b"\t")
        fast_sep = "\t"
    df = None
    try:
        df = pd.read_csv(
            io.BytesIO(buf),
            sep=fast_sep,
            header=0 if header else None,
            names=None,
            encoding=encoding,
            engine="c",
        )
    except Exception:
        df = None
    if df is not None and header and [str(c) for c in df.columns] != list(names):
        df = None
    if (
        df is None
        or df.shape[1] != len(names)
        or len(df) == 0
        or not all(pd.api.types.is_integer_dtype(t) for t in df.dtypes)
    ):
        return _scan_int_table(path, _decode(path, data, encoding), names, sep, header)
    df.columns = list(names)
    return df


def _scan_int_table(path: Path, text: str, names: Sequence[str], sep: str, header: bool) -> pd.DataFrame:
    cols: list[list[int]] = [[] for _ in names]
    saw_header = not header
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(sep)
        if not saw_header:
            got = [f.strip() for f in fields]
            if got != list(names):
                raise ValueError(f"{path}, line {lineno}: expected the header {sep.join(names)!r}, got {line!r}")
            saw_header = True
            continue
        if len(fields) != len(names):
            raise ValueError(
                f"{path}, line {lineno}: expected {len(names)} fields ({', '.join(names)}) separated by {sep!r}, "
                f"got {len(fields)}: {line!r}"
            )
        for col, name, value in zip(cols, names, fields):
            try:
                col.append(int(value))
            except ValueError:
                raise ValueError(f"{path}, line {lineno}: {name} must be an integer, got {value!r}") from None
    if not cols[0]:
        raise _empty(path)
    return pd.DataFrame({name: np.asarray(col, dtype=np.int64) for name, col in zip(names, cols)})


# ----------------------------------------------------------------------------- sequence files
def read_sequence_file(
    path: Path, *, integer: bool, encoding: str = "utf-8"
) -> tuple[list, list[list], list[int]]:
    """Lines ``user item item ...`` (space separated). Returns (users, sequences, line numbers)."""
    text = _decode(path, read_bytes(path), encoding)
    users: list = []
    seqs: list[list] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(
                f"{path}, line {lineno}: expected a user id followed by at least one item id, got {line!r}"
            )
        if integer:
            try:
                values = [int(f) for f in fields]
            except ValueError:
                bad = next(f for f in fields if not _is_int(f))
                what = "user id" if bad == fields[0] and not _is_int(fields[0]) else "item id"
                raise ValueError(f"{path}, line {lineno}: {what} must be an integer, got {bad!r}") from None
            users.append(values[0])
            seqs.append(values[1:])
        else:
            users.append(fields[0])
            seqs.append(fields[1:])
        lines.append(lineno)
    if not users:
        raise _empty(path, "sequences")
    return users, seqs, lines


# ----------------------------------------------------------------------------- generic tables
_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}


def _table_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz", ".zst"):
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext in (".csv", ".tsv", ".tab", ".txt"):
        return ext
    if ext in (".jsonl", ".ndjson", ".json"):
        return ".jsonl"
    if ext in (".parquet", ".pq"):
        return ".parquet"
    raise ValueError(
        f"{path}: unsupported file type {ext or '(none)'!r}; expected .csv, .tsv, .jsonl or .parquet "
        "(or a built-in dataset name)"
    )


def _read_delimited(
    path: Path, sep: str, required: Sequence[str], may_be_empty: Sequence[str] = ()
) -> tuple[pd.DataFrame, list[int]]:
    """All columns as strings; returns the frame and the 1-based file line of each row. An empty cell is an error,
    except in the `may_be_empty` columns (feature columns: no value)."""
    data = read_bytes(path)
    if not data.strip():
        raise _empty(path)
    df = None
    try:
        df = pd.read_csv(
            io.BytesIO(data), sep=sep, dtype=str, keep_default_na=False, na_filter=False, engine="c", encoding="utf-8"
        )
    except Exception:
        df = None
    if df is not None and len(df.columns) and not any((df[c] == "").any() for c in df.columns if c not in may_be_empty):
        # fast path: no quoted multi-line fields assumed; line of row i = i + 2 (header is line 1).
        # Rows with embedded newlines shift this, so check the line count matches.
        n_lines = sum(1 for ln in data.splitlines() if ln.strip())
        if n_lines == len(df) + 1:
            blank_free = [i for i, ln in enumerate(data.splitlines(), start=1) if ln.strip()]
            _check_header(path, list(df.columns), required)
            return df, blank_free[1:]
    return _scan_delimited(path, _decode(path, data, "utf-8"), sep, required, may_be_empty)


def _check_header(path: Path, columns: list[str], required: Sequence[str]) -> None:
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(
            f"{path}, line 1: missing required column(s) {', '.join(missing)}; the header has {columns}"
        )


def _scan_delimited(
    path: Path, text: str, sep: str, required: Sequence[str], may_be_empty: Sequence[str] = ()
) -> tuple[pd.DataFrame, list[int]]:
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    start = 1
    for row in reader:
        lineno = start
        start = reader.line_num + 1
        if not row or all(not f.strip() for f in row):
            continue
        if header is None:
            header = row
            _check_header(path, header, required)
            continue
        if len(row) != len(header):
            raise ValueError(
                f"{path}, line {lineno}: expected {len(header)} fields ({', '.join(header)}), got {len(row)}: "
                f"{sep.join(row)!r}"
            )
        for name, value in zip(header, row):
            if value == "" and name not in may_be_empty:
                raise ValueError(f"{path}, line {lineno}: empty value for column {name!r}")
        rows.append(row)
        lines.append(lineno)
    if header is None or not rows:
        raise _empty(path)
    df = pd.DataFrame(rows, columns=header)
    return df, lines


def _read_jsonl(path: Path, required: Sequence[str]) -> tuple[pd.DataFrame, list[int]]:
    text = _decode(path, read_bytes(path), "utf-8")
    records: list[dict] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {lineno}: invalid JSON ({err.msg}): {line[:200]!r}") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{path}, line {lineno}: expected a JSON object, got {line[:200]!r}")
        missing = [c for c in required if c not in rec or rec[c] is None or rec[c] == ""]
        if missing:
            raise ValueError(f"{path}, line {lineno}: missing value(s) for {', '.join(missing)}: {line[:200]!r}")
        for key, value in rec.items():
            if isinstance(value, (dict, list)):
                raise ValueError(f"{path}, line {lineno}: column {key!r} must be a scalar, got {value!r}")
        records.append(rec)
        lines.append(lineno)
    if not records:
        raise _empty(path)
    df = pd.DataFrame.from_records(records)
    return df, lines


def _read_parquet(path: Path, required: Sequence[str]) -> tuple[pd.DataFrame, list[int]]:
    require_file(path)
    try:
        df = pd.read_parquet(path)
    except Exception as err:
        raise ValueError(f"{path}: cannot read Parquet file ({err})") from None
    if len(df) == 0:
        raise _empty(path)
    _check_header(path, [str(c) for c in df.columns], required)
    return df, None  # type: ignore[return-value]


def _read_any(
    path: Path, required: Sequence[str], may_be_empty: Sequence[str] = ()
) -> tuple[pd.DataFrame, list[int] | None, str]:
    require_file(path)
    fmt = _table_format(path)
    if fmt == ".jsonl":
        df, lines = _read_jsonl(path, required)
        _check_header(path, [str(c) for c in df.columns], required)
    elif fmt == ".parquet":
        df, lines = _read_parquet(path, required)
    else:
        df, lines = _read_delimited(path, _SEPARATORS[fmt], required, may_be_empty)
    return df, lines, fmt


def _where(path: Path, lines: list[int] | None, row: int) -> str:
    if lines is None:
        return f"{path}, row {row + 1}"
    return f"{path}, line {lines[row]}"


def _shown(value):
    """A cell as the user wrote it: `-inf`, not numpy's `np.float64(-inf)`."""
    return value.item() if isinstance(value, np.generic) else value


def _id_column(path: Path, df: pd.DataFrame, lines, name: str) -> np.ndarray:
    col = df[name]
    if pd.api.types.is_float_dtype(col):
        bad = ~np.isfinite(col.to_numpy()) | (col != np.floor(col)).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{_where(path, lines, row)}: {name} must be an id, got {_shown(col.iloc[row])!r}")
        col = col.astype(np.int64)
    isna = col.isna().to_numpy()
    if isna.any():
        row = int(np.flatnonzero(isna)[0])
        raise ValueError(f"{_where(path, lines, row)}: missing {name}")
    values = col.astype(str).to_numpy(dtype=object)
    empty = values == ""
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise ValueError(f"{_where(path, lines, row)}: empty {name}")
    return values


def _numeric_column(path: Path, df: pd.DataFrame, lines, name: str, allow_datetime: bool) -> np.ndarray:
    col = df[name]
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        num = col.astype(np.float64)
    elif pd.api.types.is_datetime64_any_dtype(col) and allow_datetime:
        num = pd.Series(col.astype("int64"), index=col.index).astype(np.float64)
    else:
        num = pd.to_numeric(col, errors="coerce")
        if num.isna().any() and allow_datetime:
            dt = pd.to_datetime(col, errors="coerce", format="ISO8601", utc=True)
            if not dt.isna().any():
                return (dt.astype("int64") // 10**9).to_numpy(dtype=np.float64)
    # nan, inf and -inf are refused too: an infinite timestamp would sort last and become the user's test target.
    bad = ~np.isfinite(num.to_numpy(dtype=np.float64))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        kind = "a finite number or an ISO-8601 date" if allow_datetime else "a finite number"
        raise ValueError(f"{_where(path, lines, row)}: {name} must be {kind}, got {_shown(col.iloc[row])!r}")
    return num.to_numpy(dtype=np.float64)


def _unix_seconds(path: Path, df: pd.DataFrame, lines, name: str, values: np.ndarray) -> np.ndarray:
    """The checked ``values`` of column ``name`` as int64 unix seconds: numbers are taken as seconds (floored), ISO
    dates already are, datetime columns (Parquet) hold nanoseconds."""
    col = df[name]
    if pd.api.types.is_datetime64_any_dtype(col):
        return np.asarray(col.astype("int64"), dtype=np.int64) // 10**9
    bad = np.abs(values) >= 2.0**62  # would not fit int64
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{_where(path, lines, row)}: {name} must be unix seconds, got {_shown(col.iloc[row])!r}")
    return np.floor(values).astype(np.int64)


def read_interaction_table(
    path: Path, *, timestamp_seconds: bool = False, extra_columns: Sequence[str] = ()
) -> dict:
    """Generic CSV / TSV / JSONL / Parquet with ``user_id``, ``item_id`` and optional
    ``timestamp`` and ``rating``. Returns numpy arrays (ids as str objects, numbers as float64);
    with ``timestamp_seconds`` also ``timestamp_seconds``, the timestamps as int64 unix seconds
    (None without a ``timestamp`` column). ``extra_columns`` (feature columns) come back as
    ``columns[name]``: str objects, None where empty, with ``where(row)``: "file, line N" of a row."""
    df, lines, _ = _read_any(path, ["user_id", "item_id"], may_be_empty=extra_columns)
    missing = [c for c in extra_columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: has no column(s) {missing} (its columns: {list(df.columns)})")
    out: dict[str, np.ndarray | None] = {
        "user": _id_column(path, df, lines, "user_id"),
        "item": _id_column(path, df, lines, "item_id"),
        "timestamp": None,
        "rating": None,
    }
    if "timestamp" in df.columns:
        out["timestamp"] = _numeric_column(path, df, lines, "timestamp", allow_datetime=True)
    if timestamp_seconds:
        out["timestamp_seconds"] = None
        if out["timestamp"] is not None:
            out["timestamp_seconds"] = _unix_seconds(path, df, lines, "timestamp", out["timestamp"])
    if "rating" in df.columns:
        out["rating"] = _numeric_column(path, df, lines, "rating", allow_datetime=False)
    if extra_columns:
        out["columns"] = {c: np.asarray([None if pd.isna(v) or str(v).strip() == "" else str(v).strip() for v in df[c]],
                                        dtype=object) for c in extra_columns}  # fmt: skip
        out["where"] = lambda row: _where(path, lines, row)
    return out


def read_item_text_table(path: Path) -> dict[str, str]:
    """CSV / TSV / JSONL (or Parquet) with ``item_id`` and ``text``."""
    df, lines, _ = _read_any(Path(path), ["item_id", "text"])
    ids = _id_column(Path(path), df, lines, "item_id")
    texts = df["text"].astype(str).to_numpy(dtype=object)
    out: dict[str, str] = {}
    for row, (item, text) in enumerate(zip(ids, texts)):
        if item in out:
            raise ValueError(f"{_where(Path(path), lines, row)}: duplicate item_id {item!r}")
        out[item] = text
    return out


def file_signature(path: Path) -> str:
    """Cheap identity of a file for cache keys: size + mtime (the sha256 is used where needed)."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"
