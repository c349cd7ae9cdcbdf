"""Configuration fields shared by every hf_rec sequential recommender.

Imports only `transformers` so that `save_pretrained` can export it next to each family's
configuration file for `trust_remote_code` loading.
"""

from __future__ import annotations

from transformers import PreTrainedConfig

LOSS_TYPES = ("ce", "bce", "sampled_softmax", "gbce")
NEGATIVE_SAMPLING = ("uniform", "popularity")
#: what `context_features` may name: hour of day (UTC), day of week, and the log2-bucketed gap in seconds
CONTEXT_FEATURES = ("hour", "weekday", "gap")
#: how user features enter the sequence: added at every position, or a position (token) of their own
USER_FEATURES_FUSION = ("add", "prefix")


class SequentialRecommenderConfig(PreTrainedConfig):
    r"""
    Fields every sequential recommender shares: the item vocabulary, the scoring loss and its parameters.

    Args:
        vocab_size (`int`, *optional*, defaults to 2):
            Size of the item table: padding (index 0) + items + the mask token (+ items added later).
            Take it from `ItemTokenizer.vocab_size`.
        hidden_size (`int`, *optional*, defaults to 64):
            Size of item embeddings and hidden states.
        max_position_embeddings (`int`, *optional*, defaults to 200):
            Longest history the model reads; longer histories keep their most recent items.
        loss_type (`str`, *optional*, defaults to `"ce"`):
            `"ce"` full softmax over the catalogue, `"bce"` one sampled negative per position (SASRec paper),
            `"sampled_softmax"` `num_negatives` negatives shared across the batch, `"gbce"` gSASRec's
            generalised BCE with `num_negatives` negatives and calibration `gbce_t`.
        num_negatives (`int`, *optional*, defaults to 256):
            Negatives for `sampled_softmax` and `gbce` (ignored by `ce`; `bce` always uses one).
        negative_sampling (`str`, *optional*, defaults to `"uniform"`):
            `"uniform"` over items, or `"popularity"` (needs `set_item_popularity`; pair with `logq_correction`).
        logq_correction (`bool`, *optional*, defaults to `False`):
            In `sampled_softmax`, subtract log(expected count) = log(num_negatives * q(item)) from each negative's
            logit, which turns the sampled sum into an importance-weighted estimate of the full softmax's
            denominator (Bengio & Senecal 2008; Yi et al. 2019).
        gbce_t (`float`, *optional*, defaults to 0.75):
            gSASRec calibration parameter in [0, 1]; 0 is plain BCE, 1 is fully calibrated.
        pad_token_id (`int`, *optional*, defaults to 0):
            Padding index (never recommended).
        mask_token_id (`int`, *optional*):
            The tokenizer's mask token (never recommended). Defaults to `vocab_size - 1`.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialiser.
        score_temperature (`float`, *optional*):
            `None` scores an item by the dot product of user and item vectors. A number τ scores by their cosine
            similarity divided by τ (UniSRec / Recformer use 0.07), in training, evaluation and `recommend` alike.
        item_features (`dict`, *optional*):
            Categorical item features as inputs, `{name: {"vocab_size": V, "max_values": M}}` (value id 0 = none;
            up to `M` values per item, e.g. a film's genres). The values of each item are a buffer of the model
            (`ItemTokenizer.item_feature_ids` fills it). `None`: no item feature (see `features.py`).
        item_features_in_scores (`bool`, *optional*, defaults to `False`):
            Also add the item-feature vectors to the item vectors that are scored, so that an item never trained on
            (cold start) is scored from its features.
        item_id_dropout (`float`, *optional*, defaults to 0.0):
            With `item_features_in_scores`, the share of items whose ID vector is left out of the scored table at
            each training step (DropoutNet, Volkovs et al. 2017): the model learns to score an item from its features
            alone, as it must for an item never trained on (whose ID vector is zero).
        user_features (`dict`, *optional*):
            Categorical user features, `{name: {"vocab_size": V}}`, given to `forward` / `recommend` as
            `user_features` (one value id per feature, 0 = unknown).
        user_features_fusion (`str`, *optional*, defaults to `"add"`):
            How user features enter the sequence: `"add"` adds their vector at every position; `"prefix"` gives them
            a position of their own right before the oldest item (a user token every item attends to; a history that
            fills all positions gives up its oldest item for it), so a user without history is still encoded.
        context_features (`list[str]`, *optional*):
            Context read from the `timestamps` input: any of `"hour"`, `"weekday"`, `"gap"` (see `features.py`).
        interaction_features (`dict`, *optional*):
            Categorical features of each interaction of the history (the rating given, the device used),
            `{name: {"vocab_size": V}}`, given as `interaction_features` `[batch, seq_len, n]` aligned with the
            inputs (0 = unknown) and added to each item's input.
    """

    def __init__(
        self,
        vocab_size: int = 2,
        hidden_size: int = 64,
        max_position_embeddings: int = 200,
        loss_type: str = "ce",
        num_negatives: int = 256,
        negative_sampling: str = "uniform",
        logq_correction: bool = False,
        gbce_t: float = 0.75,
        pad_token_id: int = 0,
        mask_token_id: int | None = None,
        initializer_range: float = 0.02,
        score_temperature: float | None = None,
        tie_word_embeddings: bool = True,
        item_features: dict | None = None,
        item_features_in_scores: bool = False,
        item_id_dropout: float = 0.0,
        user_features: dict | None = None,
        user_features_fusion: str = "add",
        context_features: list[str] | None = None,
        interaction_features: dict | None = None,
        **kwargs,
    ):
        _check_int("vocab_size", vocab_size, minimum=2)
        _check_features(item_features, user_features, context_features, interaction_features)
        _check_choice("user_features_fusion", user_features_fusion, USER_FEATURES_FUSION)
        _check_probability("item_id_dropout", item_id_dropout)
        if item_id_dropout and not item_features_in_scores:
            raise ValueError("item_id_dropout needs item_features_in_scores: true (the features score a dropped item)")
        _check_int("hidden_size", hidden_size, minimum=1)
        _check_int("max_position_embeddings", max_position_embeddings, minimum=1)
        _check_choice("loss_type", loss_type, LOSS_TYPES)
        _check_int("num_negatives", num_negatives, minimum=1)
        _check_choice("negative_sampling", negative_sampling, NEGATIVE_SAMPLING)
        if not 0.0 <= float(gbce_t) <= 1.0:
            raise ValueError(f"gbce_t must be in [0, 1], got {gbce_t!r}")
        if mask_token_id is None:
            mask_token_id = vocab_size - 1
        for name, value in (("pad_token_id", pad_token_id), ("mask_token_id", mask_token_id)):
            _check_int(name, value, minimum=0)
            if value >= vocab_size:
                raise ValueError(f"{name}={value} must be smaller than vocab_size={vocab_size}")
        if mask_token_id == pad_token_id:
            raise ValueError(f"mask_token_id and pad_token_id must differ, both are {pad_token_id}")
        if initializer_range <= 0:
            raise ValueError(f"initializer_range must be > 0, got {initializer_range!r}")
        if score_temperature is not None and (
            isinstance(score_temperature, bool)
            or not isinstance(score_temperature, (int, float))
            or not score_temperature > 0
        ):
            raise ValueError(f"score_temperature must be a number > 0 or None, got {score_temperature!r}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.loss_type = loss_type
        self.num_negatives = num_negatives
        self.negative_sampling = negative_sampling
        self.logq_correction = bool(logq_correction)
        self.gbce_t = float(gbce_t)
        self.mask_token_id = mask_token_id
        self.initializer_range = initializer_range
        self.score_temperature = None if score_temperature is None else float(score_temperature)
        self.tie_word_embeddings = tie_word_embeddings
        # empty means off: stored as None so that a config without features serialises as before
        self.item_features = {k: dict(v) for k, v in item_features.items()} if item_features else None
        self.item_features_in_scores = bool(item_features_in_scores)
        self.item_id_dropout = float(item_id_dropout)
        self.user_features = {k: dict(v) for k, v in user_features.items()} if user_features else None
        self.user_features_fusion = user_features_fusion
        self.context_features = list(context_features) if context_features else None
        self.interaction_features = {k: dict(v) for k, v in interaction_features.items()} if interaction_features else None
        super().__init__(pad_token_id=pad_token_id, **kwargs)

    @property
    def special_ids(self) -> list[int]:
        """Item indices that are never ranked or recommended."""
        return sorted({self.pad_token_id, self.mask_token_id})

    @property
    def num_train_items(self) -> int:
        """Items known at training time: indices `1 .. mask_token_id - 1` (negatives are drawn from these)."""
        return self.mask_token_id - 1


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_features(item_features, user_features, context_features, interaction_features) -> None:
    for field, specs, keys in (("item_features", item_features, ("vocab_size", "max_values")),
                               ("user_features", user_features, ("vocab_size",)),
                               ("interaction_features", interaction_features, ("vocab_size",))):  # fmt: skip
        if specs is None:
            continue
        if not isinstance(specs, dict):
            raise ValueError(f"{field} must be a mapping feature name -> {{{', '.join(keys)}}}, got {specs!r}")
        for name, spec in specs.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"{field}: feature names must be identifiers, got {name!r}")
            if not isinstance(spec, dict) or set(spec) != set(keys):
                raise ValueError(f"{field}[{name!r}] must be {{{', '.join(keys)}}}, got {spec!r}")
            for key in keys:
                _check_int(f"{field}[{name!r}][{key!r}]", spec[key], minimum=2 if key == "vocab_size" else 1)
    if context_features is not None and (
        isinstance(context_features, str)
        or not all(c in CONTEXT_FEATURES for c in context_features)
        or len(set(context_features)) != len(context_features)
    ):
        raise ValueError(f"context_features must list distinct names of {', '.join(CONTEXT_FEATURES)}, got {context_features!r}")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_probability(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


class TransformerRecommenderConfig(SequentialRecommenderConfig):
    r"""
    [`SequentialRecommenderConfig`] plus the fields of the self-attention encoder that SASRec, BERT4Rec and the
    text model share.

    Args:
        num_hidden_layers (`int`, *optional*, defaults to 2): Number of self-attention blocks.
        num_attention_heads (`int`, *optional*, defaults to 2): Heads per block; must divide `hidden_size`.
        intermediate_size (`int`, *optional*): Feed-forward width. Defaults to `4 * hidden_size`.
        hidden_act (`str`, *optional*, defaults to `"gelu"`): Feed-forward activation (any `transformers` ACT2FN key).
        hidden_dropout_prob (`float`, *optional*, defaults to 0.2): Dropout on embeddings and block outputs.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.2): Dropout on attention weights.
        layer_norm_eps (`float`, *optional*, defaults to 1e-8): LayerNorm epsilon.
        layer_norm_position (`str`, *optional*, defaults to `"pre"`): `"pre"` (pre-LN with a final LayerNorm),
            `"post"` (BERT's post-LN) or `"paper"` (SASRec's reference code: the query is normalised, keys and
            values are not, then LayerNorm before the feed-forward and a final LayerNorm).
        scale_embeddings (`bool`, *optional*, defaults to `True`): Multiply item embeddings by sqrt(hidden_size)
            before adding positions, as SASRec's reference code does.
    """

    def __init__(
        self,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 2,
        intermediate_size: int | None = None,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.2,
        attention_probs_dropout_prob: float = 0.2,
        layer_norm_eps: float = 1e-8,
        layer_norm_position: str = "pre",
        scale_embeddings: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_int("num_hidden_layers", num_hidden_layers, minimum=1)
        _check_int("num_attention_heads", num_attention_heads, minimum=1)
        if self.hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={num_attention_heads}"
            )
        if intermediate_size is None:
            intermediate_size = 4 * self.hidden_size
        _check_int("intermediate_size", intermediate_size, minimum=1)
        _check_probability("hidden_dropout_prob", hidden_dropout_prob)
        _check_probability("attention_probs_dropout_prob", attention_probs_dropout_prob)
        _check_choice("layer_norm_position", layer_norm_position, ("pre", "post", "paper"))
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = float(hidden_dropout_prob)
        self.attention_probs_dropout_prob = float(attention_probs_dropout_prob)
        self.layer_norm_eps = float(layer_norm_eps)
        self.layer_norm_position = layer_norm_position
        self.scale_embeddings = bool(scale_embeddings)


class RecurrentRecommenderConfig(SequentialRecommenderConfig):
    r"""
    [`SequentialRecommenderConfig`] plus the fields of the GRU encoders that GRU4Rec and NARM share. Each family sets
    its own dropout defaults through `_default_embedding_dropout` / `_default_hidden_dropout`.

    A GRU has no position embeddings: its history window is `max_history_length` (`max_position_embeddings` is
    accepted as its other name, the one code that handles every family reads).

    Args:
        max_history_length (`int`, *optional*, defaults to 200): Most recent items read from a history.
        num_hidden_layers (`int`, *optional*, defaults to 1): Stacked GRU layers.
        gru_hidden_size (`int`, *optional*): Units per GRU layer. Defaults to `hidden_size`.
        embedding_dropout (`float`, *optional*): Dropout on item embeddings before the GRU.
        hidden_dropout_prob (`float`, *optional*): Dropout after the encoder (and between stacked GRU layers).
    """

    _default_embedding_dropout = 0.0
    _default_hidden_dropout = 0.0
    attribute_map = {"max_position_embeddings": "max_history_length"}

    def __init__(
        self,
        max_history_length: int | None = None,
        num_hidden_layers: int = 1,
        gru_hidden_size: int | None = None,
        embedding_dropout: float | None = None,
        hidden_dropout_prob: float | None = None,
        **kwargs,
    ):
        if max_history_length is not None:
            if kwargs.get("max_position_embeddings", max_history_length) != max_history_length:
                raise ValueError(
                    f"max_history_length={max_history_length} and max_position_embeddings="
                    f"{kwargs['max_position_embeddings']} name the same window: give one"
                )
            kwargs["max_position_embeddings"] = max_history_length
        super().__init__(**kwargs)
        if gru_hidden_size is None:
            gru_hidden_size = self.hidden_size
        if embedding_dropout is None:
            embedding_dropout = self._default_embedding_dropout
        if hidden_dropout_prob is None:
            hidden_dropout_prob = self._default_hidden_dropout
        _check_int("num_hidden_layers", num_hidden_layers, minimum=1)
        _check_int("gru_hidden_size", gru_hidden_size, minimum=1)
        _check_probability("embedding_dropout", embedding_dropout)
        _check_probability("hidden_dropout_prob", hidden_dropout_prob)
        self.num_hidden_layers = num_hidden_layers
        self.gru_hidden_size = gru_hidden_size
        self.embedding_dropout = float(embedding_dropout)
        self.hidden_dropout_prob = float(hidden_dropout_prob)
