"""``ItemTokenizer``: raw item ids (strings) <-> integer indices of every model's item table.

Layout (see docs/architecture.md):

* ``0`` = padding (``pad_token_id``)
* ``1 .. n`` = the items known at construction, in the order given
* ``n + 1`` = ``mask_token_id`` (fixed at construction, never moves)
* ``n + 2, ...`` = items added later with :meth:`ItemTokenizer.add_items` (cold start)

Side information (optional): categorical item features (each item's values, e.g. its genres) and the vocabularies of
user features, each value numbered from 1 in sorted order (0 = unknown / none). A numeric feature (a price, an age)
is a categorical one over quantile buckets: its ``bucket_edges`` are saved, its vocabulary is the buckets in order,
and a number given at inference falls in its bucket (``bucket_id``). A model built with
:meth:`ItemTokenizer.feature_config` reads them (``item_feature_ids`` fills its item-feature buffers).

The tokenizer is saved as one JSON file (``item_tokenizer.json``); no pickle is ever used.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text

__all__ = [
    "ItemTokenizer", "TOKENIZER_FILE_NAME", "TOKENIZER_FORMAT_VERSION", "bucket_id", "bucket_labels",
    "quantile_bucket_edges",
]  # fmt: skip

TOKENIZER_FILE_NAME = "item_tokenizer.json"
TOKENIZER_FORMAT = "hf_rec.ItemTokenizer"
TOKENIZER_FORMAT_VERSION = 1


def _as_raw_id(value: Any) -> str:
    """Raw ids are strings; plain integers (incl. numpy integers) are accepted and converted."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError(f"raw item ids must be strings, got the bool {value!r}")
    try:
        import numbers

        if isinstance(value, numbers.Integral):
            return str(int(value))
    except Exception:  # pragma: no cover - defensive
        pass
    raise TypeError(f"raw item ids must be strings (or integers), got {type(value).__name__}: {value!r}")


def _raw_ids(values: Iterable[Any], what: str) -> list[str]:
    """Raw ids as strings. Surrounding whitespace (from a "1, 2, 3" list or a padded CSV column) is stripped with a
    warning: kept, " 5" would silently be another item than "5"."""
    ids = [_as_raw_id(v) for v in values]
    padded = [raw for raw in ids if raw != raw.strip()]
    if padded:
        warnings.warn(
            f"{what}: stripped surrounding whitespace from {len(padded)} raw item id(s), e.g. {padded[0]!r}",
            UserWarning,
            stacklevel=3,
        )
        ids = [raw.strip() for raw in ids]
    return ids


def quantile_bucket_edges(values: Sequence[float], num_buckets: int) -> list[float]:
    """Edges that split `values` into up to `num_buckets` buckets of about equal counts (equal quantiles merge)."""
    inner = np.quantile(np.asarray(values, dtype=float), np.linspace(0.0, 1.0, num_buckets + 1)[1:-1])
    return sorted({float(q) for q in inner} - {float(np.min(values))})  # a bucket below the minimum would stay empty


def bucket_labels(edges: Sequence[float]) -> list[str]:
    """The vocabulary of a numeric feature: one label per bucket, in order (`len(edges) + 1` of them)."""
    if not edges:
        return ["any"]
    e = [format(x, ".6g") for x in edges]
    return [f"< {e[0]}", *(f"[{a}, {b})" for a, b in zip(e, e[1:])), f">= {e[-1]}"]


