"""HSTU: Hierarchical Sequential Transduction Units (Zhai et al., ICML 2024, "Actions Speak Louder than Words:
Trillion-Parameter Sequential Transducers for Generative Recommendations", arXiv:2402.17152).

Follows Meta's reference code for the sequential-recommendation experiments (github.com/meta-recsys/
generative-recommenders, `generative_recommenders/research/modeling/sequential/hstu.py` and its input / output
modules, ML-1M gin configs):

    item embedding * sqrt(d) + position embedding, dropout                (LearnablePositionalEmbedding...Preprocessor)
    per block (SequentialTransductionUnitJagged, normalization="rel_bias", linear_config="uvqk", concat_ua=False):
        U, V, Q, K = split(SiLU(LayerNorm(x) W_uvqk))
        A = SiLU(Q K^T + rab) / n, causal                                 (_hstu_attention_maybe_from_cache)
        x = x + W_o dropout(U * LayerNorm(A V))
    user vector = L2-normalised last state, scored by cosine / 0.05       (L2NormEmbeddingPostprocessor)

`rab` is a learned bias per relative position plus, optionally, one per bucket of log time gap
(RelativeBucketedTimeAndPositionBasedBias). Departures, each forced by hf_rec's conventions: inputs are LEFT-padded
and position embeddings count from the most recent item (so padding never shifts them), padded keys are masked
explicitly, `n` is `max_position_embeddings` (the reference divides by its fixed padded length, 200 + 11 output slots
on ML-1M; a constant factor that the LayerNorm of `A V` removes), and without `timestamps` the position bias is still
used (the reference then drops the whole relative bias).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers.modeling_outputs import BaseModelOutput

from .configuration_hstu import HSTUConfig
from .features import build_feature_embeddings, with_features
from .layers import causal_mask, reversed_position_ids
from .modeling_common import SequentialRecommenderMixin, SequentialRecommenderPreTrainedModel

# The reference's bucketisation: floor(ln(max(1, |gap|)) / 0.301), i.e. buckets ~1.35x wide in seconds.
TIME_BUCKET_DIVISOR = 0.301


def hstu_time_buckets(time_gaps: torch.Tensor, num_buckets: int) -> torch.Tensor:
    """Bucket of each time gap (seconds, any sign): `floor(ln(max(1, |gap|)) / 0.301)` clamped to `[0, num_buckets]`.

    Args:
        time_gaps (`torch.LongTensor` of any shape)
        num_buckets (`int`): Largest bucket.

    Returns:
        `torch.LongTensor` of the same shape.
    """
    # ln of a float32 copy, as the reference's torch.log of an int64 tensor does; .long() floors (the log is >= 0).
    logs = torch.log(time_gaps.abs().clamp(min=1).to(torch.float32))
    return (logs / TIME_BUCKET_DIVISOR).long().clamp(min=0, max=num_buckets)


class HSTURelativeAttentionBias(nn.Module):
    """Relative attention bias `rab` of one block: a learned bias per relative position (`2 * max_positions - 1` of
    them) plus, with `use_time_bias`, a learned bias per time bucket.

    The position bias of query `i` and key `j` is `position_weight[max_positions - 1 + j - i]`, the entry the
    reference's pad-and-repeat construction picks. The time bias follows the reference too: query `i` measures the gap
    from the timestamp of the item it predicts, `t[i + 1]`, to each key's `t[j]` ("ts(next item) - ts(current item)").
    """

    def __init__(self, config: HSTUConfig):
        super().__init__()
        self.max_positions = config.max_position_embeddings
        self.num_time_buckets = config.num_time_buckets
        self.position_weight = nn.Parameter(torch.empty(2 * config.max_position_embeddings - 1))
        # Only created when used: a parameter without gradient would break DDP.
        self.time_weight = nn.Parameter(torch.empty(config.num_time_buckets + 1)) if config.use_time_bias else None

    def position_bias(self, seq_len: int) -> torch.Tensor:
        """`[L, L]` bias of query `i` (row) and key `j` (column)."""
        positions = torch.arange(seq_len, device=self.position_weight.device)
        offsets = positions[None, :] - positions[:, None]  # j - i
        return self.position_weight[self.max_positions - 1 + offsets]

    def time_bias(self, timestamps: torch.Tensor, seq_len: int) -> torch.Tensor:
        """`[B, L, L]` bias from `timestamps` of shape `[B, L]` or `[B, L + 1]` (see `HSTUModel.forward`)."""
        if timestamps.shape[1] == seq_len:
            # The reference's rule when the next timestamp is unknown: the last query reuses the last item's time.
            timestamps = torch.cat([timestamps, timestamps[:, -1:]], dim=1)
        gaps = timestamps[:, 1:, None] - timestamps[:, None, :-1]  # [B, L, L]: t[i + 1] - t[j]
        # Buckets are integers: no gradient flows through them (the reference detaches them too).
        return self.time_weight[hstu_time_buckets(gaps, self.num_time_buckets)]

    def forward(self, seq_len: int, timestamps: torch.Tensor | None = None) -> torch.Tensor:
        """`[1, L, L]` position bias, or `[B, L, L]` with the time bias added when timestamps are given and used."""
        bias = self.position_bias(seq_len)[None]
        if self.time_weight is not None and timestamps is not None:
            bias = bias + self.time_bias(timestamps, seq_len)
        return bias


def hstu_pointwise_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_bias: torch.Tensor,
    attention_mask: torch.Tensor,
    normalizer: float,
) -> torch.Tensor:
    """HSTU's pointwise aggregated attention: `SiLU(Q K^T + rab) / n`, masked, times `V`.

    Not routed through transformers' attention interface: every backend there (eager, SDPA, flash, flex) is softmax
    attention, and HSTU has no softmax and no `1 / sqrt(d)` scaling.

    Args:
        query, key (`torch.Tensor` of shape `(batch_size, num_heads, seq_len, attention_dim)`)
        value (`torch.Tensor` of shape `(batch_size, num_heads, seq_len, linear_dim)`)
        attention_bias (`torch.Tensor` of shape `(batch_size or 1, seq_len, seq_len)`): `rab`, shared by the heads.
        attention_mask (`torch.Tensor` of shape `(batch_size, 1, seq_len, seq_len)`): 1 where query `i` may read key
            `j`, 0 elsewhere.
        normalizer (`float`): `n`.

    Returns:
        `torch.Tensor` of shape `(batch_size, seq_len, num_heads * linear_dim)`.
    """
    scores = torch.matmul(query, key.transpose(-1, -2)) + attention_bias[:, None]  # [B, heads, L, L]
    weights = F.silu(scores) / normalizer * attention_mask.to(scores.dtype)
    output = torch.matmul(weights, value)  # [B, heads, L, linear_dim]
    batch_size, num_heads, seq_len, linear_dim = output.shape
    return output.transpose(1, 2).reshape(batch_size, seq_len, num_heads * linear_dim)


class HSTUEmbeddings(nn.Module):
    """Item embedding * sqrt(hidden) + learned position embedding, dropout, padding zeroed."""

    def __init__(self, config: HSTUConfig):
        super().__init__()
        self.item_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.item_embeddings._hstu_init = "truncated_normal"  # schemes read by HSTUPreTrainedModel._init_weights
        self.position_embeddings._hstu_init = "xavier_normal"
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.scale = config.hidden_size**0.5
        self.max_positions = config.max_position_embeddings

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, feature_embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        position_ids = reversed_position_ids(input_ids.shape[1], self.max_positions, input_ids.device)  # [L]
        items = with_features(self.item_embeddings(input_ids), feature_embeddings)
        embeddings = items * self.scale + self.position_embeddings(position_ids)[None]
        return self.dropout(embeddings) * attention_mask[..., None].to(embeddings.dtype)  # [B, L, H]


class HSTULayer(nn.Module):
    """One HSTU block (the reference's `SequentialTransductionUnitJagged` with its ML-1M settings). There is no
    separate feed-forward: the gate `U` and the output projection take its place."""

    def __init__(self, config: HSTUConfig):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.attention_dim = config.attention_dim
        self.linear_dim = config.linear_dim
        self.layer_norm_eps = config.layer_norm_eps
        self.normalizer = float(config.max_position_embeddings)
        self.split_sizes = [self.linear_dim * self.num_heads] * 2 + [self.attention_dim * self.num_heads] * 2
        # One projection for U, V, Q, K, without bias (the reference's `_uvqk` matrix).
        self.uvqk_proj = nn.Linear(config.hidden_size, sum(self.split_sizes), bias=False)
        self.o_proj = nn.Linear(self.linear_dim * self.num_heads, config.hidden_size)
        self.uvqk_proj._hstu_init = "normal"
        self.o_proj._hstu_init = "xavier_uniform"
        self.dropout = nn.Dropout(config.linear_dropout_prob)
        self.relative_bias = HSTURelativeAttentionBias(config)  # one per block, as in the reference

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, timestamps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`[B, L, H]` -> `[B, L, H]`; `attention_mask` is `[B, 1, L, L]` (1 = may attend)."""
        batch_size, seq_len, _ = hidden_states.shape
        normed = F.layer_norm(hidden_states, (self.hidden_size,), eps=self.layer_norm_eps)  # no affine parameters
        u, v, q, k = F.silu(self.uvqk_proj(normed)).split(self.split_sizes, dim=-1)
        query = q.view(batch_size, seq_len, self.num_heads, self.attention_dim).transpose(1, 2)
        key = k.view(batch_size, seq_len, self.num_heads, self.attention_dim).transpose(1, 2)
        value = v.view(batch_size, seq_len, self.num_heads, self.linear_dim).transpose(1, 2)
        attn_output = hstu_pointwise_attention(
            query, key, value, self.relative_bias(seq_len, timestamps), attention_mask, self.normalizer
        )  # [B, L, heads * linear_dim]
        gated = u * F.layer_norm(attn_output, (self.num_heads * self.linear_dim,), eps=self.layer_norm_eps)
        return hidden_states + self.o_proj(self.dropout(gated))


def build_hstu_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """`[B, L]` 1/0 padding mask -> `[B, 1, L, L]` bool: query `i` reads key `j` when `j <= i` and `j` is an item.

    No row needs a key to be allowed (there is no softmax to turn an empty row into NaN): padded queries read
    nothing."""
    seq_len = attention_mask.shape[1]
    return causal_mask(seq_len, attention_mask.device)[None, None] & attention_mask.bool()[:, None, None, :]


class HSTUPreTrainedModel(SequentialRecommenderPreTrainedModel):
    config_class = HSTUConfig
    supports_gradient_checkpointing = True

    def _init_weights(self, module):
        # The reference's initialisation. transformers calls this on every module that holds parameters itself (not
        # on containers), so each leaf carries its scheme in `_hstu_init`; modules without one (the tied item_head)
        # are left alone. torch.nn.init functions only: transformers guards them so loaded weights are never redrawn.
        std = self.config.initializer_range
        scheme = getattr(module, "_hstu_init", None)
        if scheme == "truncated_normal":
            # LocalEmbeddingModule: truncated normal within +-2 std.
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif scheme == "xavier_normal":
            # The position table: HSTU.reset_params re-initialises the input preprocessor's table with xavier_normal_
            # (its parameter name contains neither "_hstu" nor "_embedding_module").
            nn.init.xavier_normal_(module.weight)
        elif scheme == "normal":
            nn.init.normal_(module.weight, mean=0.0, std=std)  # SequentialTransductionUnitJagged._uvqk
        elif scheme == "xavier_uniform":
            # SequentialTransductionUnitJagged._o: xavier_uniform_ weight, nn.Linear's default bias.
            nn.init.xavier_uniform_(module.weight)
            bound = 1.0 / math.sqrt(module.in_features)
            nn.init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, HSTURelativeAttentionBias):
            nn.init.normal_(module.position_weight, mean=0.0, std=std)
            if module.time_weight is not None:
                nn.init.normal_(module.time_weight, mean=0.0, std=std)
        elif isinstance(module, nn.Embedding):
            super()._init_weights(module)  # side-information tables (features.py): no reference scheme


