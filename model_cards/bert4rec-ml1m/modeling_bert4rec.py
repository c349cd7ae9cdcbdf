"""BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from Transformer
(Sun et al., CIKM 2019, arXiv:1904.06690).

Item embeddings + learned position embeddings -> LayerNorm and dropout (as BERT) -> bidirectional self-attention
blocks (post-LN) -> scores through the tied item embedding. Trained with the cloze task: random items are replaced
by the mask token and predicted from both sides (`training_objective = "cloze"`, batches from the cloze collator).
To recommend, the mask token is appended after the history and its output scores the next item.

Departures from the paper, each noted: positions are counted from the most recent item (so left padding never
shifts them); the output head is the tied item embedding without the paper's extra GELU/LayerNorm projection and
item bias (shared with every hf_rec family); any `loss_type` of hf_rec can replace the paper's full softmax.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.utils import logging

from .configuration_bert4rec import BERT4RecConfig
from .layers import RecTransformerEncoder, RecTransformerModelMixin, reversed_position_ids
from .features import build_feature_embeddings, with_features
from .modeling_common import (
    SequentialRecommenderMixin,
    SequentialRecommenderOutput,
    SequentialRecommenderPreTrainedModel,
)

logger = logging.get_logger(__name__)


class BERT4RecEmbeddings(nn.Module):
    """Item embedding + position embedding, then LayerNorm and dropout as in BERT; padding zeroed."""

    def __init__(self, config: BERT4RecConfig):
        super().__init__()
        self.item_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.scale = config.hidden_size**0.5 if config.scale_embeddings else 1.0
        self.max_positions = config.max_position_embeddings

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, feature_embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        position_ids = reversed_position_ids(input_ids.shape[1], self.max_positions, input_ids.device)  # [L]
        items = with_features(self.item_embeddings(input_ids), feature_embeddings)  # scaled with the item they describe
        embeddings = items * self.scale + self.position_embeddings(position_ids)[None]
        embeddings = self.dropout(self.layer_norm(embeddings))  # [B, L, H]
        return embeddings * attention_mask[..., None].to(embeddings.dtype)


class BERT4RecPreTrainedModel(SequentialRecommenderPreTrainedModel):
    config_class = BERT4RecConfig
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = False


class BERT4RecModel(RecTransformerModelMixin, BERT4RecPreTrainedModel):
    """The BERT4Rec encoder: `[B, L]` item indices (some may be the mask token) -> `[B, L, H]` hidden states,
    every position attending to every item of its row (bidirectional). `forward`: `embeddings` -> `encoder`
    (from `RecTransformerModelMixin`)."""

    def __init__(self, config: BERT4RecConfig):
        super().__init__(config)
        self.embeddings = BERT4RecEmbeddings(config)
        self.encoder = RecTransformerEncoder(config, is_causal=False)
        self.post_init()


class BERT4RecForSequentialRecommendation(SequentialRecommenderMixin, BERT4RecPreTrainedModel):
    """BERT4Rec with its scoring head: the tied item embedding scores every item at masked positions (training) or
    at the mask token appended after the history (prediction)."""

    training_objective = "cloze"
    _tied_weights_keys = {"item_head.weight": "model.embeddings.item_embeddings.weight"}

    def __init__(self, config: BERT4RecConfig):
        super().__init__(config)
        self.model = BERT4RecModel(config)
        self.item_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.features = build_feature_embeddings(config)
        self.post_init()

    def max_history_length(self) -> int:
        """One position is kept for the mask token appended at prediction time."""
        return self.config.max_position_embeddings - 1

    def append_mask_token(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded histories -> the same histories followed by the mask token (the next item to predict).

        When the batch already fills `max_position_embeddings` columns it is shifted one step left, dropping the
        oldest column, so at most `max_position_embeddings - 1` history items are read.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): Left-padded item indices.
            attention_mask (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): 1 for items.

        Returns:
            `(input_ids, attention_mask)` of shape `(batch_size, min(seq_len, max_position_embeddings - 1) + 1)`.
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        keep = self.config.max_position_embeddings - 1
        if input_ids.shape[1] > keep:
            input_ids, attention_mask = input_ids[:, -keep:], attention_mask[:, -keep:]
        mask_column = torch.full_like(input_ids[:, :1], self.config.mask_token_id)  # [B, 1]
        input_ids = torch.cat([input_ids, mask_column], dim=1)
        attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
        return input_ids, attention_mask

    def _prediction_hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs) -> torch.Tensor:
        """The next item is read at the mask token appended after each history."""
        input_ids, attention_mask = self.append_mask_token(input_ids, attention_mask)
        features = inputs.get("interaction_features")
        if features is not None:  # aligned with the history: the same columns kept, none for the mask token
            features = features[:, -(input_ids.shape[1] - 1) :]
            inputs["interaction_features"] = torch.cat([features, torch.zeros_like(features[:, :1])], dim=1)
        return self._hidden_states(input_ids, attention_mask, **inputs)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequentialRecommenderOutput:
        r"""`SequentialRecommenderMixin.forward` on the cloze task. With `labels`, `input_ids` has some items replaced
        by `config.mask_token_id` and `labels` holds the original item at those positions, -100 elsewhere (a label
        where the input is not the mask token is ignored, with a warning: the loss is taken only where the item was
        hidden). Without `labels`, `input_ids` are plain histories and the next item is scored at the mask token
        appended after each (`_prediction_hidden_states`)."""
        if labels is not None:
            unmasked = input_ids != self.config.mask_token_id
            if bool((unmasked & (labels != -100)).any()):
                logger.warning_once("BERT4Rec ignores labels at positions whose input is not the mask token")
                labels = labels.masked_fill(unmasked, -100)
        return super().forward(input_ids, attention_mask, labels, **kwargs)


__all__ = ["BERT4RecModel", "BERT4RecPreTrainedModel", "BERT4RecForSequentialRecommendation"]