def bucket_id(edges: Sequence[float], value: Any) -> int:
    """The value id (1-based bucket) of a number; 0 ("unknown") for what is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0
    if isinstance(value, bool) or not np.isfinite(number):
        return 0
    return int(np.searchsorted(np.asarray(edges, dtype=float), number, side="right")) + 1


def _value_id(vocab: Sequence[str], edges: Sequence[float] | None, value: Any) -> int:
    """A raw feature value's id: its bucket for a numeric feature (`edges`), else its vocabulary position + 1; 0 when
    it is not a number / not in the vocabulary."""
    if edges is not None:
        return bucket_id(edges, value)
    return vocab.index(str(value)) + 1 if str(value) in vocab else 0


def _checked_edges(edges: Mapping[str, Sequence[float]] | None, features: Mapping | None, kind: str) -> dict:
    out = {}
    for name, e in (edges or {}).items():
        e = [float(x) for x in e]
        if not all(np.isfinite(e)) or e != sorted(set(e)):
            raise ValueError(f"{kind} feature {name!r}: bucket edges must be ascending distinct finite numbers, got {e}")
        if features is not None and name not in features:
            raise ValueError(f"{kind} bucket edges are given for {name!r}, which is not an {kind} feature")
        out[name] = e
    return out


def _check_ids_iterable(values: Any, what: str) -> None:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{what} takes a sequence of ids, not a single string: pass [{values!r}]")


class ItemTokenizer:
    """Maps raw item ids (strings) to indices and back.

    Args:
        item_ids: the raw ids of the items, in index order (the first gets index 1).
        item_texts: optional item texts, either a mapping raw id -> text or a sequence aligned with
            ``item_ids`` (``None`` entries for items without text).
        metadata: a JSON-serialisable dict (dataset name, fingerprint, options, report, ...).
        item_features: optional categorical item features, ``{name: values}`` with ``values`` a mapping raw id ->
            list of strings or a sequence aligned with ``item_ids`` (an item without an entry has none).
        user_feature_vocabularies: optional ``{name: list of values}`` of user features; a value's id is its
            position + 1 (see :meth:`encode_user_features`).
        interaction_feature_vocabularies: optional ``{name: list of values}`` of per-interaction features (the
            rating given, the device used), numbered like the user features (see :meth:`encode_interaction_features`).
        item_bucket_edges / user_bucket_edges / interaction_bucket_edges: optional ``{name: edges}`` of numeric
            features: their values are numbers, bucketed by the ascending ``edges`` (:func:`quantile_bucket_edges`);
            the vocabulary is :func:`bucket_labels` (a user / interaction feature named here needs no vocabulary).
    """

    pad_token_id: int = 0

    def __init__(
        self,
        item_ids: Iterable[Any],
        item_texts: Mapping[str, str | None] | Sequence[str | None] | None = None,
        metadata: Mapping[str, Any] | None = None,
        item_features: Mapping[str, Mapping[str, Sequence[str]] | Sequence[Sequence[str]]] | None = None,
        user_feature_vocabularies: Mapping[str, Sequence[str]] | None = None,
        item_bucket_edges: Mapping[str, Sequence[float]] | None = None,
        user_bucket_edges: Mapping[str, Sequence[float]] | None = None,
        interaction_feature_vocabularies: Mapping[str, Sequence[str]] | None = None,
        interaction_bucket_edges: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        _check_ids_iterable(item_ids, "ItemTokenizer")
        ids = _raw_ids(item_ids, "ItemTokenizer")
        self._ids: list[str] = []  # index - 1 for base items; added items follow (offset by the mask slot)
        self._index: dict[str, int] = {}
        for pos, raw in enumerate(ids):
            if raw in self._index:
                raise ValueError(f"duplicate item id {raw!r} (positions {self._index[raw] - 1} and {pos})")
            self._index[raw] = pos + 1
            self._ids.append(raw)
        self._num_base = len(ids)
        self._texts: dict[int, str] = {}
        if item_texts is not None:
            self._set_texts(ids, item_texts, start=1)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._item_vocab: dict[str, list[str]] = {}
        self._item_values: dict[str, dict[int, list[int]]] = {}  # name -> {index: value ids}
        self._item_edges = _checked_edges(item_bucket_edges, item_features or {}, "item")
        self._value_edges = {"user": _checked_edges(user_bucket_edges, None, "user"),
                             "interaction": _checked_edges(interaction_bucket_edges, None, "interaction")}  # fmt: skip
        for name, values in sorted((item_features or {}).items()):
            if not isinstance(values, Mapping):
                values = list(values)
                if len(values) != len(ids):
                    raise ValueError(f"item_features[{name!r}] has {len(values)} entries but there are {len(ids)} items")
                values = dict(zip(ids, values))
            by_index = {}
            for raw, vals in values.items():
                index = self._index.get(_as_raw_id(raw))
                if index is not None and vals:  # features of items outside the data are not kept
                    if isinstance(vals, str):
                        raise TypeError(f"item_features[{name!r}][{raw!r}] must be a list of values, got the string {vals!r}")
                    by_index[index] = [str(v) for v in vals]
            if name in self._item_edges:  # numbers -> their buckets
                edges = self._item_edges[name]
                self._item_vocab[name] = bucket_labels(edges)
                self._item_values[name] = {index: [v for v in (bucket_id(edges, x) for x in vals) if v]
                                           for index, vals in by_index.items()}  # fmt: skip
                continue
            vocab = sorted({v for vals in by_index.values() for v in vals})
            lookup = {v: i + 1 for i, v in enumerate(vocab)}
            self._item_vocab[name] = vocab
            self._item_values[name] = {index: [lookup[v] for v in vals] for index, vals in by_index.items()}
        # user and interaction features: value id = position + 1 in the vocabulary, names in sorted order
        self._value_vocab: dict[str, dict[str, list[str]]] = {}
        for kind, given in (("user", user_feature_vocabularies), ("interaction", interaction_feature_vocabularies)):
            vocabularies = {**(given or {}), **{n: bucket_labels(e) for n, e in self._value_edges[kind].items()}}
            self._value_vocab[kind] = {}
            for name, vocab in sorted(vocabularies.items()):
                vocab = [str(v) for v in vocab]
                if len(set(vocab)) != len(vocab):
                    raise ValueError(f"{kind} feature {name!r}: the vocabulary lists a value twice")
                self._value_vocab[kind][name] = vocab

    # ------------------------------------------------------------------ layout
    @property
    def mask_token_id(self) -> int:
        return self._num_base + 1

    @property
    def num_items(self) -> int:
        """Real items, including items added after construction."""
        return len(self._ids)

    @property
    def num_added_items(self) -> int:
        return len(self._ids) - self._num_base

    @property
    def vocab_size(self) -> int:
        """Size of the item table: pad + items + mask + added items."""
        return len(self._ids) + 2

    @property
    def special_ids(self) -> list[int]:
        return [self.pad_token_id, self.mask_token_id]

    @property
    def item_ids(self) -> list[str]:
        """Raw ids of every real item, in index order (base items, then added items)."""
        return list(self._ids)

    @property
    def item_indices(self) -> list[int]:
        """Indices of every real item (base items, then added items)."""
        return [self._pos_to_index(p) for p in range(len(self._ids))]

    def _pos_to_index(self, pos: int) -> int:
        return pos + 1 if pos < self._num_base else pos + 2

    def _index_to_pos(self, index: int) -> int:
        if isinstance(index, bool):
            raise ValueError(f"item index must be an integer, got {index!r}")
        try:
            idx = int(index)
        except (TypeError, ValueError):
            raise ValueError(f"item index must be an integer, got {index!r}") from None
        if idx != index:
            raise ValueError(f"item index must be an integer, got {index!r}")
        if idx == self.pad_token_id:
            raise ValueError(f"index {idx} is the padding id, not an item")
        if idx == self.mask_token_id:
            raise ValueError(f"index {idx} is the mask id, not an item")
        if idx < 0 or idx >= self.vocab_size:
            raise ValueError(f"index {idx} is out of range (vocab_size={self.vocab_size})")
        return idx - 1 if idx < self.mask_token_id else idx - 2

    def is_special(self, index: int) -> bool:
        return int(index) in (self.pad_token_id, self.mask_token_id)

    # --------------------------------------------------------------- texts
    def _set_texts(self, ids: Sequence[str], texts: Any, start: int) -> None:
        if isinstance(texts, Mapping):
            unknown = [k for k in texts if _as_raw_id(k).strip() not in self._index]
            if unknown:
                raise ValueError(f"item_texts has {len(unknown)} id(s) that are not items: {unknown[:5]}")
            for raw, text in texts.items():
                if text is not None:
                    self._texts[self._index[_as_raw_id(raw).strip()]] = str(text)
        else:
            texts = list(texts)
            if len(texts) != len(ids):
                raise ValueError(f"item_texts has {len(texts)} entries but there are {len(ids)} items")
            for raw, text in zip(ids, texts):
                if text is not None:
                    self._texts[self._index[raw]] = str(text)

    @property
    def item_texts(self) -> dict[int, str]:
        """Index -> text for the items that have text."""
        return dict(sorted(self._texts.items()))

    @property
    def has_texts(self) -> bool:
        return bool(self._texts)

    def text(self, index: int) -> str | None:
        """Text of one item (``None`` if it has none); ValueError for special / out-of-range indices."""
        self._index_to_pos(index)
        return self._texts.get(int(index))

    def texts(self, indices: Iterable[int]) -> list[str | None]:
        return [self.text(i) for i in indices]

    # --------------------------------------------------------------- features
    @property
    def item_feature_names(self) -> list[str]:
        return list(self._item_vocab)

    @property
    def user_feature_names(self) -> list[str]:
        """Names of the user features, in the column order of a model's ``user_features`` input."""
        return list(self._value_vocab["user"])

    @property
    def interaction_feature_names(self) -> list[str]:
        """Names of the interaction features, in the column order of a model's ``interaction_features`` input."""
        return list(self._value_vocab["interaction"])

    def feature_vocabulary(self, kind: str, name: str) -> list[str]:
        """The values of item (``kind="item"``), user or interaction feature ``name``; value id = position + 1."""
        vocab = {"item": self._item_vocab, **self._value_vocab}.get(kind)
        if vocab is None or name not in vocab:
            raise ValueError(f"no {kind} feature {name!r} (item: {self.item_feature_names}, user: "
                             f"{self.user_feature_names}, interaction: {self.interaction_feature_names})")  # fmt: skip
        return list(vocab[name])

    def item_feature_ids(self, name: str) -> np.ndarray:
        """``[vocab_size, max_values]`` value ids of item feature ``name`` per item index (0 = none), the buffer a
        model with ``feature_config()`` holds."""
        values = self._item_values[name]
        width = self.feature_config()["item_features"][name]["max_values"]
        out = np.zeros((self.vocab_size, width), dtype=np.int64)
        for index, ids in values.items():
            out[index, : len(ids)] = ids
        return out

    def feature_config(self) -> dict[str, Any]:
        """The model config fields (``item_features``, ``user_features``) for this tokenizer's features (None where
        it has none)."""
        items = {name: {"vocab_size": len(vocab) + 1,
                        "max_values": max([len(v) for v in self._item_values[name].values()] or [1])}
                 for name, vocab in self._item_vocab.items()}  # fmt: skip
        values = {kind: {name: {"vocab_size": len(vocab) + 1} for name, vocab in vocabularies.items()}
                  for kind, vocabularies in self._value_vocab.items()}  # fmt: skip
        out = {"item_features": items or None, "user_features": values["user"] or None}
        if values["interaction"]:  # only then: the fields of tokenizers without them stay those of earlier versions
            out["interaction_features"] = values["interaction"]
        return out

    def encode_item_features(self, items: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Per new item ``{feature name: value or list of values}`` -> ``{name: [len(items), max_values]}`` value ids
        (0 = none), the ``item_feature_ids`` a model's ``add_items`` takes. A feature not given has no value; a value
        the vocabulary lacks (or, for a numeric feature, that is not a number) is dropped with a warning; more values
        than the model holds per item is an error naming the item."""
        if isinstance(items, Mapping):
            raise TypeError("item features must be a list with one mapping name -> values per new item")
        widths = {n: spec["max_values"] for n, spec in (self.feature_config()["item_features"] or {}).items()}
        out = {name: np.zeros((len(items), width), dtype=np.int64) for name, width in widths.items()}
        for row, values in enumerate(items):
            if not isinstance(values, Mapping):
                raise TypeError(f"item features of new item {row} must be a mapping name -> values, got {type(values).__name__}")
            stray = sorted(set(values) - set(widths))
            if stray:
                raise ValueError(f"new item {row}: unknown item feature(s) {stray} (this tokenizer has {list(widths)})")
            for name, given in values.items():
                if given is None:
                    given = []
                elif isinstance(given, str) or not isinstance(given, Sequence):  # one value
                    given = [given]
                ids = []
                for value in given:
                    value_id = _value_id(self._item_vocab[name], self._item_edges.get(name), value)
                    if value_id:
                        ids.append(value_id)
                    else:
                        warnings.warn(f"item feature {name!r}: value {value!r} of new item {row} is unknown to this "
                                      "tokenizer; left out", UserWarning, stacklevel=2)  # fmt: skip
                if len(ids) > widths[name]:
                    raise ValueError(f"new item {row}: {len(ids)} values of item feature {name!r}, but a model of this "
                                     f"tokenizer holds at most {widths[name]} per item")  # fmt: skip
                out[name][row, : len(ids)] = ids
        return out

    def encode_user_features(self, values: Mapping[str, Any]) -> list[int]:
        """``{feature name: raw value}`` -> one value id per user feature (``user_feature_names`` order). A feature
        not given, or a value the vocabulary lacks, is 0 ("unknown"); unseen values warn."""
        return self._encode_values("user", values)

    def encode_interaction_features(self, rows: Sequence[Mapping[str, Any]]) -> list[list[int]]:
        """Per history item ``{feature name: raw value}`` -> one row of value ids per item
        (``interaction_feature_names`` order), as :meth:`encode_user_features` encodes one user."""
        if isinstance(rows, Mapping):
            raise TypeError("interaction features must be a list with one mapping name -> value per history item")
        return [self._encode_values("interaction", values) for values in rows]

    def _encode_values(self, kind: str, values: Mapping[str, Any]) -> list[int]:
        if not isinstance(values, Mapping):
            raise TypeError(f"{kind} features must be a mapping name -> value, got {type(values).__name__}")
        vocabularies, edges = self._value_vocab[kind], self._value_edges[kind]
        stray = sorted(set(values) - set(vocabularies))
        if stray:
            raise ValueError(f"unknown {kind} feature(s) {stray} (this tokenizer has {list(vocabularies)})")
        out = []
        for name, vocab in vocabularies.items():
            value = values.get(name)
            out.append(0 if value is None else _value_id(vocab, edges.get(name), value))
            if value is not None and not out[-1]:
                message = (f"{kind} feature {name!r} is numeric; {value!r} is not a number, treated as unknown"
                           if name in edges else
                           f"{kind} feature {name!r}: value {value!r} was not seen in training; treated as unknown")
                warnings.warn(message, UserWarning, stacklevel=3)
        return out

    # ------------------------------------------------------------ encode / decode
    def encode(self, raw_ids: Iterable[Any], unknown: str = "error") -> list[int]:
        """Raw ids -> indices. ``unknown="error"`` raises ValueError naming the unknown ids;
        ``unknown="ignore"`` drops them."""
        if unknown not in ("error", "ignore"):
            raise ValueError(f"unknown must be 'error' or 'ignore', got {unknown!r}")
        _check_ids_iterable(raw_ids, "encode")
        out: list[int] = []
        missing: list[str] = []
        for raw in _raw_ids(raw_ids, "encode"):
            idx = self._index.get(raw)
            if idx is None:
                missing.append(raw)
            else:
                out.append(idx)
        if missing and unknown == "error":
            shown = ", ".join(repr(m) for m in missing[:10])
            more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
            raise ValueError(f"{len(missing)} unknown item id(s): {shown}{more}")
        return out

    def decode(self, indices: Iterable[int]) -> list[str]:
        """Indices -> raw ids; ValueError on special or out-of-range indices."""
        if hasattr(indices, "tolist"):
            indices = indices.tolist()  # numpy arrays / torch tensors
        return [self._ids[self._index_to_pos(i)] for i in indices]

    def convert_id_to_index(self, raw_id: Any) -> int:
        return self.encode([raw_id])[0]

    def convert_index_to_id(self, index: int) -> str:
        return self._ids[self._index_to_pos(index)]

    def __len__(self) -> int:
        return self.vocab_size

    def __contains__(self, raw_id: object) -> bool:
        try:
            return _as_raw_id(raw_id).strip() in self._index
        except TypeError:
            return False

    def __repr__(self) -> str:
        name = self.metadata.get("dataset")
        extra = f", dataset={name!r}" if name else ""
        return (
            f"ItemTokenizer(num_items={self.num_items}, vocab_size={self.vocab_size}, "
            f"mask_token_id={self.mask_token_id}, texts={len(self._texts)}{extra})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ItemTokenizer):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # mutable (add_items)

    # ---------------------------------------------------------------- cold start
    def add_items(
        self,
        raw_ids: Iterable[Any],
        texts: Mapping[str, str | None] | Sequence[str | None] | None = None,
        *,
        features: Sequence[Mapping[str, Any]] | None = None,
        exist_ok: bool = False,
    ) -> list[int]:
        """Add new items after the mask id; returns their indices.

        ``features``: one mapping ``{item feature name: value or list of values}`` per id, encoded with the
        vocabularies of training (:meth:`encode_item_features`). Ids already present raise ValueError unless
        ``exist_ok=True`` (then their current index is returned and their text and features, if given, are left
        unchanged)."""
        _check_ids_iterable(raw_ids, "add_items")
        ids = _raw_ids(raw_ids, "add_items")
        feature_ids = None
        if features is not None:
            if isinstance(features, Mapping) or len(features) != len(ids):
                raise ValueError(f"features must be a list with one mapping per item being added ({len(ids)})")
            feature_ids = self.encode_item_features(features)
        if texts is not None and not isinstance(texts, Mapping):
            texts = list(texts)
            if len(texts) != len(ids):
                raise ValueError(f"texts has {len(texts)} entries but {len(ids)} items are being added")
            texts = dict(zip(ids, texts))
        elif texts is not None:  # keys the way ids are read (strings, stripped), so each text finds its item
            texts = {_as_raw_id(k).strip(): v for k, v in texts.items()}
        seen: set[str] = set()
        dup = [r for r in ids if r in seen or seen.add(r)]  # type: ignore[func-returns-value]
        if dup:
            raise ValueError(f"add_items got duplicate ids: {dup[:10]}")
        present = [r for r in ids if r in self._index]
        if present and not exist_ok:
            raise ValueError(f"{len(present)} item id(s) are already in the tokenizer: {present[:10]} (pass exist_ok=True)")
        if texts is not None:
            stray = [k for k in texts if k not in seen]
            if stray:
                raise ValueError(f"texts has id(s) that are not being added: {stray[:5]}")
        out = []
        for pos, raw in enumerate(ids):
            if raw in self._index:
                out.append(self._index[raw])
                continue
            self._ids.append(raw)
            idx = self._pos_to_index(len(self._ids) - 1)
            self._index[raw] = idx
            out.append(idx)
            if texts is not None and texts.get(raw) is not None:
                self._texts[idx] = str(texts[raw])
            for name, rows in (feature_ids or {}).items():
                values = [int(v) for v in rows[pos] if v]
                if values:
                    self._item_values[name][idx] = values
        return out

    # ------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        texts = [self._texts.get(self._pos_to_index(p)) for p in range(len(self._ids))]
        out = {
            "format": TOKENIZER_FORMAT,
            "format_version": TOKENIZER_FORMAT_VERSION,
            "pad_token_id": self.pad_token_id,
            "mask_token_id": self.mask_token_id,
            "num_base_items": self._num_base,
            "item_ids": list(self._ids),
            "item_texts": texts if self._texts else None,
            "metadata": self.metadata,
        }
        if self._item_vocab:  # only then: a tokenizer without features writes the file of earlier versions
            out["item_features"] = {
                name: {"vocabulary": vocab,
                       "values": [self._item_values[name].get(self._pos_to_index(p), []) for p in range(len(self._ids))]}
                for name, vocab in self._item_vocab.items()
            }  # fmt: skip
        for kind, vocabularies in self._value_vocab.items():
            if vocabularies:
                out[f"{kind}_features"] = {name: {"vocabulary": vocab} for name, vocab in vocabularies.items()}
        for kind, edges in (("item", self._item_edges), *self._value_edges.items()):
            for name, e in edges.items():  # only for numeric features: other files stay as before
                out[f"{kind}_features"][name]["bucket_edges"] = list(e)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> ItemTokenizer:
        def bad(msg: str) -> ValueError:
            return ValueError(f"{source}: invalid item tokenizer: {msg}")

        if not isinstance(data, Mapping):
            raise bad(f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != TOKENIZER_FORMAT:
            raise bad(f"'format' is {data.get('format')!r}, expected {TOKENIZER_FORMAT!r}")
        version = data.get("format_version")
        if version != TOKENIZER_FORMAT_VERSION:
            raise bad(f"unsupported format_version {version!r} (this hf_rec reads version {TOKENIZER_FORMAT_VERSION})")
        ids = data.get("item_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise bad("'item_ids' must be a list of strings")
        num_base = data.get("num_base_items")
        if not isinstance(num_base, int) or isinstance(num_base, bool) or not 0 <= num_base <= len(ids):
            raise bad(f"'num_base_items'={num_base!r} is not an integer in [0, {len(ids)}]")
        if data.get("pad_token_id") != 0:
            raise bad(f"pad_token_id must be 0, got {data.get('pad_token_id')!r}")
        if data.get("mask_token_id") != num_base + 1:
            raise bad(f"mask_token_id must be num_base_items + 1 = {num_base + 1}, got {data.get('mask_token_id')!r}")
        seen: dict[str, int] = {}
        for pos, raw in enumerate(ids):
            if raw in seen:
                raise bad(f"duplicate item id {raw!r} (positions {seen[raw]} and {pos})")
            seen[raw] = pos
        texts = data.get("item_texts")
        if texts is not None:
            if not isinstance(texts, list) or len(texts) != len(ids):
                raise bad("'item_texts' must be null or a list with one entry (string or null) per item")
            if not all(t is None or isinstance(t, str) for t in texts):
                raise bad("'item_texts' entries must be strings or null")
        metadata = data.get("metadata", {})
        if not isinstance(metadata, dict):
            raise bad("'metadata' must be an object")
        item_features = {}
        for name, spec in (data.get("item_features") or {}).items():
            vocab, values = (spec or {}).get("vocabulary"), (spec or {}).get("values")
            if not isinstance(vocab, list) or not all(isinstance(v, str) for v in vocab):
                raise bad(f"item_features[{name!r}]['vocabulary'] must be a list of strings")
            if not isinstance(values, list) or len(values) != len(ids):
                raise bad(f"item_features[{name!r}]['values'] must hold one list per item ({len(ids)})")
            for pos, row in enumerate(values):
                if not isinstance(row, list) or not all(isinstance(v, int) and 1 <= v <= len(vocab) for v in row):
                    raise bad(f"item_features[{name!r}]['values'][{pos}] must be value ids in 1..{len(vocab)}, got {row!r}")
            item_features[name] = (vocab, values)
        value_vocab = {"user": {}, "interaction": {}}
        for kind, vocabularies in value_vocab.items():
            for name, spec in (data.get(f"{kind}_features") or {}).items():
                vocab = (spec or {}).get("vocabulary")
                if not isinstance(vocab, list) or not all(isinstance(v, str) for v in vocab):
                    raise bad(f"{kind}_features[{name!r}]['vocabulary'] must be a list of strings")
                vocabularies[name] = vocab
        edges = {"item": {}, "user": {}, "interaction": {}}
        for kind, vocabularies in (("item", {n: v for n, (v, _) in item_features.items()}), *value_vocab.items()):
            for name, vocab in vocabularies.items():
                found = data[f"{kind}_features"][name].get("bucket_edges")
                if found is None:
                    continue
                if not isinstance(found, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                          for x in found) or found != sorted(set(found)):  # fmt: skip
                    raise bad(f"{kind}_features[{name!r}]['bucket_edges'] must be ascending distinct numbers")
                if vocab != bucket_labels(found):
                    raise bad(f"{kind}_features[{name!r}]['vocabulary'] must be the buckets of its bucket_edges")
                edges[kind][name] = found
        tok = cls(ids[:num_base], texts[:num_base] if texts is not None else None, metadata=metadata,
                  user_feature_vocabularies={n: v for n, v in value_vocab["user"].items() if n not in edges["user"]},
                  user_bucket_edges=edges["user"],
                  interaction_feature_vocabularies={n: v for n, v in value_vocab["interaction"].items()
                                                    if n not in edges["interaction"]},
                  interaction_bucket_edges=edges["interaction"])  # fmt: skip
        tok._item_edges = edges["item"]
        if len(ids) > num_base:
            tok.add_items(ids[num_base:], texts[num_base:] if texts is not None else None)
        for name, (vocab, values) in item_features.items():  # the saved ids as they are: a model's buffers hold them
            tok._item_vocab[name] = list(vocab)
            tok._item_values[name] = {tok._pos_to_index(p): list(row) for p, row in enumerate(values) if row}
        return tok

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write ``item_tokenizer.json`` into ``save_directory`` atomically; returns the file path."""
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / TOKENIZER_FILE_NAME
        try:
            payload = json.dumps(self.to_dict(), ensure_ascii=False, indent=1)
        except TypeError as err:
            raise TypeError(f"tokenizer metadata is not JSON-serialisable: {err}") from err
        atomic_write_text(target, payload)
        return str(target)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> ItemTokenizer:
        """Load from a directory holding ``item_tokenizer.json`` or from the file itself."""
        p = Path(path)
        if p.is_dir():
            p = p / TOKENIZER_FILE_NAME
        if not p.is_file():
            raise FileNotFoundError(f"no item tokenizer file at {p}")
        raw = p.read_bytes()
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise ValueError(f"{p}: item tokenizer file is not valid UTF-8 ({err})") from None
        except json.JSONDecodeError as err:
            hint = " (the file looks truncated)" if err.pos >= len(raw.rstrip()) else ""
            raise ValueError(
                f"{p}: item tokenizer file is not valid JSON{hint}: {err.msg} at line {err.lineno} column {err.colno}"
            ) from None
        return cls.from_dict(data, source=str(p))
