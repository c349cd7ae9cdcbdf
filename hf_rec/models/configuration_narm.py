"""NARM configuration."""

from __future__ import annotations

from .configuration_common import SequentialRecommenderConfig, _check_int, _check_probability


class NARMConfig(SequentialRecommenderConfig):
    r"""
    Configuration of [`NARMModel`] / [`NARMForSequentialRecommendation`] (Li et al., CIKM 2017, "Neural Attentive
    Session-based Recommendation").

    Takes every argument of [`SequentialRecommenderConfig`]. `hidden_size` is the item embedding size (the paper's
    50), in which items are scored; `max_position_embeddings` only bounds how many recent items are read.

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
    >>> config = NARMConfig(vocab_size=3708, hidden_size=50, gru_hidden_size=100, max_position_embeddings=200)
    >>> model = NARMForSequentialRecommendation(config)
    ```
    """

    model_type = "narm"
    training_objective = "causal"

    def __init__(
        self,
        num_hidden_layers: int = 1,
        gru_hidden_size: int | None = None,
        embedding_dropout: float = 0.25,
        hidden_dropout_prob: float = 0.5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if gru_hidden_size is None:
            gru_hidden_size = self.hidden_size
        _check_int("num_hidden_layers", num_hidden_layers, minimum=1)
        _check_int("gru_hidden_size", gru_hidden_size, minimum=1)
        _check_probability("embedding_dropout", embedding_dropout)
        _check_probability("hidden_dropout_prob", hidden_dropout_prob)
        self.num_hidden_layers = num_hidden_layers
        self.gru_hidden_size = gru_hidden_size
        self.embedding_dropout = float(embedding_dropout)
        self.hidden_dropout_prob = float(hidden_dropout_prob)


__all__ = ["NARMConfig"]
