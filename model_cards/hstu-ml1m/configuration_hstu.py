"""HSTU configuration."""

from __future__ import annotations

from .configuration_common import SequentialRecommenderConfig, _check_int, _check_probability


class HSTUConfig(SequentialRecommenderConfig):
    r"""
    Configuration of [`HSTUModel`] / [`HSTUForSequentialRecommendation`] (Zhai et al., ICML 2024, "Actions Speak
    Louder than Words: Trillion-Parameter Sequential Transducers for Generative Recommendations", arXiv:2402.17152).

    Takes every argument of [`SequentialRecommenderConfig`] (vocabulary, `loss_type` and its parameters). The
    defaults are those of Meta's reference code (`generative_recommenders/research`, `hstu_encoder` and the ML-1M gin
    configs): 2 blocks x 1 head, dropout 0.2, L2-normalised user and item vectors scored with temperature 0.05.

    Args:
        num_hidden_layers (`int`, *optional*, defaults to 2):
            Number of HSTU blocks (`num_blocks`).
        num_attention_heads (`int`, *optional*, defaults to 1):
            Heads per block (`num_heads`).
        attention_dim (`int`, *optional*):
            Query/key size per head (`dqk`). Defaults to `hidden_size // num_attention_heads`.
        linear_dim (`int`, *optional*):
            Value/gate (U, V) size per head (`dv`). Defaults to `hidden_size // num_attention_heads`.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.2):
            Dropout on the input embeddings (the reference's `dropout_rate`).
        linear_dropout_prob (`float`, *optional*, defaults to 0.2):
            Dropout before each block's output projection (the reference's `linear_dropout_rate`).
        layer_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of the (un-affine) LayerNorms in each block.
        use_time_bias (`bool`, *optional*, defaults to `False`):
            Add a learned bias per bucket of log time gap to the relative position bias. Needs `timestamps` in
            `forward`; without them only the position bias is used. The reference enables it (its data always carries
            timestamps); it is off by default here because it needs data with a real time for every interaction
            (`data.timestamps: true`), and a parameter that never gets a gradient breaks distributed (DDP) training.
        num_time_buckets (`int`, *optional*, defaults to 128):
            Largest time bucket; gaps are bucketed as `floor(ln(max(1, |gap|)) / 0.301)` clamped to
            `[0, num_time_buckets]`, so there are `num_time_buckets + 1` time biases.
        score_temperature (`float`, *optional*, defaults to 0.05):
            As in [`SequentialRecommenderConfig`]; the reference scores by cosine similarity / 0.05 (L2-normalised
            user embedding and item embeddings). `None` scores by the raw dot product.

    Example:

    ```python
    >>> from hf_rec import HSTUConfig, HSTUForSequentialRecommendation
    >>> config = HSTUConfig(vocab_size=3708, hidden_size=50, max_position_embeddings=200)
    >>> model = HSTUForSequentialRecommendation(config)
    ```
    """

    model_type = "hstu"

    def __init__(
        self,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 1,
        attention_dim: int | None = None,
        linear_dim: int | None = None,
        hidden_dropout_prob: float = 0.2,
        linear_dropout_prob: float = 0.2,
        layer_norm_eps: float = 1e-6,
        use_time_bias: bool = False,
        num_time_buckets: int = 128,
        score_temperature: float | None = 0.05,
        **kwargs,
    ):
        super().__init__(score_temperature=score_temperature, **kwargs)
        _check_int("num_hidden_layers", num_hidden_layers, minimum=1)
        _check_int("num_attention_heads", num_attention_heads, minimum=1)
        if attention_dim is None or linear_dim is None:
            if self.hidden_size % num_attention_heads != 0:
                raise ValueError(
                    f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={num_attention_heads}; "
                    "set attention_dim and linear_dim (per-head sizes) explicitly"
                )
            per_head = self.hidden_size // num_attention_heads
            attention_dim = per_head if attention_dim is None else attention_dim
            linear_dim = per_head if linear_dim is None else linear_dim
        _check_int("attention_dim", attention_dim, minimum=1)
        _check_int("linear_dim", linear_dim, minimum=1)
        _check_probability("hidden_dropout_prob", hidden_dropout_prob)
        _check_probability("linear_dropout_prob", linear_dropout_prob)
        if isinstance(layer_norm_eps, bool) or not isinstance(layer_norm_eps, (int, float)) or not layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be a number > 0, got {layer_norm_eps!r}")
        if not isinstance(use_time_bias, bool):
            raise ValueError(f"use_time_bias must be true or false, got {use_time_bias!r}")
        _check_int("num_time_buckets", num_time_buckets, minimum=1)
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.attention_dim = attention_dim
        self.linear_dim = linear_dim
        self.hidden_dropout_prob = float(hidden_dropout_prob)
        self.linear_dropout_prob = float(linear_dropout_prob)
        self.layer_norm_eps = float(layer_norm_eps)
        self.use_time_bias = use_time_bias
        self.num_time_buckets = num_time_buckets


__all__ = ["HSTUConfig"]
