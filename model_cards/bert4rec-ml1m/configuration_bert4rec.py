"""BERT4Rec configuration."""

from __future__ import annotations

from .configuration_common import TransformerRecommenderConfig


class BERT4RecConfig(TransformerRecommenderConfig):
    r"""
    Configuration of [`BERT4RecModel`] / [`BERT4RecForSequentialRecommendation`] (Sun et al., CIKM 2019,
    "BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from Transformer").

    Takes every argument of [`SequentialRecommenderConfig`] (vocabulary, `loss_type` and its parameters) and
    [`TransformerRecommenderConfig`] (blocks, heads, dropouts), with BERT's defaults where they differ from SASRec's.

    Args:
        mask_probability (`float`, *optional*, defaults to 0.2):
            Share of items the cloze collator replaces by the mask token during training (the paper's rho; 0.2 is
            its choice for ML-1M). Must be in (0, 1].
        last_item_mask_probability (`float`, *optional*, defaults to 0.0):
            Share of training rows that mask only their most recent item instead of random ones: exactly the
            prediction-time task (mask token after the history). The original BERT4Rec code adds such rows too;
            they speed up learning the next item. Must be in [0, 1].
        layer_norm_position (`str`, *optional*, defaults to `"post"`): BERT's post-LN blocks.
        hidden_act (`str`, *optional*, defaults to `"gelu"`): Feed-forward activation, as in the paper.
        scale_embeddings (`bool`, *optional*, defaults to `False`): BERT adds raw item and position embeddings.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.1): The paper's dropout rate.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.1): The paper's dropout rate.

    Example:

    ```python
    >>> from hf_rec import BERT4RecConfig, BERT4RecForSequentialRecommendation
    >>> config = BERT4RecConfig(vocab_size=3708, hidden_size=64, max_position_embeddings=200)
    >>> model = BERT4RecForSequentialRecommendation(config)
    ```
    """

    model_type = "bert4rec"

    def __init__(
        self,
        mask_probability: float = 0.2,
        last_item_mask_probability: float = 0.0,
        layer_norm_position: str = "post",
        hidden_act: str = "gelu",
        scale_embeddings: bool = False,
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        **kwargs,
    ):
        if (
            isinstance(mask_probability, bool)
            or not isinstance(mask_probability, (int, float))
            or not 0.0 < mask_probability <= 1.0
        ):
            raise ValueError(f"mask_probability must be a number in (0, 1], got {mask_probability!r}")
        if (
            isinstance(last_item_mask_probability, bool)
            or not isinstance(last_item_mask_probability, (int, float))
            or not 0.0 <= last_item_mask_probability <= 1.0
        ):
            raise ValueError(
                f"last_item_mask_probability must be a number in [0, 1], got {last_item_mask_probability!r}"
            )
        super().__init__(
            layer_norm_position=layer_norm_position,
            hidden_act=hidden_act,
            scale_embeddings=scale_embeddings,
            hidden_dropout_prob=hidden_dropout_prob,
            attention_probs_dropout_prob=attention_probs_dropout_prob,
            **kwargs,
        )
        if self.max_position_embeddings < 2:
            raise ValueError(
                f"max_position_embeddings must be >= 2 for BERT4Rec (one position holds the mask token at "
                f"prediction time), got {self.max_position_embeddings!r}"
            )
        self.mask_probability = float(mask_probability)
        self.last_item_mask_probability = float(last_item_mask_probability)


__all__ = ["BERT4RecConfig"]
