"""`hf-rec index`: an item-embedding index with faiss, exact or approximate, for catalogues too large to score whole.

Scores are inner products of the model's user and item embeddings (`get_user_embeddings` / `get_item_embeddings`),
the model's own score. Index ids are item indices; special ids (padding, mask) are never added. Seen items are
filtered by fetching more than `k` and dropping them (faiss has no per-query exclusion lists).

Kinds: `flat` (exact; `IndexFlatIP`), `hnsw` (graph, `IndexHNSWFlat`: `hnsw_m` links, `ef_search` at query time) and
`ivf` (`IndexIVFFlat`: `nlist` k-means cells, `nprobe` visited per query). The index is saved with
`faiss.write_index` (faiss's own binary format, no pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write_bytes

__all__ = ["INDEX_KINDS", "build_index", "load_index", "save_index", "search_index"]

INDEX_KINDS = ("flat", "hnsw", "ivf")


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ValueError("item indexes need faiss: pip install 'hf-rec[export]' (faiss-cpu)") from None
    return faiss


def build_index(
    item_embeddings: torch.Tensor | np.ndarray,
    special_ids: Sequence[int] = (0,),
    kind: str = "flat",
    hnsw_m: int = 32,
    ef_construction: int = 80,
    ef_search: int = 128,
    nlist: int | None = None,
    nprobe: int = 16,
):
    """A faiss index over the rows of `item_embeddings` (`[V, H]`) except `special_ids`, with item indices as ids."""
    faiss = _faiss()
    if kind not in INDEX_KINDS:
        raise ValueError(f"index kind must be one of {', '.join(INDEX_KINDS)}, got {kind!r}")
    vectors = np.ascontiguousarray(torch.as_tensor(item_embeddings).detach().cpu().float().numpy())
    ids = np.array([i for i in range(vectors.shape[0]) if i not in set(special_ids)], dtype=np.int64)
    dim = vectors.shape[1]
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = ef_construction
        inner.hnsw.efSearch = ef_search
    else:
        nlist = nlist or max(1, int(4 * np.sqrt(len(ids))))
        inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        inner.train(vectors[ids])
        inner.nprobe = nprobe
    index = faiss.IndexIDMap2(inner)
    index.add_with_ids(vectors[ids], ids)
    return index


def search_index(
    index, user_embeddings: torch.Tensor | np.ndarray, k: int, exclude: Sequence[Sequence[int]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` item indices and scores per user (`[U, k]`, best first); `exclude` (per-user item indices, e.g. the
    history) never returned; -1 / -inf where fewer than `k` items are left."""
    users = np.ascontiguousarray(torch.as_tensor(user_embeddings).detach().cpu().float().numpy())
    banned = [set(map(int, items)) for items in exclude] if exclude is not None else [set()] * len(users)
    fetch = min(k + max((len(b) for b in banned), default=0), index.ntotal)
    scores, ids = index.search(users, fetch)
    out_ids = np.full((len(users), k), -1, dtype=np.int64)
    out_scores = np.full((len(users), k), -np.inf, dtype=np.float32)
    for row in range(len(users)):
        keep = [(i, s) for i, s in zip(ids[row], scores[row]) if i >= 0 and int(i) not in banned[row]][:k]
        if keep:
            out_ids[row, : len(keep)] = [i for i, _ in keep]
            out_scores[row, : len(keep)] = [s for _, s in keep]
    return out_ids, out_scores


def save_index(index, path: str | Path) -> None:
    """The index in faiss's own format, written atomically (a reader never sees half a file)."""
    atomic_write_bytes(path, _faiss().serialize_index(index).tobytes())


def load_index(path: str | Path):
    return _faiss().read_index(str(path))
