"""Cold-start evaluation: hold out a seeded fraction of items from training and score the users whose test item is
one of them; `add_cold_items`, which adds items (by text or by their features) to a model and its `ItemTokenizer`
together; and `truncate_histories`, which turns every user of a split into a cold user with only their most recent
items."""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping, Sequence

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


def add_cold_items(
    model, tokenizer, raw_ids: Sequence, texts: Sequence[str] | None = None, features: Sequence[Mapping] | None = None
) -> list[int]:
    """Add new items to a model and to its `ItemTokenizer` together, checking that both give the same indices; returns
    the new indices. A text model (llmrec) needs their `texts`; an ID model scores them from their item `features`
    (one mapping `{feature name: value or list of values}` per item; it needs `item_features_in_scores`), which a
    text model with item features takes as well. Everything is checked before either side changes."""
    raw_ids = list(raw_ids)
    if texts is not None and len(texts) != len(raw_ids):
        raise ValueError(f"add_cold_items got {len(raw_ids)} ids but {len(texts)} texts")
    if model.config.vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"model vocab_size={model.config.vocab_size} and tokenizer vocab_size={tokenizer.vocab_size} differ: "
            "they are out of sync"
        )
    staged = type(tokenizer).from_dict(tokenizer.to_dict())  # the tokenizer's checks (and warnings) on a copy first
    indices = staged.add_items(raw_ids, texts, features=features)
    feature_ids = None
    if features is not None:
        feature_ids = {name: staged.item_feature_ids(name)[indices] for name in staged.item_feature_names}
    if getattr(model.config, "model_type", None) == "llmrec":
        if texts is None:
            raise ValueError("a text model adds items by their texts: pass texts=[...]")
        model_indices = model.add_items(list(texts), item_feature_ids=feature_ids)
    else:
        model_indices = model.add_items(len(raw_ids), item_feature_ids=feature_ids)
    if model_indices != indices:  # pragma: no cover - guarded by the vocab_size check above
        raise RuntimeError(f"model indices {model_indices} and tokenizer indices {indices} differ")
    with warnings.catch_warnings():  # the same unknown values were reported by the copy
        warnings.simplefilter("ignore")
        tokenizer.add_items(raw_ids, texts, features=features)
    return indices


def truncate_histories(split, keep: int):
    """`split` (validation / test) with each history cut to its `keep` most recent items (and their `timestamps` and
    `interaction_features`), the target unchanged: every user becomes a cold user who has just arrived with `keep`
    interactions (and their attributes, if the split has `user_features`)."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be an integer >= 1, got {keep!r}")
    columns = [c for c in ("item_ids", "timestamps", "interaction_features") if c in split.column_names]
    return split.map(lambda row: {c: row[c][-keep:] for c in columns})
