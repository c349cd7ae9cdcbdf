"""SASRec: Self-Attentive Sequential Recommendation (Kang & McAuley, ICDM 2018, arXiv:1808.09781).

Item embeddings + learned position embeddings -> causal self-attention blocks -> scores through the tied item
embedding. Departures from the paper, each configurable: positions are counted from the most recent item (so
left padding never shifts them), and the default loss is full cross-entropy (`loss_type="ce"`, "SASRec+").
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration_sasrec import SASRecConfig
from .layers import RecTransformerEncoder, RecTransformerModelMixin, reversed_position_ids
from .features import build_feature_embeddings, with_features
from .modeling_common import SequentialRecommenderMixin, SequentialRecommenderPreTrainedModel


class SASRecEmbeddings(nn.Module):
    """Item embedding (scaled by sqrt(hidden)) + position embedding, dropout, padding zeroed."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.item_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.scale = config.hidden_size**0.5 if config.scale_embeddings else 1.0
        self.max_positions = config.max_position_embeddings

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, feature_embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        position_ids = reversed_position_ids(input_ids.shape[1], self.max_positions, input_ids.device)  # [L]
        items = with_features(self.item_embeddings(input_ids), feature_embeddings)  # scaled with the item they describe
        embeddings = items * self.scale + self.position_embeddings(position_ids)[None]
        return self.dropout(embeddings) * attention_mask[..., None].to(embeddings.dtype)  # [B, L, H]


class SASRecPreTrainedModel(SequentialRecommenderPreTrainedModel):
    config_class = SASRecConfig
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = False


class SASRecModel(RecTransformerModelMixin, SASRecPreTrainedModel):
    """The SASRec encoder: `[B, L]` item indices -> `[B, L, H]` hidden states (causal). `forward`:
    `embeddings` -> `encoder` (from `RecTransformerModelMixin`)."""

    def __init__(self, config: SASRecConfig):
        super().__init__(config)
        self.embeddings = SASRecEmbeddings(config)
        self.encoder = RecTransformerEncoder(config, is_causal=True)
        self.post_init()


class SASRecForSequentialRecommendation(SequentialRecommenderMixin, SASRecPreTrainedModel):
    """SASRec with its scoring head: the tied item embedding scores every item for the next position."""

    training_objective = "causal"
    _tied_weights_keys = {"item_head.weight": "model.embeddings.item_embeddings.weight"}

    def __init__(self, config: SASRecConfig):
        super().__init__(config)
        self.model = SASRecModel(config)
        self.item_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.features = build_feature_embeddings(config)
        self.post_init()


__all__ = ["SASRecModel", "SASRecPreTrainedModel", "SASRecForSequentialRecommendation"]
