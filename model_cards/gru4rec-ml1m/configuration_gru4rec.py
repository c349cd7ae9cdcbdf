"""GRU4Rec configuration."""

from __future__ import annotations

from .configuration_common import RecurrentRecommenderConfig


class GRU4RecConfig(RecurrentRecommenderConfig):
    r"""
    Configuration of [`GRU4RecModel`] / [`GRU4RecForSequentialRecommendation`] (Hidasi et al., ICLR 2016,
    "Session-based Recommendations with Recurrent Neural Networks"; trained here with full cross-entropy as in
    Hidasi & Czapp, RecSys 2023, and Klenitskiy & Vasilev, RecSys 2023).

    Takes every argument of [`SequentialRecommenderConfig`] and [`RecurrentRecommenderConfig`]. `hidden_size` is the item embedding size, i.e. the
    space in which items are scored; `max_history_length` only bounds how many recent items are read.

    Args:
        num_hidden_layers (`int`, *optional*, defaults to 1): Stacked GRU layers.
        gru_hidden_size (`int`, *optional*): Units per GRU layer. Defaults to `hidden_size`; when it differs, a linear
            projection maps GRU states to `hidden_size` before scoring.
        embedding_dropout (`float`, *optional*, defaults to 0.0): Dropout on item embeddings before the GRU.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.0): Dropout between GRU layers and on the GRU output.

    Example:

    ```python
    >>> from hf_rec import GRU4RecConfig, GRU4RecForSequentialRecommendation
    >>> config = GRU4RecConfig(vocab_size=3708, hidden_size=64, max_history_length=200)
    >>> model = GRU4RecForSequentialRecommendation(config)
    ```
    """

    model_type = "gru4rec"

    _default_embedding_dropout = 0.0
    _default_hidden_dropout = 0.0

    def __init__(self, **kwargs):  # an explicit __init__ keeps transformers from turning the class into a dataclass
        super().__init__(**kwargs)

__all__ = ["GRU4RecConfig"]
