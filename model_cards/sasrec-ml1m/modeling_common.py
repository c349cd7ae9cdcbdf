"""Forward pieces shared by every hf_rec sequential recommender.

Written once and imported by each `modeling_<family>.py` as `from .modeling_common import ...`, so that
`save_pretrained` exports this file next to the family's file and a saved model loads with
`trust_remote_code=True` where hf_rec is not installed. Imports only torch and transformers.

Contents, in reading order: output dataclass -> attention mask -> attention / feed-forward / block / encoder
-> left-padded GRU helper -> weight init and the `PreTrainedModel` base -> losses -> chunked top-k -> the mixin
with `recommend`.

Conventions (see docs/architecture.md): inputs are LEFT-padded (the most recent item is at position -1),
index 0 is padding, `config.mask_token_id` is the mask token; both are never scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput


@dataclass
class SequentialRecommenderOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): Training loss, set only when `labels` are given.
        logits (`torch.FloatTensor` of shape `(batch_size, vocab_size)`, *optional*): Scores of every item for the
            next position (special ids at -inf), set only when `labels` are not given.
        hidden_states (`torch.FloatTensor` of shape `(batch_size, seq_len, hidden_size)`): Last encoder layer.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------
# Self-attention blocks (SASRec, BERT4Rec, the text model). Projections are named q/k/v/o_proj and up/down_proj so
# that LoRA target names are predictable.
# ----------------------------------------------------------------------------------------------------------------


def build_attention_mask(attention_mask: torch.Tensor, is_causal: bool, dtype: torch.dtype) -> torch.Tensor:
    """`[batch, seq]` 1/0 padding mask -> `[batch, 1, seq, seq]` additive mask for the attention interface.

    Every position may always attend to itself, so padding rows are never all-masked (which would give NaN);
    real positions never see padding, so padding never changes their outputs.
    """
    batch_size, seq_len = attention_mask.shape
    allowed = attention_mask.bool()[:, None, None, :]  # [B, 1, 1, L] keys that are items
    if is_causal:
        causal = torch.ones(seq_len, seq_len, dtype=torch.bool, device=attention_mask.device).tril()
        allowed = allowed & causal  # [B, 1, L, L]
    eye = torch.eye(seq_len, dtype=torch.bool, device=attention_mask.device)
    allowed = allowed | eye
    mask = torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    # query/key/value: [B, heads, L, head_dim]
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()  # [B, L, heads, head_dim]
    return attn_output, attn_weights


class RecAttention(nn.Module):
    """Multi-head self-attention dispatched through transformers' attention interface (SDPA by default)."""

    def __init__(self, config, is_causal: bool):
        super().__init__()
        self.config = config
        self.is_causal = is_causal
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.num_key_value_groups = 1
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_probs_dropout_prob
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, query_states, key_value_states, attention_mask):
        batch_size, seq_len, _ = query_states.shape
        shape = (batch_size, seq_len, self.num_heads, self.head_dim)
        query = self.q_proj(query_states).view(shape).transpose(1, 2)  # [B, heads, L, head_dim]
        key = self.k_proj(key_value_states).view(shape).transpose(1, 2)
        value = self.v_proj(key_value_states).view(shape).transpose(1, 2)
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation or "sdpa", eager_attention_forward
        )
        attn_output, _ = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            is_causal=False,  # causality is in the explicit mask (it also hides left padding)
        )
        return self.o_proj(attn_output.reshape(batch_size, seq_len, -1))


class RecFeedForward(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size)
        self.act_fn = ACT2FN[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states):
        return self.dropout(self.down_proj(self.dropout(self.act_fn(self.up_proj(hidden_states)))))


