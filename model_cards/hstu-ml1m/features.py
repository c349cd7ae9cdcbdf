"""Side information as model inputs: item categories, user attributes and the context of an interaction, embedded and
added to a sequence model's item inputs (and, optionally, to the item vectors it scores against).

One module for every family (each head holds it at `self.features`, or `None` when the config declares no feature,
so the model is exactly the plain one). A same-folder sibling of the `modeling_<family>.py` files, imported as
`from .features import ...`, so a saved model with features loads with `trust_remote_code=True` where hf_rec is
absent. Imports only torch.

Value ids come from the data's vocabularies (saved with the item tokenizer); id 0 is always "unknown / none".

* Item features (`config.item_features = {name: {"vocab_size": V, "max_values": M}}`): each item has up to `M`
  values per feature (a film's genres), held in the persistent buffer `item_feature_ids_<name>` `[vocab_size, M]`
  (saved with the weights, so the model needs no side file); an item's vector is the mean of its values' vectors,
  summed over features.
* User features (`config.user_features = {name: {"vocab_size": V}}`): one value per user and feature, passed as
  `user_features` `[batch, n_user_features]`, one column per feature in sorted order of the names; their vectors are
  summed and added at every position of the user's history (`config.user_features_fusion = "add"`), or form a user
  token (`"prefix"`): `with_user_slot` opens the position right before the oldest item (a padding input that is
  attended to), the only position that gets the user vector.
* Interaction features (`config.interaction_features = {name: {"vocab_size": V}}`): one value per history item and
  feature (the rating given to it, the device used), passed as `interaction_features` `[batch, seq_len, n]` aligned
  with the inputs, columns in sorted order of the names; added to that item's input (not at padding, the user token
  or a mask token: a hidden item's interaction is hidden with it).
* Context features (`config.context_features`, a subset of `CONTEXT_FEATURES`): derived inside the model from the
  `timestamps` input (Unix seconds, `<= 0` = unknown), so serving needs no feature pipeline. A position's context is
  that of the interaction it predicts: with `[B, L + 1]` timestamps (causal models; the last column is the target's
  or the request's time) position `j` reads time `j + 1` and the gap from time `j`; with `[B, L]` timestamps aligned
  with the inputs (BERT4Rec's masked positions) it reads its own time and the gap from the previous one.
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration_common import CONTEXT_FEATURES

# value ids per context feature: 0 = unknown, then 24 hours / 7 days / 33 log2 buckets of the gap in seconds
_CONTEXT_VOCAB = dict(zip(CONTEXT_FEATURES, (25, 8, 34)))
_SECONDS_PER_DAY = 86400


def build_feature_embeddings(config) -> FeatureEmbeddings | None:
    """A head's `features` module, or None when the config declares no feature (the model is then exactly the plain
    one: same weights, same outputs, so checkpoints saved before features existed load unchanged)."""
    kinds = ("item_features", "user_features", "context_features", "interaction_features")
    if any(getattr(config, kind, None) for kind in kinds):
        return FeatureEmbeddings(config, config.hidden_size)
    return None


def with_features(item_inputs: torch.Tensor, feature_embeddings: torch.Tensor | None) -> torch.Tensor:
    """An encoder's item inputs `[B, L, H]` plus their side information (`None`: unchanged, the plain model)."""
    return item_inputs if feature_embeddings is None else item_inputs + feature_embeddings.to(item_inputs.dtype)


def with_user_slot(input_ids: torch.Tensor, attention_mask: torch.Tensor, pad_token_id: int):
    """Left-padded `[B, L]` inputs with one more attended position, the user token's: the padding right before each
    history's oldest item, or, where the history fills all `L` positions, the oldest item's (given up for it). Its
    input is the padding item, so the encoder reads the user's feature vector there (`FeatureEmbeddings`); an empty
    history keeps one position, its user's."""
    seq_len = input_ids.shape[1]
    slot = (seq_len - 1 - attention_mask.sum(1, dtype=torch.long)).clamp(min=0)  # [B]
    is_slot = torch.arange(seq_len, device=input_ids.device)[None, :] == slot[:, None]  # [B, L]
    return input_ids.masked_fill(is_slot, pad_token_id), attention_mask.masked_fill(is_slot, 1)


