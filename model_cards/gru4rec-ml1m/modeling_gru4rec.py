"""GRU4Rec: Session-based Recommendations with Recurrent Neural Networks (Hidasi et al., ICLR 2016,
arXiv:1511.06939), in its modern full-softmax form (Hidasi & Czapp, "The effect of third party implementations on
reproducibility", RecSys 2023; Klenitskiy & Vasilev, "Turning Dross Into Gold Loss: is BERT4Rec really better than
SASRec?", RecSys 2023).

Item embeddings -> dropout -> GRU layers -> dropout (-> linear projection when the GRU width differs from the
embedding size) -> scores through the tied item embedding. Trained on every position with next-item labels
(`training_objective = "causal"`). Departures from the paper: whole histories are batched (left-padded, the GRU never
reads the padding) instead of session-parallel mini-batches, and the default loss is full cross-entropy instead of
BPR/TOP1 with in-batch negatives (any hf_rec `loss_type` can be chosen).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from .configuration_gru4rec import GRU4RecConfig
from .layers import left_padded_gru, recommender_gru
from .features import build_feature_embeddings, with_features
from .modeling_common import SequentialRecommenderMixin, SequentialRecommenderPreTrainedModel


class GRU4RecPreTrainedModel(SequentialRecommenderPreTrainedModel):
    config_class = GRU4RecConfig
    supports_gradient_checkpointing = False


class GRU4RecModel(GRU4RecPreTrainedModel):
    """The GRU4Rec encoder: `[B, L]` left-padded item indices -> `[B, L, gru_hidden_size]` GRU states (causal)."""

    def __init__(self, config: GRU4RecConfig):
        super().__init__(config)
        self.item_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.gru = recommender_gru(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.item_embeddings

    def set_input_embeddings(self, value):
        self.item_embeddings = value

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
            attention_mask (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): 1 for items, 0 for
                padding. Defaults to `input_ids != pad_token_id`.
            feature_embeddings (`torch.FloatTensor` of shape `(batch_size, seq_len, hidden_size)`, *optional*): Side
                information added to the item inputs (the head's `features` module computes it).

        Returns:
            [`BaseModelOutput`] with `last_hidden_state` `(batch_size, seq_len, gru_hidden_size)`, zero at padding.
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        embeddings = self.embedding_dropout(with_features(self.item_embeddings(input_ids), feature_embeddings))  # [B, L, E]
        return BaseModelOutput(last_hidden_state=left_padded_gru(self.gru, embeddings, attention_mask))


class GRU4RecForSequentialRecommendation(SequentialRecommenderMixin, GRU4RecPreTrainedModel):
    """GRU4Rec with its scoring head: GRU state (projected to the embedding size if needed) dot the tied item
    embedding."""

    training_objective = "causal"
    _tied_weights_keys = {"item_head.weight": "model.item_embeddings.weight"}

    def __init__(self, config: GRU4RecConfig):
        super().__init__(config)
        self.model = GRU4RecModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.output_proj = (
            nn.Linear(config.gru_hidden_size, config.hidden_size)
            if config.gru_hidden_size != config.hidden_size
            else nn.Identity()
        )
        self.item_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.features = build_feature_embeddings(config)
        self.post_init()

    def _hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs) -> torch.Tensor:
        states = self._encode(input_ids, attention_mask, **inputs).last_hidden_state  # [B, L, gru_hidden_size]
        return self.output_proj(self.dropout(states))  # [B, L, H]


__all__ = ["GRU4RecModel", "GRU4RecPreTrainedModel", "GRU4RecForSequentialRecommendation"]
