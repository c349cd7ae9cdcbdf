"""`hf-rec export`: a model's user encoder as ONNX, its item table, and a check with onnxruntime.

The export folder holds what a serving stack without PyTorch needs:

    user_encoder.onnx             (input_ids [B, L], attention_mask [B, L][, timestamps [B, L + 1]]
                                   [, user_features [B, F]][, interaction_features [B, L, N]]) -> [B, H]
    item_embeddings.safetensors   "item_embeddings" [V, H]: score = user . item (rows of special ids included)
    export_config.json            special ids, pad id, the longest history read, input names, the check's numbers

Histories are left-padded (most recent item last) and truncated to `max_history_length` by the caller, as
`model.histories_to_inputs` does. Every family exports with dynamic batch and length: through
`torch.onnx.export(dynamo=True)`, except GRU4Rec and NARM, which take the TorchScript exporter (torch.export fixes an
nn.GRU to the example's length); the text model exports the encoder over its cached item table (the language backbone is not part of it).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write_text

__all__ = ["UserEncoder", "check_onnx_export", "export_onnx"]

ONNX_FILE = "user_encoder.onnx"
ITEMS_FILE = "item_embeddings.safetensors"
CONFIG_FILE = "export_config.json"


class UserEncoder(nn.Module):
    """`model.get_user_embeddings` as a module with plain tensor inputs (what the exporter traces)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        timestamps: torch.Tensor | None = None,
        user_features: torch.Tensor | None = None,
        interaction_features: torch.Tensor | None = None,
    ):
        inputs = {"timestamps": timestamps} if self.model.reads_timestamps else {}
        if self.model.reads_user_features:
            inputs["user_features"] = user_features
        if self.model.reads_interaction_features:
            inputs["interaction_features"] = interaction_features
        return self.model.get_user_embeddings(input_ids, attention_mask, **inputs)


def _sample_histories(model, count: int, seed: int) -> list[list[int]]:
    """Histories of random catalogue items with lengths from 1 to the longest the model reads."""
    rng = random.Random(seed)
    specials = set(model.config.special_ids)
    items = [i for i in range(1, model.get_item_embeddings().shape[0]) if i not in specials]
    longest = model.max_history_length()
    lengths = [1, longest, *[rng.randint(1, longest) for _ in range(count - 2)]][:count]
    return [[rng.choice(items) for _ in range(length)] for length in lengths]


def _sample_timestamps(histories: list[list[int]], seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    out = []
    for history in histories:
        start, times = 978_300_000 + rng.randint(0, 10**8), []
        for _ in range(len(history) + 1):  # the items, then the request
            start += rng.randint(1, 30 * 86_400)
            times.append(start)
        out.append(times)
    return out


def _sample_user_features(model, count: int, seed: int) -> torch.Tensor | None:
    """Random value ids (0 = unknown included) for each user feature the model reads, columns in sorted name order."""
    specs = getattr(model.config, "user_features", None)
    if not specs:
        return None
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, specs[name]["vocab_size"], (count,), generator=generator)
                        for name in sorted(specs)], dim=1)  # fmt: skip


def _sample_interaction_features(model, histories: list[list[int]], seed: int) -> list[list[list[int]]] | None:
    """Random value ids (0 = unknown included) per history item for each interaction feature the model reads."""
    specs = getattr(model.config, "interaction_features", None)
    if not specs:
        return None
    rng = random.Random(seed)
    return [[[rng.randrange(specs[name]["vocab_size"]) for name in sorted(specs)] for _ in history] for history in histories]


def _inputs(model, histories, timestamps, user_features=None, interaction_features=None) -> dict[str, torch.Tensor]:
    input_ids, attention_mask = model.histories_to_inputs(histories)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if timestamps is not None:
        inputs["timestamps"] = model.timestamps_to_inputs(timestamps, histories)
    if user_features is not None:
        inputs["user_features"] = user_features
    if interaction_features is not None:
        inputs["interaction_features"] = model.interaction_features_to_inputs(interaction_features, histories)
    return inputs


