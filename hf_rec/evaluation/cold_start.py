"""Cold-start evaluation: hold out a seeded fraction of items from training and score the users whose test item is
one of them; `add_cold_items`, which adds items to a text model and its `ItemTokenizer` together; and
`truncate_histories`, which turns every user of a split into a cold user with only their most recent items."""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["cold_start_split", "add_cold_items", "truncate_histories"]


def cold_start_split(splits, tokenizer, fraction: float, seed: int = 0):
    """Hold out `fraction` of the items (seeded) from training.

    Args:
        splits (`DatasetDict`): `train` / `validation` / `test` from `load_sequential_dataset`.
        tokenizer (`ItemTokenizer`): Its real items are sampled from.
        fraction (`float`): Share of items held out, in (0, 1).
        seed (`int`, defaults to 0): Seed of the item draw.

    Returns:
        `(train_splits, cold_test, cold_items)`: `train_splits` is `splits` with every cold item removed from every
        history (`item_ids`) and the `validation` rows whose target is cold dropped; `cold_test` is the `test` rows
        whose target is cold, histories likewise stripped of cold items (rows whose history becomes empty are
        dropped); `cold_items` is the sorted list of held-out indices. A text model can score them without ever
        having trained on them (their text embedding is in its table).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    items = list(tokenizer.item_indices)
    count = max(1, int(round(fraction * len(items))))
    cold = set(random.Random(seed).sample(items, count))

    aligned = [c for c in ("timestamps", "interaction_features") if c in splits["test"].column_names]

    def strip(row):  # the cold items out of a history, with what is aligned with it
        warm = [i not in cold for i in row["item_ids"]]
        return {c: [v for v, w in zip(row[c], warm) if w] for c in ("item_ids", *aligned)}

    train_splits = splits.map(strip)
    if "validation" in train_splits:
        train_splits["validation"] = train_splits["validation"].filter(
            lambda row: row["target"] not in cold and len(row["item_ids"]) > 0
        )
    cold_test = splits["test"].filter(lambda row: row["target"] in cold).map(strip)
    cold_test = cold_test.filter(lambda row: len(row["item_ids"]) > 0)
    return train_splits, cold_test, sorted(cold)


def add_cold_items(model, tokenizer, raw_ids: Sequence, texts: Sequence[str]) -> list[int]:
    """Add new items to a text model (`model.add_items(texts)`) and to its `ItemTokenizer` (`add_items(raw_ids,
    texts)`), checking that both give the same indices. Returns the new indices."""
    raw_ids, texts = list(raw_ids), list(texts)
    if len(raw_ids) != len(texts):
        raise ValueError(f"add_cold_items got {len(raw_ids)} ids but {len(texts)} texts")
    if not hasattr(model, "add_items"):
        raise TypeError(f"{type(model).__name__} cannot add items by text (use an llmrec model)")
    if model.config.vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"model vocab_size={model.config.vocab_size} and tokenizer vocab_size={tokenizer.vocab_size} differ: "
            "they are out of sync"
        )
    present = [r for r in raw_ids if str(r) in tokenizer]
    if present:
        raise ValueError(f"item id(s) already in the tokenizer: {present[:10]}")
    indices = model.add_items(texts)
    tokenizer_indices = tokenizer.add_items(raw_ids, texts)
    if tokenizer_indices != indices:  # pragma: no cover - guarded by the vocab_size check above
        raise RuntimeError(f"model indices {indices} and tokenizer indices {tokenizer_indices} differ")
    return indices


def truncate_histories(split, keep: int):
    """`split` (validation / test) with each history cut to its `keep` most recent items (and their `timestamps` and
    `interaction_features`), the target unchanged: every user becomes a cold user who has just arrived with `keep`
    interactions (and their attributes, if the split has `user_features`)."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be an integer >= 1, got {keep!r}")
    columns = [c for c in ("item_ids", "timestamps", "interaction_features") if c in split.column_names]
    return split.map(lambda row: {c: row[c][-keep:] for c in columns})