class HSTUModel(HSTUPreTrainedModel):
    """The HSTU encoder: `[B, L]` left-padded item indices (and optional timestamps) -> `[B, L, H]` states (causal)."""

    def __init__(self, config: HSTUConfig):
        super().__init__(config)
        self.embeddings = HSTUEmbeddings(config)
        self.layers = nn.ModuleList([HSTULayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.item_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.item_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        timestamps: torch.Tensor | None = None,
        feature_embeddings: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): Left-padded item indices.
            attention_mask (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): 1 for items, 0 for
                padding. Defaults to `input_ids != pad_token_id`.
            timestamps (`torch.LongTensor` of shape `(batch_size, seq_len)` or `(batch_size, seq_len + 1)`,
                *optional*): Unix seconds of each item, left-padded like `input_ids` (padding values are never read
                by item positions). An extra last column gives the time of the next event (the target's timestamp in
                training, the request time when recommending), which the last position's time bias then measures
                from; without it the last item's time is used, as the reference does. Ignored unless
                `config.use_time_bias`.
            feature_embeddings (`torch.FloatTensor` of shape `(batch_size, seq_len, hidden_size)`, *optional*): Side
                information added to the item inputs (the head's `features` module computes it).

        Returns:
            [`BaseModelOutput`] with `last_hidden_state` `(batch_size, seq_len, hidden_size)`, zero at padding.
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        seq_len = input_ids.shape[1]
        if timestamps is not None:
            if timestamps.shape[0] != input_ids.shape[0] or timestamps.shape[1] not in (seq_len, seq_len + 1):
                raise ValueError(
                    f"timestamps must have shape ({input_ids.shape[0]}, {seq_len}) or ({input_ids.shape[0]}, "
                    f"{seq_len + 1}) to match input_ids {tuple(input_ids.shape)}, got {tuple(timestamps.shape)}"
                )
            timestamps = timestamps.to(device=input_ids.device, dtype=torch.long)
        mask = build_hstu_attention_mask(attention_mask)  # [B, 1, L, L]
        hidden_states = self.embeddings(input_ids, attention_mask, feature_embeddings)
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                hidden_states = torch.utils.checkpoint.checkpoint(
                    layer, hidden_states, mask, timestamps, use_reentrant=False
                )
            else:
                hidden_states = layer(hidden_states, mask, timestamps)
        # The reference's outputs are zero at padding (jagged -> padded dense); no final LayerNorm.
        hidden_states = hidden_states * attention_mask[..., None].to(hidden_states.dtype)
        return BaseModelOutput(last_hidden_state=hidden_states)


class HSTUForSequentialRecommendation(SequentialRecommenderMixin, HSTUPreTrainedModel):
    """HSTU with its scoring head: the last state and the tied item embeddings, both L2-normalised, scored by cosine
    similarity / `score_temperature` (the mixin's `_score_space`).

    Trains with any hf_rec `loss_type`. The reference trains with a sampled softmax over 128 uniform negatives per
    position (`loss_type="sampled_softmax"`, `num_negatives=128`; hf_rec shares the negatives across the batch);
    full cross-entropy (`"ce"`) is hf_rec's default. `forward` and `get_user_embeddings` pass optional `timestamps`
    to [`HSTUModel.forward`], and `recommend(histories, timestamps=...)` builds them from per-history Unix times.
    """

    training_objective = "causal"
    _tied_weights_keys = {"item_head.weight": "model.embeddings.item_embeddings.weight"}

    def __init__(self, config: HSTUConfig):
        super().__init__(config)
        self.model = HSTUModel(config)
        self.item_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.features = build_feature_embeddings(config)
        self.post_init()


__all__ = ["HSTUModel", "HSTUPreTrainedModel", "HSTUForSequentialRecommendation"]
