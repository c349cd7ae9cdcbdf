"""Scoring the whole catalogue: top-k items by dot product, chunked so that memory stays bounded, and the per-user
exclusion lists (seen items) as flat `(row, item)` pairs. `recommend` and hf_rec's evaluation both use these, so
serving and evaluation can never disagree.

A same-folder sibling of the modeling files (exported with them for `trust_remote_code`); imports only torch.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

import torch


def mask_special_scores(scores: torch.Tensor, special_ids: Sequence[int]) -> torch.Tensor:
    """Set the columns of special ids to -inf (returns a new tensor)."""
    scores = scores.clone()
    scores[..., list(special_ids)] = float("-inf")
    return scores


def exclusion_pairs(
    exclude,
    num_users: int,
    vocab_size: int,
    targets: torch.Tensor | None = None,
    specials: torch.Tensor | None = None,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-user exclusions -> unique `(row, item)` index pairs, sorted by row then item.

    `exclude` is either a sequence of `num_users` iterables of item indices (lists, sets, arrays, tensors, `None` for
    nothing) or a 2-D integer tensor / array `[num_users, L]`. Entries `< 0` are padding and ignored; entries
    `>= vocab_size` or non-integers raise ValueError. Pairs whose item is the user's target (`targets`, `[num_users]`)
    or a special id (`specials`) are dropped: the target is always ranked, specials are never ranked anyway.
    """
    empty = torch.empty(0, dtype=torch.long, device=device)
    if exclude is None:
        return empty, empty.clone()
    if getattr(exclude, "ndim", None) == 2:  # a tensor or an array
        cols = torch.as_tensor(exclude)
        if cols.is_floating_point():
            raise ValueError("exclude must hold integer item indices")
        if cols.shape[0] != num_users:
            raise ValueError(f"exclude has {cols.shape[0]} rows for {num_users} users")
        cols = cols.to(device=device, dtype=torch.long)
        rows = torch.arange(num_users, device=device)[:, None].expand_as(cols).reshape(-1)
        cols = cols.reshape(-1)
    else:
        if isinstance(exclude, (str, bytes)) or not isinstance(exclude, Iterable):
            raise ValueError("exclude must be a sequence of per-user item iterables or a 2-D tensor")
        per_user = []
        for items in exclude:
            if items is None:
                items = []
            elif isinstance(items, (set, frozenset)):
                items = sorted(items)
            items = torch.as_tensor(items).reshape(-1) if not isinstance(items, torch.Tensor) else items.reshape(-1)
            if items.numel() and (items.is_floating_point() or items.dtype == torch.bool):
                raise ValueError(f"exclude must hold integer item indices, got dtype {items.dtype}")
            per_user.append(items.detach().to("cpu", torch.long))
        if len(per_user) != num_users:
            raise ValueError(f"exclude has {len(per_user)} entries for {num_users} users")
        lengths = torch.tensor([len(items) for items in per_user], dtype=torch.long)
        rows = torch.repeat_interleave(torch.arange(num_users), lengths).to(device)
        cols = (torch.cat(per_user) if per_user else empty.cpu()).to(device)
    too_big = cols >= vocab_size
    if bool(too_big.any()):
        i = int(too_big.nonzero()[0, 0])
        raise ValueError(
            f"exclude of user row {int(rows[i])} holds item {int(cols[i])}, outside the item range [0, {vocab_size})"
        )
    keep = cols >= 0
    if targets is not None:
        keep &= cols != targets[rows]
    if specials is not None and specials.numel():
        keep &= ~torch.isin(cols, specials)
    rows, cols = rows[keep], cols[keep]
    if rows.numel() == 0:
        return rows, cols
    keys = torch.unique(rows * vocab_size + cols)  # sorted, duplicates removed
    return keys // vocab_size, keys % vocab_size


def topk_items(
    user_embeddings: torch.Tensor,
    item_embeddings: torch.Tensor,
    k: int,
    exclude: Sequence[Sequence[int]] | None = None,
    special_ids: Sequence[int] = (0,),
    item_chunk_size: int = 65536,
    user_chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k items by dot product, never returning special or excluded items, chunked over users and items.

    Args:
        user_embeddings (`torch.Tensor` of shape `(num_users, hidden)`)
        item_embeddings (`torch.Tensor` of shape `(vocab_size, hidden)`)
        k (`int`): Items per user; at most `vocab_size - len(special_ids)` columns are returned. A user whose
            exclusions leave fewer rankable items gets index -1 / score -inf in the remaining columns.
        exclude (list of item-index lists, *optional*): Items never to return for each user (e.g. seen items);
            negative entries are padding and ignored.
        special_ids: Indices never returned (padding, mask token).
        item_chunk_size, user_chunk_size (`int`): Peak memory is about `user_chunk_size * (item_chunk_size + k)`
            scores, whatever the catalogue size.

    Returns:
        `(indices, scores)`, each of shape `(num_users, k')`, best first (order among equal scores unspecified).
    """
    k = check_k(k)
    num_users, vocab_size = user_embeddings.shape[0], item_embeddings.shape[0]
    device = user_embeddings.device
    specials = sorted({int(s) for s in special_ids if 0 <= int(s) < vocab_size})
    k = min(k, vocab_size - len(specials))
    if k <= 0:
        raise ValueError("no item can be recommended: every index is a special id")
    rows, cols = exclusion_pairs(exclude, num_users, vocab_size, device=device)
    out_indices = torch.full((num_users, k), -1, dtype=torch.long, device=device)
    out_scores = torch.full((num_users, k), float("-inf"), device=device)
    for u0 in range(0, num_users, user_chunk_size):
        u1 = min(u0 + user_chunk_size, num_users)
        in_users = (rows >= u0) & (rows < u1)
        user_rows, user_cols = rows[in_users] - u0, cols[in_users]
        best_scores = torch.empty((u1 - u0, 0), device=device)
        best_indices = torch.empty((u1 - u0, 0), dtype=torch.long, device=device)
        for i0 in range(0, vocab_size, item_chunk_size):
            i1 = min(i0 + item_chunk_size, vocab_size)
            scores = (user_embeddings[u0:u1] @ item_embeddings[i0:i1].T).float()  # [users, chunk]
            if torch.isnan(scores).any():
                raise ValueError("item scores contain NaN")
            chunk_specials = [s - i0 for s in specials if i0 <= s < i1]
            if chunk_specials:
                scores[:, chunk_specials] = float("-inf")
            in_chunk = (user_cols >= i0) & (user_cols < i1)
            scores[user_rows[in_chunk], user_cols[in_chunk] - i0] = float("-inf")
            chunk_scores, chunk_indices = scores.topk(min(k, i1 - i0), dim=1)
            best_scores = torch.cat([best_scores, chunk_scores], dim=1)
            best_indices = torch.cat([best_indices, chunk_indices + i0], dim=1)
            if best_scores.shape[1] > k:
                best_scores, keep = best_scores.topk(k, dim=1)
                best_indices = best_indices.gather(1, keep)
        best_indices = best_indices.masked_fill(torch.isneginf(best_scores), -1)
        out_scores[u0:u1, : best_scores.shape[1]] = best_scores
        out_indices[u0:u1, : best_indices.shape[1]] = best_indices
    return out_indices, out_scores


def check_k(k) -> int:
    """`k` as an int: any integral number (numpy integers too) > 0, not a bool."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)



__all__ = ["check_k", "exclusion_pairs", "mask_special_scores", "topk_items"]
