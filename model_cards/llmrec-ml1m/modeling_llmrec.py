"""LLMRec: item representations from a pretrained text model, read by a SASRec-style causal encoder.

Two modes (Hou et al., KDD 2022, "Towards Universal Sequence Representation Learning for Recommender Systems";
Harte et al., RecSys 2023, "Leveraging Large Language Models for Sequential Recommendation"):

* `init`: every item's text is encoded once by the frozen backbone (cached on disk under
  `$HF_HOME/hf_rec/text_embeddings/<sha256>.safetensors`); the model keeps only that `[V, D]` text table (a buffer)
  and learns a `D -> hidden_size` projection (random or PCA start), optionally plus an ID embedding.
* `lora`: the backbone with peft LoRA adapters is part of the model and trained end to end. Each training forward
  re-encodes the unique items of the batch (history items and labels) with gradients; every other item (the
  negatives of `ce`, `sampled_softmax`, `gbce`, `bce`) is read from the cached `[V, D]` text table, a memory bank
  that is refreshed with the fresh batch encodings and fully re-encoded (`refresh_item_cache`) whenever it is used
  for scoring after a training step (evaluation, `recommend`, `save_pretrained`).

Items without text get their raw id string as text (counted and logged by `from_item_tokenizer`).

Saved state (`model.safetensors`): recommender weights, the `[V, D]` text table `model.items.text_embeddings`, and
in `lora` mode the tokenised texts `model.items.text_input_ids` / `text_attention_mask` `[V, max_text_length]` and
the LoRA weights; the backbone's own weights only with `save_backbone=True` (otherwise they are reloaded from
`backbone_name_or_path`). `lora` mode also writes peft's `adapter/adapter_model.safetensors` and
`adapter/adapter_config.json`, and every mode writes the backbone's text tokenizer to `backbone_tokenizer/`
(for `add_items`).

Imports at module top: torch, transformers, stdlib and sibling files only; `peft` is imported lazily inside the
`lora` code path.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig
from transformers.modeling_outputs import BaseModelOutput

from .configuration_llmrec import LLMRecConfig, default_pooling
from .features import build_feature_embeddings, with_features
from .layers import RecTransformerEncoder, reversed_position_ids
from .llmrec_text import (
    LLMRecItemEncoder,
    backbone_from_config,
    cached_text_embeddings,
    load_backbone,
    load_backbone_tokenizer,
    pca_projection,
    resolve_backbone_path,
)
from .modeling_common import SequentialRecommenderMixin, SequentialRecommenderPreTrainedModel

logger = logging.getLogger(__name__)

BACKBONE_TOKENIZER_DIR = "backbone_tokenizer"
BACKBONE_DIR = "backbone"
ADAPTER_DIR = "adapter"
_BACKBONE_PREFIX = "model.items.backbone."


# ----------------------------------------------------------------------------------------------------------------
# Models.
# ----------------------------------------------------------------------------------------------------------------


class LLMRecPreTrainedModel(SequentialRecommenderPreTrainedModel):
    config_class = LLMRecConfig
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = False

    def _init_weights(self, module):
        if getattr(module, "_llmrec_backbone", False):
            return  # backbone weights come from the pretrained checkpoint, LoRA weights from peft
        if isinstance(module, LLMRecItemEncoder):
            # A model built without texts (`from_config`) gets a fixed random text table, so that its items differ;
            # `from_item_tokenizer` and `from_pretrained` overwrite it.
            with torch.no_grad():
                module.text_embeddings.normal_(0.0, 1.0)
                module.text_embeddings[self.config.pad_token_id].zero_()
            return
        super()._init_weights(module)


class LLMRecModel(LLMRecPreTrainedModel):
    """Item vectors (text -> projection (+ ID)) + positions -> causal blocks: `[B, L]` -> `[B, L, H]`."""

    def __init__(self, config: LLMRecConfig):
        super().__init__(config)
        self.items = LLMRecItemEncoder(config)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.scale = config.hidden_size**0.5 if config.scale_embeddings else 1.0
        self.encoder = RecTransformerEncoder(config, is_causal=True)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        item_table: torch.Tensor | None = None,
        feature_embeddings: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): Left-padded item indices.
            attention_mask (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): 1 for items.
            item_table (`torch.FloatTensor` of shape `(vocab_size, hidden_size)`, *optional*): Item vectors to read
                (defaults to the cached table).
            feature_embeddings (`torch.FloatTensor` of shape `(batch_size, seq_len, hidden_size)`, *optional*): Side
                information added to the item inputs (the head's `features` module computes it).
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        if item_table is None:
            item_table = self.items.cached_table()
        positions = reversed_position_ids(input_ids.shape[1], self.config.max_position_embeddings, input_ids.device)
        embeddings = with_features(item_table[input_ids], feature_embeddings) * self.scale + self.position_embeddings(positions)[None]
        embeddings = self.dropout(embeddings) * attention_mask[..., None].to(embeddings.dtype)  # [B, L, H]
        return BaseModelOutput(last_hidden_state=self.encoder(embeddings, attention_mask))

    def get_input_embeddings(self):
        # None: items are read from one table built from the texts (and IDs) by `items`, not from an embedding layer
        # called in forward. (FSDP2 under accelerate gives a model's input embedding a unit of its own, resharded
        # after its own forward, which the item table's direct read of the ID weights would find sharded.)
        return None


class LLMRecForSequentialRecommendation(SequentialRecommenderMixin, LLMRecPreTrainedModel):
    """LLMRec with its scoring head: next-item scores are dot products with the item vectors.

    Build a new model with [`~LLMRecForSequentialRecommendation.from_item_tokenizer`] (it encodes the item texts);
    `from_config` gives an empty text table (what `from_pretrained` fills).
    """

    training_objective = "causal"
    # lora mode saved without `save_backbone`: the backbone's own weights come from `backbone_name_or_path`
    _keys_to_ignore_on_load_missing = [r"^model\.items\.backbone\.(?!.*lora_)"]

    def __init__(self, config: LLMRecConfig):
        super().__init__(config)
        self.model = LLMRecModel(config)
        self.features = build_feature_embeddings(config)
        self._backbone_tokenizer = None
        self._source_dir = None
        self.post_init()
        if config.mode == "lora":
            # Architecture only; pretrained weights come from `load_backbone_weights` or the saved state.
            self._attach_backbone(backbone_from_config(config.backbone_config))

    # -- construction -------------------------------------------------------------------------------------------
    def _attach_backbone(self, base: nn.Module) -> None:
        if isinstance(getattr(base, "pooler", None), nn.Module):
            # Items are pooled from the token states (`pool`); an encoder's own pooling layer (BERT's pooler.dense)
            # would get LoRA adapters that never receive a gradient, which DDP rejects at the next step.
            base.pooler = None
        for module in base.modules():
            module._llmrec_backbone = True
        # The backbone's blocks (LlamaDecoderLayer, BertLayer, ...): what FSDP shards as units and device maps keep
        # whole, without naming them in the launch config.
        self._no_split_modules = list(getattr(base, "_no_split_modules", None) or [])
        self.model.items.attach_lora_backbone(base)
        for module in self.model.items.backbone.modules():
            module._llmrec_backbone = True

    @classmethod
    def from_item_tokenizer(cls, config: LLMRecConfig, tokenizer, device=None) -> LLMRecForSequentialRecommendation:
        """A new model whose item table comes from `tokenizer`'s item texts, encoded by the backbone (on `device`
        when given: the catalogue is encoded there, and the model is returned there).

        Items without text use their raw id string as text (counted and logged).
        """
        path = resolve_backbone_path(config.backbone_name_or_path)
        backbone_config = AutoConfig.from_pretrained(path).to_dict()
        backbone_config["_name_or_path"] = config.backbone_name_or_path  # not the local copy's folder
        if config.backbone_dropout is not None:  # every dropout rate of the backbone (hidden, attention, ...)
            for key, value in backbone_config.items():
                if "dropout" in key and isinstance(value, float):
                    backbone_config[key] = config.backbone_dropout
        config.backbone_config = backbone_config
        if config.pooling is None:
            config.pooling = default_pooling(backbone_config)
        if config.vocab_size != tokenizer.vocab_size:
            raise ValueError(f"config.vocab_size={config.vocab_size} but the item tokenizer has {tokenizer.vocab_size}")
        model = cls(config)
        texts, missing = {}, 0
        for index, raw_id in zip(tokenizer.item_indices, tokenizer.item_ids):
            text = tokenizer.text(index)
            if not text:
                missing += 1
                text = str(raw_id)
            texts[index] = text
        if missing:
            logger.warning("%d of %d items have no text; their raw id is used as text", missing, len(texts))
        model.items_without_text = missing
        backbone = load_backbone(path)
        model._backbone_tokenizer = load_backbone_tokenizer(path)
        if config.mode == "lora":
            model.load_backbone_weights(backbone)
            backbone = None  # the model's own LoRA-wrapped copy encodes from here on
        if device is not None:
            model.to(device)
            if backbone is not None:
                backbone.to(device)
        indices = sorted(texts)
        items = model.model.items
        with torch.no_grad():
            if config.mode == "lora":
                tokens = model._tokenize([texts[i] for i in indices])
                items.text_input_ids[indices] = tokens["input_ids"].to(items.text_input_ids)
                items.text_attention_mask[indices] = tokens["attention_mask"].to(items.text_attention_mask)
                # Encodes every text; with `lora_layers` the frozen lower blocks run once and are cached (on disk: one
                # process writes it under the training loop's main_process_first, the others read it).
                items.refresh_cache()
                embeddings = items.text_embeddings[indices]
            else:
                embeddings = model._encode_new_texts([texts[i] for i in indices], backbone).to(model.device)
                items.text_embeddings[indices] = embeddings.to(items.text_embeddings.dtype)
            if config.init_method in ("pca", "pca_whiten"):
                weight, bias = pca_projection(
                    embeddings.cpu(), config.hidden_size, config.initializer_range, whiten=config.init_method == "pca_whiten"
                )
                items.projection.weight.copy_(weight)
                items.projection.bias.copy_(bias)
            if config.item_representation == "id":  # the ID table starts as the projected texts
                items.id_embeddings.weight[indices] = items.projection(embeddings.float()).to(items.id_embeddings.weight)
        items.cache_stale = False
        return model

    def load_backbone_weights(self, backbone: nn.Module | str) -> None:
        """Copy pretrained backbone weights into the LoRA-wrapped backbone (LoRA weights are left as they are)."""
        if isinstance(backbone, str):
            backbone = load_backbone(backbone)
        inner = self.model.items.backbone.get_base_model()
        target = inner.state_dict()
        source = backbone.state_dict()
        mapped = {}
        for key, value in source.items():
            if key in target:
                mapped[key] = value
            else:
                prefix, _, leaf = key.rpartition(".")
                wrapped = f"{prefix}.base_layer.{leaf}" if prefix else f"base_layer.{leaf}"
                if wrapped in target:
                    mapped[wrapped] = value
        unexpected = [k for k in target if "lora_" not in k and k not in mapped]
        if unexpected:
            raise ValueError(f"backbone weights do not fit this model's backbone; missing {unexpected[:5]}")
        inner.load_state_dict(mapped, strict=False, assign=False)

    def _tokenize(self, texts: list[str]) -> dict:
        tokens = self.backbone_tokenizer()(texts, padding="max_length", truncation=True,
                                           max_length=self.config.max_text_length, return_tensors="pt")
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def backbone_tokenizer(self):
        """The backbone's text tokenizer: the saved folder's `backbone_tokenizer/`, else `backbone_name_or_path`."""
        if self._backbone_tokenizer is None:
            saved = self._source_dir / BACKBONE_TOKENIZER_DIR if self._source_dir is not None else None
            self._backbone_tokenizer = load_backbone_tokenizer(
                str(saved) if saved is not None and saved.is_dir() else self.config.backbone_name_or_path
            )
        return self._backbone_tokenizer

    def _encode_new_texts(self, texts: list[str], backbone: nn.Module | None = None) -> torch.Tensor:
        """`[N, D]` text embeddings of new texts with the model's current text encoder."""
        config = self.config
        if config.mode == "lora":
            tokens = self._tokenize(texts)
            device = self.model.items.text_embeddings.device
            out = []
            was_training = self.model.items.backbone.training
            self.model.items.backbone.eval()
            with torch.no_grad():
                for start in range(0, len(texts), config.text_batch_size):
                    sl = slice(start, start + config.text_batch_size)
                    out.append(self.model.items.encode_tokens(tokens["input_ids"][sl].to(device),
                                                              tokens["attention_mask"][sl].to(device)).cpu())
            self.model.items.backbone.train(was_training)
            return torch.cat(out)
        if backbone is None:
            saved = self._source_dir / BACKBONE_DIR if self._source_dir is not None else None
            backbone_id = str(saved) if saved is not None and saved.is_dir() else config.backbone_name_or_path
        else:
            backbone_id = config.backbone_name_or_path
        return cached_text_embeddings(backbone_id, backbone, self.backbone_tokenizer(), texts, config.pooling,
                                      config.max_text_length, config.text_batch_size)

    # -- cold start ------------------------------------------------------------------------------------------------
    def add_items(self, texts: list[str], item_feature_ids=None) -> list[int]:
        """Add items by their text (cold start); returns their new indices (`vocab_size`, `vocab_size + 1`, ...).

        The texts are encoded by the backbone (with LoRA in `lora` mode) and appended to the text table, so the new
        items are scored and recommended right away. A model with item features takes the new items' value ids as
        `item_feature_ids` (`{name: [len(texts), <= max_values]}`, see `SequentialRecommenderMixin.add_items`). Keep
        an `ItemTokenizer` in sync with `ItemTokenizer.add_items(raw_ids, texts, features=...)` (or use
        `hf_rec.evaluation.cold_start.add_cold_items`, which does both).
        """
        if isinstance(texts, str):
            raise TypeError(f"add_items takes a list of texts, not one string: pass [{texts!r}]")
        texts = [str(t) for t in texts]
        if not texts:
            return []
        if any(not t for t in texts):
            raise ValueError("add_items got an empty text")
        features = self._feature_module()
        if features is not None:
            feature_rows = features.check_new_item_feature_ids(len(texts), item_feature_ids)  # before anything changes
        elif item_feature_ids:
            raise ValueError("item_feature_ids given, but this model has no item features")
        items = self.model.items
        if items.cache_stale:
            items.refresh_cache()
        embeddings = self._encode_new_texts(texts)
        tokens = self._tokenize(texts) if self.config.mode == "lora" else None
        start = self.config.vocab_size
        items.grow(embeddings, tokens)
        self.config.vocab_size = start + len(texts)
        if features is not None:
            features.add_items(feature_rows)
        new_indices = list(range(start, start + len(texts)))
        self.map_untrained_items(new_indices)
        return new_indices

    @torch.no_grad()
    def map_untrained_items(self, indices) -> None:
        """Give items never trained on (held-out cold items, items just added) their text-mapped vector: for `"id"`,
        the text -> ID map refitted on the other items; other representations already score such items from their
        text, so nothing changes."""
        indices = sorted({int(i) for i in indices})
        if self.config.item_representation != "id" or not indices:
            return
        items = self.model.items
        items.fit_projection_to_ids(exclude=indices)
        rows = items.projection(items.text_embeddings[indices].float())
        items.id_embeddings.weight[indices] = rows.to(items.id_embeddings.weight)

    # -- scoring -----------------------------------------------------------------------------------------------------
    def refresh_item_cache(self, process_index: int = 0, num_processes: int = 1, gather=None) -> None:
        """Re-encode every item text (lora mode; a no-op in init mode); see `LLMRecItemEncoder.refresh_cache` for
        the sharded form the training loop uses with several processes."""
        self.model.items.refresh_cache(process_index, num_processes, gather)

    def train(self, mode: bool = True):
        if not mode and self.training and self.model.items.backbone is not None:
            self.model.items.cache_stale = True
        return super().train(mode)

    def get_output_embeddings(self):
        return None  # scores are dot products with the item vectors (`_item_vectors`), not a separate output layer

    def _item_vectors(self) -> torch.Tensor:
        """`[V, H]` item vectors from the (refreshed) cached text table."""
        return self.model.items.cached_table()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **inputs,
    ):
        """`SequentialRecommenderMixin.forward` with this batch's item table, which both the encoder reads the inputs
        from and the head scores against: in lora training the batch's items are encoded fresh (with gradients),
        otherwise the cached table is read."""
        items = self.model.items
        if items.backbone is not None and self.training and torch.is_grad_enabled():
            batch_items = input_ids if labels is None else torch.cat([input_ids.flatten(), labels[labels >= 0]])
            table = items.batch_table(batch_items.flatten())
        else:
            table = items.cached_table()
        return super().forward(input_ids, attention_mask, labels, item_vectors=table, item_table=table, **inputs)

    # -- serialisation ------------------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory, state_dict=None, save_backbone: bool | None = None, **kwargs):
        """`model.safetensors` (recommender, text table, tokenised texts, LoRA weights; backbone weights only with
        `save_backbone`), config, `backbone_tokenizer/`, and in lora mode peft's `adapter/adapter_model.safetensors` +
        `adapter/adapter_config.json`; with `save_backbone` in init mode the backbone goes to `backbone/`."""
        save_backbone = self.config.save_backbone if save_backbone is None else bool(save_backbone)
        items = self.model.items
        if items.cache_stale:
            items.refresh_cache()
        if state_dict is None:
            state_dict = self.state_dict()
        if items.backbone is not None and not save_backbone:
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(_BACKBONE_PREFIX) or "lora_" in k}
        previous = self.config.save_backbone
        self.config.save_backbone = save_backbone
        try:
            super().save_pretrained(save_directory, state_dict=state_dict, **kwargs)
        finally:
            self.config.save_backbone = previous
        directory = Path(save_directory)
        if self._backbone_tokenizer is not None or self.config.backbone_name_or_path:
            try:
                self.backbone_tokenizer().save_pretrained(directory / BACKBONE_TOKENIZER_DIR)
            except ValueError as err:
                logger.warning("backbone tokenizer not saved (add_items will need backbone_name_or_path): %s", err)
        if items.backbone is not None:
            # peft's own layout in a sub-folder: at the top level transformers would try to load it into the whole
            # recommender (its target names, e.g. q_proj, also match the sequential encoder).
            items.backbone.save_pretrained(str(directory / ADAPTER_DIR))
        elif save_backbone:
            load_backbone(self.config.backbone_name_or_path).save_pretrained(directory / BACKBONE_DIR)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load a saved model; in lora mode without saved backbone weights they come from `backbone_name_or_path`."""
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        folder = Path(pretrained_model_name_or_path)
        model._source_dir = folder if folder.is_dir() else None
        model._backbone_tokenizer = None
        if model.model.items.backbone is not None:
            for module in model.model.items.backbone.modules():
                module._llmrec_backbone = True
            if not model.config.save_backbone:
                model.load_backbone_weights(model.config.backbone_name_or_path)
        model.model.items.cache_stale = False  # the saved table was refreshed by save_pretrained
        return model


__all__ = ["LLMRecModel", "LLMRecPreTrainedModel", "LLMRecForSequentialRecommendation"]
