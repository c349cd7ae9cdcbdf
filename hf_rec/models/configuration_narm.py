"""NARM configuration."""

from __future__ import annotations

from .configuration_common import RecurrentRecommenderConfig


class NARMConfig(RecurrentRecommenderConfig):
    r"""
    Configuration of [`NARMModel`] / [`NARMForSequentialRecommendation`] (Li et al., CIKM 2017, "Neural Attentive
    Session-based Recommendation").

    Takes every argument of [`SequentialRecommenderConfig`] and [`RecurrentRecommenderConfig`]. `hidden_size` is the item embedding size (the paper's
    50), in which items are scored; `max_history_length` only bounds how many recent items are read.

    Args:
        num_hidden_layers (`int`, *optional*, defaults to 1): Stacked GRU layers of the encoder.
        gru_hidden_size (`int`, *optional*): Units per GRU layer (the paper's 100). Defaults to `hidden_size`.
        embedding_dropout (`float`, *optional*, defaults to 0.25): Dropout between the item embedding and the GRU,
            as in the paper.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.5): Dropout between the encoder and the bilinear
            decoder, as in the paper (also between stacked GRU layers).

    Example:

    ```python
    >>> from hf_rec import NARMConfig, NARMForSequentialRecommendation
    >>> config = NARMConfig(vocab_size=3708, hidden_size=50, gru_hidden_size=100, max_history_length=200)
    >>> model = NARMForSequentialRecommendation(config)
    ```
    """

    model_type = "narm"

    _default_embedding_dropout = 0.25
    _default_hidden_dropout = 0.5

    def __init__(self, **kwargs):  # an explicit __init__ keeps transformers from turning the class into a dataclass
        super().__init__(**kwargs)

__all__ = ["NARMConfig"]
