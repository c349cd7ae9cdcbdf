"""SASRec configuration."""

from __future__ import annotations

from .configuration_common import TransformerRecommenderConfig


class SASRecConfig(TransformerRecommenderConfig):
    r"""
    Configuration of [`SASRecModel`] / [`SASRecForSequentialRecommendation`] (Kang & McAuley, ICDM 2018,
    "Self-Attentive Sequential Recommendation").

    Takes every argument of [`SequentialRecommenderConfig`] (vocabulary, `loss_type` and its parameters) and
    [`TransformerRecommenderConfig`] (blocks, heads, dropouts, `layer_norm_position`).

    The paper's setup is `loss_type="bce"`, `layer_norm_position="paper"`; the strong default is
    `loss_type="ce"` (full softmax, "SASRec+" of Klenitskiy & Vasilev, RecSys 2023).

    Example:

    ```python
    >>> from hf_rec import SASRecConfig, SASRecForSequentialRecommendation
    >>> config = SASRecConfig(vocab_size=3708, hidden_size=64, max_position_embeddings=200)
    >>> model = SASRecForSequentialRecommendation(config)
    ```
    """

    model_type = "sasrec"

    def __init__(self, **kwargs):  # an explicit __init__ keeps transformers from turning the class into a dataclass
        super().__init__(**kwargs)


__all__ = ["SASRecConfig"]