class RecTransformerLayer(nn.Module):
    """One block; `config.layer_norm_position` picks pre-LN, post-LN (BERT) or SASRec's reference layout."""

    def __init__(self, config, is_causal: bool):
        super().__init__()
        self.layer_norm_position = config.layer_norm_position
        self.attention = RecAttention(config, is_causal=is_causal)
        self.attention_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = RecFeedForward(config)
        self.feed_forward_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, attention_mask):
        if self.layer_norm_position == "post":
            hidden_states = self.attention_layer_norm(
                hidden_states + self.dropout(self.attention(hidden_states, hidden_states, attention_mask))
            )
            return self.feed_forward_layer_norm(hidden_states + self.feed_forward(hidden_states))
        if self.layer_norm_position == "paper":
            # SASRec reference code: normalised queries, raw keys/values, residual from the normalised query.
            query = self.attention_layer_norm(hidden_states)
            hidden_states = query + self.dropout(self.attention(query, hidden_states, attention_mask))
            hidden_states = self.feed_forward_layer_norm(hidden_states)
            return hidden_states + self.feed_forward(hidden_states)
        normed = self.attention_layer_norm(hidden_states)
        hidden_states = hidden_states + self.dropout(self.attention(normed, normed, attention_mask))
        return hidden_states + self.feed_forward(self.feed_forward_layer_norm(hidden_states))


class RecTransformerEncoder(nn.Module):
    """Stack of blocks; a final LayerNorm for the pre-LN layouts."""

    def __init__(self, config, is_causal: bool):
        super().__init__()
        self.is_causal = is_causal
        self.layers = nn.ModuleList(
            [RecTransformerLayer(config, is_causal=is_causal) for _ in range(config.num_hidden_layers)]
        )
        self.final_layer_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            if config.layer_norm_position in ("pre", "paper")
            else nn.Identity()
        )
        self.gradient_checkpointing = False

    def forward(self, hidden_states, attention_mask):
        # hidden_states: [B, L, H]; attention_mask: [B, L] with 1 for items
        mask = build_attention_mask(attention_mask, self.is_causal, hidden_states.dtype)
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                hidden_states = torch.utils.checkpoint.checkpoint(layer, hidden_states, mask, use_reentrant=False)
            else:
                hidden_states = layer(hidden_states, mask)
        return self.final_layer_norm(hidden_states)


class RecTransformerModelMixin:
    """`forward` and input-embedding access of an encoder built as `self.embeddings` (with `item_embeddings`) ->
    `self.encoder` (a `RecTransformerEncoder`), as SASRec and BERT4Rec are."""

    def get_input_embeddings(self):
        return self.embeddings.item_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.item_embeddings = value

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> BaseModelOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): Left-padded item indices.
            attention_mask (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): 1 for items (and mask
                tokens), 0 for padding. Defaults to `input_ids != pad_token_id`.
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        hidden_states = self.encoder(self.embeddings(input_ids, attention_mask), attention_mask)
        return BaseModelOutput(last_hidden_state=hidden_states)


def reversed_position_ids(seq_len: int, max_positions: int, device) -> torch.Tensor:
    """Position 0 is the most recent item: with left padding this is the same for every row and every padded length,
    so outputs do not depend on how much padding a batch has."""
    if seq_len > max_positions:
        raise ValueError(
            f"input has {seq_len} positions but the model reads at most max_position_embeddings={max_positions}; "
            "truncate histories to their most recent items"
        )
    return torch.arange(seq_len - 1, -1, -1, device=device)


def recommender_gru(config) -> nn.GRU:
    """GRU4Rec's and NARM's `batch_first` GRU: item embeddings (`hidden_size`) -> `gru_hidden_size` states, with
    `hidden_dropout_prob` between stacked layers."""
    return nn.GRU(
        input_size=config.hidden_size,
        hidden_size=config.gru_hidden_size,
        num_layers=config.num_hidden_layers,
        dropout=config.hidden_dropout_prob if config.num_hidden_layers > 1 else 0.0,
        batch_first=True,
    )


