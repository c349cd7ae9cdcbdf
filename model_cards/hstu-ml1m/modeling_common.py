"""What every hf_rec sequential recommender shares: the output class, the `PreTrainedModel` base and the mixin that
gives each head its `forward` tail, user / item embeddings and `recommend`.

Written once and imported by each `modeling_<family>.py` as `from .modeling_common import ...`, so that
`save_pretrained` exports this file (and its siblings `features.py`, `layers.py`, `losses.py`, `retrieval.py`) next to
the family's file and a saved model loads with `trust_remote_code=True` where hf_rec is not installed. Imports only
torch, transformers and those siblings.

Conventions (see docs/architecture.md): inputs are LEFT-padded (the most recent item is at position -1),
index 0 is padding, `config.mask_token_id` is the mask token; both are never scored.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .features import FeatureEmbeddings, with_user_slot
from .layers import init_recommender_weights
from .losses import recommendation_loss
from .retrieval import check_k, mask_special_scores, topk_items


@dataclass
class SequentialRecommenderOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): Training loss, set only when `labels` are given.
        logits (`torch.FloatTensor` of shape `(batch_size, vocab_size)`, *optional*): Scores of every item for the
            next position (special ids at -inf), set only when `labels` are not given.
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, seq_len, hidden_size)`): The encoder's output
            (before the scoring head's normalisation, if any).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None


class SequentialRecommenderPreTrainedModel(PreTrainedModel):
    """Base of every family's `XPreTrainedModel`, which adds its `config_class` and capability flags. The encoder
    sits at `model` in the recommendation heads, so checkpoint keys read `model.<...>`."""

    base_model_prefix = "model"
    main_input_name = "input_ids"

    def _init_weights(self, module):
        init_recommender_weights(module, self.config.initializer_range)


def _integer(value, where: str, what: str) -> int:
    """One input value as an int; 5.7 or "5" are refused rather than truncated or guessed."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)  # ints, numpy integers, integer tensors with one element
    except TypeError:
        raise ValueError(f"{where} holds {value!r}, which is not {what}") from None


# ----------------------------------------------------------------------------------------------------------------
# The mixin every `*ForSequentialRecommendation` class inherits: one forward tail, one `recommend`.
# ----------------------------------------------------------------------------------------------------------------


