"""LLMRec configuration: a text backbone (encoder or decoder LLM) initialises or produces item representations that a
SASRec-style causal encoder reads."""

from __future__ import annotations

import os

from .configuration_common import TransformerRecommenderConfig, _check_choice, _check_int, _check_probability

POOLINGS = ("mean", "cls", "last")
ITEM_REPRESENTATIONS = ("text", "text+id", "id")
MODES = ("init", "lora")
TEXT_TABLE_DTYPES = ("float32", "float16", "bfloat16")
INIT_METHODS = ("projection", "pca", "pca_whiten")


def default_pooling(backbone_config: dict) -> str:
    """`mean` for encoders (model types with a masked-LM head, e.g. BERT / MiniLM), `last` for decoder LLMs."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return "mean" if backbone_config.get("model_type") in MODEL_FOR_MASKED_LM_MAPPING_NAMES else "last"


class LLMRecConfig(TransformerRecommenderConfig):
    r"""
    Configuration of [`LLMRecModel`] / [`LLMRecForSequentialRecommendation`]: item vectors come from a pretrained
    text model (UniSRec / "LLM embeddings as item initialisation", Hou et al. KDD 2022; Harte et al. RecSys 2023,
    "Leveraging Large Language Models for Sequential Recommendation"), a SASRec causal encoder reads the history.

    Takes every argument of [`TransformerRecommenderConfig`] (vocabulary, loss, blocks, dropouts) plus:

    Args:
        backbone_name_or_path (`str`, *optional*):
            Local folder or Hub id of the text model (any `AutoModel`). Needed to build a new model, to add items in
            `init` mode and to load a `lora` model saved without its backbone weights.
        backbone_config (`dict`, *optional*):
            The backbone's `config.to_dict()`; filled from `backbone_name_or_path` when the model is built, so a
            saved model rebuilds the backbone architecture with `AutoConfig.for_model(**backbone_config)`.
        pooling (`str`, *optional*):
            `"mean"` (masked mean of token states), `"cls"` (first token) or `"last"` (last real token). Defaults to
            `"mean"` for encoders and `"last"` for decoder LLMs.
        max_text_length (`int`, *optional*, defaults to 64): Tokens kept of each item text.
        item_representation (`str`, *optional*, defaults to `"text"`): `"text"` (projected text embedding),
            `"text+id"` (its sum with a learned ID embedding) or `"id"` (`mode="init"` only: an ID embedding table
            initialised with the projected text embeddings, then trained freely like SASRec's; items added later get
            the text -> ID map refitted by least squares on the known items).
        mode (`str`, *optional*, defaults to `"init"`): `"init"`: texts encoded once by the frozen backbone, the
            backbone is not part of the model; `"lora"`: the backbone with LoRA adapters is trained end to end.
        init_method (`str`, *optional*, defaults to `"projection"`): How the text -> `hidden_size` projection starts:
            `"projection"` (random linear layer), `"pca"` (the top principal components of the item text
            embeddings) or `"pca_whiten"` (the same components, each rescaled to the same variance). The projection
            is trained in all cases.
        lora_r (`int`, *optional*, defaults to 8), lora_alpha (`int`, *optional*, defaults to 16),
        lora_dropout (`float`, *optional*, defaults to 0.0): LoRA settings (`mode="lora"`).
        lora_target_modules (`str` or `list[str]`, *optional*, defaults to `"all-linear"`): Backbone modules that get
            adapters (peft's syntax: `"all-linear"` or module-name suffixes).
        lora_layers (`int`, *optional*): Train only the top `lora_layers` blocks of the backbone (`mode="lora"`): they
            get the LoRA adapters, the blocks below stay frozen and the hidden states entering the first trained block
            are computed once per item text and cached (on disk under `$HF_HOME/hf_rec/layer_states`, and in memory),
            so a step and a catalogue refresh run only the top blocks. `None`: LoRA on every block, full forwards.
        lora_items_per_step (`int`, *optional*): At most this many distinct items of a training batch are re-encoded
            through the backbone with gradients (a random subset, `mode="lora"`); the batch's other items and all
            negatives are read from the cached item table (updated with every fresh encoding, re-encoded before
            each evaluation). `None`: every distinct item of the batch.
        backbone_dropout (`float`, *optional*): Sets every dropout rate of the backbone's config (`mode="lora"`),
            e.g. `0.0` so that a step's fresh encodings are computed like the cached table's (no measurable change on
            Amazon Scientific). `None`: the backbone's own rates.
        backbone_gradient_checkpointing (`bool`, *optional*, defaults to `False`): Recompute backbone activations in
            the backward pass (`mode="lora"`).
        backbone_bf16 (`bool`, *optional*, defaults to `True`): Run the backbone under bf16 autocast on CUDA.
        text_table_dtype (`str`, *optional*, defaults to `"float32"`): Storage type of the `[V, D]` text table
            (`"float16"` halves it in memory and in model.safetensors: a Scientific lora model folder stays under
            10 MB; the table is cast to float32 where it is read, and what is stored is exactly what is scored).
        text_batch_size (`int`, *optional*, defaults to 64): Texts per backbone call when encoding the catalogue.
        save_backbone (`bool`, *optional*, defaults to `False`): `save_pretrained` also writes the backbone weights
            (needed when `backbone_name_or_path` is a local folder that will not exist where the model is loaded).
    """

    model_type = "llmrec"

    def __init__(
        self,
        backbone_name_or_path: str | None = None,
        backbone_config: dict | None = None,
        pooling: str | None = None,
        max_text_length: int = 64,
        item_representation: str = "text",
        mode: str = "init",
        init_method: str = "projection",
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.0,
        lora_target_modules: str | list[str] = "all-linear",
        lora_layers: int | None = None,
        lora_items_per_step: int | None = None,
        backbone_dropout: float | None = None,
        backbone_gradient_checkpointing: bool = False,
        backbone_bf16: bool = True,
        text_batch_size: int = 64,
        text_table_dtype: str = "float32",
        save_backbone: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if self.item_id_dropout:
            raise ValueError("item_id_dropout is for ID models: a text model scores untrained items from their text")
        if isinstance(backbone_name_or_path, os.PathLike):
            backbone_name_or_path = os.fspath(backbone_name_or_path)
        if backbone_name_or_path is not None and not isinstance(backbone_name_or_path, str):
            raise ValueError(f"backbone_name_or_path must be a string, got {backbone_name_or_path!r}")
        if backbone_config is not None and not (isinstance(backbone_config, dict) and "model_type" in backbone_config):
            raise ValueError("backbone_config must be a backbone config dict with a 'model_type' key")
        if pooling is not None:
            _check_choice("pooling", pooling, POOLINGS)
        _check_int("max_text_length", max_text_length, minimum=1)
        _check_choice("item_representation", item_representation, ITEM_REPRESENTATIONS)
        _check_choice("mode", mode, MODES)
        _check_choice("init_method", init_method, INIT_METHODS)
        if item_representation == "id" and mode != "init":
            raise ValueError("item_representation='id' needs mode='init' (a lora backbone would get no gradient)")
        _check_int("lora_r", lora_r, minimum=1)
        _check_int("lora_alpha", lora_alpha, minimum=1)
        _check_probability("lora_dropout", lora_dropout)
        if isinstance(lora_target_modules, (list, tuple)):
            lora_target_modules = [str(m) for m in lora_target_modules]
            if not lora_target_modules:
                raise ValueError("lora_target_modules must not be empty")
        elif not isinstance(lora_target_modules, str) or not lora_target_modules:
            raise ValueError(
                f"lora_target_modules must be 'all-linear' or a list of module names, got {lora_target_modules!r}"
            )
        for name, value in (("lora_layers", lora_layers), ("lora_items_per_step", lora_items_per_step)):
            if value is not None:
                _check_int(name, value, minimum=1)
                if mode != "lora":
                    raise ValueError(f"{name}={value} needs mode='lora' (mode is {mode!r})")
        if backbone_dropout is not None:
            _check_probability("backbone_dropout", backbone_dropout)
        _check_int("text_batch_size", text_batch_size, minimum=1)
        _check_choice("text_table_dtype", text_table_dtype, TEXT_TABLE_DTYPES)
        self.backbone_name_or_path = backbone_name_or_path
        self.backbone_config = backbone_config
        if pooling is None and backbone_config is not None:
            pooling = default_pooling(backbone_config)
        self.pooling = pooling
        self.max_text_length = max_text_length
        self.item_representation = item_representation
        self.mode = mode
        self.init_method = init_method
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = float(lora_dropout)
        self.lora_target_modules = lora_target_modules
        self.lora_layers = lora_layers
        self.lora_items_per_step = lora_items_per_step
        self.backbone_dropout = None if backbone_dropout is None else float(backbone_dropout)
        self.backbone_gradient_checkpointing = bool(backbone_gradient_checkpointing)
        self.backbone_bf16 = bool(backbone_bf16)
        self.text_batch_size = text_batch_size
        self.text_table_dtype = text_table_dtype
        self.save_backbone = bool(save_backbone)

    @property
    def text_hidden_size(self) -> int:
        """Width of the backbone's pooled text embedding (1 before a backbone is attached)."""
        if self.backbone_config is None:
            return 1
        for key in ("hidden_size", "d_model", "dim", "n_embd"):
            if key in self.backbone_config:
                return int(self.backbone_config[key])
        model_type = self.backbone_config["model_type"]
        raise ValueError(f"cannot find the hidden size in backbone_config (model_type {model_type!r})")


__all__ = ["LLMRecConfig"]