def left_padded_gru(gru: nn.GRU, inputs: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Run a `batch_first` GRU over LEFT-padded inputs without letting it read the padding before the first item.

    Each row is rolled left by its padding count (so it becomes right-padded: items first), the GRU runs over the
    whole batch (trailing padding cannot change earlier states of a recurrent net), and the outputs are rolled back,
    so position -1 holds the state after the most recent item. Used by GRU4Rec and NARM.

    Args:
        gru (`nn.GRU`): Built with `batch_first=True`.
        inputs (`torch.Tensor` of shape `(batch_size, seq_len, input_size)`): Left-padded input vectors.
        attention_mask (`torch.Tensor` of shape `(batch_size, seq_len)`): 1 for items, 0 for (left) padding.

    Returns:
        `torch.Tensor` of shape `(batch_size, seq_len, gru.hidden_size)`: GRU states at the input positions, zero at
        padding.
    """
    batch_size, seq_len, input_size = inputs.shape
    num_pad = seq_len - attention_mask.sum(dim=1, dtype=torch.long)  # [B]
    positions = torch.arange(seq_len, device=inputs.device)[None, :]  # [1, L]
    to_right = (positions + num_pad[:, None]) % seq_len  # right-padded column j reads left-padded column j + pad
    right_padded = inputs.gather(1, to_right[..., None].expand(-1, -1, input_size))  # [B, L, E]
    outputs, _ = gru(right_padded)  # [B, L, H]
    to_left = (positions - num_pad[:, None]) % seq_len
    outputs = outputs.gather(1, to_left[..., None].expand(-1, -1, outputs.shape[-1]))  # [B, L, H], left-padded
    return outputs * attention_mask[..., None].to(outputs.dtype)


def init_recommender_weights(module: nn.Module, std: float, padding_idx: int | None = 0) -> None:
    """Normal(0, std) for linear and embedding weights, zero biases, unit LayerNorms, a zero padding row."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.GRU,)):
        for name, param in module.named_parameters():
            if "weight" in name:
                nn.init.xavier_uniform_(param)
            else:
                nn.init.zeros_(param)


class SequentialRecommenderPreTrainedModel(PreTrainedModel):
    """Base of every family's `XPreTrainedModel`, which adds its `config_class` and capability flags. The encoder
    sits at `model` in the recommendation heads, so checkpoint keys read `model.<...>`."""

    base_model_prefix = "model"
    main_input_name = "input_ids"

    def _init_weights(self, module):
        init_recommender_weights(module, self.config.initializer_range)


# ----------------------------------------------------------------------------------------------------------------
# Losses. All take the hidden states at the labelled positions only ([N, H]) and the item table ([V, H]).
# ----------------------------------------------------------------------------------------------------------------


def mask_special_scores(scores: torch.Tensor, special_ids: Sequence[int]) -> torch.Tensor:
    """Set the columns of special ids to -inf (returns a new tensor)."""
    scores = scores.clone()
    scores[..., list(special_ids)] = float("-inf")
    return scores


def sample_negative_ids(
    num: int, config, device, generator=None, sampling_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Draw `num` item indices from the training items `1 .. mask_token_id - 1`, uniformly or by popularity."""
    num_items = config.num_train_items
    if sampling_weights is not None:
        return torch.multinomial(sampling_weights, num, replacement=True, generator=generator)
    return torch.randint(1, num_items + 1, (num,), device=device, generator=generator)


def recommendation_loss(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    item_embeddings: torch.Tensor,
    config,
    sampling_weights: torch.Tensor | None = None,
    candidate_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss of predicting `labels` ([N]) from `hidden` ([N, H]) against the item table ([V, H]).

    `config.loss_type`: `ce` (full softmax), `bce` (one uniform negative per position, SASRec paper),
    `sampled_softmax` (`num_negatives` shared negatives, optional logQ correction) or `gbce` (gSASRec).
    `sampling_weights` ([V]) draws negatives by weight instead of uniformly; `candidate_mask` ([V] bool) limits
    the softmax and the negatives to the items that exist at training time (cold-start simulation).
    """
    loss_type = config.loss_type
    if candidate_mask is not None:
        weights = torch.ones_like(candidate_mask, dtype=torch.float) if sampling_weights is None else sampling_weights
        sampling_weights = weights * candidate_mask
    if loss_type == "ce":
        # Score only the training items 1..num_train_items (a contiguous slice: no special-id masking, no copy).
        train_items = item_embeddings[1 : config.num_train_items + 1]
        logits = hidden @ train_items.T  # [N, num_train_items]
        if candidate_mask is not None:
            logits = logits.masked_fill(~candidate_mask[1 : config.num_train_items + 1], float("-inf"))
        return F.cross_entropy(logits.float(), labels - 1)

    positive_logits = (hidden * item_embeddings[labels]).sum(-1)  # [N]
    if loss_type == "bce":
        negatives = sample_negative_ids(labels.numel(), config, hidden.device, sampling_weights=sampling_weights)
        negative_logits = (hidden * item_embeddings[negatives]).sum(-1)
        valid = (negatives != labels).float()  # a negative that happens to be the positive is dropped
        negative_loss = F.binary_cross_entropy_with_logits(
            negative_logits.float(), torch.zeros_like(negative_logits, dtype=torch.float), reduction="none"
        )
        positive_loss = F.binary_cross_entropy_with_logits(
            positive_logits.float(), torch.ones_like(positive_logits, dtype=torch.float)
        )
        return positive_loss + (negative_loss * valid).sum() / valid.sum().clamp(min=1.0)

    # Shared negatives: one [N, H] x [H, num_negatives] matmul for the whole batch.
    negatives = sample_negative_ids(config.num_negatives, config, hidden.device, sampling_weights=sampling_weights)
    negative_logits = hidden @ item_embeddings[negatives].T  # [N, num_negatives]
    negative_logits = negative_logits.masked_fill(negatives[None, :] == labels[:, None], float("-inf"))
    if loss_type == "sampled_softmax":
        if config.logq_correction:
            if sampling_weights is None:
                log_q = -math.log(config.num_train_items) + math.log(config.num_negatives)
                negative_logits = negative_logits - log_q
            else:
                probabilities = sampling_weights[negatives] / sampling_weights.sum()
                negative_logits = negative_logits - torch.log(probabilities * config.num_negatives)[None, :]
        logits = torch.cat([positive_logits[:, None], negative_logits], dim=1).float()
        return F.cross_entropy(logits, torch.zeros(len(labels), dtype=torch.long, device=labels.device))

    # gBCE (Petrov & Macdonald, RecSys 2023): BCE with the positive probability raised to the power beta.
    alpha = config.num_negatives / max(config.num_train_items - 1, 1)
    beta = alpha * (config.gbce_t * (1.0 - 1.0 / alpha) + 1.0 / alpha)
    positive_logits = positive_logits.double()
    eps = 1e-10
    positive_probs = torch.clamp(torch.sigmoid(positive_logits), eps, 1 - eps)
    positive_probs_adjusted = torch.clamp(positive_probs.pow(-beta), 1 + eps, torch.finfo(torch.float64).max)
    positive_logits = torch.log(torch.clamp(1.0 / (positive_probs_adjusted - 1), eps, torch.finfo(torch.float64).max))
    positive_loss = F.binary_cross_entropy_with_logits(positive_logits, torch.ones_like(positive_logits))
    valid = torch.isfinite(negative_logits)
    negative_loss = F.binary_cross_entropy_with_logits(
        negative_logits.float().masked_fill(~valid, 0.0), torch.zeros_like(negative_logits, dtype=torch.float),
        reduction="none",
    )
    negative_loss = (negative_loss * valid).sum(-1).mean()
    # gSASRec averages BCE over the 1 + num_negatives logits of each position.
    return (positive_loss.float() + negative_loss) / (1 + config.num_negatives)


# ----------------------------------------------------------------------------------------------------------------
# Scoring and top-k over the whole catalogue, chunked over items so that memory stays bounded.
# ----------------------------------------------------------------------------------------------------------------


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
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    num_users, vocab_size = user_embeddings.shape[0], item_embeddings.shape[0]
    device = user_embeddings.device
    specials = sorted({int(s) for s in special_ids if 0 <= int(s) < vocab_size})
    k = min(k, vocab_size - len(specials))
    if k <= 0:
        raise ValueError("no item can be recommended: every index is a special id")
    rows, cols = _exclusion_pairs(exclude, num_users, vocab_size, device)
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


def _exclusion_pairs(exclude, num_users: int, vocab_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-user exclusion lists (or a 2-D tensor) -> flat `(row, item)` index tensors; negatives are padding."""
    if exclude is None:
        empty = torch.empty(0, dtype=torch.long, device=device)
        return empty, empty
    if isinstance(exclude, torch.Tensor) and exclude.ndim == 2:
        if exclude.shape[0] != num_users:
            raise ValueError(f"exclude has {exclude.shape[0]} rows but there are {num_users} users")
        cols = exclude.to(device=device, dtype=torch.long)
        rows = torch.arange(num_users, device=device)[:, None].expand_as(cols)
        rows, cols = rows.reshape(-1), cols.reshape(-1)
    else:
        exclude = list(exclude)
        if len(exclude) != num_users:
            raise ValueError(f"exclude has {len(exclude)} rows but there are {num_users} users")
        per_user = [torch.as_tensor(list(items) if isinstance(items, (set, frozenset)) else items, dtype=torch.long).reshape(-1)
                    if items is not None else torch.empty(0, dtype=torch.long) for items in exclude]
        lengths = torch.tensor([len(items) for items in per_user], dtype=torch.long)
        rows = torch.repeat_interleave(torch.arange(num_users), lengths).to(device)
        cols = (torch.cat(per_user) if per_user else torch.empty(0, dtype=torch.long)).to(device)
    if cols.numel() and int(cols.max()) >= vocab_size:
        bad = int(cols.argmax())
        raise ValueError(f"exclude of user row {int(rows[bad])} holds item {int(cols[bad])}, outside [0, {vocab_size})")
    keep = cols >= 0
    return rows[keep], cols[keep]


# ----------------------------------------------------------------------------------------------------------------
# The mixin every `*ForSequentialRecommendation` class inherits: one forward tail, one `recommend`.
# ----------------------------------------------------------------------------------------------------------------


class SequentialRecommenderMixin:
    """Shared behaviour of hf_rec's recommendation heads.

    A family's head holds its encoder at `self.model` and its tied scoring layer at `self.item_head`, and overrides
    `encode(input_ids, attention_mask) -> [B, L, H]` (hidden state per position) and `item_table() -> [V, H]`
    where its head differs; the mixin provides the loss, next-item logits, user embeddings and `recommend`.
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

    def item_table(self) -> torch.Tensor:
        """`[vocab_size, hidden]` item vectors as the model holds them (the tied item embedding)."""
        return self.item_head.weight

    def to_score_space(self, vectors: torch.Tensor) -> torch.Tensor:
        """Vectors whose dot product is the score: unchanged, or with `config.score_temperature` set, L2-normalised and
        divided by sqrt(temperature), so that user . item = cosine similarity / temperature (UniSRec, Recformer)."""
        temperature = getattr(self.config, "score_temperature", None)
        if temperature is None:
            return vectors
        return F.normalize(vectors, dim=-1) * temperature**-0.5

    def get_item_embeddings(self) -> torch.Tensor:
        """`[vocab_size, hidden]` table whose dot product with a user embedding scores an item."""
        return self.to_score_space(self.item_table())

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """`[B, L]` -> `[B, L, H]`: the encoder's last hidden state, scored against `get_item_embeddings()`."""
        return self.model(input_ids, attention_mask).last_hidden_state

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequentialRecommenderOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): Left-padded item indices.
            attention_mask (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): 1 for items.
                Defaults to `input_ids != pad_token_id`.
            labels (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): The next item at each
                position, -100 where no loss is taken.

        Returns:
            [`SequentialRecommenderOutput`]: `loss` with labels; otherwise `logits` `(batch_size, vocab_size)` for
            the next item; `hidden_states` `(batch_size, seq_len, hidden_size)` from `encode` with labels, from
            `encode_for_prediction` without (NARM: one position; BERT4Rec: the input with the mask token appended).
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        if labels is None:
            hidden_states = self.encode_for_prediction(input_ids, attention_mask)
        else:
            hidden_states = self.encode(input_ids, attention_mask)
        return self.recommendation_output(hidden_states, labels)

    def encode_for_prediction(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states whose last position scores the next item (`forward` without labels, user embeddings).

        `encode` by default; a family overrides it to compute less (NARM: the last position only) or to change the
        input (BERT4Rec: appends the mask token)."""
        return self.encode(input_ids, attention_mask)

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

    def map_items_from_text(self, indices) -> None:
        """Give catalogue items that were never trained on (held-out cold items) the vector a newly added item would
        get. ID-only models have nothing to map them from; text models override this."""

    def _candidate_mask_for(self, device):
        mask = getattr(self, "_candidate_mask", None)
        return None if mask is None else mask.to(device)

    def _sampling_weights_for(self, device):
        weights = getattr(self, "_sampling_weights", None)
        if self.config.negative_sampling == "popularity" and weights is None:
            raise ValueError("negative_sampling='popularity' needs item counts: call model.set_item_popularity(counts)")
        return None if weights is None else weights.to(device)

    def get_user_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`[B, L]` left-padded histories -> `[B, H]` representation whose dot product with item embeddings scores."""
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        return self.to_score_space(self.encode_for_prediction(input_ids, attention_mask)[:, -1])

    def recommendation_output(self, hidden_states: torch.Tensor, labels: torch.Tensor | None):
        """Shared forward tail: loss at labelled positions, or next-item logits for the last position."""
        item_embeddings = self.get_item_embeddings()
        if labels is None:
            users = self.to_score_space(hidden_states[:, -1])
            logits = mask_special_scores(users @ item_embeddings.T, self.config.special_ids)
            return SequentialRecommenderOutput(logits=logits, hidden_states=hidden_states)
        positions = labels != -100  # [B, L]
        loss = recommendation_loss(
            self.to_score_space(hidden_states[positions]),
            labels[positions],
            item_embeddings,
            self.config,
            sampling_weights=self._sampling_weights_for(hidden_states.device),
            candidate_mask=self._candidate_mask_for(hidden_states.device),
        )
        return SequentialRecommenderOutput(loss=loss, hidden_states=hidden_states)

    def histories_to_inputs(self, histories: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Lists of item indices -> left-padded `(input_ids, attention_mask)`, each truncated to the most recent
        items the model reads. Raises on an empty history or an index that is not an item."""
        max_length = self.max_history_length()
        vocab_size = self.get_item_embeddings().shape[0]
        rows = []
        for row, history in enumerate(histories):
            history = [int(i) for i in history]
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

    @torch.no_grad()
    def recommend(
        self,
        histories: Sequence[Sequence[int]],
        k: int = 10,
        exclude_seen: bool = True,
        batch_size: int = 256,
        item_chunk_size: int = 65536,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k next items for each history.

        Args:
            histories (list of lists of `int`): Item indices (ItemTokenizer indices), oldest first, any length.
            k (`int`, defaults to 10): Items per history.
            exclude_seen (`bool`, defaults to `True`): Never recommend an item already in the history.

        Returns:
            `(indices, scores)` of shape `(len(histories), k)`, best first; padding and the mask token never
            appear (index -1 / score -inf only when fewer than `k` items can be recommended).
        """
        if isinstance(histories, torch.Tensor):
            histories = histories.tolist()
        if len(histories) > 0 and isinstance(histories[0], int):
            raise ValueError("recommend expects a batch of histories (a list of lists); wrap one history as [history]")
        if len(histories) == 0:
            raise ValueError("recommend got no histories")
        was_training = self.training
        self.eval()
        device = self.get_item_embeddings().device
        item_embeddings = self.get_item_embeddings()
        all_indices, all_scores = [], []
        try:
            for start in range(0, len(histories), batch_size):
                batch = histories[start : start + batch_size]
                input_ids, attention_mask = self.histories_to_inputs(batch)
                user_embeddings = self.get_user_embeddings(input_ids.to(device), attention_mask.to(device))
                indices, scores = topk_items(
                    user_embeddings,
                    item_embeddings,
                    k,
                    exclude=[list(h) for h in batch] if exclude_seen else None,
                    special_ids=self.config.special_ids,
                    item_chunk_size=item_chunk_size,
                )
                all_indices.append(indices.cpu())
                all_scores.append(scores.cpu())
        finally:
            self.train(was_training)
        return torch.cat(all_indices), torch.cat(all_scores)