def export_onnx(model, output_dir: str | Path, check_users: int = 256, k: int = 10, seed: int = 0) -> dict[str, Any]:
    """Export `model` (any hf_rec family) to `output_dir` and check it with onnxruntime on `check_users` random
    histories (every length from 1 to the longest read): returns and records the largest user-vector difference and
    whether onnxruntime's top-`k` equals `model.recommend`'s for every history."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    reads_timestamps = bool(model.reads_timestamps)
    reads_user_features = bool(model.reads_user_features)
    encoder = UserEncoder(model).eval()
    # Example lengths strictly inside (1, longest): an example at a bound of the dynamic range can be specialised.
    longest = model.max_history_length()
    example_histories = [history[: max(1, min(longest - 1, 2 + row))]
                         for row, history in enumerate(_sample_histories(model, 3, seed))]  # fmt: skip
    example_times = _sample_timestamps(example_histories, seed) if reads_timestamps else None
    example = _inputs(model, example_histories, example_times, _sample_user_features(model, 3, seed),
                      _sample_interaction_features(model, example_histories, seed))  # fmt: skip
    batch = torch.export.Dim("batch")
    length = torch.export.Dim("length", min=1, max=model.max_history_length())
    dynamic_shapes = {"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}}
    if reads_timestamps:
        dynamic_shapes["timestamps"] = {0: batch, 1: length + 1}
    else:
        dynamic_shapes["timestamps"] = None
        example["timestamps"] = None
    dynamic_shapes["user_features"] = {0: batch} if reads_user_features else None
    example.setdefault("user_features", None)
    dynamic_shapes["interaction_features"] = {0: batch, 1: length} if model.reads_interaction_features else None
    example.setdefault("interaction_features", None)
    names = [name for name in ("input_ids", "attention_mask", "timestamps", "user_features", "interaction_features")
             if example.get(name) is not None]  # fmt: skip
    onnx_file = str(output_dir / ONNX_FILE)
    with torch.no_grad():
        if any(isinstance(module, nn.GRU) for module in model.modules()):
            # torch.export specialises an nn.GRU to the example's length (torch 2.13), so the recurrent families go
            # through the TorchScript exporter, which maps nn.GRU onto ONNX's GRU operator.
            torch.onnx.export(
                encoder, tuple(example[name] for name in names), onnx_file, input_names=names,
                output_names=["user_embeddings"], dynamo=False, opset_version=17,
                dynamic_axes={**{name: {0: "batch"} if name == "user_features" else {0: "batch", 1: "length"}
                                 for name in names}, "user_embeddings": {0: "batch"}},
            )  # fmt: skip
        else:
            program = torch.onnx.export(
                encoder, (), kwargs=example, dynamic_shapes=dynamic_shapes, dynamo=True, external_data=False,
                input_names=names, output_names=["user_embeddings"], verbose=False,
            )  # fmt: skip
            program.save(onnx_file)
    from safetensors.torch import save_file

    save_file({"item_embeddings": model.get_item_embeddings().detach().float().contiguous()},
              str(output_dir / ITEMS_FILE))  # fmt: skip
    check = check_onnx_export(model, output_dir, check_users, k, seed + 1)
    config = {
        "model_type": model.config.model_type,
        "pad_token_id": model.config.pad_token_id,
        "special_ids": list(model.config.special_ids),
        "max_history_length": model.max_history_length(),
        "inputs": names,
        "score": "user_embeddings @ item_embeddings.T; special ids and seen items are the caller's to filter",
        "check": check,
    }
    atomic_write_text(output_dir / CONFIG_FILE, json.dumps(config, indent=1))
    return config


def check_onnx_export(model, output_dir: str | Path, num_users: int = 256, k: int = 10, seed: int = 1) -> dict:
    """onnxruntime against PyTorch on random histories: the largest absolute user-vector difference and whether the
    top-`k` items (seen ones excluded) agree for every history."""
    import onnxruntime as ort

    from ..models.retrieval import topk_items

    output_dir = Path(output_dir)
    session = ort.InferenceSession(str(output_dir / ONNX_FILE), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    histories = _sample_histories(model, num_users, seed)
    timestamps = _sample_timestamps(histories, seed) if "timestamps" in names else None
    users = _sample_user_features(model, num_users, seed) if "user_features" in names else None
    interactions = _sample_interaction_features(model, histories, seed) if "interaction_features" in names else None
    items = model.get_item_embeddings().detach().float()
    max_diff, same_topk = 0.0, 0
    for start in range(0, num_users, 64):
        chunk = histories[start : start + 64]
        inputs = _inputs(model, chunk, None if timestamps is None else timestamps[start : start + 64],
                         None if users is None else users[start : start + 64],
                         None if interactions is None else interactions[start : start + 64])  # fmt: skip
        users_onnx = session.run(None, {name: inputs[name].numpy() for name in names})[0]
        with torch.no_grad():
            users_torch = model.get_user_embeddings(**inputs).float()
        max_diff = max(max_diff, float(np.abs(users_onnx - users_torch.numpy()).max()))
        specials = model.config.special_ids
        expected = topk_items(users_torch, items, k, exclude=chunk, special_ids=specials)[0]
        got = topk_items(torch.from_numpy(users_onnx), items, k, exclude=chunk, special_ids=specials)[0]
        same_topk += int((expected == got).all(dim=1).sum())
    return {"users": num_users, "max_abs_user_vector_diff": max_diff, "same_top_k": same_topk, "k": k}
