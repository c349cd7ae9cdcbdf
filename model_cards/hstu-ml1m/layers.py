"""Layers shared by hf_rec's model families: the self-attention block stack (SASRec, BERT4Rec, the text model), the
left-padded GRU (GRU4Rec, NARM), reversed positions and weight init.

A same-folder sibling of the `modeling_<family>.py` files: imported as `from .layers import ...`, so `save_pretrained`
exports it with them and a saved model loads with `trust_remote_code=True` where hf_rec is absent. Imports only torch
and transformers. Conventions: inputs are LEFT-padded (the most recent item is at position -1), index 0 is padding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

# ----------------------------------------------------------------------------------------------------------------
# Self-attention blocks (SASRec, BERT4Rec, the text model). Projections are named q/k/v/o_proj and up/down_proj so
# that LoRA target names are predictable.
# ----------------------------------------------------------------------------------------------------------------


def causal_mask(seq_len: int, device) -> torch.Tensor:
    """`[L, L]` bool: query `i` (row) may read key `j` (column) when `j <= i`. Built from index comparisons, which
    every exporter (ONNX included) handles, rather than `tril` / `eye`."""
    positions = torch.arange(seq_len, device=device)
    return positions[None, :] <= positions[:, None]


def build_attention_mask(attention_mask: torch.Tensor, is_causal: bool, dtype: torch.dtype) -> torch.Tensor:
    """`[batch, seq]` 1/0 padding mask -> `[batch, 1, seq, seq]` additive mask for the attention interface.

    Every position may always attend to itself, so padding rows are never all-masked (which would give NaN);
    real positions never see padding, so padding never changes their outputs.
    """
    seq_len = attention_mask.shape[1]
    allowed = attention_mask.bool()[:, None, None, :]  # [B, 1, 1, L] keys that are items
    if is_causal:
        allowed = allowed & causal_mask(seq_len, attention_mask.device)  # [B, 1, L, L]
    positions = torch.arange(seq_len, device=attention_mask.device)
    allowed = allowed | (positions[None, :] == positions[:, None])
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

    def __init__(self, config):
        super().__init__()
        self.config = config
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

    def __init__(self, config):
        super().__init__()
        self.layer_norm_position = config.layer_norm_position
        self.attention = RecAttention(config)
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
            [RecTransformerLayer(config) for _ in range(config.num_hidden_layers)]
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

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        feature_embeddings: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): Left-padded item indices.
            attention_mask (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): 1 for items (and mask
                tokens), 0 for padding. Defaults to `input_ids != pad_token_id`.
            feature_embeddings (`torch.FloatTensor` of shape `(batch_size, seq_len, hidden_size)`, *optional*): Side
                information added to the item inputs (the head's `features` module computes it).
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        hidden_states = self.encoder(self.embeddings(input_ids, attention_mask, feature_embeddings), attention_mask)
        return BaseModelOutput(last_hidden_state=hidden_states)


def reversed_position_ids(seq_len: int, max_positions: int, device) -> torch.Tensor:
    """Position 0 is the most recent item: with left padding this is the same for every row and every padded length,
    so outputs do not depend on how much padding a batch has."""
    if seq_len > max_positions:
        raise ValueError(
            f"input has {seq_len} positions but the model reads at most max_position_embeddings={max_positions}; "
            "truncate histories to their most recent items"
        )
    return torch.arange(seq_len, device=device).flip(0)  # not arange(L - 1, -1, -1): exporters trace that badly


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
    # (no `%`: the ONNX exporter cannot take a remainder by a dynamic length)
    to_right = positions + num_pad[:, None]  # right-padded column j reads left-padded column j + pad
    to_right = torch.where(to_right >= seq_len, to_right - seq_len, to_right)
    right_padded = inputs.gather(1, to_right[..., None].expand(-1, -1, input_size))  # [B, L, E]
    outputs, _ = gru(right_padded)  # [B, L, H]
    to_left = positions - num_pad[:, None]
    to_left = torch.where(to_left < 0, to_left + seq_len, to_left)
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
