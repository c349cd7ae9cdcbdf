"""GRU4Rec configuration."""

from __future__ import annotations

from .configuration_common import SequentialRecommenderConfig, _check_int, _check_probability


class GRU4RecConfig(SequentialRecommenderConfig):
    r"""
    Configuration of [`GRU4RecModel`] / [`GRU4RecForSequentialRecommendation`] (Hidasi et al., ICLR 2016,
    "Session-based Recommendations with Recurrent Neural Networks"; trained here with full cross-entropy as in
    Hidasi & Czapp, RecSys 2023, and Klenitskiy & Vasilev, RecSys 2023).

    Takes every argument of [`SequentialRecommenderConfig`]. `hidden_size` is the item embedding size, i.e. the
    space in which items are scored; `max_position_embeddings` only bounds how many recent items are read.

    Args:
        num_hidden_layers (`int`, *optional*, defaults to 1): Stacked GRU layers.
        gru_hidden_size (`int`, *optional*): Units per GRU layer. Defaults to `hidden_size`; when it differs, a linear
            projection maps GRU states to `hidden_size` before scoring.
        embedding_dropout (`float`, *optional*, defaults to 0.0): Dropout on item embeddings before the GRU.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.0): Dropout between GRU layers and on the GRU output.

    Example:

    ```python
    >>> from hf_rec import GRU4RecConfig, GRU4RecForSequentialRecommendation
    >>> config = GRU4RecConfig(vocab_size=3708, hidden_size=64, max_position_embeddings=200)
    >>> model = GRU4RecForSequentialRecommendation(config)
    ```
    """

    model_type = "gru4rec"
    training_objective = "causal"

    def __init__(
        self,
        num_hidden_layers: int = 1,
        gru_hidden_size: int | None = None,
        embedding_dropout: float = 0.0,
        hidden_dropout_prob: float = 0.0,
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


__all__ = ["GRU4RecConfig"]
