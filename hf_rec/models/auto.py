"""Auto-class registration: `AutoConfig` / `AutoModel` know every hf_rec family, and
`AutoModelForSequentialRecommendation` maps a config to its recommendation head."""

from __future__ import annotations

from collections import OrderedDict

from transformers import AutoConfig, AutoModel
from transformers.models.auto.auto_factory import _BaseAutoModelClass, _LazyAutoMapping
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES


class AutoModelForSequentialRecommendation(_BaseAutoModelClass):
    """Loads any hf_rec recommender (`XForSequentialRecommendation`) from a config or a checkpoint.

    Example:

    ```python
    >>> from hf_rec import AutoModelForSequentialRecommendation
    >>> model = AutoModelForSequentialRecommendation.from_pretrained("path/or/repo")
    ```
    """

    _model_mapping = _LazyAutoMapping(CONFIG_MAPPING_NAMES, OrderedDict())


# model_type -> (config class, recommendation head class); filled by `register_family`.
FAMILIES: dict[str, tuple[type, type]] = {}


def register_family(config_class, base_model_class, head_class) -> None:
    """Register one family with AutoConfig, AutoModel (base encoder) and the recommendation auto class, and mark
    the classes so `save_pretrained` writes `auto_map` and exports their source files for `trust_remote_code`.

    For `trust_remote_code` loading the exported `AutoModel` entry points at the head class, because a machine
    without hf_rec has no `AutoModelForSequentialRecommendation`.
    """
    FAMILIES[config_class.model_type] = (config_class, head_class)
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, base_model_class, exist_ok=True)
    AutoModelForSequentialRecommendation.register(config_class, head_class, exist_ok=True)
    config_class.register_for_auto_class("AutoConfig")
    head_class.register_for_auto_class("AutoModel")
