"""NARM: Neural Attentive Session-based Recommendation (Li et al., CIKM 2017, arXiv:1711.04725).

Item embeddings -> dropout (0.25) -> GRU. The global encoder is the last GRU state h_t; the local encoder attends
over the states h_1..h_t with the last one as query, alpha_tj = v^T sigmoid(A1 h_t + A2 h_j), c_local = sum_j
alpha_tj h_j. The session representation c_t = [h_t; c_local] goes through dropout (0.5) and the bilinear decoder:
score_i = emb_i^T B c_t, with emb the (tied) item embedding. The user embedding is B c_t at the last position.

Training is causal on every position: for each position t the attention runs over the states 1..t only (a
`[B, L, L]` mask with causality and padding), which equals the paper's prefix augmentation (every prefix of a
session is a training example) in one pass. Its cost is a `[batch, seq_len, seq_len, gru_hidden_size]`
intermediate (the sigmoid of A1 h_t + A2 h_j does not factor), so long histories need smaller batches; prediction
computes only the last position (`[batch, 1, seq_len, gru_hidden_size]`). As in the paper, the attention weights are
not normalised (no softmax). The default loss is the paper's full cross-entropy over the catalogue; any hf_rec
`loss_type` can be chosen instead.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from .configuration_narm import NARMConfig
from .layers import causal_mask, left_padded_gru, recommender_gru
from .features import build_feature_embeddings, with_features
from .modeling_common import SequentialRecommenderMixin, SequentialRecommenderPreTrainedModel


class NARMAttention(nn.Module):
    """NARM's local encoder: additive attention of each query state over the GRU states it may see."""

    def __init__(self, config: NARMConfig):
        super().__init__()
        self.q_proj = nn.Linear(config.gru_hidden_size, config.gru_hidden_size, bias=False)  # A1, on the query h_t
        self.k_proj = nn.Linear(config.gru_hidden_size, config.gru_hidden_size, bias=False)  # A2, on the states h_j
        self.energy_proj = nn.Linear(config.gru_hidden_size, 1, bias=False)  # v

    def forward(self, queries: torch.Tensor, states: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        # queries: [B, T, H]; states: [B, L, H]; allowed: [B, T, L] bool (which states each query attends to)
        query = self.q_proj(queries)[:, :, None, :]  # [B, T, 1, H]
        key = self.k_proj(states)[:, None, :, :]  # [B, 1, L, H]
        alpha = self.energy_proj(torch.sigmoid(query + key)).squeeze(-1)  # [B, T, L]
        alpha = alpha * allowed.to(alpha.dtype)  # unnormalised, as in the paper; masked states contribute 0
        return alpha @ states  # [B, T, H]


class NARMPreTrainedModel(SequentialRecommenderPreTrainedModel):
    config_class = NARMConfig
    supports_gradient_checkpointing = False


class NARMModel(NARMPreTrainedModel):
    """The NARM encoder: `[B, L]` left-padded item indices -> session representations c_t = [c_global; c_local]
    of shape `[B, L, 2 * gru_hidden_size]` (causal)."""

    def __init__(self, config: NARMConfig):
        super().__init__(config)
        self.item_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.gru = recommender_gru(config)
        self.attention = NARMAttention(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.item_embeddings

    def set_input_embeddings(self, value):
        self.item_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        last_position_only: bool = False,
        feature_embeddings: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): Left-padded item indices.
            attention_mask (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): 1 for items, 0 for
                padding. Defaults to `input_ids != pad_token_id`.
            last_position_only (`bool`, *optional*, defaults to `False`): Compute the session representation of the
                last position only (prediction), instead of every position (causal training).
            feature_embeddings (`torch.FloatTensor` of shape `(batch_size, seq_len, hidden_size)`, *optional*): Side
                information added to the item inputs (the head's `features` module computes it).

        Returns:
            [`BaseModelOutput`] with `last_hidden_state` `(batch_size, seq_len or 1, 2 * gru_hidden_size)`, zero at
            padding.
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        embeddings = self.embedding_dropout(with_features(self.item_embeddings(input_ids), feature_embeddings))  # [B, L, E]
        states = left_padded_gru(self.gru, embeddings, attention_mask)  # [B, L, H], zero at padding
        seq_len = input_ids.shape[1]
        allowed = attention_mask.bool()[:, None, :]  # [B, 1, L]: a query never sees padding
        if last_position_only:
            queries, query_mask = states[:, -1:], attention_mask[:, -1:]  # [B, 1, H]
        else:
            allowed = allowed & causal_mask(seq_len, input_ids.device)[None]  # [B, L, L]: position t sees states 1..t
            queries, query_mask = states, attention_mask
        c_local = self.attention(queries, states, allowed)  # [B, T, H]
        session = torch.cat([queries, c_local], dim=-1)  # [B, T, 2H]: [c_global; c_local]
        return BaseModelOutput(last_hidden_state=session * query_mask[..., None].to(session.dtype))


class NARMForSequentialRecommendation(SequentialRecommenderMixin, NARMPreTrainedModel):
    """NARM with its bilinear decoder: score_i = emb_i^T B c with the tied item embedding emb."""

    training_objective = "causal"
    _tied_weights_keys = {"item_head.weight": "model.item_embeddings.weight"}

    def __init__(self, config: NARMConfig):
        super().__init__(config)
        self.model = NARMModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.bilinear_proj = nn.Linear(2 * config.gru_hidden_size, config.hidden_size, bias=False)  # B: [E, 2H]
        self.item_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.features = build_feature_embeddings(config)
        self.post_init()

    def _hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs) -> torch.Tensor:
        """`[B, L]` -> `[B, L, E]` (or `[B, 1, E]` with `last_position_only=True`): B c_t, whose dot product with an
        item embedding is its score."""
        session = self._encode(input_ids, attention_mask, **inputs).last_hidden_state
        return self.bilinear_proj(self.dropout(session))

    def _prediction_hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs) -> torch.Tensor:
        """`[B, 1, E]`: only the last position is computed (`forward` without labels, user embeddings)."""
        return self._hidden_states(input_ids, attention_mask, last_position_only=True, **inputs)


__all__ = ["NARMModel", "NARMPreTrainedModel", "NARMForSequentialRecommendation"]
