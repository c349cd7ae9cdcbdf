"""`hf-rec batch-score`: top-k items for every user of a dataset (or of a JSON-lines file of histories), written to
Parquet in chunks so that memory stays bounded whatever the number of users.

Output columns: `user_id` (string), `item_ids` (list of raw item ids, best first), `scores` (list of float32).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..atomic import atomic_open

__all__ = ["dataset_histories", "jsonl_histories", "write_recommendations"]


def dataset_histories(split) -> Iterator[tuple[str, list[int]]]:
    """`(user_id, item indices)` of every user of a leave-one-out split, whole histories: the test split's history
    and its held-out item, i.e. what to recommend next after everything the user did."""
    for row in split:
        yield row["user_id"], list(row["item_ids"]) + ([row["target"]] if row["target"] >= 0 else [])


def jsonl_histories(path: str | Path, tokenizer, unknown: str = "error") -> Iterator[tuple[str, list[int]]]:
    """`{"user_id": ..., "history": [raw ids]}` per line -> `(user_id, item indices)`; errors name the line."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                history = tokenizer.encode(record["history"], unknown=unknown)
                user_id = str(record["user_id"])
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}, line {number}: {err!r}") from None
            if not history:
                raise ValueError(f"{path}, line {number}: the history has no item the model knows")
            yield user_id, history


def write_recommendations(
    model,
    tokenizer,
    histories: Iterable[tuple[str, list[int]]],
    output: str | Path,
    k: int = 10,
    exclude_seen: bool = True,
    chunk_size: int = 4096,
    progress: bool = True,
) -> dict:
    """Score `histories` in chunks of `chunk_size` users and append each chunk to the Parquet file `output` (written
    under a temporary name and renamed at the end, `hf_rec.atomic`). Returns `{"users": n, "seconds": s, "users_per_second": r}`."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    schema = pa.schema([("user_id", pa.string()), ("item_ids", pa.list_(pa.string())), ("scores", pa.list_(pa.float32()))])
    model.eval()
    start, users = time.perf_counter(), 0
    bar = tqdm(desc="scoring users", unit="user", disable=not progress)
    with atomic_open(output, "wb") as handle, pq.ParquetWriter(handle, schema) as writer:
        chunk: list[tuple[str, list[int]]] = []
        for entry in itertools.chain(histories, [None]):  # None: flush the last chunk
            if entry is not None:
                chunk.append(entry)
                if len(chunk) < chunk_size:
                    continue
            if not chunk:
                break
            indices, scores = model.recommend([h for _, h in chunk], k=k, exclude_seen=exclude_seen)
            indices, scores = indices.tolist(), scores.tolist()
            item_ids = [[tokenizer.convert_index_to_id(i) for i in row if i >= 0] for row in indices]
            row_scores = [[s for i, s in zip(ri, rs) if i >= 0] for ri, rs in zip(indices, scores)]
            writer.write_table(pa.table({"user_id": [u for u, _ in chunk], "item_ids": item_ids, "scores": row_scores},
                                        schema=schema))  # fmt: skip
            users += len(chunk)
            bar.update(len(chunk))
            chunk = []
    bar.close()
    seconds = time.perf_counter() - start
    return {"users": users, "seconds": seconds, "users_per_second": users / seconds if seconds else float("inf")}