class SequentialRecommenderMixin:
    """Shared behaviour of hf_rec's recommendation heads.

    Public: `forward`, `get_user_embeddings`, `get_item_embeddings` (score = their dot product) and `recommend`.
    A family's head holds its encoder at `self.model` and its tied scoring layer at `self.item_head`; where its head
    differs it overrides one of three hooks: `_hidden_states` (the state at every position, for training),
    `_prediction_hidden_states` (the states whose last position predicts: NARM computes only that one, BERT4Rec
    appends its mask token) and `_item_vectors` (the item table before the score-space map). Extra keyword inputs
    of `forward` / `get_user_embeddings` (HSTU's `timestamps`) go through to the encoder `self.model`.

    Side information (`features.py`): a head built with `self.features = build_feature_embeddings(config)` turns
    `user_features` and `timestamps` (with `config.context_features`) and its inputs' item features into
    `feature_embeddings` `[B, L, H]` that the encoder adds to its item inputs (`_encoder_inputs`); with
    `config.item_features_in_scores` the scored item vectors get their feature vectors too.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, strict: a checkpoint of another model type, or one that lacks weights
        (truncated, or saved by another architecture), raises a `ValueError` instead of loading random weights."""
        if kwargs.get("config") is None and cls.config_class is not None:
            hub_kwargs = {k: kwargs[k] for k in ("revision", "cache_dir", "token", "local_files_only", "subfolder",
                                                 "force_download", "proxies") if k in kwargs}  # fmt: skip
            config_dict, _ = cls.config_class.get_config_dict(pretrained_model_name_or_path, **hub_kwargs)
            found = config_dict.get("model_type")
            if found != cls.config_class.model_type:
                raise ValueError(
                    f"{pretrained_model_name_or_path} holds a {found!r} checkpoint, not {cls.config_class.model_type!r}: "
                    f"load it with its own class (hf_rec's AutoModelForSequentialRecommendation picks it)"
                )
        want_info = kwargs.pop("output_loading_info", False)
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
            )
        except Exception as err:  # safetensors' own error type; named here so no import is needed
            if type(err).__name__ == "SafetensorError":
                raise ValueError(f"{pretrained_model_name_or_path}: cannot read the weights file ({err})") from err
            raise
        missing = list(info.get("missing_keys", []))  # already without `_keys_to_ignore_on_load_missing`
        if missing:
            raise ValueError(
                f"{pretrained_model_name_or_path}: the checkpoint lacks {len(missing)} weight(s) of "
                f"{cls.__name__} (e.g. {sorted(missing)[:3]}); it is truncated or was saved by another architecture"
            )
        return (model, info) if want_info else model

    # The tied scoring head: `self.model` is the family's encoder, `self.item_head` shares its item embedding.
    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def get_output_embeddings(self):
        return self.item_head

    def set_output_embeddings(self, new_embeddings):
        self.item_head = new_embeddings

    def _item_vectors(self) -> torch.Tensor:
        """`[vocab_size, hidden]` item vectors as the model holds them (the tied item embedding)."""
        return self.item_head.weight

    def _score_space(self, vectors: torch.Tensor) -> torch.Tensor:
        """Vectors whose dot product is the score: unchanged, or with `config.score_temperature` set, L2-normalised and
        divided by sqrt(temperature), so that user . item = cosine similarity / temperature (UniSRec, Recformer)."""
        temperature = getattr(self.config, "score_temperature", None)
        if temperature is None:
            return vectors
        return F.normalize(vectors, dim=-1) * temperature**-0.5

    def _scored_item_vectors(self, vectors: torch.Tensor) -> torch.Tensor:
        """The item vectors that are scored: `vectors`, plus each item's feature vector with
        `config.item_features_in_scores`, then the score-space map."""
        features = self._feature_module()
        if features is not None and getattr(self.config, "item_features_in_scores", False):
            vectors = vectors + features.item_vectors().to(vectors.dtype)
        return self._score_space(vectors)

    def get_item_embeddings(self) -> torch.Tensor:
        """`[vocab_size, hidden]` table whose dot product with a user embedding scores an item."""
        return self._scored_item_vectors(self._item_vectors())

    @property
    def reads_timestamps(self) -> bool:
        """Whether `timestamps` change this model's outputs (a time bias, or context features)."""
        return bool(getattr(self.config, "use_time_bias", False) or getattr(self.config, "context_features", None))

    @property
    def reads_user_features(self) -> bool:
        """Whether this model takes `user_features` (`config.user_features`)."""
        return bool(getattr(self.config, "user_features", None))

    @property
    def reads_interaction_features(self) -> bool:
        """Whether this model takes `interaction_features` (`config.interaction_features`)."""
        return bool(getattr(self.config, "interaction_features", None))

    def _encoder_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, inputs: dict) -> dict:
        """The encoder's keyword inputs: `user_features` (and `timestamps`, unless the encoder has a time bias) are
        read here by the feature module, whose `feature_embeddings` the encoder adds to its item inputs."""
        inputs = dict(inputs)
        user_features = inputs.pop("user_features", None)
        interaction_features = inputs.pop("interaction_features", None)
        timestamps = inputs.get("timestamps")
        if not getattr(self.config, "use_time_bias", False):
            inputs.pop("timestamps", None)
        features = self._feature_module()
        if features is not None:
            inputs["feature_embeddings"] = features(input_ids, attention_mask, user_features, timestamps, interaction_features)
        return inputs

    def _feature_module(self) -> FeatureEmbeddings | None:
        return getattr(self, "features", None)  # a module registered by the head, or None

    def _encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs):
        """The encoder's output for these inputs (with their feature vectors; with user features as a prefix token,
        one position per history is the user's: `with_user_slot`)."""
        if self.reads_user_features and getattr(self.config, "user_features_fusion", "add") == "prefix":
            input_ids, attention_mask = with_user_slot(input_ids, attention_mask, self.config.pad_token_id)
        return self.model(input_ids, attention_mask, **self._encoder_inputs(input_ids, attention_mask, inputs))

    def _hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs) -> torch.Tensor:
        """`[B, L]` -> `[B, L, H]`: the encoder's last hidden state at every position (the training loss reads it)."""
        return self._encode(input_ids, attention_mask, **inputs).last_hidden_state

    def _prediction_hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs) -> torch.Tensor:
        """Hidden states whose last position scores the next item (`forward` without labels, user embeddings):
        `_hidden_states` unless a family computes less or reads another input."""
        return self._hidden_states(input_ids, attention_mask, **inputs)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        item_vectors: torch.Tensor | None = None,
        **inputs,
    ) -> SequentialRecommenderOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): Left-padded item indices.
            attention_mask (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): 1 for items.
                Defaults to `input_ids != pad_token_id`.
            labels (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): The next item at each
                position, -100 where no loss is taken.
            item_vectors (`torch.FloatTensor` of shape `(vocab_size, hidden_size)`, *optional*): The item table to
                score against, before the score-space map. Defaults to the model's own; the text model passes the
                table it encoded for this batch.
            inputs: Further inputs: `timestamps` (HSTU's time bias, `config.context_features`), `user_features`
                (`config.user_features`), `interaction_features` (`config.interaction_features`), and the family
                encoder's own (NARM's `last_position_only`).

        Returns:
            [`SequentialRecommenderOutput`]: `loss` with labels; otherwise `logits` `(batch_size, vocab_size)` for
            the next item. `last_hidden_state` is the encoder's output at every position with labels, and the states
            the prediction is read from without (NARM: one position; BERT4Rec: the input with the mask token
            appended).
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        if item_vectors is None:
            item_vectors = self._item_vectors()
        dropout = getattr(self.config, "item_id_dropout", 0.0)
        if labels is not None and self.training and dropout > 0:  # some items scored from their features alone
            keep = torch.rand(item_vectors.shape[0], 1, device=item_vectors.device) >= dropout
            item_vectors = item_vectors * keep.to(item_vectors.dtype)
        item_embeddings = self._scored_item_vectors(item_vectors)
        if labels is None:
            hidden_states = self._prediction_hidden_states(input_ids, attention_mask, **inputs)
            users = self._score_space(hidden_states[:, -1])
            logits = mask_special_scores(users @ item_embeddings.T, self.config.special_ids)
            return SequentialRecommenderOutput(logits=logits, last_hidden_state=hidden_states)
        hidden_states = self._hidden_states(input_ids, attention_mask, **inputs)
        positions = labels != -100  # [B, L]
        loss = recommendation_loss(
            self._score_space(hidden_states[positions]),
            labels[positions],
            item_embeddings,
            self.config,
            sampling_weights=self._sampling_weights_for(hidden_states.device),
            candidate_mask=self._candidate_mask_for(hidden_states.device),
        )
        return SequentialRecommenderOutput(loss=loss, last_hidden_state=hidden_states)

    def get_user_embeddings(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **inputs
    ) -> torch.Tensor:
        """`[B, L]` left-padded histories -> `[B, H]` representation whose dot product with `get_item_embeddings()`
        scores. Further keyword inputs go to the encoder (HSTU: `timestamps`)."""
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        return self._score_space(self._prediction_hidden_states(input_ids, attention_mask, **inputs)[:, -1])

    def set_item_popularity(self, item_counts: torch.Tensor | None) -> None:
        """Sampling weights for `negative_sampling="popularity"` (item counts in the training data; not saved)."""
        if item_counts is None:
            self._sampling_weights = None
            return
        weights = torch.as_tensor(item_counts, dtype=torch.float).clone()
        weights[self.config.special_ids] = 0.0
        weights[self.config.num_train_items + 1 :] = 0.0
        self._sampling_weights = weights

    def set_training_items(self, items: torch.Tensor | None) -> None:
        """Restrict the training softmax and negative sampling to `items` (indices; not saved). Used to simulate cold
        start: held-out items must not even appear as negatives. `None` lifts the restriction."""
        if items is None:
            self._candidate_mask = None
            return
        mask = torch.zeros(self.config.vocab_size, dtype=torch.bool)
        mask[torch.as_tensor(list(items), dtype=torch.long)] = True
        mask[self.config.special_ids] = False
        self._candidate_mask = mask

    def map_untrained_items(self, indices) -> None:
        """Give catalogue items that were never trained on (held-out cold items) the vector a newly added item would
        get. ID-only models have nothing to map them from; with `config.item_features_in_scores` their ID vector is
        zeroed, so they are scored from their features alone (as `item_id_dropout` trains for); text models map
        them from their text."""
        indices = sorted({int(i) for i in indices})
        if indices and getattr(self.config, "item_features_in_scores", False):
            with torch.no_grad():
                self._item_vectors()[indices] = 0.0

    def add_items(self, num_items: int, item_feature_ids=None) -> list[int]:
        """Add `num_items` items after training (cold start); returns their indices (`vocab_size`, `vocab_size + 1`,
        ...). An ID model has no vector for an item it never saw, so it needs `config.item_features_in_scores`: a new
        item gets a zero ID vector and is scored from its features alone (what `item_id_dropout` trains for).
        `item_feature_ids`: `{item feature name: [num_items, <= max_values] value ids}` (0 = none; a feature not given
        has no value), e.g. from `ItemTokenizer.encode_item_features`. Keep the `ItemTokenizer` in sync with
        `hf_rec.evaluation.cold_start.add_cold_items`, which does both."""
        num_items = _integer(num_items, "num_items", "an integer")
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {num_items}")
        if not (getattr(self.config, "item_features_in_scores", False) and getattr(self.config, "item_features", None)):
            raise ValueError(
                f"{type(self).__name__} scores items by their trained ID vectors and has none for a new item: train "
                "with item features in the scores (model.item_features_in_scores) or use a text model (llmrec)"
            )
        features = self._feature_module()
        rows = features.check_new_item_feature_ids(num_items, item_feature_ids)  # before anything changes
        start = self.config.vocab_size
        self.resize_token_embeddings(start + num_items, mean_resizing=False)
        with torch.no_grad():
            self._item_vectors()[start:] = 0.0
        features.add_items(rows)
        return list(range(start, start + num_items))

    def _candidate_mask_for(self, device):
        mask = getattr(self, "_candidate_mask", None)
        return None if mask is None else mask.to(device)

    def _sampling_weights_for(self, device):
        weights = getattr(self, "_sampling_weights", None)
        if self.config.negative_sampling == "popularity" and weights is None:
            raise ValueError("negative_sampling='popularity' needs item counts: call model.set_item_popularity(counts)")
        return None if weights is None else weights.to(device)

    def histories_to_inputs(self, histories: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Lists of item indices -> left-padded `(input_ids, attention_mask)`, each truncated to the most recent
        items the model reads. Raises on an empty history or an index that is not an item."""
        max_length = self.max_history_length()
        vocab_size = self.get_item_embeddings().shape[0]
        rows = []
        for row, history in enumerate(histories):
            history = [_integer(i, f"history {row}", "an integer item index") for i in history]
            if not history:
                raise ValueError(f"history {row} is empty: a sequential model needs at least one item")
            bad = [i for i in history if i < 0 or i >= vocab_size or i in self.config.special_ids]
            if bad:
                raise ValueError(
                    f"history {row} holds {bad[:5]}, which are not item indices (valid: 1..{vocab_size - 1} "
                    f"except special ids {self.config.special_ids})"
                )
            rows.append(history[-max_length:])
        length = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), length), self.config.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for row, history in enumerate(rows):
            input_ids[row, length - len(history) :] = torch.tensor(history)
            attention_mask[row, length - len(history) :] = 1
        return input_ids, attention_mask

    def max_history_length(self) -> int:
        """Most recent items read from a history (BERT4Rec keeps one position for its mask token)."""
        return self.config.max_position_embeddings

    def timestamps_to_inputs(
        self, timestamps: Sequence[Sequence[int]], histories: Sequence[Sequence[int]]
    ) -> torch.Tensor:
        """Per-history Unix seconds -> the left-padded `[B, L + 1]` `timestamps` input that matches
        `histories_to_inputs(histories)`: the times of the items read (the most recent ones), then the time of the
        request. A row gives one time per item, or one more: the request time (without it, the last item's time stands
        in, as in HSTU's reference)."""
        if len(timestamps) != len(histories):
            raise ValueError(f"got {len(timestamps)} timestamp lists for {len(histories)} histories")
        max_length = self.max_history_length()
        rows = []
        for row, (times, history) in enumerate(zip(timestamps, histories)):
            times = [_integer(t, f"timestamps {row}", "a Unix time in seconds") for t in times]
            if len(times) not in (len(history), len(history) + 1):
                raise ValueError(
                    f"timestamps {row} has {len(times)} values for a history of {len(history)} items: give one per "
                    "item, or one more for the time of the request"
                )
            if len(times) == len(history):
                times = times + times[-1:]
            rows.append(times[-(min(len(history), max_length) + 1) :])
        length = max(len(r) for r in rows)
        out = torch.zeros((len(rows), length), dtype=torch.long)
        for row, times in enumerate(rows):
            out[row, length - len(times) :] = torch.tensor(times)
        return out

    def interaction_features_to_inputs(
        self, interaction_features: Sequence[Sequence[Sequence[int]]], histories: Sequence[Sequence[int]]
    ) -> torch.Tensor:
        """Per history, one row of value ids per item (`config.interaction_features` names in sorted order; 0 =
        unknown) -> the left-padded `[B, L, n]` `interaction_features` input that matches `histories_to_inputs`."""
        if len(interaction_features) != len(histories):
            raise ValueError(f"got {len(interaction_features)} interaction feature lists for {len(histories)} histories")
        width = len(self.config.interaction_features)
        max_length = self.max_history_length()
        rows = []
        for row, (values, history) in enumerate(zip(interaction_features, histories)):
            if len(values) != len(history):
                raise ValueError(f"interaction_features {row} has {len(values)} rows for a history of {len(history)} "
                                 "items: give one per item")  # fmt: skip
            ids = [[_integer(v, f"interaction_features {row}", "an integer value id") for v in item] for item in values]
            if any(len(item) != width for item in ids):
                raise ValueError(f"interaction_features {row}: each item needs {width} value ids "
                                 f"({', '.join(sorted(self.config.interaction_features))})")  # fmt: skip
            rows.append(ids[-min(len(history), max_length) :])
        length = max(len(r) for r in rows)
        out = torch.zeros((len(rows), length, width), dtype=torch.long)
        for row, ids in enumerate(rows):
            if ids:
                out[row, length - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        return out

    @torch.no_grad()
    def recommend(
        self,
        histories: Sequence[Sequence[int]],
        k: int = 10,
        exclude_seen: bool = True,
        batch_size: int = 256,
        item_chunk_size: int = 65536,
        timestamps: Sequence[Sequence[int]] | None = None,
        exclude: Sequence[Sequence[int]] | None = None,
        user_features: Sequence[Sequence[int]] | None = None,
        interaction_features: Sequence[Sequence[Sequence[int]]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k next items for each history.

        Args:
            histories (list of lists of `int`): Item indices (ItemTokenizer indices), oldest first, any length.
            k (`int`, defaults to 10): Items per history.
            exclude_seen (`bool`, defaults to `True`): Never recommend an item already in the history.
            timestamps (list of lists of `int`, *optional*): Unix seconds of each history's items, optionally followed
                by the time of the request (see `timestamps_to_inputs`). Read by models with a time bias
                (`config.use_time_bias`) or context features (`config.context_features`); other models rank from the
                order alone and ignore them.
            exclude (list of lists of `int`, *optional*): Further items never to recommend, per history (e.g. items
                out of stock); with `exclude_seen` the history's items are excluded as well.
            user_features (list of lists of `int`, *optional*): Per history, the user's feature value ids (one per
                `config.user_features` name, in sorted order; 0 = unknown). Read by models with user features.
            interaction_features (list of lists of lists of `int`, *optional*): Per history, one row of value ids per
                item (`interaction_features_to_inputs`). Read by models with interaction features.

        Returns:
            `(indices, scores)` of shape `(len(histories), k)`, best first; padding and the mask token never
            appear (index -1 / score -inf only when fewer than `k` items can be recommended).
        """
        if isinstance(histories, torch.Tensor):
            histories = histories.tolist()
        if len(histories) > 0 and isinstance(histories[0], numbers.Integral):
            raise ValueError("recommend expects a batch of histories (a list of lists); wrap one history as [history]")
        if len(histories) == 0:
            raise ValueError("recommend got no histories")
        k = check_k(k)  # before any work
        if exclude is not None and len(exclude) != len(histories):
            raise ValueError(f"got {len(exclude)} exclusion lists for {len(histories)} histories")
        users = None
        if user_features is not None and self.reads_user_features:
            if len(user_features) != len(histories):
                raise ValueError(f"got {len(user_features)} user feature rows for {len(histories)} histories")
            users = torch.as_tensor([[_integer(v, f"user_features {row}", "an integer value id") for v in values]
                                     for row, values in enumerate(user_features)], dtype=torch.long)  # fmt: skip
        times = None
        if timestamps is not None and self.reads_timestamps:
            if len(timestamps) != len(histories):
                raise ValueError(f"got {len(timestamps)} timestamp lists for {len(histories)} histories")
            # every batch's times built (and every row checked) before any scoring
            times = [self.timestamps_to_inputs(timestamps[s : s + batch_size], histories[s : s + batch_size])
                     for s in range(0, len(histories), batch_size)]  # fmt: skip
        interactions = None
        if interaction_features is not None and self.reads_interaction_features:
            interactions = [self.interaction_features_to_inputs(interaction_features[s : s + batch_size],
                                                                histories[s : s + batch_size])
                            for s in range(0, len(histories), batch_size)]  # fmt: skip
        was_training = self.training
        self.eval()
        device = self.get_item_embeddings().device
        item_embeddings = self.get_item_embeddings()
        all_indices, all_scores = [], []
        try:
            for start in range(0, len(histories), batch_size):
                batch = histories[start : start + batch_size]
                input_ids, attention_mask = self.histories_to_inputs(batch)
                inputs = {} if times is None else {"timestamps": times[start // batch_size].to(device)}
                if users is not None:
                    inputs["user_features"] = users[start : start + batch_size].to(device)
                if interactions is not None:
                    inputs["interaction_features"] = interactions[start // batch_size].to(device)
                user_embeddings = self.get_user_embeddings(input_ids.to(device), attention_mask.to(device), **inputs)
                indices, scores = topk_items(
                    user_embeddings,
                    item_embeddings,
                    k,
                    exclude=[
                        (list(history) if exclude_seen else []) + (list(exclude[start + row]) if exclude else [])
                        for row, history in enumerate(batch)
                    ],
                    special_ids=self.config.special_ids,
                    item_chunk_size=item_chunk_size,
                )
                all_indices.append(indices.cpu())
                all_scores.append(scores.cpu())
        finally:
            self.train(was_training)
        return torch.cat(all_indices), torch.cat(all_scores)