def context_feature_ids(timestamps: torch.Tensor, seq_len: int) -> dict[str, torch.Tensor]:
    """`[B, L + 1]` or `[B, L]` Unix seconds -> `{"hour" | "weekday" | "gap": [B, L]}` value ids (0 = unknown)."""
    timestamps = timestamps.long()
    if timestamps.shape[1] >= seq_len + 1:  # position j predicts the interaction at time j + 1
        timestamps = timestamps[:, -(seq_len + 1) :]
        now, before = timestamps[:, 1:], timestamps[:, :-1]
    elif timestamps.shape[1] == seq_len:  # aligned: position j is (or predicts) the interaction at time j
        now = timestamps
        before = torch.cat([torch.zeros_like(timestamps[:, :1]), timestamps[:, :-1]], dim=1)
    else:
        raise ValueError(f"timestamps have {timestamps.shape[1]} columns for {seq_len} positions (need {seq_len} or more)")
    known = now > 0
    days = torch.div(now, _SECONDS_PER_DAY, rounding_mode="floor")
    hour = torch.div(now - days * _SECONDS_PER_DAY, 3600, rounding_mode="floor")
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    gap = (now - before).clamp(min=0).double()
    gap_bucket = torch.floor(torch.log2(gap + 1.0)).long().clamp(max=_CONTEXT_VOCAB["gap"] - 2)
    gap_known = known & (before > 0)
    return {
        "hour": torch.where(known, hour + 1, 0),
        "weekday": torch.where(known, weekday + 1, 0),
        "gap": torch.where(gap_known, gap_bucket + 1, 0),
    }


