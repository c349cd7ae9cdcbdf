"""Auto-class registration: `AutoConfig` / `AutoModel` know every hf_rec family, and
`AutoModelForSequentialRecommendation` maps a config to its recommendation head."""

from __future__ import annotations

from collections import OrderedDict

from transformers import AutoConfig, AutoModel, PreTrainedConfig
from transformers.models.auto.auto_factory import _BaseAutoModelClass, _LazyAutoMapping
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

# `from_pretrained` keyword arguments that say where config.json is read from (not how the model is built).
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "revision", "subfolder", "token")


class AutoModelForSequentialRecommendation(_BaseAutoModelClass):
    """Loads any hf_rec recommender (`XForSequentialRecommendation`) from a config or a checkpoint.

    hf_rec families always load with hf_rec's own classes, never with the modeling files copied next to the weights,
    and no code from the folder or repo runs unless `trust_remote_code=True` is passed (transformers would otherwise
    ask on the terminal for a config it does not know).

    Example:

    ```python
    >>> from hf_rec import AutoModelForSequentialRecommendation
    >>> model = AutoModelForSequentialRecommendation.from_pretrained("path/or/repo")
    ```
    """

    _model_mapping = _LazyAutoMapping(CONFIG_MAPPING_NAMES, OrderedDict())

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        if kwargs.get("trust_remote_code") is None:
            kwargs["trust_remote_code"] = False  # never the interactive "run the custom code?" prompt
        if not kwargs["trust_remote_code"] and not isinstance(kwargs.get("config"), PreTrainedConfig):
            # config.json is plain JSON: read it first, so that a folder that is no hf_rec model gets one line
            config, _ = PreTrainedConfig.get_config_dict(
                pretrained_model_name_or_path, **{k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
            )
            model_type = config.get("model_type")
            if model_type not in FAMILIES:
                raise ValueError(
                    f"{pretrained_model_name_or_path}: config.json has model_type {model_type!r}, not an hf_rec family "
                    f"({', '.join(sorted(FAMILIES))}); no code from it was run (trust_remote_code=False)"
                )
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)


# model_type -> (config class, recommendation head class); filled by `register_family`.
FAMILIES: dict[str, tuple[type, type]] = {}


def register_family(config_class, base_model_class, head_class) -> None:
    """Register one family with AutoConfig, AutoModel and the recommendation auto class, and mark the classes so
    `save_pretrained` writes `auto_map` and exports their source files for `trust_remote_code`.

    `AutoModel` maps to the head class, in the registry and in the exported `auto_map` alike (a machine without
    hf_rec has no `AutoModelForSequentialRecommendation`), so `AutoModel.from_pretrained(repo, trust_remote_code=True)`
    gives the same class whether hf_rec is imported or not. `base_model_class` (the encoder) is kept in the signature
    for callers; it is built by the head.
    """
    FAMILIES[config_class.model_type] = (config_class, head_class)
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, head_class, exist_ok=True)
    AutoModelForSequentialRecommendation.register(config_class, head_class, exist_ok=True)
    config_class.register_for_auto_class("AutoConfig")
    head_class.register_for_auto_class("AutoModel")
