"""`pipeline("next-item-recommendation", model=...)`: raw item ids in, ranked raw item ids (with scores and texts) out.

    >>> from transformers import pipeline
    >>> import hf_rec.pipelines  # registers the task
    >>> recommender = pipeline("next-item-recommendation", model="user/sasrec-ml-1m")
    >>> recommender({"history": ["1193", "661", "914"]}, top_k=3)
    [{'item_id': '2858', 'score': 9.1, 'text': 'American Beauty (1999)...'}, ...]

The ItemTokenizer (`item_tokenizer.json`) is read from the same folder / repo as the model, or passed explicitly as
`item_tokenizer=` (an `ItemTokenizer`, a folder or a repo id).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from transformers import Pipeline

from ..data.tokenizer import ItemTokenizer

__all__ = ["NextItemRecommendationPipeline", "TASK"]

TASK = "next-item-recommendation"
_UNKNOWN_ITEMS = ("error", "ignore")


class NextItemRecommendationPipeline(Pipeline):
    """Top-k next items for one or more item histories.

    Args (at construction or per call):
        item_tokenizer (`ItemTokenizer`, `str`, *optional*): Construction only. Default: `item_tokenizer.json` next to
            the model (`model.name_or_path`).
        item_tokenizer_revision (`str`, *optional*): Construction only: Hub revision of the tokenizer. Pass the same
            value as `revision=` when loading a model at a non-default revision.
        top_k (`int`, defaults to 10): Items returned per history.
        exclude_seen (`bool`, defaults to `True`): Never return an item of the history.
        unknown_items (`"error"` or `"ignore"`, defaults to `"error"`): What to do with raw ids the model does not
            know: raise a ValueError naming them, or drop them (a history left empty still raises).

    Inputs:
        `{"history": [raw ids, oldest first]}` -> `[{"item_id": str, "score": float, "text": str}, ...]` (`text`
        only when the tokenizer has item texts); a list of such dicts, or a list of lists of raw ids (a batch) ->
        one such list per history. A dict may also hold `"timestamps"`: Unix seconds, one per history item,
        optionally followed by the time of the request; models with a time bias read them (in a batch, give them for
        every history or for none); `"exclude"`: raw ids never to return (unknown ones are ignored); and
        `"user_features"`: `{feature name: raw value}` for models with user features (a new user's age group,
        gender, ...; a feature left out or a value never seen in training counts as unknown, the latter with a
        warning); `"interaction_features"`: one `{feature name: raw value}` per history item (the rating given, ...)
        for models with interaction features, unknown likewise.
    """

    _load_tokenizer = False  # no text tokenizer: the ItemTokenizer is loaded below
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False

    def __init__(
        self,
        model,
        item_tokenizer: ItemTokenizer | str | None = None,
        item_tokenizer_revision: str | None = None,
        **kwargs,
    ):
        from ..hub.push import check_tokenizer_matches, load_item_tokenizer

        if item_tokenizer is None:
            source = getattr(model, "name_or_path", None)
            if not source:
                raise ValueError(
                    "the model has no name_or_path to find item_tokenizer.json next to: pass item_tokenizer="
                )
            item_tokenizer = load_item_tokenizer(source, revision=item_tokenizer_revision)
        elif not isinstance(item_tokenizer, ItemTokenizer):
            item_tokenizer = load_item_tokenizer(item_tokenizer, revision=item_tokenizer_revision)
        check_tokenizer_matches(model, item_tokenizer, getattr(model, "name_or_path", "the model"))
        self.item_tokenizer = item_tokenizer
        super().__init__(model=model, **kwargs)
        self.model.eval()

    def _sanitize_parameters(self, top_k=None, exclude_seen=None, unknown_items=None, **kwargs):
        if kwargs:
            raise TypeError(f"{TASK} pipeline got unexpected options {sorted(kwargs)}; "
                            "allowed: top_k, exclude_seen, unknown_items")  # fmt: skip
        preprocess, forward, postprocess = {}, {}, {}
        if unknown_items is not None:
            if unknown_items not in _UNKNOWN_ITEMS:
                raise ValueError(f"unknown_items must be one of {_UNKNOWN_ITEMS}, got {unknown_items!r}")
            preprocess["unknown_items"] = unknown_items
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k <= 0:
                raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
            forward["top_k"] = int(top_k)
        if exclude_seen is not None:
            forward["exclude_seen"] = bool(exclude_seen)
        return preprocess, forward, postprocess

    def __call__(self, inputs, **kwargs):
        """One history (dict) -> list of dicts; a batch (list of dicts / list of lists of raw ids) -> list of lists.

        The whole batch runs as one `model.recommend` call (which batches and chunks the catalogue itself), so the
        base class's per-item loop and `batch_size` are not used.
        """
        entries, single = _normalise_inputs(inputs)
        outputs = super().__call__({"entries": entries}, **kwargs)
        return outputs[0] if single else outputs

    def preprocess(self, inputs: dict, unknown_items: str = "error") -> dict:
        entries = inputs["entries"]
        given = [entry["timestamps"] is not None for entry in entries]
        if any(given) and not all(given):
            raise ValueError(f"history {given.index(False)} has no 'timestamps' but others do: give them for every "
                             "history of a batch or for none")  # fmt: skip
        histories, timestamps, exclude, users, interactions = [], [], [], [], []
        for row, entry in enumerate(entries):
            history, times = entry["history"], entry["timestamps"]
            where = "" if len(entries) == 1 else f"history {row}: "
            if times is not None and len(times) not in (len(history), len(history) + 1):
                raise ValueError(f"{where}'timestamps' has {len(times)} values for {len(history)} items (give one per "
                                 "item, or one more for the time of the request)")  # fmt: skip
            try:
                indices = self.item_tokenizer.encode(history, unknown=unknown_items)
            except ValueError as err:
                raise ValueError(f"{where}{err} (pass unknown_items='ignore' to drop unknown ids)") from None
            if not indices:
                what = "is empty" if not history else "has no item the model knows (all were unknown and dropped)"
                raise ValueError(f"history {row} {what}: a recommendation needs at least one known item")
            histories.append(indices)
            known = [raw in self.item_tokenizer for raw in history]
            if times is not None:  # the times of the items kept, then the request time if given
                timestamps.append([t for t, keep in zip(times, known) if keep] + list(times[len(history) :]))
            values = entry["interaction_features"]
            if values is not None and len(values) != len(history):
                raise ValueError(f"{where}'interaction_features' has {len(values)} entries for {len(history)} items "
                                 "(give one mapping per item)")  # fmt: skip
            exclude.append(self.item_tokenizer.encode(entry["exclude"], unknown="ignore"))
            try:
                users.append(self.item_tokenizer.encode_user_features(entry["user_features"] or {}))
                kept = [v for v, keep in zip(values or [{}] * len(history), known) if keep]
                interactions.append(self.item_tokenizer.encode_interaction_features(kept))
            except (TypeError, ValueError) as err:
                raise ValueError(f"{where}{err}") from None
        return {"histories": histories, "timestamps": timestamps if any(given) else None, "exclude": exclude,
                "user_features": users if self.item_tokenizer.user_feature_names else None,
                "interaction_features": interactions if self.item_tokenizer.interaction_feature_names else None}  # fmt: skip

    def _forward(self, model_inputs: dict, top_k: int = 10, exclude_seen: bool = True) -> dict:
        indices, scores = self.model.recommend(model_inputs["histories"], k=top_k, exclude_seen=exclude_seen,
                                               timestamps=model_inputs["timestamps"], exclude=model_inputs["exclude"],
                                               user_features=model_inputs["user_features"],
                                               interaction_features=model_inputs["interaction_features"])  # fmt: skip
        return {"indices": indices, "scores": scores}

    def postprocess(self, model_outputs: dict) -> list[list[dict[str, Any]]]:
        tokenizer = self.item_tokenizer
        results = []
        for row_indices, row_scores in zip(model_outputs["indices"].tolist(), model_outputs["scores"].tolist()):
            row = []
            for index, score in zip(row_indices, row_scores):
                if index < 0:  # fewer recommendable items than top_k
                    continue
                item = {"item_id": tokenizer.convert_index_to_id(index), "score": float(score)}
                text = tokenizer.text(index) if tokenizer.has_texts else None
                if text is not None:
                    item["text"] = text
                row.append(item)
            results.append(row)
        return results


def _normalise_inputs(inputs: Any) -> tuple[list[dict[str, Any]], bool]:
    """-> (one `{"history", "timestamps", "exclude", "user_features", "interaction_features"}` entry per history,
    whether the input was a single history)."""
    if isinstance(inputs, Mapping):
        return [_entry(inputs, 0)], True
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
        raise TypeError(
            f"{TASK} takes {{'history': [raw ids]}}, a list of such dicts or a list of lists of raw ids; "
            f"got {type(inputs).__name__}"
        )
    if len(inputs) == 0:
        raise ValueError(f"{TASK} got an empty batch")
    entries = []
    for row, item in enumerate(inputs):
        if isinstance(item, Mapping):
            entries.append(_entry(item, row))
        elif isinstance(item, Sequence) and not isinstance(item, (str, bytes)):
            entries.append({"history": list(item), "timestamps": None, "exclude": [], "user_features": None,
                            "interaction_features": None})
        else:
            raise TypeError(
                f"batch entry {row} is {type(item).__name__} ({item!r}): a flat list of ids is read as a batch of "
                "histories, so wrap one history as {'history': [...]} or [[...]]"
            )
    return entries, False


def _entry(entry: Mapping, row: int) -> dict[str, Any]:
    if "history" not in entry:
        raise ValueError(f"input {row} has no 'history' key (keys: {sorted(entry)})")
    unknown_keys = set(entry) - {"history", "timestamps", "exclude", "user_features", "interaction_features"}
    if unknown_keys:
        raise ValueError(f"input {row} has unknown keys {sorted(unknown_keys)} (allowed: history, timestamps, exclude, "
                         "user_features, interaction_features)")  # fmt: skip
    values = {"history": entry["history"], "timestamps": entry.get("timestamps"), "exclude": entry.get("exclude", [])}
    for key, value in values.items():
        if value is not None and (isinstance(value, (str, bytes)) or not isinstance(value, Sequence)):
            raise TypeError(f"input {row}: {key!r} must be a list, got {type(value).__name__}")
    user_features = entry.get("user_features")
    if user_features is not None and not isinstance(user_features, Mapping):
        raise TypeError(f"input {row}: 'user_features' must be a mapping name -> value, got {type(user_features).__name__}")
    interactions = entry.get("interaction_features")
    if interactions is not None and (isinstance(interactions, (str, bytes, Mapping)) or not isinstance(interactions, Sequence)
                                     or not all(isinstance(v, Mapping) for v in interactions)):  # fmt: skip
        raise TypeError(f"input {row}: 'interaction_features' must be a list with one mapping name -> value per item")
    return {**{key: None if value is None else list(value) for key, value in values.items()},
            "user_features": None if user_features is None else dict(user_features),
            "interaction_features": None if interactions is None else [dict(v) for v in interactions]}  # fmt: skip