class FeatureEmbeddings(nn.Module):
    """Feature vectors of size `dim` for a family's item inputs (see the module docstring)."""

    def __init__(self, config, dim: int):
        super().__init__()
        self.dim = dim
        self.item_names = list(config.item_features or {})
        self.user_names = sorted(config.user_features or {})  # the columns of `user_features` (config.json sorts keys)
        self.context_names = list(config.context_features or [])
        self.interaction_names = sorted(getattr(config, "interaction_features", None) or {})
        self.user_token = getattr(config, "user_features_fusion", "add") == "prefix"
        self.pad_token_id, self.mask_token_id = config.pad_token_id, config.mask_token_id
        self.item_tables = nn.ModuleDict(
            {name: nn.Embedding(spec["vocab_size"], dim, padding_idx=0) for name, spec in (config.item_features or {}).items()}
        )  # fmt: skip
        for name, spec in (config.item_features or {}).items():
            ids = torch.zeros(config.vocab_size, spec["max_values"], dtype=torch.long)
            self.register_buffer(f"item_feature_ids_{name}", ids)
        self.user_tables = nn.ModuleDict(
            {name: nn.Embedding(spec["vocab_size"], dim, padding_idx=0) for name, spec in (config.user_features or {}).items()}
        )
        self.context_tables = nn.ModuleDict(
            {name: nn.Embedding(_CONTEXT_VOCAB[name], dim, padding_idx=0) for name in self.context_names}
        )
        self.interaction_tables = nn.ModuleDict(
            {name: nn.Embedding(spec["vocab_size"], dim, padding_idx=0)
             for name, spec in (getattr(config, "interaction_features", None) or {}).items()}
        )  # fmt: skip

    # -- item features --------------------------------------------------------------------------------------------
    def item_feature_ids(self, name: str) -> torch.Tensor:
        return getattr(self, f"item_feature_ids_{name}")

    def set_item_feature_ids(self, name: str, ids: torch.Tensor) -> None:
        """Fill feature `name`'s `[vocab_size, max_values]` value ids (row = item index; 0 = no value)."""
        buffer = self.item_feature_ids(name)
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.shape != buffer.shape:
            raise ValueError(f"item feature {name!r}: expected ids of shape {tuple(buffer.shape)}, got {tuple(ids.shape)}")
        _check_value_ids(ids, self.item_tables[name].num_embeddings, f"item feature {name!r}")
        buffer.copy_(ids)

    def check_new_item_feature_ids(self, num_items: int, item_feature_ids) -> dict[str, torch.Tensor]:
        """`{name: [num_items, <= max_values] value ids}` of items being added -> `{name: [num_items, max_values]}`
        for every item feature (a feature not given: no value), or a ValueError naming the feature."""
        given = dict(item_feature_ids or {})
        stray = sorted(set(given) - set(self.item_names))
        if stray:
            raise ValueError(f"unknown item feature(s) {stray} (this model has {self.item_names})")
        out = {}
        for name in self.item_names:
            buffer = self.item_feature_ids(name)
            ids = torch.as_tensor(given.get(name, torch.zeros(num_items, 0)), dtype=torch.long)
            if ids.dim() != 2 or ids.shape[0] != num_items:
                raise ValueError(f"item feature {name!r}: expected {num_items} rows of value ids, got shape {tuple(ids.shape)}")
            if ids.shape[1] > buffer.shape[1]:
                raise ValueError(f"item feature {name!r}: the model holds at most {buffer.shape[1]} value(s) per item, "
                                 f"got {ids.shape[1]}")  # fmt: skip
            _check_value_ids(ids, self.item_tables[name].num_embeddings, f"item feature {name!r}")
            out[name] = torch.nn.functional.pad(ids, (0, buffer.shape[1] - ids.shape[1]))
        return out

    def add_items(self, rows: dict[str, torch.Tensor]) -> None:
        """Append the rows of items added after training to the item feature buffers; `rows` is what
        `check_new_item_feature_ids` returned (callers check before they change anything else)."""
        for name, ids in rows.items():
            buffer = self.item_feature_ids(name)
            self.register_buffer(f"item_feature_ids_{name}", torch.cat([buffer, ids.to(buffer.device)]))

    def item_vectors(self, item_ids: torch.Tensor | None = None) -> torch.Tensor | None:
        """`[...] item indices` (default: every item) -> `[..., dim]` sum over item features (None without any)."""
        out = None
        for name in self.item_names:
            table = self.item_feature_ids(name)
            ids = table if item_ids is None else table[item_ids.reshape(-1)]
            # the mean over the item's values, 0 for none (by hand: ONNX's TorchScript exporter lacks EmbeddingBag's)
            vectors = self.item_tables[name](ids).sum(-2) / (ids > 0).sum(-1, keepdim=True).clamp(min=1)  # [N, dim]
            out = vectors if out is None else out + vectors
        if out is not None and item_ids is not None:
            out = out.reshape(*item_ids.shape, -1)
        return out

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        user_features: torch.Tensor | None = None,
        timestamps: torch.Tensor | None = None,
        interaction_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`[B, L]` inputs -> `[B, L, dim]` vectors to add to the item inputs (0 at padding). Without `user_features`,
        `timestamps` or `interaction_features`, those features count as unknown (their vectors are zero)."""
        batch, seq_len = input_ids.shape
        out = self.item_vectors(input_ids)
        if out is None:
            dtype = next(self.parameters()).dtype
            out = torch.zeros(batch, seq_len, self.dim, device=input_ids.device, dtype=dtype)
        if self.user_names and user_features is not None:
            users = self._value_vectors("user", user_features, (batch, len(self.user_names)), input_ids.device)[:, None]
            if self.user_token:  # only at the user's own position (`with_user_slot`): attended padding
                users = users * ((input_ids == self.pad_token_id) & attention_mask.bool())[..., None].to(users.dtype)
            out = out + users
        if self.context_names and timestamps is not None:
            ids = context_feature_ids(timestamps.to(input_ids.device), seq_len)
            out = out + sum(self.context_tables[name](ids[name]) for name in self.context_names)
        if self.interaction_names and interaction_features is not None:
            shape = (batch, seq_len, len(self.interaction_names))
            vectors = self._value_vectors("interaction", interaction_features, shape, input_ids.device)
            items = (input_ids != self.pad_token_id) & (input_ids != self.mask_token_id)
            out = out + vectors * items[..., None].to(vectors.dtype)
        return out * attention_mask[..., None].to(out.dtype)

    def _value_vectors(self, kind: str, ids: torch.Tensor, shape: tuple, device: torch.device) -> torch.Tensor:
        """`ids` `[..., n]`, one value id per `kind` ("user" / "interaction") feature -> the sum of their vectors."""
        if kind == "user":
            names, tables = self.user_names, self.user_tables
        else:
            names, tables = self.interaction_names, self.interaction_tables
        if ids.shape != shape:
            unit = "user" if kind == "user" else "input position"
            raise ValueError(f"{kind}_features must have shape {shape} (one value id per {unit} and feature: "
                             f"{', '.join(names)}), got {tuple(ids.shape)}")  # fmt: skip
        ids = ids.to(device).long()
        # Checked where ids come from a caller (evaluation, recommend): training batches come from the tokenizer's
        # vocabularies, and the check reads values back (a device sync per step); values are data, not in export.
        if not (self.training or torch.jit.is_tracing() or torch.compiler.is_compiling()):
            for i, name in enumerate(names):
                _check_value_ids(ids[..., i], tables[name].num_embeddings, f"{kind}_features column {i} ({name!r})")
        return sum(tables[name](ids[..., i]) for i, name in enumerate(names))


def _check_value_ids(ids: torch.Tensor, size: int, what: str) -> None:
    if ids.numel() and not (int(ids.min()) >= 0 and int(ids.max()) < size):
        raise ValueError(f"{what} holds value ids outside [0, {size}): {int(ids.min())}..{int(ids.max())}")


__all__ = ["FeatureEmbeddings", "build_feature_embeddings", "context_feature_ids", "with_features", "with_user_slot"]
